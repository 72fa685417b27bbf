package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	junitparse "github.com/joshdk/go-junit"
	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/api/scheme"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/cli/output"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/webhook/netconf"
	"github.com/underlink/underlink/webhook/registration"
	"github.com/underlink/underlink/webhook/snapshot"
)

func cluster(id, pods, services string) *submarinerv1.Cluster {
	return &submarinerv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: "submariner-operator", Name: id},
		Spec: submarinerv1.ClusterSpec{ClusterID: id, ClusterCIDR: []string{pods}, ServiceCIDR: []string{services}}}
}

func seedObjects(t *testing.T) (*spv2.SpiderIPPool, *spv2.SpiderMultusConfig) {
	pool := &spv2.SpiderIPPool{}
	smc := &spv2.SpiderMultusConfig{}
	test.DecodeSeed(t, "cluster-a-ippool.yaml", pool)
	test.DecodeSeed(t, "cluster-a-multusconfig.yaml", smc)
	gw := "172.110.1.254"
	pool.Spec.Gateway = &gw
	smc.UID = "smc-uid"
	return pool, smc
}

// ownedNAD is the NAD the controller writes for smc on cluster-a.
func ownedNAD(t *testing.T, smc *spv2.SpiderMultusConfig) *nadv1.NetworkAttachmentDefinition {
	cfg, err := netconf.Build(smc, netconf.Local{ClusterCIDR: []string{"172.110.0.0/16"}, ServiceCIDR: []string{"10.233.0.0/18"}})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	return &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: smc.Namespace, Name: smc.Name,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: spv2.GroupVersion.String(), Kind: "SpiderMultusConfig", Name: smc.Name, UID: smc.UID, Controller: &yes}}},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: cfg}}
}

