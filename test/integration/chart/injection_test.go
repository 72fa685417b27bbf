//go:build integration

package chart

import (
	"context"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/webhook/registration"
)

// chartPolicyAPIOff are the kube-apiserver flags that turn the MutatingAdmissionPolicy API off, as a cluster
// operator can on Kubernetes 1.36 and later (and as it is on every earlier release). The admission plugin
// goes with it: left on, it waits for informers of an API that is not served and the apiserver refuses
// every request as "not yet ready" until a post-start hook kills it. ServiceAccount stays off, as envtest
// runs without the controller that creates the default ServiceAccounts.
var chartPolicyAPIOff = map[string]string{
	"runtime-config": "admissionregistration.k8s.io/v1/mutatingadmissionpolicies=false," +
		"admissionregistration.k8s.io/v1/mutatingadmissionpolicybindings=false",
	"disable-admission-plugins": "ServiceAccount,MutatingAdmissionPolicy",
}

// TestChartDefaultInstallWithoutThePolicyAPIInjectsWithTheWebhook installs the chart with default values,
// as a new user does, on an apiserver that does not serve MutatingAdmissionPolicy: helm reads the served
// APIs from the cluster, and webhook.injection=auto must install the mutating webhook (and the webhook's
// right and flag to patch its caBundle) instead of a policy the apiserver would refuse.
func TestChartDefaultInstallWithoutThePolicyAPIInjectsWithTheWebhook(t *testing.T) {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{APIServerFlags: chartPolicyAPIOff})
	kc := env.Kubeconfig(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	resources, err := cs.Discovery().ServerResourcesForGroupVersion(admissionregistrationv1.SchemeGroupVersion.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resources.APIResources {
		if r.Kind == "MutatingAdmissionPolicy" {
			t.Fatalf("the apiserver still serves %s with %v", r.Name, chartPolicyAPIOff)
		}
	}

	chartMustTool(t, "kubectl", "--kubeconfig", kc, "create", "namespace", chartNamespace)
	chartMustTool(t, "helm", "install", "underlink", chartDir(), "--kubeconfig", kc, "--namespace", chartNamespace)
	manifest := chartMustTool(t, "helm", "get", "manifest", "underlink", "--kubeconfig", kc, "--namespace", chartNamespace)
	chartAssertInjection(t, chartObjects(t, []byte(manifest)), false)

	mw, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, registration.ConfigurationName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the install left no mutating webhook configuration %s: %v", registration.ConfigurationName, err)
	}
	if len(mw.Webhooks) != 1 || mw.Webhooks[0].Name != registration.WebhookInjectPods {
		t.Errorf("installed mutating webhooks %+v, want webhook/registration's %s alone", mw.Webhooks, registration.WebhookInjectPods)
	}
	var dep appsv1.Deployment
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: chartNamespace, Name: "underlink-webhook"}, &dep); err != nil {
		t.Fatal(err)
	}
	if args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--cert-mutating-webhook-configuration="+registration.ConfigurationName) {
		t.Errorf("installed webhook args %q do not patch the mutating webhook's caBundle", args)
	}
}
