package v1

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/api/underlay"
)

// SetDefaults fills the fields of a that were left empty.
func SetDefaults(a *UnderlayNetworkArgs) {
	if a.LabelPrefix == "" {
		a.LabelPrefix = underlay.LabelPrefix
	}
	if a.MaxStartingPodsPerNode == nil {
		a.MaxStartingPodsPerNode = ptr.To[int32](DefaultMaxStartingPodsPerNode)
	}
	if a.StartingTimeout == nil {
		a.StartingTimeout = &metav1.Duration{Duration: DefaultStartingTimeout}
	}
	if a.APIVersion == "" {
		a.APIVersion = GroupVersion.String()
	}
	if a.Kind == "" {
		a.Kind = Kind
	}
}

// Validate checks defaulted args; each error names the field, the value and what is expected.
func Validate(a *UnderlayNetworkArgs) field.ErrorList {
	var errs field.ErrorList
	if a.APIVersion != GroupVersion.String() {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), a.APIVersion, []string{GroupVersion.String()}))
	}
	if a.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), a.Kind, []string{Kind}))
	}
	if err := underlay.ValidateLabelPrefix(a.LabelPrefix); err != nil {
		errs = append(errs, field.Invalid(field.NewPath("labelPrefix"), a.LabelPrefix, err.Error()))
	}
	if n := a.MaxStartingPodsPerNode; n != nil && (*n < 0 || *n > 10000) {
		errs = append(errs, field.Invalid(field.NewPath("maxStartingPodsPerNode"), *n, "must be 0 (no pacing) to 10000"))
	}
	if d := a.StartingTimeout; d != nil && d.Duration <= 0 {
		errs = append(errs, field.Invalid(field.NewPath("startingTimeout"), d.Duration.String(), "must be a positive duration, e.g. 1m"))
	}
	if a.DefaultNetwork != "" {
		p := field.NewPath("defaultNetwork")
		ns, name, ok := strings.Cut(a.DefaultNetwork, "/")
		switch {
		case !ok:
			errs = append(errs, field.Invalid(p, a.DefaultNetwork, "must be namespace/name of a SpiderMultusConfig or NetworkAttachmentDefinition, e.g. kube-system/macvlan-conf"))
		default:
			if msgs := content.IsDNS1123Label(ns); len(msgs) > 0 {
				errs = append(errs, field.Invalid(p, a.DefaultNetwork, "namespace "+ns+": "+strings.Join(msgs, "; ")))
			}
			if msgs := content.IsDNS1123Subdomain(name); len(msgs) > 0 {
				errs = append(errs, field.Invalid(p, a.DefaultNetwork, "name "+name+": "+strings.Join(msgs, "; ")))
			}
		}
	}
	return errs
}

// Decode reads the plugin's args as kube-scheduler hands them to the plugin factory: nil (no
// pluginConfig entry), *runtime.Unknown (the raw JSON or YAML of an out-of-tree plugin's args) or an
// *UnderlayNetworkArgs. Unknown fields are errors, so a typo in the configuration is not silently ignored.
// The result is defaulted and validated.
func Decode(obj runtime.Object) (*UnderlayNetworkArgs, error) {
	a := &UnderlayNetworkArgs{}
	switch o := obj.(type) {
	case nil:
	case *UnderlayNetworkArgs:
		if o != nil {
			a = o.DeepCopy()
		}
	case *runtime.Unknown:
		if len(o.Raw) > 0 {
			if err := yaml.UnmarshalStrict(o.Raw, a); err != nil {
				return nil, fmt.Errorf("pluginConfig UnderlayNetwork args: %w", err)
			}
		}
	default:
		return nil, fmt.Errorf("pluginConfig UnderlayNetwork args: want %s, got %T", Kind, obj)
	}
	SetDefaults(a)
	if errs := Validate(a); len(errs) > 0 {
		return nil, fmt.Errorf("pluginConfig UnderlayNetwork args: %w", errs.ToAggregate())
	}
	return a, nil
}

// DeepCopy returns a copy of a.
func (a *UnderlayNetworkArgs) DeepCopy() *UnderlayNetworkArgs {
	if a == nil {
		return nil
	}
	c := *a
	if a.MaxStartingPodsPerNode != nil {
		c.MaxStartingPodsPerNode = ptr.To(*a.MaxStartingPodsPerNode)
	}
	if a.StartingTimeout != nil {
		c.StartingTimeout = ptr.To(*a.StartingTimeout)
	}
	return &c
}

// DeepCopyObject implements runtime.Object, so the args can be passed where kube-scheduler passes args.
func (a *UnderlayNetworkArgs) DeepCopyObject() runtime.Object { return a.DeepCopy() }
