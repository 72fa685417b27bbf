package registration

import (
	"cmp"
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating/patch"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// apiserverMatcher compiles conditions the way kube-apiserver compiles a webhook's matchConditions
// (k8s.io/apiserver/pkg/admission/plugin/webhook: the base environment of the default compatibility
// version, stored-expression mode) and evaluates them with its own matcher.
func apiserverMatcher(t testing.TB, conds []admissionregistrationv1.MatchCondition) matchconditions.Matcher {
	t.Helper()
	compiler := plugincel.NewConditionCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	exprs := make([]plugincel.ExpressionAccessor, len(conds))
	for i, c := range conds {
		exprs[i] = &matchconditions.MatchCondition{Name: c.Name, Expression: c.Expression}
	}
	f := compiler.CompileCondition(exprs, plugincel.OptionalVariableDeclarations{HasAuthorizer: true}, environment.StoredExpressions)
	for _, e := range f.CompilationErrors() {
		t.Fatalf("condition does not compile in the apiserver's environment: %v", e)
	}
	fail := admissionregistrationv1.Fail
	return matchconditions.NewMatcher(f, &fail, "webhook", "validating", "test")
}

// podCreate is the admission of creating pod, as the apiserver's webhook dispatchers see it (v1).
func podCreate(pod *corev1.Pod) *admission.VersionedAttributes {
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	attr := admission.NewAttributesRecord(pod, nil, gvk, pod.Namespace, pod.Name,
		schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "", admission.Create, &metav1.CreateOptions{}, false, nil)
	return &admission.VersionedAttributes{Attributes: attr, VersionedObject: admission.NewLazyObject(pod), VersionedKind: gvk}
}

func injectedPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", GenerateName: "bench-", Labels: map[string]string{"app": "bench"},
			Annotations: map[string]string{"v1.multus-cni.io/default-network": "kube-system/macvlan-conf"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
}

type compiledPolicy struct {
	compiler *plugincel.CompositedCompiler
	matcher  matchconditions.Matcher
	patchers []patch.Patcher
}

// compilePolicy compiles p as the apiserver's MutatingAdmissionPolicy plugin does
// (k8s.io/apiserver/pkg/admission/plugin/policy/mutating, compilation.go).
func compilePolicy(t testing.TB, p *admissionregistrationv1.MutatingAdmissionPolicy) compiledPolicy {
	t.Helper()
	opts := plugincel.OptionalVariableDeclarations{HasAuthorizer: true}
	compiler, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		t.Fatal(err)
	}
	var vars []plugincel.NamedExpressionAccessor
	for _, v := range p.Spec.Variables {
		vars = append(vars, &validating.Variable{Name: v.Name, Expression: v.Expression})
	}
	compiler.CompileAndStoreVariables(vars, opts, environment.StoredExpressions)
	var exprs []plugincel.ExpressionAccessor
	for i := range p.Spec.MatchConditions {
		exprs = append(exprs, (*matchconditions.MatchCondition)(&p.Spec.MatchConditions[i]))
	}
	cond := compiler.CompileCondition(exprs, opts, environment.StoredExpressions)
	for _, e := range cond.CompilationErrors() {
		t.Fatalf("match condition: %v", e)
	}
	out := compiledPolicy{compiler: compiler, matcher: matchconditions.NewMatcher(cond, p.Spec.FailurePolicy, "policy", "validate", p.Name)}
	popts := opts
	popts.HasPatchTypes = true
	for _, m := range p.Spec.Mutations {
		ev := compiler.CompileMutatingEvaluator(&patch.JSONPatchCondition{Expression: m.JSONPatch.Expression}, popts, environment.StoredExpressions)
		for _, e := range ev.CompilationErrors() {
			t.Fatalf("mutation: %v", e)
		}
		out.patchers = append(out.patchers, patch.NewJSONPatcher(ev))
	}
	return out
}

