//go:build integration

package chart

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/underlink/underlink/api/scheme"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/poll"
	"github.com/underlink/underlink/webhook/registration"
)

// TestChartOnARealAPIServer takes the chart through a real kube-apiserver in the order a user meets it:
// rendered manifests validate with a server-side dry run in both certificate modes (cert-manager's own
// CRDs installed for the second); an install in cert-manager mode without cert-manager, or with a bad
// value, fails with advice; a real install leaves CRDs someone else installed alone, an upgrade keeps the
// caBundle the webhook patched in, and an uninstall keeps the CRDs it installed itself.
func TestChartOnARealAPIServer(t *testing.T) {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{})
	kc := env.Kubeconfig(t)
	ctx := context.Background()
	c := chartClientWithCRDs(t, env)
	chartMustTool(t, "kubectl", "--kubeconfig", kc, "create", "namespace", chartNamespace)
	helm := func(args ...string) (string, string, error) {
		return chartRunTool(t, "helm", append(args, "--kubeconfig", kc, "--namespace", chartNamespace)...)
	}
	dryRunApply := func(t *testing.T, manifest []byte) {
		p := filepath.Join(t.TempDir(), "chart.yaml")
		if err := os.WriteFile(p, manifest, 0o644); err != nil {
			t.Fatal(err)
		}
		out := chartMustTool(t, "kubectl", "--kubeconfig", kc, "apply", "--server-side", "--dry-run=server", "-f", p)
		if n := strings.Count(out, "serverside-applied (server dry run)"); n != len(chartObjects(t, manifest)) {
			t.Errorf("%d of %d objects applied:\n%s", n, len(chartObjects(t, manifest)), out)
		}
	}

	t.Run("self-signed manifests pass a server-side dry run", func(t *testing.T) {
		dryRunApply(t, renderChart(t, chartCertModes["self-signed"]...))
	})
	t.Run("the webhook's NetworkPolicy passes a server-side dry run", func(t *testing.T) {
		dryRunApply(t, renderChart(t, append(chartCertModes["self-signed"], "--set", "webhook.networkPolicy.enabled=true",
			"--set", "webhook.networkPolicy.apiServerCIDRs[0]=10.0.0.0/8",
			"--set-json", `webhook.networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]`)...))
	})
	t.Run("cert-manager mode without cert-manager fails the install with advice", func(t *testing.T) {
		_, errOut, err := helm("install", "underlink", chartDir(), "--dry-run=server", "--set", "certs.mode=cert-manager")
		if err == nil || !strings.Contains(errOut, "install cert-manager first") || !strings.Contains(errOut, "certs.mode=self-signed") {
			t.Errorf("got err=%v\n%s", err, errOut)
		}
	})
	t.Run("a bad value fails the install naming it", func(t *testing.T) {
		_, errOut, err := helm("install", "underlink", chartDir(), "--dry-run=server",
			"--set", "submariner.staticClusters[0].id=cluster-b", "--set", "submariner.staticClusters[0].clusterCIDR[0]=172.111.0.0/99")
		if err == nil || !strings.Contains(errOut, "/submariner/staticClusters/0/clusterCIDR/0") {
			t.Errorf("got err=%v\n%s", err, errOut)
		}
	})

	// cert-manager's CRDs at the version underlink builds against (github.com/cert-manager/cert-manager v1.21.2).
	chartMustTool(t, "kubectl", "--kubeconfig", kc, "apply", "--server-side", "-f", chartCertManagerCRDs(t))
	t.Run("cert-manager manifests pass a server-side dry run against cert-manager's CRDs", func(t *testing.T) {
		dryRunApply(t, renderChart(t, chartCertModes["cert-manager"]...))
		if _, errOut, err := helm("install", "underlink", chartDir(), "--dry-run=server", "--set", "certs.mode=cert-manager"); err != nil {
			t.Errorf("helm install --dry-run=server with cert-manager present: %v\n%s", err, errOut)
		}
	})

	crdNames := func() []string {
		var names []string
		for _, o := range chartObjects(t, renderChart(t)) {
			if o.GetKind() == "CustomResourceDefinition" {
				names = append(names, o.GetName())
			}
		}
		return names
	}()
	t.Run("install leaves CRDs it does not own alone", func(t *testing.T) {
		// Through hack/install-chart.sh, as `make up` installs it; nothing runs pods here, so the script's
		// --wait (for ready pods) is narrowed to hooks.
		cmd := exec.Command(test.Path("hack", "install-chart.sh"), kc, "--wait=hookOnly")
		cmd.Env = bed.HelmEnv(t)
		b, err := cmd.CombinedOutput()
		out := string(b)
		if err != nil {
			t.Fatalf("hack/install-chart.sh: %v\n%s", err, out)
		}
		if !strings.Contains(out, "left to their owner") {
			t.Errorf("NOTES do not say the existing CRDs were left alone:\n%s", out)
		}
		for _, n := range crdNames {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := c.Get(ctx, types.NamespacedName{Name: n}, &crd); err != nil {
				t.Fatal(err)
			}
			if crd.Annotations["meta.helm.sh/release-name"] != "" {
				t.Errorf("CRD %s was taken over by the release", n)
			}
		}
		var dep appsv1.Deployment
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: chartNamespace, Name: "underlink-webhook"}, &dep); err != nil {
			t.Fatalf("webhook Deployment not installed: %v", err)
		}
		// This apiserver serves MutatingAdmissionPolicy, so the default injection (auto) is the policy; the
		// other side is TestChartDefaultInstallWithoutThePolicyAPIInjectsWithTheWebhook.
		var policy admissionregistrationv1.MutatingAdmissionPolicy
		if err := env.Client.Get(ctx, types.NamespacedName{Name: registration.PolicyName}, &policy); err != nil {
			t.Errorf("default install on an apiserver that serves the policy API: no injection policy: %v", err)
		}
		var mw admissionregistrationv1.MutatingWebhookConfiguration
		if err := env.Client.Get(ctx, types.NamespacedName{Name: registration.ConfigurationName}, &mw); err == nil {
			t.Error("default install on an apiserver that serves the policy API installed the mutating webhook too")
		}
	})
	t.Run("upgrade keeps the caBundle the webhook patched in", func(t *testing.T) {
		cs := kubernetes.NewForConfigOrDie(env.Config)
		patch := `{"webhooks":[{"name":"` + registration.WebhookSpiderIPPools + `","clientConfig":{"caBundle":"TUlJQg=="}}]}`
		if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Patch(ctx, registration.ConfigurationName,
			types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "underlink-webhook"}); err != nil {
			t.Fatal(err)
		}
		if _, errOut, err := helm("upgrade", "underlink", chartDir(), "--set", "webhook.replicas=3"); err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, errOut)
		}
		var dep appsv1.Deployment
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: chartNamespace, Name: "underlink-webhook"}, &dep); err != nil || *dep.Spec.Replicas != 3 {
			t.Errorf("after upgrade: %v, replicas %v, want 3", err, dep.Spec.Replicas)
		}
		var vw admissionregistrationv1.ValidatingWebhookConfiguration
		if err := env.Client.Get(ctx, types.NamespacedName{Name: registration.ConfigurationName}, &vw); err != nil {
			t.Fatal(err)
		}
		if vw.Webhooks[0].Name != registration.WebhookSpiderIPPools || string(vw.Webhooks[0].ClientConfig.CABundle) != "MIIB" {
			t.Errorf("helm upgrade dropped the patched caBundle of %s: %q", vw.Webhooks[0].Name, vw.Webhooks[0].ClientConfig.CABundle)
		}
	})
	t.Run("uninstall removes the release", func(t *testing.T) {
		if _, errOut, err := helm("uninstall", "underlink", "--wait"); err != nil {
			t.Fatalf("helm uninstall: %v\n%s", err, errOut)
		}
		var vw admissionregistrationv1.ValidatingWebhookConfiguration
		if err := env.Client.Get(ctx, types.NamespacedName{Name: registration.ConfigurationName}, &vw); err == nil {
			t.Error("webhook configuration left behind")
		}
		var policy admissionregistrationv1.MutatingAdmissionPolicy
		if err := env.Client.Get(ctx, types.NamespacedName{Name: registration.PolicyName}, &policy); err == nil {
			t.Error("injection policy left behind")
		}
	})
	t.Run("install on a cluster without the CRDs installs them and uninstall keeps them", func(t *testing.T) {
		chartWaitServed(t, c, crdNames)
		for _, n := range crdNames {
			crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: n}}
			if err := c.Delete(ctx, crd); err != nil {
				t.Fatal(err)
			}
		}
		chartWaitGone(t, c, crdNames)
		if _, errOut, err := helm("install", "underlink", chartDir()); err != nil {
			t.Fatalf("helm install: %v\n%s", err, errOut)
		}
		for _, n := range crdNames {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := c.Get(ctx, types.NamespacedName{Name: n}, &crd); err != nil {
				t.Fatalf("CRD %s not installed: %v", n, err)
			}
			if crd.Annotations["meta.helm.sh/release-name"] != "underlink" || crd.Annotations["helm.sh/resource-policy"] != "keep" {
				t.Errorf("CRD %s annotations %v: want owned by the release and kept on uninstall", n, crd.Annotations)
			}
		}
		// The CRD the chart installed accepts the seed's pool. No webhook server runs here, and a server dry
		// run still calls the pool webhook (failurePolicy Fail), so its configuration goes first.
		raw, err := test.SeedManifest("cluster-a-ippool.yaml")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "pool.yaml")
		if err := os.WriteFile(p, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		chartMustTool(t, "kubectl", "--kubeconfig", kc, "delete", "validatingwebhookconfiguration", registration.ConfigurationName)
		chartMustTool(t, "kubectl", "--kubeconfig", kc, "apply", "--server-side", "--dry-run=server", "-f", p)
		if _, errOut, err := helm("uninstall", "underlink", "--wait"); err != nil {
			t.Fatalf("helm uninstall: %v\n%s", err, errOut)
		}
		for _, n := range crdNames {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := c.Get(ctx, types.NamespacedName{Name: n}, &crd); err != nil {
				t.Errorf("CRD %s removed by uninstall (its pools and configs with it): %v", n, err)
			}
		}
	})
}

