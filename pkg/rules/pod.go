package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/pkg/podnet"
)

// MaxNetworks bounds the entries of one network annotation.
const MaxNetworks = podnet.MaxNetworks

// NetworkSelection is one network a pod asks Multus for.
type NetworkSelection = podnet.Selection

// ParseNetworks reads a Multus network annotation the way Multus does (podnet.ParseNetworks, which the
// scheduler and underlink-agent read pods with too).
func ParseNetworks(value, defaultNamespace string) ([]NetworkSelection, error) {
	return podnet.ParseNetworks(value, defaultNamespace)
}

// PodTemplate is the pod inside a Pod or a workload.
type PodTemplate struct {
	// Kind is the object's kind: Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
	// ReplicationController or PodTemplate.
	Kind string
	// Object is the object's own metadata (namespace and name of the Pod or workload).
	Object *metav1.ObjectMeta
	// Meta and Spec are the pod's metadata and spec (pointers into the object).
	Meta *metav1.ObjectMeta
	Spec *corev1.PodSpec
	// Path is where Meta and Spec live in the object: nil for a Pod, spec.template for a Deployment,
	// spec.jobTemplate.spec.template for a CronJob.
	Path *field.Path
}

// PodTemplateOf returns the pod of a typed Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job,
// CronJob, ReplicationController or PodTemplate, and false for any other object.
func PodTemplateOf(obj runtime.Object) (PodTemplate, bool) {
	tmpl := field.NewPath("spec", "template")
	switch o := obj.(type) {
	case *corev1.Pod:
		return PodTemplate{Kind: "Pod", Object: &o.ObjectMeta, Meta: &o.ObjectMeta, Spec: &o.Spec}, true
	case *appsv1.Deployment:
		return PodTemplate{"Deployment", &o.ObjectMeta, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, tmpl}, true
	case *appsv1.ReplicaSet:
		return PodTemplate{"ReplicaSet", &o.ObjectMeta, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, tmpl}, true
	case *appsv1.StatefulSet:
		return PodTemplate{"StatefulSet", &o.ObjectMeta, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, tmpl}, true
	case *appsv1.DaemonSet:
		return PodTemplate{"DaemonSet", &o.ObjectMeta, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, tmpl}, true
	case *batchv1.Job:
		return PodTemplate{"Job", &o.ObjectMeta, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, tmpl}, true
	case *batchv1.CronJob:
		t := &o.Spec.JobTemplate.Spec.Template
		return PodTemplate{"CronJob", &o.ObjectMeta, &t.ObjectMeta, &t.Spec, field.NewPath("spec", "jobTemplate", "spec", "template")}, true
	case *corev1.ReplicationController:
		if o.Spec.Template == nil {
			return PodTemplate{}, false
		}
		return PodTemplate{"ReplicationController", &o.ObjectMeta, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, tmpl}, true
	case *corev1.PodTemplate:
		return PodTemplate{"PodTemplate", &o.ObjectMeta, &o.Template.ObjectMeta, &o.Template.Spec, field.NewPath("template")}, true
	}
	return PodTemplate{}, false
}