// admit runs one invocation of the policy as the apiserver's dispatcher does (match conditions, then
// each mutation) and reports whether it changed the pod.
func (c compiledPolicy) admit(t testing.TB, va *admission.VersionedAttributes, ns *corev1.Namespace) bool {
	ctx := c.compiler.CreateContext(context.Background())
	if r := c.matcher.Match(ctx, va, nil, nil); r.Error != nil {
		t.Fatal(r.Error)
	} else if !r.Matches {
		return false
	}
	before := va.VersionedObject.Object()
	o := admission.NewObjectInterfacesFromScheme(clientgoscheme.Scheme)
	for _, p := range c.patchers {
		obj, err := p.Patch(ctx, patch.Request{MatchedResource: corev1.SchemeGroupVersion.WithResource("pods"), VersionedAttributes: va,
			ObjectInterfaces: o, Namespace: ns}, celconfig.RuntimeCELCostBudget)
		if err != nil {
			t.Fatal(err)
		}
		va.UpdateObject(obj)
	}
	return !apiequality.Semantic.DeepEqual(before, va.VersionedObject.Object())
}

// BenchmarkInjectPolicy measures what the injection policy costs the apiserver per injected pod, with
// the apiserver's own compiler and evaluator: the match condition and the patch on the first pass, the
// condition again on the pass the apiserver reruns after the mutation. Its peer, "floor", is the
// cheapest policy that can inject at all (one constant patch, one has() condition, no variables): the
// difference is what underlink's expressions cost; the floor is the apiserver's JSON patch machinery
// (encode the pod, apply, decode), which no expression avoids.
func BenchmarkInjectPolicy(b *testing.B) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{InjectLabel: InjectEnabled}}}
	underlink, _ := InjectPolicy(Policy{DefaultNetwork: "kube-system/macvlan-conf"})
	withScheduler, _ := InjectPolicy(Policy{DefaultNetwork: "kube-system/macvlan-conf", SchedulerName: "underlink-scheduler"})
	floor := underlink.DeepCopy()
	floor.Spec.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "no-annotations", Expression: "!has(object.metadata.annotations)"}}
	floor.Spec.Variables = nil
	floor.Spec.Mutations[0].JSONPatch.Expression = `[JSONPatch{op: 'add', path: '/metadata/annotations', value: {'v1.multus-cni.io/default-network': 'kube-system/macvlan-conf'}}]`
	for _, v := range []struct {
		name   string
		policy *admissionregistrationv1.MutatingAdmissionPolicy
	}{{"floor", floor}, {"underlink", underlink}, {"underlink+scheduler", withScheduler}} {
		c := compilePolicy(b, v.policy)
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				pod := injectedPod()
				pod.Annotations = nil
				va := podCreate(pod)
				if !c.admit(b, va, ns) {
					b.Fatal("not injected")
				}
				if got := va.VersionedObject.Object().(*corev1.Pod).Annotations["v1.multus-cni.io/default-network"]; got != "kube-system/macvlan-conf" {
					b.Fatalf("injected %q", got)
				}
				if c.admit(b, va, ns) {
					b.Fatal("the rerun patched the pod again")
				}
			}
		})
	}
}

// BenchmarkWorkloadConditions measures the validating webhooks' match conditions on pods, with the
// apiserver's matcher: an injected pod of an opted-in namespace (skipped by the fast path) and a pod
// without network annotations elsewhere (skipped by carries-network-annotations). Peer: one condition
// "true", the cost of having any condition at all.
func BenchmarkWorkloadConditions(b *testing.B) {
	known := FastPath([]string{"kube-system/macvlan-conf", "macvlan-conf"})
	hooks := map[string]admissionregistrationv1.ValidatingWebhook{}
	for _, w := range Validating(Options{URL: "https://127.0.0.1:9443", Injection: InjectionPolicy}).Webhooks {
		w.MatchConditions = SetMatchCondition(w.MatchConditions, known)
		hooks[w.Name] = w
	}
	plain := injectedPod()
	plain.Annotations = nil
	ctx := context.Background()
	for _, v := range []struct {
		name  string
		conds []admissionregistrationv1.MatchCondition
		pod   *corev1.Pod
	}{
		{"true", []admissionregistrationv1.MatchCondition{{Name: "true", Expression: "true"}}, injectedPod()},
		{"opted-in/injected-pod", hooks[WebhookWorkloadsOptedIn].MatchConditions, injectedPod()},
		{"elsewhere/plain-pod", hooks[WebhookWorkloadsElsewhere].MatchConditions, plain},
	} {
		m := apiserverMatcher(b, v.conds)
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				r := m.Match(ctx, podCreate(v.pod), nil, nil)
				if r.Error != nil || r.Matches != (v.name == "true") {
					b.Fatalf("%+v", r)
				}
			}
		})
	}
}