// run checks objs as cluster-a, when it is among them, with the seed's default network.
func run(t *testing.T, objs ...client.Object) *Report {
	t.Helper()
	r := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(objs...).Build()
	o := Options{Snapshot: snapshot.Options{DefaultNetwork: "kube-system/macvlan-conf"}}
	if slices.ContainsFunc(objs, func(o client.Object) bool {
		return o.GetName() == "cluster-a" && o.GetNamespace() == "submariner-operator"
	}) {
		o.Snapshot.LocalCluster = "cluster-a"
	}
	rep, err := Run(context.Background(), r, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func check(t *testing.T, rep *Report, id string) Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no check %s in %+v", id, rep.Checks)
	return Check{}
}

func TestDoctorSeedClusterHealthyThenClusterCJoins(t *testing.T) {
	pool, smc := seedObjects(t)
	base := []client.Object{cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18"), cluster("cluster-b", "172.111.0.0/16", "10.243.0.0/18"), pool, smc, ownedNAD(t, smc)}

	healthy := run(t, base...)
	for _, c := range healthy.Checks {
		if c.Status == Fail {
			t.Errorf("healthy seed cluster: check %s failed: %+v", c.ID, c.Findings)
		}
	}
	if healthy.Failed() || healthy.LocalCluster != "cluster-a" || len(healthy.Remotes) != 1 {
		t.Errorf("healthy report: failed=%v local=%q remotes=%v", healthy.Failed(), healthy.LocalCluster, healthy.Remotes)
	}

	drifted := run(t, append(base, cluster("cluster-c", "172.112.0.0/16", "10.253.0.0/18"))...)
	c := check(t, drifted, rules.RuleHijackCoversRemotes)
	if c.Status != Fail || len(c.Findings) == 0 {
		t.Fatalf("cluster-c joined but %s is %s", c.ID, c.Status)
	}
	f := c.Findings[0]
	if f.Cluster != "cluster-c" || f.Field != "spec.coordinator.hijackCIDR" || f.Subject != "SpiderMultusConfig/kube-system/macvlan-conf" || f.Fix == "" {
		t.Errorf("finding %+v: want cluster-c, the hijackCIDR field of macvlan-conf and a fix", f)
	}
	if !drifted.Failed() {
		t.Error("a failed check must fail the report (non-zero exit)")
	}

	var text bytes.Buffer
	if err := drifted.WriteText(&text, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Local cluster: cluster-a", "remote clusters: cluster-b, cluster-c", " ✗ " + rules.RuleHijackCoversRemotes + ":", " ✓ " + rules.RulePoolGatewayInSubnet + ":", "SpiderMultusConfig/kube-system/macvlan-conf spec.coordinator.hijackCIDR:", "fix: "} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := drifted.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Checks) != len(drifted.Checks) || !back.Failed() {
		t.Errorf("JSON report does not round-trip: %v", err)
	}
}

func TestDoctorFindsMissingNADAndBadPods(t *testing.T) {
	pool, smc := seedObjects(t)
	bad := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "test-app-1",
		Annotations: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-confg"}}}
	rep := run(t, cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18"), pool, smc, bad)
	nads := check(t, rep, CheckNADsInSync)
	if nads.Status != Fail || len(nads.Findings) != 1 || nads.Findings[0].Subject != "SpiderMultusConfig/kube-system/macvlan-conf" {
		t.Errorf("missing NAD: %+v", nads)
	}
	pods := check(t, rep, rules.RulePodNetworkExists)
	if pods.Status != Fail || len(pods.Findings) != 1 || !strings.Contains(pods.Findings[0].Fix, "did you mean kube-system/macvlan-conf?") {
		t.Errorf("pod with a mistyped network: %+v", pods)
	}
	hooks := check(t, rep, CheckWebhooksRegistered)
	if hooks.Status != Warn || len(hooks.Findings) != 2 {
		t.Errorf("webhook configurations absent: %+v", hooks)
	}
}

// Either injection counts; a policy without its binding does not, nor neither.
func TestDoctorAcceptsEitherInjection(t *testing.T) {
	policy, binding := registration.InjectPolicy(registration.Policy{DefaultNetwork: "kube-system/macvlan-conf"})
	validating := registration.Validating(registration.Options{URL: "https://127.0.0.1:9443"})
	mutating := registration.Mutating(registration.Options{URL: "https://127.0.0.1:9443", Injection: registration.InjectionWebhook})
	for _, tc := range []struct {
		name    string
		objs    []client.Object
		finding string // the subject of the one finding, "" for none
	}{
		{"policy (the chart's default)", []client.Object{validating.DeepCopy(), policy.DeepCopy(), binding.DeepCopy()}, ""},
		{"webhook", []client.Object{validating.DeepCopy(), mutating.DeepCopy()}, ""},
		{"policy without its binding", []client.Object{validating.DeepCopy(), policy.DeepCopy()}, "MutatingAdmissionPolicy/" + registration.PolicyName},
		{"no injection", []client.Object{validating.DeepCopy()}, "MutatingAdmissionPolicy/" + registration.PolicyName},
		{"no validation", []client.Object{policy.DeepCopy(), binding.DeepCopy()}, "ValidatingWebhookConfiguration/" + registration.ConfigurationName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hooks := check(t, run(t, tc.objs...), CheckWebhooksRegistered)
			switch {
			case tc.finding == "" && (hooks.Status != Pass || len(hooks.Findings) != 0):
				t.Errorf("want a pass: %+v", hooks)
			case tc.finding != "" && (hooks.Status != Warn || len(hooks.Findings) != 1 || hooks.Findings[0].Subject != tc.finding || hooks.Findings[0].Fix == ""):
				t.Errorf("want one warning about %s with a fix: %+v", tc.finding, hooks)
			}
		})
	}
}

// Without --default-network doctor checks the one the chart configured, and says when it finds none;
// a local cluster inferred as the webhook infers it is a warning; one given that names no cluster is an
// error of the caller's.
func TestDoctorReadsTheClustersOwnSettings(t *testing.T) {
	pool, smc := seedObjects(t)
	ctx := context.Background()
	webhook := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "underlink", Name: "underlink-webhook",
		Labels: map[string]string{"app.kubernetes.io/part-of": "underlink", "app.kubernetes.io/component": "webhook"}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "webhook",
			Args: []string{"--default-network=kube-system/macvlan-confg"}}}}}}}
	doctorOf := func(o Options, objs ...client.Object) (*Report, error) {
		return Run(ctx, fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(objs...).Build(), o)
	}
	a, b := cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18"), cluster("cluster-b", "172.111.0.0/16", "10.243.0.0/18")

	rep, err := doctorOf(Options{}, a, b, pool, smc, webhook)
	if err != nil {
		t.Fatal(err)
	}
	if rep.DefaultNetwork == nil || rep.DefaultNetwork.Name != "kube-system/macvlan-confg" || !strings.Contains(rep.DefaultNetwork.Source, "Deployment/underlink/underlink-webhook:--default-network") {
		t.Errorf("default network %+v", rep.DefaultNetwork)
	}
	if c := check(t, rep, rules.RuleDefaultNetworkExists); c.Status != Fail || !strings.Contains(c.Findings[0].Fix, "did you mean kube-system/macvlan-conf?") {
		t.Errorf("the chart's mistyped default network: %+v", c)
	}
	if c := check(t, rep, rules.RuleClustersKnown); rep.LocalBy != string(rules.LocalByPools) || c.Status != Warn || !strings.Contains(c.Findings[0].Fix, "submariner.localCluster") {
		t.Errorf("an inferred local cluster (%s) must warn: %+v", rep.LocalBy, c)
	}

	rep, err = doctorOf(Options{}, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if c := check(t, rep, rules.RuleDefaultNetworkExists); rep.DefaultNetwork != nil || c.Status != Warn {
		t.Errorf("no default network configured: %+v %+v", rep.DefaultNetwork, c)
	}
	if rep.Unaligned() {
		t.Error("without pools or configs nothing is left unaligned")
	}
	other := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: spv2.IPPoolSpec{Subnet: "172.111.1.0/24"}}
	rep, err = doctorOf(Options{}, a, b, pool, other)
	if err != nil || !rep.Unaligned() {
		t.Errorf("pools of no single cluster and no way to tell the local one: unaligned %v, %v", rep != nil && rep.Unaligned(), err)
	}

	_, err = doctorOf(Options{Snapshot: snapshot.Options{LocalCluster: "cluster-z"}}, a, b)
	var unknown *rules.UnknownLocalClusterError
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), "names none of the Submariner clusters cluster-a, cluster-b") {
		t.Errorf("an unknown local cluster: %v", err)
	}
}

