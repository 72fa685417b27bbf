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
// namespace's underlink.io/default-network annotation, else p.DefaultNetwork; a pod still on
// default-scheduler gets p.SchedulerName. The patch adds only what is missing, so reinvocation is a no-op.
// The configured values are CEL string literals; empty ones make their mutation a no-op, so the chart can
// render the policy with any values.
func InjectPolicy(p Policy) (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding) {
	fail := admissionregistrationv1.Fail
	equivalent := admissionregistrationv1.Equivalent
	nsAnno := "namespaceObject.metadata.annotations"
	network := `has(` + nsAnno + `) && '` + NamespaceDefaultNetworkAnno + `' in ` + nsAnno + ` && ` +
		nsAnno + `['` + NamespaceDefaultNetworkAnno + `'].trim() != '' ? ` + nsAnno + `['` + NamespaceDefaultNetworkAnno + `'].trim() : ` +
		CELString(p.DefaultNetwork)
	const key = "v1.multus-cni.io/default-network"
	hasNetwork := `has(object.metadata.annotations) && '` + key + `' in object.metadata.annotations`
	sched := CELString(p.SchedulerName)
	onDefaultScheduler := `(!has(object.spec.schedulerName) || object.spec.schedulerName == 'default-scheduler')`
	// One mutation, not one per field: the apiserver encodes, patches and decodes the pod once per mutation.
	patch := `(` + hasNetwork + ` || variables.network == '' ? [] : ` +
		`has(object.metadata.annotations) ? ` +
		`[JSONPatch{op: 'add', path: '/metadata/annotations/' + jsonpatch.escapeKey('` + key + `'), value: variables.network}] : ` +
		`[JSONPatch{op: 'add', path: '/metadata/annotations', value: {'` + key + `': variables.network}}]) + ` +
		`(` + sched + ` == '' || !` + onDefaultScheduler + ` ? [] : ` +
		`[JSONPatch{op: has(object.spec.schedulerName) ? 'replace' : 'add', path: '/spec/schedulerName', value: ` + sched + `}])`
	// A pod with nothing to add is not patched at all (no encode and decode).
	needsPatch := admissionregistrationv1.MatchCondition{Name: "needs-injection",
		Expression: `!(` + hasNetwork + `) || ` + sched + ` != '' && ` + onDefaultScheduler}
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
			MatchConditions: []admissionregistrationv1.MatchCondition{podNotOptedOut(), needsPatch},
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

// CELString quotes s as a CEL string literal.
func CELString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`).Replace(s) + "'"
}

// FastPathConditionName is the match condition of both workload webhooks that lets the apiserver skip
// the webhook for a pod whose network is known to exist. The chart renders it as FastPath(nil) (always
// call); the controller of underlink-webhook keeps its expression equal to FastPath(known networks).
const FastPathConditionName = "network-needs-lookup"

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
