package rules

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// RatchetNote ends the fix of a denial that an update keeps as a warning (Ratchet).
const RatchetNote = "admitted: the stored object already breaks this rule the same way, and this update leaves what the rule reads as it was"

// Ratchet turns the denials of an update into warnings where the update did not cause them, as the
// apiserver ratchets a CRD's validation: a denying violation of obj is kept as a denial only when the
// stored object old, judged against the same world, does not have it (the same rule, field path and
// value), or when the update changes a field the rule reads (ReadsChanged). Everything else is a
// warning that still names the problem, so a Deployment whose network was deleted, or a pool that a
// Submariner cluster joining later made misaligned, can still be scaled, labelled, annotated, have its
// finalizers removed and be deleted; a change to the network annotation or the pool's addresses is judged
// in full. oldVs are old's violations (Check of old with no stored version of its own).
//
// Rules of the transition itself (pool-subnet-immutable, pool-keeps-allocated-ips) never appear in
// oldVs and so are never ratcheted.
func Ratchet(obj, old runtime.Object, vs, oldVs []Violation) []Violation {
	if old == nil {
		return vs
	}
	had := make(map[string]bool, len(oldVs))
	for _, v := range oldVs {
		had[v.key()] = true
	}
	for i, v := range vs {
		if v.Severity != Deny || !had[v.key()] || ReadsChanged(v.Rule, obj, old) {
			continue
		}
		vs[i].Severity = Warn
		vs[i].Ratcheted = true
		if vs[i].Fix == "" {
			vs[i].Fix = RatchetNote
		} else {
			vs[i].Fix += " (" + RatchetNote + ")"
		}
	}
	return vs
}

// key identifies a violation across two versions of one object: rule, field path and value.
func (v Violation) key() string {
	path := ""
	if v.Field != nil {
		path = v.Field.String()
	}
	return fmt.Sprintf("%s\x00%s\x00%#v", v.Rule, path, v.Value)
}

// ReadsChanged reports whether the update from old to obj changes a field that rule reads. Pod and
// workload rules read the pod template's network and pool annotations (pod-pools-allowed also its
// labels) and hostNetwork; pool rules read the spec fields named below; config rules read the spec. A
// change elsewhere (metadata, status, spec.replicas, a container image) never changes a verdict.
func ReadsChanged(rule string, obj, old runtime.Object) bool {
	a, b := readsOf(rule, obj), readsOf(rule, old)
	return !equality.Semantic.DeepEqual(a, b)
}

// SameReads reports whether an update from old to obj leaves every field any rule reads as it was: a
// pool's or config's spec, a pod template's network and pool annotations, labels and hostNetwork. Such
// an update is never denied (Ratchet), so the webhook answers it from its cache.
func SameReads(obj, old runtime.Object) bool {
	return equality.Semantic.DeepEqual(readsOf("", obj), readsOf("", old))
}

// podAnnotations are the pod annotations the pod rules read.
var podAnnotations = []string{
	nadv1.DefaultNetworkAnnotation, nadv1.NetworksAnnotation,
	spiderv2beta1.AnnoPodIPPool, spiderv2beta1.AnnoPodIPPools,
}

func readsOf(rule string, obj runtime.Object) []any {
	switch o := obj.(type) {
	case *spiderv2beta1.SpiderIPPool:
		return poolReads(rule, &o.Spec)
	case *spiderv2beta1.SpiderMultusConfig:
		switch rule {
		case RuleHijackCIDRValid, RuleHijackCoversRemotes, RuleHijackAvoidsLocalPools:
			var hijack []string
			if o.Spec.CoordinatorConfig != nil {
				hijack = o.Spec.CoordinatorConfig.HijackCIDR
			}
			return []any{hijack, o.Spec.CniType, o.Spec.MacvlanConfig}
		}
		return []any{o.Spec}
	case *spiderv2beta1.SpiderCoordinator:
		return []any{o.Name, o.Spec}
	}
	t, ok := PodTemplateOf(obj)
	if !ok {
		return []any{obj}
	}
	out := []any{t.Object.Namespace, t.Spec != nil && t.Spec.HostNetwork}
	for _, k := range podAnnotations {
		v, ok := t.Meta.Annotations[k]
		out = append(out, ok, v)
	}
	if rule != RulePodNetworkExists {
		out = append(out, t.Meta.Labels)
	}
	return out
}

func poolReads(rule string, s *spiderv2beta1.IPPoolSpec) []any {
	switch rule {
	case RulePoolSubnetValid:
		return []any{s.Subnet, s.IPVersion}
	case RulePoolIPsInSubnet, RulePoolNoOverlap, RulePoolInLocalClusterCIDR, RulePoolClearOfRemoteCIDRs, RulePoolClearOfLocalServiceCIDR, RulePoolCapacity:
		return []any{s.Subnet, s.IPVersion, s.IPs, s.ExcludeIPs, s.Gateway}
	case RulePoolGatewayInSubnet, RulePoolGatewayNotAllocatable:
		return []any{s.Subnet, s.Gateway, s.IPs, s.ExcludeIPs}
	case RulePoolRoutesValid:
		return []any{s.Subnet, s.Gateway, s.Routes}
	case RulePoolAffinityValid:
		return []any{s.PodAffinity, s.NamespaceAffinity, s.NodeAffinity, s.MultusName}
	}
	return []any{*s}
}
