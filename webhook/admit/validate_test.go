package admit

import (
	"context"
	"net/http"
	"strings"
	"testing"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/webhook/snapshot"
)

func seedDeployment(t testing.TB) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	test.DecodeSeed(t, "deployment-and-service.yaml", d)
	d.Namespace = "default"
	return d
}

func validator(t testing.TB, objs ...client.Object) *Validator {
	all := append([]client.Object{namespace("default", nil, nil), namespace("apps", optedIn(), nil)}, objs...)
	return &Validator{Rules: Rules{Reader: reader(t, all...), Snapshot: snapshot.Options{LocalCluster: "cluster-a", DefaultNetwork: "kube-system/macvlan-conf"}},
		Kinds: append(append(append([]schema.GroupKind(nil), PoolKinds...), MultusConfigKinds...), WorkloadKinds...)}
}

// fieldsOf returns the field paths of a denial's causes, as kubectl prints them one per line.
func fieldsOf(resp admissionv1.AdmissionResponse) []string {
	if resp.Result == nil || resp.Result.Details == nil {
		return nil
	}
	var out []string
	for _, c := range resp.Result.Details.Causes {
		out = append(out, c.Field)
	}
	return out
}

func causeText(resp admissionv1.AdmissionResponse) string {
	if resp.Result == nil || resp.Result.Details == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range resp.Result.Details.Causes {
		b.WriteString(c.Field + ": " + c.Message + "\n")
	}
	return b.String()
}

