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
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/iprange"
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
	var nets []NetworkSelection
	onNIC := map[string]string{} // pod interface → the network attached there, as Multus numbers them
	if v, ok := meta.Annotations[nadv1.DefaultNetworkAnnotation]; ok {
		p := annos.Key(nadv1.DefaultNetworkAnnotation)
		sel, err := ParseNetworks(v, multusNS)
		switch {
		case err != nil:
			c.deny(RulePodNetworkExists, p, v, "network annotation "+err.Error(), "write namespace/name of a SpiderMultusConfig, e.g. kube-system/macvlan-conf")
		case len(sel) != 1:
			c.deny(RulePodNetworkExists, p, v, fmt.Sprintf("names %d networks; the default network is exactly one", len(sel)),
				"keep one network here and list extra ones in "+nadv1.NetworksAnnotation)
		default:
			nets = append(nets, sel...)
			onNIC[podnet.DefaultInterface] = sel[0].String()
			checkNetworkExists(c, w, p, v, sel[0])
		}
	}
	if v, ok := meta.Annotations[nadv1.NetworksAnnotation]; ok {
		p := annos.Key(nadv1.NetworksAnnotation)
		sel, err := ParseNetworks(v, ns)
		if err != nil {
			c.deny(RulePodNetworkExists, p, v, "network annotation "+err.Error(), "write namespace/name[@interface], comma-separated, or a JSON list of {\"name\",\"namespace\",\"interface\"}")
		}
		for i, n := range sel {
			nets = append(nets, n)
			onNIC[podnet.SecondaryInterface(i, n)] = n.String()
			checkNetworkExists(c, w, p, v, n)
		}
	}
	if spec != nil && spec.HostNetwork && len(nets) > 0 {
		c.warn(RulePodNetworkExists, annos, nil, "Multus ignores network annotations of hostNetwork pods", "remove hostNetwork: true or the network annotations")
	}
	checkPodPools(c, w, ns, meta, annos, nets, onNIC)
	return c.vs
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

