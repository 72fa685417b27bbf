//go:build integration

package command

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/cli/doctor"
	"github.com/underlink/underlink/cli/validate"
	"github.com/underlink/underlink/pkg/manifest"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/admissioncases"
	"github.com/underlink/underlink/test/controlplane"
)

// TestValidateLive is `underlink validate --kubeconfig` against a real control plane holding the seed's
// cluster-a, as `make up` starts it (service range 10.233.0.0/18, Submariner's Cluster objects for
// cluster-a and cluster-b, the corrected pool, the user's multus config) and the chart's webhook
// Deployment configuring the default network. An application repository's lone Deployment is checked
// against the live networks: the seed's typo is denied with the did-you-mean, the corrected one passes;
// the local cluster is found by the API server's service IP, never guessed; nothing is written.
func TestValidateLive(t *testing.T) {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{ServiceCIDR: "10.233.0.0/18"})
	kubeconfig := env.Kubeconfig(t)
	ctx := context.Background()
	for _, ns := range []string{"submariner-operator", "underlink"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	shared := func(n string) string { return filepath.Join(admissioncases.Dir(), "_shared", n) }
	dec := manifest.NewDecoder()
	for _, f := range []string{shared("clusters.yaml"), shared("pool-cluster-a-fixed.yaml"), test.Path("test", "testdata", "seed", "cluster-a-multusconfig.yaml")} {
		objs, err := dec.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if err := env.Client.Create(ctx, o.Object); err != nil {
				t.Fatalf("create %s: %v", o.Ref(), err)
			}
		}
	}
	one := int32(1)
	webhook := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "underlink", Name: "underlink-webhook",
		Labels: map[string]string{"app.kubernetes.io/part-of": "underlink", "app.kubernetes.io/component": "webhook"}},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "w"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "w"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "webhook", Image: "underlink-webhook", Args: []string{"--default-network=kube-system/macvlan-conf"}}}}}}}
	if err := env.Client.Create(ctx, webhook); err != nil {
		t.Fatal(err)
	}
	before := resourceVersions(t, env.Client)

	app := filepath.Join(t.TempDir(), "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	typo := test.Path("test", "testdata", "seed", "deployment-and-service.yaml")

	t.Run("the seed's typo, alone, against the live networks", func(t *testing.T) {
		code, out, errOut := runCLI([]string{"validate", typo, "--kubeconfig", kubeconfig}, "")
		if code != ExitDenied {
			t.Errorf("exit %d, want %d\n%s\n%s", code, ExitDenied, out, errOut)
		}
		want := "DENY " + typo + `#1: Deployment/default/test-app: spec.template.metadata.annotations[v1.multus-cni.io/default-network]: Not found: "kube-system/macvlan-confg": ` +
			"network kube-system/macvlan-confg does not exist (no SpiderMultusConfig or NetworkAttachmentDefinition of that name); did you mean kube-system/macvlan-conf? [pod-network-exists]"
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks\n%s\ngot\n%s", want, out)
		}
		for _, w := range []string{"local cluster: cluster-a: its service_cidr holds the API server's service IP 10.233.0.1", "remote clusters: cluster-b", "read from https://127.0.0.1:"} {
			if !strings.Contains(errOut, w) {
				t.Errorf("stderr lacks %q:\n%s", w, errOut)
			}
		}
	})

	t.Run("the corrected Deployment passes, and the chart's default network resolves", func(t *testing.T) {
		code, out, errOut := runCLI([]string{"validate", shared("deployment-fixed.yaml"), "--kubeconfig", kubeconfig, "-o", "json"}, "")
		if code != ExitOK {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		var rep validate.JSONReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.LocalCluster.ID != "cluster-a" || rep.LocalCluster.By != "apiserver-service-ip" || rep.DefaultNetwork == nil ||
			rep.DefaultNetwork.Name != "kube-system/macvlan-conf" || rep.DefaultNetwork.Source != "Deployment/underlink/underlink-webhook:--default-network" ||
			len(rep.Objects) != 2 || rep.Objects[1].Verdict != "ALLOW" {
			t.Errorf("report: %s", out)
		}
	})

	t.Run("a pool for the remote cluster's CIDR is denied: the local cluster is the live one", func(t *testing.T) {
		pool := filepath.Join(app, "pool.yaml")
		if err := os.WriteFile(pool, []byte("apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: stray}\nspec:\n  subnet: 172.111.9.0/24\n  ips: [172.111.9.10]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runCLI([]string{"validate", pool, "--kubeconfig", kubeconfig, "-o", "sarif"}, "")
		log, err := sarif.FromBytes([]byte(out))
		if err != nil {
			t.Fatal(err)
		}
		rules := map[string]bool{}
		for _, r := range log.Runs[0].Results {
			rules[*r.RuleID] = true
		}
		if code != ExitDenied || !rules["pool-clear-of-remote-cidrs"] {
			t.Errorf("exit %d, rules %v", code, rules)
		}
	})

	t.Run("an unknown --local-cluster is a usage error", func(t *testing.T) {
		code, _, errOut := runCLI([]string{"validate", typo, "--kubeconfig", kubeconfig, "--local-cluster", "cluster-z"}, "")
		if code != ExitUsage || !strings.Contains(errOut, "names none of the Submariner clusters cluster-a, cluster-b") {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})

	t.Run("doctor reads the chart's default network", func(t *testing.T) {
		code, out, errOut := runCLI([]string{"doctor", "--kubeconfig", kubeconfig, "-o", "json"}, "")
		var rep doctor.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v: %s %s", err, out, errOut)
		}
		// No underlink-webhook runs here: the NAD and the webhook configurations are missing (a failure).
		if code != ExitDenied || rep.LocalCluster != "cluster-a" || rep.LocalBy != "apiserver-service-ip" || rep.DefaultNetwork == nil ||
			rep.DefaultNetwork.Name != "kube-system/macvlan-conf" {
			t.Errorf("exit %d: %s", code, out)
		}
		for _, c := range rep.Checks {
			if c.ID == "default-network-exists" && c.Status != doctor.Pass {
				t.Errorf("the chart's default network exists: %+v", c)
			}
		}
	})

	if after := resourceVersions(t, env.Client); after != before {
		t.Errorf("validate and doctor wrote to the cluster: resource versions %s → %s", before, after)
	}
}

// resourceVersions lists the resource versions of the objects the CLI reads, to show it wrote none.
func resourceVersions(t *testing.T, c client.Client) string {
	t.Helper()
	var b bytes.Buffer
	for _, l := range []client.ObjectList{&appsv1.DeploymentList{}, &spv2.SpiderIPPoolList{}, &spv2.SpiderMultusConfigList{}, &submarinerv1.ClusterList{}} {
		if err := c.List(context.Background(), l); err != nil {
			t.Fatal(err)
		}
		items, err := meta.ExtractList(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			o := it.(client.Object)
			b.WriteString(o.GetName() + "@" + o.GetResourceVersion() + " ")
		}
	}
	return b.String()
}
