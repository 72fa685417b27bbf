package rules

import (
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// Check dispatches obj (a typed SpiderIPPool, SpiderMultusConfig, Pod or workload) to its Check
// function; old is the stored object on update, else nil. handled is false for kinds no rule reads
// (their verdict is ALLOW). The webhook's handlers and `underlink validate` both go through here.
//
// An update ratchets (Ratchet): a denial the stored object already had, on fields the update leaves as
// they were, is a warning, so the world changing under an object (a network deleted, a cluster joining)
// never stops its controllers, its scaling, its labels or its finalizers.
func Check(w *World, obj, old runtime.Object) (vs []Violation, handled bool) {
	vs, handled = check(w, obj, old)
	if !handled || old == nil || !Denied(vs) {
		return vs, handled
	}
	oldVs, _ := check(w, old, nil)
	return Ratchet(obj, old, vs, oldVs), true
}

func check(w *World, obj, old runtime.Object) (vs []Violation, handled bool) {
	switch o := obj.(type) {
	case *spiderv2beta1.SpiderIPPool:
		oldPool, _ := old.(*spiderv2beta1.SpiderIPPool)
		return CheckPool(w, o, oldPool), true
	case *spiderv2beta1.SpiderMultusConfig:
		return CheckMultusConfig(w, o), true
	case *spiderv2beta1.SpiderCoordinator:
		return CheckCoordinator(w, o), true
	}
	t, ok := PodTemplateOf(obj)
	if !ok {
		return nil, false
	}
	ns := t.Object.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	vs = CheckPod(w, ns, t.Meta, t.Spec, t.Path)
	subject := ObjectRef(t.Kind, ns, t.Object.Name)
	for i := range vs {
		vs[i].Subject = subject
	}
	return vs, true
}

// alignmentRules are the rules whose outcome depends on the Submariner clusters: they drive the Aligned
// condition and drift.
var alignmentRules = map[string]bool{
	RuleClustersKnown:               true,
	RulePoolInLocalClusterCIDR:      true,
	RulePoolClearOfRemoteCIDRs:      true,
	RulePoolClearOfLocalServiceCIDR: true,
	RuleHijackCoversRemotes:         true,
	RuleHijackAvoidsLocalPools:      true,
}

// IsAlignmentRule reports whether a rule's outcome depends on the Submariner clusters.
func IsAlignmentRule(id string) bool { return alignmentRules[id] }

// AlignmentStatus is a SpiderMultusConfig's alignment with the Submariner clusters, for its Aligned
// condition: the controller re-evaluates it when a Cluster joins, changes or leaves.
type AlignmentStatus struct {
	// Status is True (aligned), False (a denying alignment violation) or Unknown (no clusters, or the
	// local cluster is unknown).
	Status metav1.ConditionStatus
	// Reason is a CamelCase condition reason: "Aligned", "ClustersUnknown", or the first broken rule's ID
	// in CamelCase (RuleReason), e.g. "HijackCoversRemoteCidrs".
	Reason string
	// Message is the violations' lines joined by "; ", or a short statement when aligned.
	Message string
	// Violations are the alignment violations (rules 1–3 and cluster knowledge), deny and warn.
	Violations []Violation
}

// Reasons of AlignmentStatus besides RuleReason of a broken rule.
const (
	ReasonAligned         = "Aligned"
	ReasonClustersUnknown = "ClustersUnknown"
	// ReasonNotUnderlay: the config is not an underlay network, so the alignment rules do not apply.
	ReasonNotUnderlay = "NotUnderlay"
)

// Alignment evaluates design rules 1–3 for one config against the world: its hijack routes and its pools
// against the local and remote clusters.
func Alignment(w *World, smc *spiderv2beta1.SpiderMultusConfig) AlignmentStatus {
	if !IsUnderlay(smc) {
		return AlignmentStatus{Status: metav1.ConditionTrue, Reason: ReasonNotUnderlay,
			Message: "not an underlay network (spec.cniType " + cniType(smc) + "); the alignment rules do not apply"}
	}
	var vs []Violation
	for _, v := range CheckMultusConfig(w, smc) {
		if alignmentRules[v.Rule] {
			vs = append(vs, v)
		}
	}
	for _, name := range configPoolNames(smc) {
		pool, ok := w.Pool(name)
		if !ok {
			continue
		}
		for _, v := range CheckPool(w, pool, nil) {
			if alignmentRules[v.Rule] && v.Rule != RuleClustersKnown && v.Rule != RulePoolInLocalClusterCIDR {
				vs = append(vs, v) // rule 1 is reported from the config's own field above
			}
		}
	}
	st := AlignmentStatus{Violations: vs}
	for _, v := range vs {
		if v.Severity == Deny {
			st.Status, st.Reason = metav1.ConditionFalse, RuleReason(v.Rule)
			st.Message = joinLines(vs, Deny)
			return st
		}
	}
	for _, v := range vs {
		if v.Rule == RuleClustersKnown {
			st.Status, st.Reason, st.Message = metav1.ConditionUnknown, ReasonClustersUnknown, v.Detail()
			return st
		}
	}
	st.Status, st.Reason = metav1.ConditionTrue, ReasonAligned
	st.Message = "pools and hijack routes agree with the Submariner clusters"
	if w != nil && w.Local != nil {
		st.Message += " (local " + ClusterID(w.Local) + ", " + strconv.Itoa(len(w.Remotes)) + " remote)"
	}
	return st
}

func joinLines(vs []Violation, sev Severity) string {
	var lines []string
	for _, v := range vs {
		if v.Severity == sev {
			line := v.String()
			if v.Subject != "" && !strings.HasPrefix(v.Subject, "SpiderMultusConfig/") {
				line = v.Subject + " " + line
			}
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "; ")
}

// RuleReason turns a rule ID into a condition reason: "hijack-covers-remote-cidrs" →
// "HijackCoversRemoteCidrs".
func RuleReason(id string) string {
	var b strings.Builder
	for _, part := range strings.Split(id, "-") {
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// Verdict is the outcome for one object: DENY, WARN or ALLOW.
type Verdict string

// Verdicts, as `underlink validate` prints them.
const (
	VerdictDeny  Verdict = "DENY"
	VerdictWarn  Verdict = "WARN"
	VerdictAllow Verdict = "ALLOW"
)

// VerdictOf is DENY when a violation denies, WARN when one warns, else ALLOW.
func VerdictOf(vs []Violation) Verdict {
	out := VerdictAllow
	for _, v := range vs {
		switch v.Severity {
		case Deny:
			return VerdictDeny
		case Warn:
			out = VerdictWarn
		}
	}
	return out
}

// RuleResult is one rule's outcome over a whole world, one line of `underlink doctor`.
type RuleResult struct {
	Rule RuleInfo
	// Violations broke the rule; empty means it holds (✓).
	Violations []Violation
}

// Verdict is DENY (✗), WARN (!) or ALLOW (✓).
func (r RuleResult) Verdict() Verdict { return VerdictOf(r.Violations) }

// Audit runs every rule over everything in the world (clusters, pools, configs, the default network)
// and returns one result per rule, in the order of Rules. Pods are not in the world: callers that read
// pods add their CheckPod (or Check) violations and group them with GroupByRule.
func Audit(w *World) []RuleResult { return GroupByRule(AuditViolations(w)) }

// AuditViolations is Audit before grouping. The "alignment unchecked" warning appears once (from
// CheckClusters), not once per object.
func AuditViolations(w *World) []Violation {
	vs := CheckClusters(w)
	keep := func(in []Violation) {
		for _, v := range in {
			if v.Rule != RuleClustersKnown {
				vs = append(vs, v)
			}
		}
	}
	if w != nil {
		for i := range w.Pools {
			keep(CheckPool(w, &w.Pools[i], nil))
		}
		for i := range w.MultusConfigs {
			keep(CheckMultusConfig(w, &w.MultusConfigs[i]))
		}
	}
	return append(vs, CheckDefaultNetwork(w)...)
}

// GroupByRule returns one result per rule of Rules, in that order, holding the given violations.
// Violations of an unknown rule ID are appended as results of their own, so none is lost.
func GroupByRule(vs []Violation) []RuleResult {
	out := make([]RuleResult, len(Rules))
	idx := map[string]int{}
	for i, r := range Rules {
		out[i].Rule = r
		idx[r.ID] = i
	}
	for _, v := range vs {
		i, ok := idx[v.Rule]
		if !ok {
			out = append(out, RuleResult{Rule: RuleInfo{ID: v.Rule, Description: v.Rule}})
			i = len(out) - 1
			idx[v.Rule] = i
		}
		out[i].Violations = append(out[i].Violations, v)
	}
	return out
}
