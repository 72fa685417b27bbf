package registration

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

func TestCELStringQuotes(t *testing.T) {
	for in, want := range map[string]string{
		"kube-system/macvlan-conf": `'kube-system/macvlan-conf'`,
		"":                         `''`,
		`it's`:                     `'it\'s'`,
		`a\b`:                      `'a\\b'`,
		"two\nlines":               `'two\nlines'`,
	} {
		if got := CELString(in); got != want {
			t.Errorf("CELString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestFastPathSkipsOnlyKnownNetworks(t *testing.T) {
	if c := FastPath(nil); c.Name != FastPathConditionName || c.Expression != "true" {
		t.Errorf("no networks: %+v, want the always-call condition", c)
	}
	many := make([]string, MaxFastPathNetworks+1)
	for i := range many {
		many[i] = fmt.Sprintf("ns/net-%d", i)
	}
	if c := FastPath(many); c.Expression != "true" {
		t.Errorf("%d networks: the condition lists them instead of calling the webhook", len(many))
	}
	c := FastPath([]string{"kube-system/macvlan-conf", "macvlan-conf", "kube-system/macvlan-conf", "it's"})
	if n := strings.Count(c.Expression, "'kube-system/macvlan-conf'"); n != 1 {
		t.Errorf("kube-system/macvlan-conf listed %d times in %s", n, c.Expression)
	}
	for _, want := range []string{
		"request.kind.kind != 'Pod'", // workloads always go to the webhook
		"'k8s.v1.cni.cncf.io/networks'", "'ipam.spidernet.io/ippool'", "'ipam.spidernet.io/ippools'",
		"object.spec.hostNetwork", // a warning the webhook must give
		`'it\'s'`,                 // quoted, not injected into the expression
	} {
		if !strings.Contains(c.Expression, want) {
			t.Errorf("condition lacks %s:\n%s", want, c.Expression)
		}
	}
}

// TestChartLeavesTheFastPathToTheController: the rendered configuration has no fast-path condition, so
// the chart never writes the field the controller owns (Helm's server-side apply would fail the upgrade on
// the conflict); only the injection webhook's own condition differs between the modes.
func TestChartLeavesTheFastPathToTheController(t *testing.T) {
	for _, inj := range []Injection{InjectionPolicy, InjectionWebhook} {
		v := Validating(Options{URL: "https://127.0.0.1:9443", Injection: inj})
		for _, w := range v.Webhooks {
			var names []string
			for _, mc := range w.MatchConditions {
				names = append(names, mc.Name)
			}
			if slices.Contains(names, FastPathConditionName) {
				t.Errorf("%s: %s renders %s; the controller adds it", inj, w.Name, FastPathConditionName)
			}
			injector := slices.Contains(names, "not-validated-by-the-injector")
			if injector != (inj == InjectionWebhook && w.Name == WebhookWorkloadsOptedIn) {
				t.Errorf("%s: %s conditions %v; only the injection webhook validates pods itself", inj, w.Name, names)
			}
		}
	}
	conds := SetMatchCondition(nil, FastPath(nil))
	conds = SetMatchCondition(conds, FastPath([]string{"a/b"}))
	if len(conds) != 1 || conds[0].Expression == "true" {
		t.Errorf("SetMatchCondition twice: %+v", conds)
	}
}

func TestInjectPolicyMatchesTheMutatingWebhook(t *testing.T) {
	policy, binding := InjectPolicy(Policy{DefaultNetwork: "kube-system/macvlan-conf", SchedulerName: "underlink-scheduler"})
	hook := Mutating(Options{URL: "https://127.0.0.1:9443"}).Webhooks[0]
	mc := policy.Spec.MatchConstraints
	if !reflect.DeepEqual(mc.NamespaceSelector, hook.NamespaceSelector) || !reflect.DeepEqual(mc.ObjectSelector, hook.ObjectSelector) ||
		!reflect.DeepEqual(mc.MatchPolicy, hook.MatchPolicy) {
		t.Errorf("policy selectors %v %v differ from the webhook's %v %v", mc.NamespaceSelector, mc.ObjectSelector, hook.NamespaceSelector, hook.ObjectSelector)
	}
	if len(mc.ResourceRules) != 1 || !reflect.DeepEqual(mc.ResourceRules[0].RuleWithOperations, hook.Rules[0]) {
		t.Errorf("policy rules %v differ from the webhook's %v", mc.ResourceRules, hook.Rules)
	}
	if *policy.Spec.FailurePolicy != admissionregistrationv1.Fail || policy.Spec.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Errorf("failurePolicy %v, reinvocation %v; want Fail and IfNeeded like the webhook", *policy.Spec.FailurePolicy, policy.Spec.ReinvocationPolicy)
	}
	if len(policy.Spec.Mutations) != 1 {
		t.Errorf("%d mutations; one patch per pod keeps the apiserver to one encode and decode", len(policy.Spec.Mutations))
	}
	for _, want := range []string{"'kube-system/macvlan-conf'", "'underlink-scheduler'", "'" + NamespaceDefaultNetworkAnno + "'"} {
		if !strings.Contains(policy.Spec.Variables[0].Expression+policy.Spec.Mutations[0].JSONPatch.Expression, want) {
			t.Errorf("policy does not use %s", want)
		}
	}
	if binding.Spec.PolicyName != policy.Name || binding.Name != PolicyName {
		t.Errorf("binding %s binds %s, want %s", binding.Name, binding.Spec.PolicyName, policy.Name)
	}
}
