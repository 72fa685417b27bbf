package registration

import (
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Injection is how pods of opted-in namespaces get their default network.
type Injection string

const (
	// InjectionPolicy injects with a MutatingAdmissionPolicy (admissionregistration.k8s.io/v1, GA in
	// Kubernetes 1.36): the apiserver applies the patch itself, with no webhook round trip. Pods are then
	// validated by the opted-in validating webhook, which the fast-path condition skips for pods whose
	// only network annotation names a network known to exist. The default.
	InjectionPolicy Injection = "policy"
	// InjectionWebhook injects with the mutating webhook inject.pods.underlink.io, which also validates
	// the pods it patches (clusters older than 1.36, or where admission policies are turned off).
	InjectionWebhook Injection = "webhook"
)

// Valid reports whether i is one of the injections (the empty value means InjectionPolicy).
func (i Injection) Valid() bool { return i == "" || i == InjectionPolicy || i == InjectionWebhook }

// PolicyName names the MutatingAdmissionPolicy that injects and its binding.
const PolicyName = "underlink-inject"

// Policy is what the injection policy puts into pods: the configured default network and scheduler.
type Policy struct {
	// DefaultNetwork is injected when the namespace's underlink.io/default-network annotation names none.
	DefaultNetwork string
	// SchedulerName, when not empty, replaces default-scheduler on injected pods.
	SchedulerName string
}

// InjectPolicy returns the MutatingAdmissionPolicy and its binding that do what the mutating webhook
// does: in opted-in namespaces (the same selectors), a pod that names no Multus default network gets the
// namespace's underlink.io/default-network annotation, else p.DefaultNetwork; when p.SchedulerName is
// set, a pod still on default-scheduler gets it. The patch adds only what is missing, so reinvocation is
// a no-op. The configured values are CEL string literals (an empty DefaultNetwork makes the network
// mutation a no-op), so the chart can render the policy with any values.
//
// The apiserver evaluates the policy for every pod created in an opted-in namespace, and again after it
// patched one (it reruns the mutating chain), so the expressions hold only what they decide: one match
// condition, the scheduler logic only when a scheduler is configured, the annotation's JSON pointer
// written out. BenchmarkInjectPolicy measures them with the apiserver's own evaluator, beside the
// cheapest policy that can inject at all.
func InjectPolicy(p Policy) (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding) {
	fail := admissionregistrationv1.Fail
	equivalent := admissionregistrationv1.Equivalent
	const key = "v1.multus-cni.io/default-network"
	anno := "object.metadata.annotations"
	hasAnno := `has(` + anno + `)`
	hasNetwork := `(` + CELString(key) + ` in ` + anno + `)`
	lacksNetwork := `!` + hasNetwork
	optedOut := CELString(PodInjectAnno) + ` in ` + anno + ` && ` + anno + `[` + CELString(PodInjectAnno) + `] == ` + CELString(InjectDisabled)
	addNetwork := `variables.network == '' ? [] : ` + hasAnno + ` ? ` +
		`[JSONPatch{op: 'add', path: ` + CELString("/metadata/annotations/"+JSONPointerToken(key)) + `, value: variables.network}] : ` +
		`[JSONPatch{op: 'add', path: '/metadata/annotations', value: {` + CELString(key) + `: variables.network}}]`
	// One condition: the pod is not opted out and lacks what the policy adds. A pod without annotations is
	// never opted out; a pod with nothing to add is not patched at all (no encode and decode).
	needs := `!` + hasAnno + ` || !(` + optedOut + `) && ` + lacksNetwork
	patch := addNetwork
	if p.SchedulerName != "" {
		onDefault := `(!has(object.spec.schedulerName) || object.spec.schedulerName == 'default-scheduler')`
		needs = `!` + hasAnno + ` || !(` + optedOut + `) && (` + lacksNetwork + ` || ` + onDefault + `)`
		// One mutation, not one per field: the apiserver encodes, patches and decodes the pod once per mutation.
		patch = `(` + hasAnno + ` && ` + hasNetwork + ` ? [] : ` + addNetwork + `) + (!` + onDefault + ` ? [] : ` +
			`[JSONPatch{op: has(object.spec.schedulerName) ? 'replace' : 'add', path: '/spec/schedulerName', value: ` + CELString(p.SchedulerName) + `}])`
	}
	nsAnno := "namespaceObject.metadata.annotations"
	nsNetwork := nsAnno + `[` + CELString(NamespaceDefaultNetworkAnno) + `]`
	network := `has(` + nsAnno + `) && ` + CELString(NamespaceDefaultNetworkAnno) + ` in ` + nsAnno + ` && ` + nsNetwork + `.trim() != '' ? ` +
		nsNetwork + `.trim() : ` + CELString(p.DefaultNetwork)
	policy := &admissionregistrationv1.MutatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: PolicyName},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: optedIn(),
				ObjectSelector:    notOptedOut(),
				MatchPolicy:       &equivalent,
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       rule("", "v1", "pods"),
				}}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{Name: "needs-injection", Expression: needs}},
			Variables:       []admissionregistrationv1.Variable{{Name: "network", Expression: network}},
			Mutations: []admissionregistrationv1.Mutation{
				{PatchType: admissionregistrationv1.PatchTypeJSONPatch, JSONPatch: &admissionregistrationv1.JSONPatch{Expression: patch}},
			},
			// Fail: a pod must never start without the network its namespace asked for.
			FailurePolicy: &fail,
			// The patch adds only what is missing, so a later mutation that drops the annotation gets it back.
			ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy,
		},
	}
	binding := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: PolicyName},
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: PolicyName},
	}
	return policy, binding
}