// chartCertManagerCRDs is cert-manager's CRD directory in the module cache, at the version go.mod pins.
func chartCertManagerCRDs(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager")
	cmd.Dir = test.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("locate github.com/cert-manager/cert-manager in the module cache: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "deploy", "crds")
}

// chartWaitServed waits until the watch cache serves a list of every CRD's objects. A CRD's finalizer
// lists its objects before it lets the CRD go; when that list meets storage the apiserver is still
// (re)initializing, after the upgrade that rewrote the CRDs, the finalizer backs off exponentially, and
// in CI the CRD stayed Terminating past a minute ("InstanceDeletionFailed: could not list instances:
// storage is (re)initializing").
func chartWaitServed(t *testing.T, c client.Client, crds []string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range crds {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, types.NamespacedName{Name: n}, &crd); err != nil {
			t.Fatal(err)
		}
		version := ""
		for _, v := range crd.Spec.Versions {
			if v.Storage {
				version = v.Name
			}
		}
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: crd.Spec.Group, Version: version, Kind: crd.Spec.Names.ListKind})
		poll.UntilEvery(t, 60*time.Second, 200*time.Millisecond, "the apiserver serving "+n+" from its watch cache", func() (bool, string) {
			if err := c.List(ctx, list, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}}); err != nil {
				return false, err.Error()
			}
			return true, ""
		})
	}
}