// TestInjectPolicyDecisions evaluates both shapes of the policy (with and without a scheduler) with the
// apiserver's evaluator; test/integration/webhook's TestInjection runs the same decisions through a live apiserver.
func TestInjectPolicyDecisions(t *testing.T) {
	const key = "v1.multus-cni.io/default-network"
	plainNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}
	teamNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team", Annotations: map[string]string{NamespaceDefaultNetworkAnno: " kube-system/alt "}}}
	blankNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "blank", Annotations: map[string]string{NamespaceDefaultNetworkAnno: " "}}}
	for _, sched := range []string{"", "underlink-scheduler"} {
		for _, network := range []string{"kube-system/macvlan-conf", ""} {
			c := compilePolicy(t, first(InjectPolicy(Policy{DefaultNetwork: network, SchedulerName: sched})))
			for _, tc := range []struct {
				name        string
				ns          *corev1.Namespace
				annotations map[string]string
				scheduler   string
				wantNetwork string // "" for no annotation
				wantSched   string
			}{
				{"no annotations", plainNS, nil, "default-scheduler", network, cmp.Or(sched, "default-scheduler")},
				{"other annotations", plainNS, map[string]string{"team": "a"}, "default-scheduler", network, cmp.Or(sched, "default-scheduler")},
				{"names its own", plainNS, map[string]string{key: "kube-system/own"}, "default-scheduler", "kube-system/own", cmp.Or(sched, "default-scheduler")},
				{"own scheduler", plainNS, nil, "custom", network, "custom"},
				{"no scheduler field", plainNS, nil, "", network, sched},
				{"opted out", plainNS, map[string]string{PodInjectAnno: InjectDisabled}, "default-scheduler", "", "default-scheduler"},
				{"opt-out value other than false", plainNS, map[string]string{PodInjectAnno: "no"}, "default-scheduler", network, cmp.Or(sched, "default-scheduler")},
				{"namespace default", teamNS, nil, "default-scheduler", "kube-system/alt", cmp.Or(sched, "default-scheduler")},
				{"blank namespace default", blankNS, nil, "default-scheduler", network, cmp.Or(sched, "default-scheduler")},
			} {
				pod := injectedPod()
				pod.Annotations, pod.Spec.SchedulerName = tc.annotations, tc.scheduler
				va := podCreate(pod)
				c.admit(t, va, tc.ns)
				if c.admit(t, va, tc.ns) {
					t.Errorf("sched %q network %q, %s: the rerun patched again", sched, network, tc.name)
				}
				got := va.VersionedObject.Object().(*corev1.Pod)
				gotNet, ok := got.Annotations[key]
				if gotNet != tc.wantNetwork || ok != (tc.wantNetwork != "") || got.Spec.SchedulerName != tc.wantSched {
					t.Errorf("sched %q network %q, %s: network %q (set %v) scheduler %q; want %q, %q",
						sched, network, tc.name, gotNet, ok, got.Spec.SchedulerName, tc.wantNetwork, tc.wantSched)
				}
				for k, v := range tc.annotations {
					if got.Annotations[k] != v {
						t.Errorf("sched %q network %q, %s: annotation %s changed to %q", sched, network, tc.name, k, got.Annotations[k])
					}
				}
			}
		}
	}
}

func first[A, B any](a A, _ B) A { return a }