// CheckPod checks a pod, or a workload's pod template, in namespace ns (design rule 5). at is where the
// pod's metadata and spec live in the object: nil for a Pod, spec.template for a Deployment (see
// PodTemplateOf). Violations name the Pod as their subject; Check names the workload instead.
func CheckPod(w *World, ns string, meta *metav1.ObjectMeta, spec *corev1.PodSpec, at *field.Path) []Violation {
	if meta == nil {
		return nil
	}
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	c := &collector{subject: ObjectRef("Pod", ns, meta.Name)}
	annos := field.NewPath("metadata", "annotations")
	if at != nil {
		annos = at.Child("metadata", "annotations")
	}
	multusNS := DefaultMultusNamespace
	if w != nil && w.MultusNamespace != "" {
		multusNS = w.MultusNamespace
	}
	var atts []attachment
	if v, ok := meta.Annotations[nadv1.DefaultNetworkAnnotation]; ok {
		p := annos.Key(nadv1.DefaultNetworkAnnotation)
		sel, err := ParseNetworks(v, multusNS)
		switch {
		case err != nil:
			c.deny(RulePodNetworkExists, p, v, "network annotation "+err.Error(), "write namespace/name of a SpiderMultusConfig"+w.networkExample())
		case len(sel) != 1:
			c.deny(RulePodNetworkExists, p, v, fmt.Sprintf("names %d networks; the default network is exactly one", len(sel)),
				"keep one network here and list extra ones in "+nadv1.NetworksAnnotation)
		default:
			atts = append(atts, attachment{sel: sel[0], iface: podnet.DefaultInterface, path: p, raw: v})
			checkNetworkExists(c, w, p, v, sel[0], writtenBare(v, 0))
		}
	} else if w != nil && w.DefaultNetwork != "" {
		// The network injection gives the pod: pool choice judges the pod as it will run.
		dns, dname, _ := strings.Cut(w.DefaultNetwork, "/")
		atts = append(atts, attachment{sel: NetworkSelection{Namespace: dns, Name: dname}, iface: podnet.DefaultInterface,
			path: annos.Key(nadv1.DefaultNetworkAnnotation), raw: w.DefaultNetwork})
	}
	if v, ok := meta.Annotations[nadv1.NetworksAnnotation]; ok {
		p := annos.Key(nadv1.NetworksAnnotation)
		sel, err := ParseNetworks(v, ns)
		if err != nil {
			c.deny(RulePodNetworkExists, p, v, "network annotation "+err.Error(), "write namespace/name[@interface], comma-separated, or a JSON list of {\"name\",\"namespace\",\"interface\"}")
		}
		claimed := map[string]string{}
		for _, a := range atts {
			claimed[a.iface] = a.sel.Namespace + "/" + a.sel.Name
		}
		for i, n := range sel {
			iface := podnet.SecondaryInterface(i, n)
			if first, dup := claimed[iface]; dup {
				// Multus would fail the sandbox: one interface, two networks.
				c.deny(RulePodNetworkExists, p, v, fmt.Sprintf("%s and %s/%s both claim the pod's interface %s", first, n.Namespace, n.Name, iface),
					fmt.Sprintf("give %s/%s an interface of its own (%s/%s@<interface>), or remove one of them", n.Namespace, n.Name, n.Namespace, n.Name))
				continue
			}
			claimed[iface] = n.Namespace + "/" + n.Name
			atts = append(atts, attachment{sel: n, iface: iface, path: p, raw: v})
			checkNetworkExists(c, w, p, v, n, writtenBare(v, i))
		}
	}
	if spec != nil && spec.HostNetwork && len(atts) > 0 && meta.Annotations[nadv1.DefaultNetworkAnnotation]+meta.Annotations[nadv1.NetworksAnnotation] != "" {
		hostNetwork := field.NewPath("spec", "hostNetwork")
		if at != nil {
			hostNetwork = at.Child("spec", "hostNetwork")
		}
		c.warn(RulePodNetworkExists, hostNetwork, true, "Multus ignores the network annotations of a hostNetwork pod", "remove hostNetwork: true or the network annotations")
	}
	checkPodPools(c, w, ns, meta, annos, atts)
	for i := range c.vs {
		c.vs[i].Value = oneLine(c.vs[i].Value)
	}
	return c.vs
}

// oneLine is an annotation value as it is echoed in a message: JSON compacted onto one line (a YAML
// block scalar keeps its line breaks, which a field error would print as \n), anything else unchanged.
func oneLine(v any) any {
	s, ok := v.(string)
	if !ok || !strings.ContainsAny(s, "\n\r\t") || !json.Valid([]byte(s)) {
		return v
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		return v
	}
	return b.String()
}

// writtenBare reports whether the i-th network of an annotation was written without a namespace.
func writtenBare(raw string, i int) bool {
	sels, err := ParseNetworks(raw, "")
	return err == nil && i < len(sels) && sels[i].Namespace == ""
}

// networkExample is ", e.g. namespace/name" of the first network of the world, or "" when there is none.
func (w *World) networkExample() string {
	if names := w.networkNames(); len(names) > 0 {
		return ", e.g. " + names[0]
	}
	return ""
}