// chartWaitGone waits until the CRDs are deleted. The apiserver deletes a CRD only after its finalizer
// has deleted every object of it, and the finalizer retries a failed list with exponential backoff, so
// a CRD whose storage needed 30 s to come back can stay another 30 s or more; a CRD still there after
// three minutes is reported with its conditions (Terminating says what it waits for).
func chartWaitGone(t *testing.T, c client.Client, crds []string) {
	t.Helper()
	poll.UntilEvery(t, 3*time.Minute, 200*time.Millisecond, "CRDs deleted", func() (bool, string) {
		var left []string
		for _, n := range crds {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := c.Get(context.Background(), types.NamespacedName{Name: n}, &crd); err == nil {
				var conds []string
				for _, cd := range crd.Status.Conditions {
					conds = append(conds, fmt.Sprintf("%s=%s (%s: %s)", cd.Type, cd.Status, cd.Reason, cd.Message))
				}
				left = append(left, fmt.Sprintf("%s %v", n, conds))
			}
		}
		return len(left) == 0, "\n" + strings.Join(left, "\n")
	})
}

// chartClientWithCRDs is a client that also reads CustomResourceDefinitions.
func chartClientWithCRDs(t *testing.T, env *controlplane.Env) client.Client {
	t.Helper()
	s := scheme.New()
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