func checkNetworkExists(c *collector, w *World, p *field.Path, raw string, n NetworkSelection) {
	if w.HasNetwork(n.Namespace, n.Name) {
		return
	}
	msg := fmt.Sprintf("network %s does not exist (no SpiderMultusConfig or NetworkAttachmentDefinition of that name)", n)
	fix := fmt.Sprintf("create SpiderMultusConfig %s or name an existing network", n)
	names := w.networkNames()
	if near := sameNameElsewhere(n, names); near != "" {
		fix = "did you mean " + near + "? (a name without a namespace resolves in " + n.Namespace + ")"
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

// poolChoice is one pool a pod's annotation names.
type poolChoice struct {
	name   string
	family int
	path   *field.Path
	raw    string
	// nic is the pod interface an ipam.spidernet.io/ippools item names, or "" (any interface).
	nic string
}

// checkPodPools: the pools a pod's ipam.spidernet.io/ippool(s) annotations name exist, match their
// family and admit the pod's namespace, labels and networks.
func checkPodPools(c *collector, w *World, ns string, meta *metav1.ObjectMeta, annos *field.Path, nets []NetworkSelection, onNIC map[string]string) {
	var choices []poolChoice
	single, hasSingle := meta.Annotations[spiderv2beta1.AnnoPodIPPool]
	multi, hasMulti := meta.Annotations[spiderv2beta1.AnnoPodIPPools]
	if hasSingle {
		p := annos.Key(spiderv2beta1.AnnoPodIPPool)
		var v spiderv2beta1.AnnoPodIPPoolValue
		if err := decodeAnnotation(c, p, single, &v, `{"ipv4":["cluster-a"]}`); err == nil {
			if hasMulti {
				c.warn(RulePodPoolsAllowed, p, single, "ignored: "+spiderv2beta1.AnnoPodIPPools+" takes precedence", "keep one of the two annotations")
			}
			choices = append(choices, poolsOf(p, single, "", v.IPv4Pools, v.IPv6Pools)...)
		}
	}
	if hasMulti {
		p := annos.Key(spiderv2beta1.AnnoPodIPPools)
		var v spiderv2beta1.AnnoPodIPPoolsValue
		if err := decodeAnnotation(c, p, multi, &v, `[{"interface":"eth0","ipv4":["cluster-a"]}]`); err == nil {
			seen := map[string]bool{}
			for _, item := range v {
				if item.NIC != "" && podnet.InterfaceNameProblem(item.NIC) != "" {
					c.deny(RulePodPoolsAllowed, p, multi, fmt.Sprintf("interface %q %s", item.NIC, podnet.InterfaceNameProblem(item.NIC)), "name the pod interface, e.g. eth0 or net1")
				}
				if seen[item.NIC] {
					c.add(Violation{Rule: RulePodPoolsAllowed, Field: p, Type: field.ErrorTypeDuplicate, Value: multi, Severity: Deny,
						Message: fmt.Sprintf("interface %q is listed twice", item.NIC), Fix: "list each interface once"})
				}
				seen[item.NIC] = true
				choices = append(choices, poolsOf(p, multi, item.NIC, item.IPv4Pools, item.IPv6Pools)...)
			}
		}
	}
	if len(choices) == 0 {
		return
	}
	if len(choices) > MaxListEntries {
		c.add(Violation{Rule: RulePodPoolsAllowed, Field: choices[0].path, Type: field.ErrorTypeTooMany, Value: len(choices), Severity: Deny,
			Message: fmt.Sprintf("names %d pools, more than %d", len(choices), MaxListEntries), Fix: "name the few pools the pod needs"})
		return
	}
	var nsLabels map[string]string
	nsKnown := false
	if w != nil {
		nsLabels, nsKnown = w.Namespaces[ns]
	}
	warnedNS := false
	for _, ch := range choices {
		pool, ok := w.Pool(ch.name)
		ref := ObjectRef("SpiderIPPool", "", ch.name)
		if !ok {
			msg := "SpiderIPPool " + ch.name + " does not exist"
			fix := "create it or name an existing pool"
			if near := nearest(ch.name, w.poolNames()); near != "" {
				fix = "did you mean " + near + "?"
			}
			c.add(Violation{Rule: RulePodPoolsAllowed, Field: ch.path, Type: field.ErrorTypeNotFound, Value: ch.raw, Object: ref, Severity: Deny, Message: msg, Fix: fix})
			continue
		}
		if sub, err := iprange.ParsePrefix(pool.Spec.Subnet); err == nil && iprange.FamilyOf(sub.Addr()) != ch.family {
			c.deny(RulePodPoolsAllowed, ch.path, ch.raw, fmt.Sprintf("SpiderIPPool %s is IPv%d but is listed under ipv%d", ch.name, iprange.FamilyOf(sub.Addr()), ch.family),
				fmt.Sprintf("list it under ipv%d", iprange.FamilyOf(sub.Addr())))
		}
		if len(pool.Spec.NamespaceName) > 0 && !contains(pool.Spec.NamespaceName, ns) {
			c.add(Violation{Rule: RulePodPoolsAllowed, Field: ch.path, Type: field.ErrorTypeForbidden, Value: ch.raw, Object: ref, Severity: Deny,
				Message: fmt.Sprintf("SpiderIPPool %s is limited to namespaces %s (spec.namespaceName), not %s", ch.name, strings.Join(pool.Spec.NamespaceName, ", "), ns),
				Fix:     fmt.Sprintf("use a pool for namespace %s, or add %s to the pool's spec.namespaceName", ns, ns)})
		}
		if sel := pool.Spec.NamespaceAffinity; sel != nil {
			s, err := metav1.LabelSelectorAsSelector(sel)
			switch {
			case err != nil:
				c.add(Violation{Rule: RulePodPoolsAllowed, Field: ch.path, Value: ch.raw, Object: ref, Severity: Deny,
					Message: fmt.Sprintf("SpiderIPPool %s has an invalid spec.namespaceAffinity: %v", ch.name, err), Fix: "fix the pool's selector"})
			case !nsKnown:
				if !warnedNS {
					c.warn(RulePodPoolsAllowed, ch.path, ch.raw, fmt.Sprintf("the labels of namespace %s are unknown, so SpiderIPPool %s's spec.namespaceAffinity is unchecked", ns, ch.name),
						"include the Namespace object")
					warnedNS = true
				}
			case !s.Matches(labels.Set(nsLabels)):
				c.add(Violation{Rule: RulePodPoolsAllowed, Field: ch.path, Type: field.ErrorTypeForbidden, Value: ch.raw, Object: ref, Severity: Deny,
					Message: fmt.Sprintf("SpiderIPPool %s admits namespaces matching %s (spec.namespaceAffinity); namespace %s does not match", ch.name, s, ns),
					Fix:     fmt.Sprintf("label namespace %s to match, or use another pool", ns)})
			}
		}
		if sel := pool.Spec.PodAffinity; sel != nil {
			s, err := metav1.LabelSelectorAsSelector(sel)
			if err == nil && !s.Matches(labels.Set(meta.Labels)) {
				c.add(Violation{Rule: RulePodPoolsAllowed, Field: ch.path, Type: field.ErrorTypeForbidden, Value: ch.raw, Object: ref, Severity: Deny,
					Message: fmt.Sprintf("SpiderIPPool %s admits pods labelled %s (spec.podAffinity); this pod's labels do not match", ch.name, s),
					Fix:     "label the pod to match, or use another pool"})
			}
		}
		if net, ok := onNIC[ch.nic]; ok && !podnet.PoolServesNetwork(pool.Spec.MultusName, net) {
			// The item names its interface: the pool must serve the network attached there.
			c.add(Violation{Rule: RulePodPoolsAllowed, Field: ch.path, Type: field.ErrorTypeForbidden, Value: ch.raw, Object: ref, Severity: Deny,
				Message: fmt.Sprintf("SpiderIPPool %s serves networks %s (spec.multusName), not %s, which the pod attaches on %s", ch.name, strings.Join(pool.Spec.MultusName, ", "), net, ch.nic),
				Fix:     fmt.Sprintf("name a pool of network %s for %s, or add %s to the pool's spec.multusName", net, ch.nic, net)})
		} else if len(pool.Spec.MultusName) > 0 && len(nets) > 0 && !anyNetworkIn(nets, pool.Spec.MultusName) {
			c.add(Violation{Rule: RulePodPoolsAllowed, Field: ch.path, Type: field.ErrorTypeForbidden, Value: ch.raw, Object: ref, Severity: Deny,
				Message: fmt.Sprintf("SpiderIPPool %s serves networks %s (spec.multusName), none of which the pod uses", ch.name, strings.Join(pool.Spec.MultusName, ", ")),
				Fix:     "attach the pod to one of those networks, or use another pool"})
		}
		if pool.Spec.Disable != nil && *pool.Spec.Disable {
			c.warn(RulePodPoolsAllowed, ch.path, ch.raw, fmt.Sprintf("SpiderIPPool %s is disabled (spec.disable), so new pods get no address from it", ch.name),
				"enable the pool or use another")
		}
	}
}

func poolsOf(p *field.Path, raw, nic string, v4, v6 []string) []poolChoice {
	var out []poolChoice
	for _, n := range v4 {
		out = append(out, poolChoice{name: n, family: 4, path: p, raw: raw, nic: nic})
	}
	for _, n := range v6 {
		out = append(out, poolChoice{name: n, family: 6, path: p, raw: raw, nic: nic})
	}
	return out
}

// decodeAnnotation decodes a JSON annotation, denying what does not decode and warning about unknown keys
// (often a typo such as "ipv4s" that would silently fall back to the default pool).
func decodeAnnotation(c *collector, p *field.Path, raw string, into any, example string) error {
	if err := json.Unmarshal([]byte(raw), into); err != nil {
		c.deny(RulePodPoolsAllowed, p, raw, fmt.Sprintf("is not valid JSON for this annotation: %v", err), "write it like "+example)
		return err
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	scratch := newLike(into)
	if err := dec.Decode(scratch); err != nil {
		c.warn(RulePodPoolsAllowed, p, raw, fmt.Sprintf("has keys Spiderpool ignores: %v", err), "write it like "+example)
	}
	return nil
}

func newLike(v any) any {
	switch v.(type) {
	case *spiderv2beta1.AnnoPodIPPoolValue:
		return &spiderv2beta1.AnnoPodIPPoolValue{}
	case *spiderv2beta1.AnnoPodIPPoolsValue:
		return &spiderv2beta1.AnnoPodIPPoolsValue{}
	}
	return &map[string]any{}
}

func anyNetworkIn(nets []NetworkSelection, multusName []string) bool {
	for _, n := range nets {
		if podnet.PoolServesNetwork(multusName, n.String()) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
