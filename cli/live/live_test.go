package live

import (
	"context"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/underlink/underlink/api/scheme"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/webhook/registration"
)

func webhookDeployment(args ...string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "underlink", Name: "underlink-webhook",
		Labels: map[string]string{"app.kubernetes.io/part-of": "underlink", "app.kubernetes.io/component": "webhook"}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "webhook", Args: args}}}}}}
}

// The default network is read where the chart configures it: the webhook's flag, else the injection
// policy's fallback literal; nothing found is no error.
func TestReadDefaultNetwork(t *testing.T) {
	policy, _ := registration.InjectPolicy(registration.Policy{DefaultNetwork: `shop/net'\x`, SchedulerName: "underlink-scheduler"})
	tests := []struct {
		name   string
		objs   []client.Object
		want   string
		source string
	}{
		{"the webhook's --default-network=", []client.Object{webhookDeployment("--webhook-port=9443", "--default-network=team/net-a"), policy}, "team/net-a", "Deployment/underlink/underlink-webhook:--default-network"},
		{"the webhook's --default-network VALUE", []client.Object{webhookDeployment("--default-network", "team/net-b")}, "team/net-b", "Deployment/underlink/underlink-webhook"},
		{"the injection policy's literal, quotes and backslashes included", []client.Object{policy}, `shop/net'\x`, "MutatingAdmissionPolicy/underlink-inject:network"},
		{"nothing configured", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(tt.objs...).Build()
			got, err := ReadDefaultNetwork(context.Background(), r)
			if err != nil || got.Name != tt.want || !strings.HasPrefix(got.Source, tt.source) {
				t.Errorf("got %+v, %v; want %q from %q", got, err, tt.want, tt.source)
			}
		})
	}
}

// The chart renders what ReadDefaultNetwork looks for: the webhook's labels and its --default-network.
func TestTheChartConfiguresWhatIsRead(t *testing.T) {
	dep, err := os.ReadFile(test.Path("deploy", "helm", "underlink", "templates", "webhook", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	helpers, err := os.ReadFile(test.Path("deploy", "helm", "underlink", "templates", "_helpers.tpl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"app.kubernetes.io/component: webhook", "- --default-network={{ .Values.network.defaultNetwork }}"} {
		if !strings.Contains(string(dep), want) {
			t.Errorf("the webhook Deployment template lacks %q", want)
		}
	}
	if !strings.Contains(string(helpers), "app.kubernetes.io/part-of: underlink") {
		t.Error("the chart's labels lack app.kubernetes.io/part-of: underlink")
	}
}

func TestConnectBadKubeconfig(t *testing.T) {
	if _, _, err := Connect(Options{Kubeconfig: t.TempDir() + "/missing"}); err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("a missing kubeconfig: %v", err)
	}
}