func TestValidatorSeedScenario(t *testing.T) {
	withConfig := append(seedClusters(), fixedPool(t), seedConfig(t))
	cases := []struct {
		name     string
		v        *Validator
		req      admissionRequest
		allowed  bool
		fields   []string // denial causes' fields
		contains []string // in the causes' text
		warning  string   // a substring of some warning
	}{
		{
			name: "seed pool: gateway outside its subnet, both fixes", v: validator(t, seedClusters()...),
			req:    admissionRequest{admissionv1.Create, poolGVK, "", seedPool(t)},
			fields: []string{"spec.gateway"}, contains: []string{"172.110.0.1", "172.110.1.0/24"},
		},
		{
			name: "corrected pool admitted", v: validator(t, seedClusters()...),
			req: admissionRequest{admissionv1.Create, poolGVK, "", fixedPool(t)}, allowed: true,
		},
		{
			name: "seed config admitted once its pool exists", v: validator(t, append(seedClusters(), fixedPool(t))...),
			req: admissionRequest{admissionv1.Create, configGVK, "kube-system", seedConfig(t)}, allowed: true,
		},
		{
			name: "seed deployment: did you mean", v: validator(t, withConfig...),
			req:    admissionRequest{admissionv1.Create, deploymentGVK, "default", seedDeployment(t)},
			fields: []string{"spec.template.metadata.annotations[v1.multus-cni.io/default-network]"}, contains: []string{"did you mean kube-system/macvlan-conf?"},
		},
		{
			name: "corrected deployment admitted", v: validator(t, withConfig...),
			req: admissionRequest{admissionv1.Create, deploymentGVK, "default", func() *appsv1.Deployment {
				d := seedDeployment(t)
				d.Spec.Template.Annotations[nadv1.DefaultNetworkAnnotation] = "kube-system/macvlan-conf"
				return d
			}()}, allowed: true,
		},
		{
			name: "cronjob's template path", v: validator(t, withConfig...),
			req: admissionRequest{admissionv1.Create, cronJobGVK, "default", &batchv1.CronJob{
				ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "default"},
				Spec: batchv1.CronJobSpec{Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-confg"}},
				}}}},
			}},
			fields: []string{"spec.jobTemplate.spec.template.metadata.annotations[v1.multus-cni.io/default-network]"},
		},
		{
			name: "no Submariner clusters: admitted with a warning", v: validator(t),
			req: admissionRequest{admissionv1.Create, poolGVK, "", fixedPool(t)}, allowed: true, warning: "Submariner",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := c.v.Handle(context.Background(), c.req.build(t))
			if resp.Allowed != c.allowed {
				t.Fatalf("allowed = %v, want %v: %+v\n%s", resp.Allowed, c.allowed, resp.Result, causeText(resp.AdmissionResponse))
			}
			if !c.allowed {
				if resp.Result.Code != http.StatusUnprocessableEntity || resp.Result.Reason != metav1.StatusReasonInvalid {
					t.Errorf("denial is %d %s, want 422 Invalid (kubectl prints one line per field)", resp.Result.Code, resp.Result.Reason)
				}
				got := fieldsOf(resp.AdmissionResponse)
				for _, f := range c.fields {
					if !containsString(got, f) {
						t.Errorf("causes name fields %v, want %s", got, f)
					}
				}
				for _, s := range c.contains {
					if !strings.Contains(causeText(resp.AdmissionResponse), s) {
						t.Errorf("causes do not say %q:\n%s", s, causeText(resp.AdmissionResponse))
					}
				}
			}
			if c.warning != "" && !strings.Contains(strings.Join(resp.Warnings, "\n"), c.warning) {
				t.Errorf("warnings %q, want one mentioning %q", resp.Warnings, c.warning)
			}
		})
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Requests the handler cannot judge are errors, never an accidental "allowed".
func TestValidatorErrors(t *testing.T) {
	v := validator(t, seedClusters()...)
	poolsOnly := &Validator{Rules: v.Rules, Kinds: PoolKinds}
	cases := []struct {
		name string
		v    *Validator
		req  admission.Request
		code int32
	}{
		{"kind not served at this path", poolsOnly, admissionRequest{admissionv1.Create, deploymentGVK, "default", seedDeployment(t)}.build(t), http.StatusBadRequest},
		{"object does not decode", v, admissionRequest{admissionv1.Create, poolGVK, "", []byte(`{"spec":{"subnet":5}}`)}.build(t), http.StatusBadRequest},
		{"not an object", v, admissionRequest{admissionv1.Create, poolGVK, "", []byte(`"pool"`)}.build(t), http.StatusBadRequest},
		{"no object", v, admissionRequest{admissionv1.Create, poolGVK, "", nil}.build(t), http.StatusBadRequest},
		{"stored object does not decode", v, request(t, admissionv1.Update, poolGVK, "", "cluster-a", fixedPool(t), []byte(`{"spec":[]}`)), http.StatusBadRequest},
		{"update without the stored object", v, request(t, admissionv1.Update, poolGVK, "", "cluster-a", fixedPool(t), nil), http.StatusBadRequest},
		{"no operation (or one the apiserver never sends)", v, func() admission.Request {
			r := admissionRequest{admissionv1.Create, poolGVK, "", fixedPool(t)}.build(t)
			r.Operation = "create"
			return r
		}(), http.StatusBadRequest},
		{"no uid", v, func() admission.Request {
			r := admissionRequest{admissionv1.Create, poolGVK, "", fixedPool(t)}.build(t)
			r.UID = ""
			return r
		}(), http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := c.v.Handle(context.Background(), c.req)
			if resp.Allowed || resp.Result == nil || resp.Result.Code != c.code || resp.Result.Message == "" {
				t.Fatalf("%+v, want a %d error with a message", resp.AdmissionResponse, c.code)
			}
		})
	}
}

// Decisions are counted by kind, verdict and the rule that decided.
func TestValidatorCountsDecisions(t *testing.T) {
	v := validator(t, seedClusters()...)
	resp := v.Handle(context.Background(), admissionRequest{admissionv1.Create, poolGVK, "", seedPool(t)}.build(t))
	if resp.Allowed {
		t.Fatal("seed pool admitted")
	}
	var rule string
	for _, c := range resp.Result.Details.Causes {
		if c.Field == "spec.gateway" {
			rule = rules.RulePoolGatewayInSubnet
		}
	}
	if rule == "" {
		t.Fatalf("no spec.gateway cause: %+v", resp.Result.Details.Causes)
	}
	before := testutil.ToFloat64(decisions.WithLabelValues("SpiderIPPool", VerdictDenied, rule))
	v.Handle(context.Background(), admissionRequest{admissionv1.Create, poolGVK, "", seedPool(t)}.build(t))
	if after := testutil.ToFloat64(decisions.WithLabelValues("SpiderIPPool", VerdictDenied, rule)); after != before+1 {
		t.Errorf("underlink_admission_decisions_total{SpiderIPPool,denied,%s} went from %v to %v, want +1", rule, before, after)
	}
	if n := testutil.CollectAndCount(latency); n == 0 {
		t.Error("no latency observed")
	}
}