// Quiet prints only what fails or warns; JUnit cases are the checks.
func TestDoctorQuietAndCases(t *testing.T) {
	pool, smc := seedObjects(t)
	rep := run(t, cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18"), pool, smc)
	var quiet bytes.Buffer
	if err := rep.WriteText(&quiet, true); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(quiet.String(), "✓") || !strings.Contains(quiet.String(), " ✗ "+CheckNADsInSync) || strings.Contains(quiet.String(), "Local cluster") {
		t.Errorf("quiet:\n%s", quiet.String())
	}
	if cases := rep.Cases(); len(cases) != len(rep.Checks) {
		t.Errorf("%d cases for %d checks", len(cases), len(rep.Checks))
	}
}

// Doctor's JSON, JUnit and SARIF parse back with the libraries CI tools use.
func TestDoctorOutputsParseBack(t *testing.T) {
	pool, smc := seedObjects(t)
	rep := run(t, cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18"), cluster("cluster-b", "172.111.0.0/16", "10.243.0.0/18"), pool, smc)
	var js, xml, sf bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&js)
	dec.DisallowUnknownFields()
	var back Report
	if err := dec.Decode(&back); err != nil || back.Schema != Schema || back.Summary != rep.Summary || back.Summary.Failed != 1 || back.Alignment != "checked" {
		t.Errorf("JSON: %v %+v", err, back.Summary)
	}
	if err := output.WriteJUnit(&xml, "underlink doctor", rep.Cases()); err != nil {
		t.Fatal(err)
	}
	suites, err := junitparse.Ingest(xml.Bytes())
	if err != nil || len(suites) != 1 || suites[0].Totals.Tests != len(rep.Checks) || suites[0].Totals.Failed != rep.Summary.Failed {
		t.Errorf("JUnit: %v %+v", err, suites)
	}
	if err := output.WriteSARIF(&sf, Tool("test"), rep.Findings()); err != nil {
		t.Fatal(err)
	}
	log, err := sarif.FromBytes(sf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Validate(); err != nil {
		t.Errorf("SARIF: %v", err)
	}
	found := false
	for _, r := range log.Runs[0].Results {
		found = found || *r.RuleID == CheckNADsInSync && r.Level == "error" && *r.Locations[0].LogicalLocations[0].FullyQualifiedName == "SpiderMultusConfig/kube-system/macvlan-conf"
	}
	if !found {
		t.Errorf("SARIF lacks the missing NAD on its object: %s", sf.String())
	}
}

// Injection is proven by a server-side dry run in an opted-in namespace: without such a namespace it is a
// warning with the label to set; a pod that comes back without the default network fails the check, and
// one that comes back with it passes. The fake client runs no admission; an interceptor plays the
// apiserver's injection (the real one runs in the e2e's underlay steps).
func TestDoctorProvesInjectionByDryRun(t *testing.T) {
	ctx := context.Background()
	o := Options{Snapshot: snapshot.Options{DefaultNetwork: "kube-system/macvlan-conf"}}
	optedIn := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps", Labels: map[string]string{registration.InjectLabel: registration.InjectEnabled}}}
	inject := interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		obj.SetAnnotations(map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"})
		return c.Create(ctx, obj, opts...)
	}}
	for _, tc := range []struct {
		name     string
		objs     []client.Object
		funcs    *interceptor.Funcs
		status   Status
		contains string
	}{
		{"no namespace opted in", nil, nil, Warn, "kubectl label namespace <namespace> underlink.io/inject=enabled"},
		{"the injection did not run", []client.Object{optedIn.DeepCopy()}, nil, Fail, `got "", not the default network kube-system/macvlan-conf`},
		{"the injection ran", []client.Object{optedIn.DeepCopy()}, &inject, Pass, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(tc.objs...)
			if tc.funcs != nil {
				b = b.WithInterceptorFuncs(*tc.funcs)
			}
			cl := b.Build()
			rep, err := Run(ctx, cl, o)
			if err != nil {
				t.Fatal(err)
			}
			c := check(t, rep, CheckInjectionWorks)
			text := fmt.Sprint(c.Findings)
			if c.Status != tc.status || !strings.Contains(text, tc.contains) {
				t.Errorf("status %s (want %s), findings %s", c.Status, tc.status, text)
			}
			var pods corev1.PodList
			if err := cl.List(ctx, &pods); err != nil || len(pods.Items) != 0 {
				t.Errorf("the dry run stored %d pods (%v)", len(pods.Items), err)
			}
		})
	}
}
