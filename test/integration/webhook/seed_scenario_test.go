//go:build integration

package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cli/doctor"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/poll"
	"github.com/underlink/underlink/webhook/app"
	"github.com/underlink/underlink/webhook/controller"
	"github.com/underlink/underlink/webhook/netconf"
	"github.com/underlink/underlink/webhook/registration"
	"github.com/underlink/underlink/webhook/webhooktest"
)

// TestWebhookSeedScenario plays the user's scenario on cluster-a through the webhook served over TLS to a
// real apiserver, with Submariner's Cluster objects present: each bug of the seed is denied at create
// with the field and the fix, the corrected objects are admitted, pods of an opted-in namespace get the
// network, the three alignment denials name their CIDR and cluster, and a third cluster joining flips
// the config's Aligned condition (with an Event, and `underlink doctor` failing) until it leaves.
func TestWebhookSeedScenario(t *testing.T) {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{ServiceCIDR: "10.233.0.0/18"})
	ctx := context.Background()
	c, warnings := warningClient(t, env.Config)
	bed.CreateNamespace(t, c, "submariner-operator", nil, nil)
	bed.CreateNamespace(t, c, "apps", map[string]string{registration.InjectLabel: registration.InjectEnabled}, nil)
	for _, cl := range []client.Object{submarinerClusterObject("cluster-a", "172.110.0.0/16", "10.233.0.0/18"), submarinerClusterObject("cluster-b", "172.111.0.0/16", "10.243.0.0/18")} {
		if err := c.Create(ctx, cl); err != nil {
			t.Fatal(err)
		}
	}
	// No --local-cluster: the webhook finds cluster-a by the API server's service IP (10.233.0.1).
	webhooktest.Start(t, env.Config, env.Client, app.Options{})
	kubeconfig := env.Kubeconfig(t)

	t.Run("seed pool denied with the field and both fixes", func(t *testing.T) {
		err := c.Create(ctx, bed.SeedObject(t, "cluster-a-ippool.yaml"))
		if !deniedByUnderlink(err) || !apierrors.IsInvalid(err) {
			t.Fatalf("seed pool: %v, want an Invalid denial by underlink", err)
		}
		if f := causeFields(err); len(f) != 1 || f[0] != "spec.gateway" {
			t.Errorf("denial causes name %v, want exactly spec.gateway", f)
		}
		text := denialText(err)
		for _, want := range []string{`spec.gateway: Invalid value: "172.110.0.1"`, "inside 172.110.1.0/24 (e.g. 172.110.1.254", "widen spec.subnet to 172.110.0.0/23"} {
			if !strings.Contains(text, want) {
				t.Errorf("denial lacks %q:\n%s", want, text)
			}
		}
	})
	t.Run("kubectl prints the denial one line per field", func(t *testing.T) {
		out, err := kubectl(t, kubeconfig, "create", "-f", test.Path("test", "testdata", "seed", "cluster-a-ippool.yaml"))
		if err == nil {
			t.Fatalf("kubectl created the seed pool:\n%s", out)
		}
		if !strings.Contains(out, `The SpiderIPPool "cluster-a" is invalid: spec.gateway: Invalid value: "172.110.0.1": outside spec.subnet 172.110.1.0/24`) {
			t.Errorf("kubectl output:\n%s", out)
		}
	})
	t.Run("corrected pool admitted", func(t *testing.T) {
		pool := bed.SeedObject(t, "cluster-a-ippool.yaml")
		if err := unstructuredSet(pool, "172.110.1.254", "spec", "gateway"); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(ctx, pool); err != nil {
			t.Fatalf("corrected pool: %v", err)
		}
		if w := warnings.take(); len(w) != 0 {
			t.Errorf("corrected pool admitted with warnings %q", w)
		}
	})
	t.Run("seed multus config admitted and its NAD generated", func(t *testing.T) {
		if err := c.Create(ctx, bed.SeedObject(t, "cluster-a-multusconfig.yaml")); err != nil {
			t.Fatalf("seed config: %v", err)
		}
		smc := &spv2.SpiderMultusConfig{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "macvlan-conf"}, smc); err != nil {
			t.Fatal(err)
		}
		want, err := netconf.Build(smc, netconf.Local{ClusterCIDR: []string{"172.110.0.0/16"}, ServiceCIDR: []string{"10.233.0.0/18"}})
		if err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 60*time.Second, "NAD kube-system/macvlan-conf", func() (bool, string) {
			nad := &nadv1.NetworkAttachmentDefinition{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "macvlan-conf"}, nad); err != nil {
				return false, err.Error()
			}
			if !metav1.IsControlledBy(nad, smc) {
				return false, "not owned by the config"
			}
			return nad.Spec.Config == want, "config " + nad.Spec.Config
		})
		waitCondition(t, c, controller.ConditionReady, metav1.ConditionTrue, controller.ReasonNADUpToDate, "")
		waitCondition(t, c, controller.ConditionAligned, metav1.ConditionTrue, rules.ReasonAligned, "")
	})
	t.Run("NAD recreated when deleted", func(t *testing.T) {
		nad := &nadv1.NetworkAttachmentDefinition{}
		key := client.ObjectKey{Namespace: "kube-system", Name: "macvlan-conf"}
		if err := c.Get(ctx, key, nad); err != nil {
			t.Fatal(err)
		}
		uid := nad.UID
		if err := c.Delete(ctx, nad); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 60*time.Second, "NAD recreated", func() (bool, string) {
			err := c.Get(ctx, key, nad)
			return err == nil && nad.UID != uid, "not yet"
		})
	})
	t.Run("kubectl prints a denial of several fields one line each", func(t *testing.T) {
		// cluster-b's config applied on cluster-a: its hijackCIDR covers the local pool and misses cluster-b.
		out, err := kubectl(t, kubeconfig, "create", "-f", test.Path("test", "testdata", "seed", "cluster-b-multusconfig.yaml"))
		if err == nil {
			t.Fatalf("kubectl created cluster-b's config on cluster-a:\n%s", out)
		}
		var causes []string
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "* spec.") {
				causes = append(causes, line)
			}
		}
		if !strings.Contains(out, `The SpiderMultusConfig "macvlan-conf" is invalid:`) || len(causes) < 2 ||
			!strings.Contains(out, `* spec.coordinator.hijackCIDR[1]: Invalid value: "172.110.0.0/16": covers SpiderIPPool/cluster-a`) {
			t.Errorf("kubectl output, want one \"* field: ...\" line per field:\n%s", out)
		}
	})
	t.Run("seed deployment denied at create with the did-you-mean", func(t *testing.T) {
		dep := bed.SeedObject(t, "deployment-and-service.yaml")
		dep.SetNamespace("default")
		err := c.Create(ctx, dep)
		if !deniedByUnderlink(err) {
			t.Fatalf("seed deployment: %v, want a denial by underlink", err)
		}
		text := denialText(err)
		for _, want := range []string{`spec.template.metadata.annotations[v1.multus-cni.io/default-network]: Not found: "kube-system/macvlan-confg"`, "did you mean kube-system/macvlan-conf?"} {
			if !strings.Contains(text, want) {
				t.Errorf("denial lacks %q:\n%s", want, text)
			}
		}
	})
	t.Run("corrected deployment admitted", func(t *testing.T) {
		dep := bed.SeedObject(t, "deployment-and-service.yaml")
		dep.SetNamespace("default")
		if err := unstructuredSet(dep, "kube-system/macvlan-conf", "spec", "template", "metadata", "annotations", nadv1.DefaultNetworkAnnotation); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(ctx, dep); err != nil {
			t.Fatalf("corrected deployment: %v", err)
		}
	})
	t.Run("pods of an opted-in namespace get the network", func(t *testing.T) {
		for _, p := range []struct {
			name        string
			annotations map[string]string
			want        string // the default-network annotation after admission; "" for none
		}{
			{"omits-it", nil, "kube-system/macvlan-conf"},
			{"keeps-other-annotations", map[string]string{"team": "a"}, "kube-system/macvlan-conf"},
			{"names-its-own", map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"}, "kube-system/macvlan-conf"},
			{"opted-out", map[string]string{registration.PodInjectAnno: "false"}, ""},
		} {
			pod := testPod("apps", p.name, p.annotations)
			if err := c.Create(ctx, pod); err != nil {
				t.Fatalf("pod %s: %v", p.name, err)
			}
			got, ok := pod.Annotations[nadv1.DefaultNetworkAnnotation]
			if got != p.want || ok != (p.want != "") {
				t.Errorf("pod %s: default-network %q (present %v), want %q", p.name, got, ok, p.want)
			}
			for k, v := range p.annotations {
				if pod.Annotations[k] != v {
					t.Errorf("pod %s: annotation %s changed to %q", p.name, k, pod.Annotations[k])
				}
			}
		}
		// A pod of a namespace that did not opt in is left alone.
		pod := testPod("default", "not-opted-in", nil)
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		if _, ok := pod.Annotations[nadv1.DefaultNetworkAnnotation]; ok {
			t.Errorf("pod of an unlabelled namespace got %v", pod.Annotations)
		}
		// A pod of an opted-in namespace that names a missing network is denied by the validating webhook
		// (the chart's injection policy injects; TestInjection covers the injection webhook too).
		for _, annotations := range []map[string]string{
			{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-confg"},
			{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-confg", registration.PodInjectAnno: "false"},
		} {
			err := c.Create(ctx, testPod("apps", "typo", annotations))
			if err == nil || !strings.Contains(err.Error(), `admission webhook "`+registration.WebhookWorkloadsOptedIn+`" denied`) || !strings.Contains(denialText(err), "did you mean kube-system/macvlan-conf?") {
				t.Errorf("pod %v naming macvlan-confg: %v, want a denial by %s", annotations, err, registration.WebhookWorkloadsOptedIn)
			}
		}
	})
	t.Run("config whose hijackCIDR lacks a remote CIDR denied", func(t *testing.T) {
		smc := hijackConfig("lacks-remote", "172.111.0.0/16")
		err := c.Create(ctx, smc)
		assertDenied(t, err, "spec.coordinator.hijackCIDR", "missing 10.243.0.0/18 (service CIDR of cluster cluster-b)")
	})
	t.Run("config whose hijackCIDR covers a local pool denied", func(t *testing.T) {
		smc := hijackConfig("covers-local", "10.243.0.0/18", "172.111.0.0/16", "172.110.0.0/16")
		err := c.Create(ctx, smc)
		assertDenied(t, err, "spec.coordinator.hijackCIDR[2]", `"172.110.0.0/16": covers SpiderIPPool/cluster-a (subnet 172.110.1.0/24), a local pool`)
	})
	t.Run("pools overlapping a remote pod or service CIDR denied", func(t *testing.T) {
		for _, p := range []struct{ subnet, ips, want string }{
			{"172.111.5.0/24", "172.111.5.10-172.111.5.20", "overlaps 172.111.0.0/16 (pod CIDR of cluster cluster-b)"},
			{"10.243.8.0/24", "10.243.8.10-10.243.8.20", "overlaps 10.243.0.0/18 (service CIDR of cluster cluster-b)"},
		} {
			pool := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "overlap-" + strings.ReplaceAll(strings.Split(p.subnet, "/")[0], ".", "-")},
				Spec: spv2.IPPoolSpec{Subnet: p.subnet, IPs: []string{p.ips}}}
			assertDenied(t, c.Create(ctx, pool), "spec.subnet", p.want)
		}
	})
	t.Run("soft problems are kubectl warnings", func(t *testing.T) {
		// A config naming a pool that does not exist yet is admitted with a warning.
		manifest := `apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: early
  namespace: kube-system
spec:
  cniType: macvlan
  macvlan:
    master: [ens224]
    ippools:
      ipv4: [cluster-a-next]
  coordinator:
    hijackCIDR: [10.243.0.0/18, 172.111.0.0/16]
`
		path := filepath.Join(t.TempDir(), "early.yaml")
		if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := kubectl(t, kubeconfig, "create", "-f", path)
		if err != nil {
			t.Fatalf("kubectl create: %v\n%s", err, out)
		}
		if !strings.Contains(out, `Warning: spec.macvlan.ippools.ipv4[0]: Not found: "cluster-a-next": SpiderIPPool cluster-a-next does not exist yet`) {
			t.Errorf("kubectl printed no warning line:\n%s", out)
		}
	})
	t.Run("a third cluster flips Aligned with an Event, doctor reports it, leaving flips it back", func(t *testing.T) {
		clusterC := submarinerClusterObject("cluster-c", "172.112.0.0/16", "10.253.0.0/18")
		if err := c.Create(ctx, clusterC); err != nil {
			t.Fatal(err)
		}
		waitCondition(t, c, controller.ConditionAligned, metav1.ConditionFalse, rules.RuleReason(rules.RuleHijackCoversRemotes), "missing 172.112.0.0/16 (pod CIDR of cluster cluster-c)")
		waitEvent(t, c, controller.EventReasonDrifted, corev1.EventTypeWarning, "cluster-c")

		out, code := runDoctorCLI(t, kubeconfig, "-o", "json")
		if code != 1 {
			t.Errorf("underlink doctor exited %d with cluster-c joined, want 1:\n%s", code, out)
		}
		var rep doctor.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("doctor -o json: %v\n%s", err, out)
		}
		found := false
		for _, ch := range rep.Checks {
			if ch.ID == rules.RuleHijackCoversRemotes && ch.Status == doctor.Fail {
				for _, f := range ch.Findings {
					found = found || (f.Cluster == "cluster-c" && f.Subject == "SpiderMultusConfig/kube-system/macvlan-conf")
				}
			}
		}
		for _, ch := range rep.Checks {
			if ch.ID == doctor.CheckWebhooksRegistered && ch.Status != doctor.Pass {
				t.Errorf("doctor: %s is %s with the validating webhooks and the injection policy installed: %+v", ch.ID, ch.Status, ch.Findings)
			}
		}
		if !found || rep.LocalCluster != "cluster-a" {
			t.Errorf("doctor does not report macvlan-conf missing cluster-c's CIDRs (local %q):\n%s", rep.LocalCluster, out)
		}
		text, _ := runDoctorCLI(t, kubeconfig)
		if !strings.Contains(text, " ✗ "+rules.RuleHijackCoversRemotes) {
			t.Errorf("doctor's checklist lacks the ✗ line:\n%s", text)
		}

		if err := c.Delete(ctx, clusterC); err != nil {
			t.Fatal(err)
		}
		waitCondition(t, c, controller.ConditionAligned, metav1.ConditionTrue, rules.ReasonAligned, "")
		waitEvent(t, c, controller.EventReasonAligned, corev1.EventTypeNormal, "")
	})
	t.Run("decisions are counted by kind, verdict and rule", func(t *testing.T) {
		denied := decisions(t, map[string]string{"kind": "SpiderIPPool", "verdict": "denied", "rule": rules.RulePoolGatewayInSubnet})
		if denied < 1 {
			t.Errorf("underlink_admission_decisions_total{kind=SpiderIPPool,verdict=denied,rule=%s} = %v", rules.RulePoolGatewayInSubnet, denied)
		}
		if n := decisions(t, map[string]string{"kind": "Pod", "verdict": "denied", "rule": rules.RulePodNetworkExists}); n < 2 {
			t.Errorf("pods denied for a missing network counted %v, want at least 2", n)
		}
	})
	t.Run("the dashboard reads only metrics the webhook serves", func(t *testing.T) {
		var b bytes.Buffer
		families, err := crmetrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
				t.Fatal(err)
			}
		}
		if missing := test.MissingMetrics(test.DashboardMetrics(t, "underlink_admission_"), b.String()); len(missing) > 0 {
			t.Errorf("the dashboard reads webhook metrics that underlink-webhook does not serve: %v", missing)
		}
	})
}