// networkNames lists every network a pod can name, "namespace/name", sorted.
func (w *World) networkNames() []string {
	if w == nil {
		return nil
	}
	set := map[string]bool{}
	for i := range w.MultusConfigs {
		set[w.MultusConfigs[i].Namespace+"/"+w.MultusConfigs[i].Name] = true
	}
	for i := range w.NADs {
		set[w.NADs[i].Namespace+"/"+w.NADs[i].Name] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// HasNetwork reports whether a SpiderMultusConfig or NetworkAttachmentDefinition namespace/name exists.
func (w *World) HasNetwork(namespace, name string) bool {
	if w == nil {
		return false
	}
	for i := range w.MultusConfigs {
		if w.MultusConfigs[i].Namespace == namespace && w.MultusConfigs[i].Name == name {
			return true
		}
	}
	for i := range w.NADs {
		if w.NADs[i].Namespace == namespace && w.NADs[i].Name == name {
			return true
		}
	}
	return false
}

// checkNetworkExists: the network n, written as raw in the annotation at p (bare: without a namespace),
// exists.
func checkNetworkExists(c *collector, w *World, p *field.Path, raw string, n NetworkSelection, bare bool) {
	if w.HasNetwork(n.Namespace, n.Name) {
		checkNetworkAligned(c, w, p, raw, n)
		return
	}
	msg := fmt.Sprintf("network %s does not exist (no SpiderMultusConfig or NetworkAttachmentDefinition of that name)", n)
	fix := fmt.Sprintf("create SpiderMultusConfig %s or name an existing network", n)
	names := w.networkNames()
	if near := sameNameElsewhere(n, names); near != "" {
		fix = "did you mean " + near + "? (" + n.Name + " is in namespace " + strings.SplitN(near, "/", 2)[0] + ", not " + n.Namespace + ")"
		if bare {
			fix = "did you mean " + near + "? (a name without a namespace resolves in " + n.Namespace + ")"
		}
	} else if near := nearest(n.String(), names); near != "" {
		fix = "did you mean " + near + "?"
	} else if len(names) > 0 {
		if len(names) > 5 {
			names = append(names[:5], "…")
		}
		fix += ": " + strings.Join(names, ", ")
	}
	c.add(Violation{Rule: RulePodNetworkExists, Field: p, Type: field.ErrorTypeNotFound, Value: raw,
		Object: ObjectRef("SpiderMultusConfig", n.Namespace, n.Name), Severity: Deny, Message: msg, Fix: fix})
}

// checkNetworkAligned warns when the pod's network is a SpiderMultusConfig that the Submariner clusters
// no longer agree with (its Aligned condition is False), naming the first broken rule: the pod starts,
// but cannot reach what the conflict names. A warning, never a denial: the network exists, and the fix
// is in the config or its pools, not in the pod.
func checkNetworkAligned(c *collector, w *World, p *field.Path, raw string, n NetworkSelection) {
	st, ok := w.alignmentOf(n.Namespace, n.Name)
	if !ok || st.Status != metav1.ConditionFalse {
		return
	}
	for _, v := range st.Violations {
		if v.Severity != Deny {
			continue
		}
		where := v.Subject
		if v.Field != nil {
			where += " " + v.Field.String()
		}
		c.add(Violation{Rule: v.Rule, Field: p, Value: raw, Cluster: v.Cluster, Object: ObjectRef("SpiderMultusConfig", n.Namespace, n.Name), Severity: Warn,
			Message: fmt.Sprintf("network %s is misaligned with the Submariner clusters: %s: %s", n, where, v.Message),
			Fix:     "fix " + where + " (" + v.Fix + "); pods on this network cannot reach what the conflict names until then"})
		return
	}
}

// sameNameElsewhere returns the first network of n's name in another namespace: the usual slip is a
// bare name that resolves in the pod's namespace while the config lives in kube-system.
func sameNameElsewhere(n NetworkSelection, names []string) string {
	for _, full := range names {
		if ns, name, _ := strings.Cut(full, "/"); name == n.Name && ns != n.Namespace {
			return full
		}
	}
	return ""
}