// JSONPointerToken escapes s as one reference token of a JSON pointer (RFC 6901): "~" is "~0" and "/"
// is "~1". The policy's patch and the injection webhook's address the annotation with it.
func JSONPointerToken(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }

// CELString quotes s as a CEL string literal.
func CELString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`).Replace(s) + "'"
}

// FastPathConditionName is the match condition of both workload webhooks that lets the apiserver skip
// the webhook for a pod whose network is known to exist. The chart does not render it: the controller
// of underlink-webhook adds it and keeps its expression equal to FastPath(known networks). A field that
// both the chart and a controller write is a conflict for Helm's server-side apply, which fails every
// upgrade that changes the configuration once the controller has written it.
const FastPathConditionName = "network-needs-lookup"

// SetMatchCondition sets the condition named c.Name in conds to c, appending it when conds has none.
func SetMatchCondition(conds []admissionregistrationv1.MatchCondition, c admissionregistrationv1.MatchCondition) []admissionregistrationv1.MatchCondition {
	for i := range conds {
		if conds[i].Name == c.Name {
			conds[i] = c
			return conds
		}
	}
	return append(conds, c)
}

// MaxFastPathNetworks bounds the networks the fast-path condition lists; with more, every pod with
// network annotations is sent to the webhook (the condition is "true").
const MaxFastPathNetworks = 256

// FastPath returns the fast-path match condition for the networks known to exist, each as the pod
// writes it in v1.multus-cni.io/default-network ("namespace/name", or a bare name for a network of the
// Multus namespace). The webhook is skipped only for a Pod whose network annotations are exactly one
// default network from that list: not hostNetwork (which draws a warning), no k8s.v1.cni.cncf.io/networks
// and no ipam.spidernet.io pool annotations, which the webhook must read. Every other object, and every
// pod when known is empty or longer than MaxFastPathNetworks, is sent. A deny needs the webhook anyway
// (its did-you-mean), so the condition can only skip pods the webhook would admit without a warning.
func FastPath(known []string) admissionregistrationv1.MatchCondition {
	c := admissionregistrationv1.MatchCondition{Name: FastPathConditionName, Expression: "true"}
	if len(known) == 0 || len(known) > MaxFastPathNetworks {
		return c
	}
	names := append([]string(nil), known...)
	sort.Strings(names)
	list := make([]string, 0, len(names))
	for i, n := range names {
		if i > 0 && n == names[i-1] {
			continue
		}
		list = append(list, CELString(n))
	}
	anno := "object.metadata.annotations"
	var others []string
	for _, a := range PodNetworkAnnotations {
		if a != "v1.multus-cni.io/default-network" {
			others = append(others, CELString(a))
		}
	}
	c.Expression = `request.kind.kind != 'Pod' || !has(` + anno + `) || !('v1.multus-cni.io/default-network' in ` + anno + `) || ` +
		`[` + strings.Join(others, ", ") + `].exists(k, k in ` + anno + `) || ` +
		`(has(object.spec.hostNetwork) && object.spec.hostNetwork) || ` +
		`!(` + anno + `['v1.multus-cni.io/default-network'] in [` + strings.Join(list, ", ") + `])`
	return c
}