// A cache that lags the apiserver must not change a verdict. Pools are judged on the live read, so a
// pool overlapping one the cache has not seen yet is still denied; a pod whose network the cache has not
// seen yet is denied by the cache, and the denial is taken back by the live read.
func TestValidatorLaggingCache(t *testing.T) {
	first := fixedPool(t)
	first.Name = "first"
	second := fixedPool(t)
	second.Name = "second"
	stale := validator(t, seedClusters()...)
	fresh := validator(t, append(seedClusters(), first, seedConfig(t))...)
	v := &Validator{Rules: Rules{Reader: stale.Reader, LiveReader: fresh.Reader, Snapshot: stale.Snapshot}, Kinds: stale.Kinds}

	resp := v.Handle(context.Background(), admissionRequest{admissionv1.Create, poolGVK, "", second}.build(t))
	if resp.Allowed {
		t.Fatal("a pool sharing every address with SpiderIPPool/first was admitted because the cache had not seen first")
	}
	if !strings.Contains(resp.Result.Message, "SpiderIPPool/first") {
		t.Errorf("denial does not name the pool it overlaps: %s", resp.Result.Message)
	}

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default",
		Annotations: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"}}}
	if resp := stale.Handle(context.Background(), admissionRequest{admissionv1.Create, podGVK, "default", pod}.build(t)); resp.Allowed {
		t.Fatal("precondition: the stale cache alone should deny a pod naming a network it has not seen")
	}
	if resp := v.Handle(context.Background(), admissionRequest{admissionv1.Create, podGVK, "default", pod}.build(t)); !resp.Allowed {
		t.Fatalf("pod naming a network that exists was denied on the cache's word: %+v", resp.Result)
	}
}

// A pool's deletion is refused for the pods that still hold its addresses, named; a record whose pod is
// gone (or is another pod now) does not refuse it: the deletion is admitted with a warning, and the
// pool's finalizer waits for garbage collection.
func TestValidatorPoolDelete(t *testing.T) {
	pool := fixedPool(t)
	allocs := spv2.PoolIPAllocations{
		"172.110.1.1": {NIC: "eth0", NamespacedName: "default/a", PodUID: "u1"},
		"172.110.1.2": {NIC: "net1", NamespacedName: "team/b", PodUID: "u2"},
	}
	s, err := allocs.Encode()
	if err != nil {
		t.Fatal(err)
	}
	pool.Status.AllocatedIPs = s
	pod := func(ns, name, uid string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}}
	}
	for _, c := range []struct {
		name      string
		pods      []client.Object
		allowed   bool
		contains  string
		notNaming string
	}{
		{"both pods run", []client.Object{pod("default", "a", "u1"), pod("team", "b", "u2")}, false, "still gives addresses to 2 pod(s): default/a (172.110.1.1 eth0); team/b (172.110.1.2 net1)", ""},
		{"team/b is another pod now", []client.Object{pod("default", "a", "u1"), pod("team", "b", "u3")}, false, "still gives addresses to 1 pod(s): default/a (172.110.1.1 eth0)", "team/b"},
		{"both pods gone", nil, true, "records addresses of 2 pod(s) that no longer exist", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := validator(t, append(seedClusters(), c.pods...)...)
			resp := v.Handle(context.Background(), request(t, admissionv1.Delete, poolGVK, "", pool.Name, nil, pool))
			text := strings.Join(resp.Warnings, "\n")
			if resp.Result != nil {
				text += resp.Result.Message
			}
			if resp.Allowed != c.allowed || !strings.Contains(text, c.contains) || (c.notNaming != "" && strings.Contains(text, c.notNaming)) {
				t.Errorf("allowed %v (want %v): %s", resp.Allowed, c.allowed, text)
			}
		})
	}
}
