//go:build integration

package webhook

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/webhook/app"
	"github.com/underlink/underlink/webhook/registration"
	"github.com/underlink/underlink/webhook/webhooktest"
)

// TestInjection checks both ways of injecting against a real apiserver: the MutatingAdmissionPolicy the
// chart installs by default, and the mutating webhook. Pods of an opted-in namespace get the configured
// network, or their namespace's; the scheduler is set only over the default one; opted-out pods and pods
// naming their own network keep what they have; a pod whose network does not exist is denied with the
// did-you-mean. With the policy, the fast path skips the webhook for pods naming an existing network, and
// stops skipping once that network is gone.
func TestInjection(t *testing.T) {
	for _, inj := range []registration.Injection{registration.InjectionPolicy, registration.InjectionWebhook} {
		t.Run(string(inj), func(t *testing.T) { testInjection(t, inj) })
	}
}

func testInjection(t *testing.T, inj registration.Injection) {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{ServiceCIDR: "10.233.0.0/18"})
	ctx := context.Background()
	c := env.Client
	bed.CreateNamespace(t, c, "apps", map[string]string{registration.InjectLabel: registration.InjectEnabled}, nil)
	bed.CreateNamespace(t, c, "team", map[string]string{registration.InjectLabel: registration.InjectEnabled},
		map[string]string{registration.NamespaceDefaultNetworkAnno: "kube-system/alt"})
	bed.CreateNamespace(t, c, "broken", map[string]string{registration.InjectLabel: registration.InjectEnabled},
		map[string]string{registration.NamespaceDefaultNetworkAnno: "kube-system/macvlan-confg"})
	gw := "172.110.1.254"
	for _, o := range []client.Object{
		&spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "cluster-a"}, Spec: spv2.IPPoolSpec{Subnet: "172.110.1.0/24", IPs: []string{"172.110.1.1-172.110.1.200"}, Gateway: &gw}},
		hijackConfig("macvlan-conf", "10.243.0.0/18", "172.111.0.0/16"),
		hijackConfig("alt", "10.243.0.0/18", "172.111.0.0/16"),
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	webhooktest.StartInjection(t, env.Config, c, app.Options{SchedulerName: "underlink-scheduler"}, inj)

	for _, p := range []struct {
		ns, name    string
		annotations map[string]string
		scheduler   string
		want        string // the default-network annotation after admission; "" for none
		wantSched   string
	}{
		{"apps", "omits-it", nil, "", "kube-system/macvlan-conf", "underlink-scheduler"},
		{"apps", "keeps-other-annotations", map[string]string{"team": "a"}, "", "kube-system/macvlan-conf", "underlink-scheduler"},
		{"apps", "names-its-own", map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/alt"}, "", "kube-system/alt", "underlink-scheduler"},
		{"apps", "own-scheduler", nil, "custom", "kube-system/macvlan-conf", "custom"},
		{"apps", "opted-out", map[string]string{registration.PodInjectAnno: "false"}, "", "", corev1.DefaultSchedulerName},
		{"team", "namespace-default", nil, "", "kube-system/alt", "underlink-scheduler"},
		{"default", "not-opted-in", nil, "", "", corev1.DefaultSchedulerName},
	} {
		pod := testPod(p.ns, p.name, p.annotations)
		pod.Spec.SchedulerName = p.scheduler
		if err := c.Create(ctx, pod); err != nil {
			t.Fatalf("pod %s/%s: %v", p.ns, p.name, err)
		}
		got, ok := pod.Annotations[nadv1.DefaultNetworkAnnotation]
		if got != p.want || ok != (p.want != "") {
			t.Errorf("pod %s/%s: default-network %q (present %v), want %q", p.ns, p.name, got, ok, p.want)
		}
		if pod.Spec.SchedulerName != p.wantSched {
			t.Errorf("pod %s/%s: schedulerName %q, want %q", p.ns, p.name, pod.Spec.SchedulerName, p.wantSched)
		}
		for k, v := range p.annotations {
			if pod.Annotations[k] != v {
				t.Errorf("pod %s/%s: annotation %s changed to %q", p.ns, p.name, k, pod.Annotations[k])
			}
		}
	}

	// A missing network is denied with the did-you-mean: by the injector when it injects, else by the
	// opted-in validating webhook (the policy injects, the webhook judges).
	denier := registration.WebhookWorkloadsOptedIn
	if inj == registration.InjectionWebhook {
		denier = registration.WebhookInjectPods
	}
	for _, p := range []*corev1.Pod{
		testPod("apps", "typo", map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-confg"}),
		testPod("broken", "namespace-typo", nil),
	} {
		err := c.Create(ctx, p)
		if err == nil || !strings.Contains(err.Error(), `admission webhook "`+denier+`" denied`) || !strings.Contains(denialText(err), "did you mean kube-system/macvlan-conf?") {
			t.Errorf("pod %s/%s: %v, want a denial by %s with the did-you-mean", p.Namespace, p.Name, err, denier)
		}
	}
	if inj != registration.InjectionPolicy {
		return
	}

	// The fast path: once the controller has listed the networks, a pod naming one is admitted without a
	// webhook call; a network deleted drops out of the list and its pods are judged (and denied) again.
	extra := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "extra"},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"1.1.0","name":"extra","type":"macvlan","master":"ens224"}`}}
	if err := c.Create(ctx, extra); err != nil {
		t.Fatal(err)
	}
	waitFastPath(t, c, func(expr string) bool { return strings.Contains(expr, "'kube-system/extra'") })
	calls := decisions(t, map[string]string{"kind": "Pod"})
	for _, p := range []*corev1.Pod{
		testPod("apps", "fast-injected", nil),
		testPod("apps", "fast-own", map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/extra"}),
		testPod("default", "fast-elsewhere", map[string]string{nadv1.DefaultNetworkAnnotation: "macvlan-conf"}),
	} {
		if err := c.Create(ctx, p); err != nil {
			t.Fatalf("pod %s/%s: %v", p.Namespace, p.Name, err)
		}
	}
	if n := decisions(t, map[string]string{"kind": "Pod"}) - calls; n != 0 {
		t.Errorf("the webhook judged %v pods naming existing networks; the fast path should have skipped them", n)
	}
	// Pods the webhook must read still reach it: a pool annotation, or a hostNetwork pod (a warning).
	pool := testPod("apps", "with-pool", map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["cluster-a"]}`})
	if err := c.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if n := decisions(t, map[string]string{"kind": "Pod"}) - calls; n != 1 {
		t.Errorf("the webhook judged %v pods after a pod with a pool annotation, want 1", n)
	}
	if err := c.Delete(ctx, extra); err != nil {
		t.Fatal(err)
	}
	waitFastPath(t, c, func(expr string) bool {
		return !strings.Contains(expr, "'kube-system/extra'") && strings.Contains(expr, "'kube-system/macvlan-conf'")
	})
	err := c.Create(ctx, testPod("apps", "gone", map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/extra"}))
	if err == nil || !strings.Contains(err.Error(), `admission webhook "`+denier+`" denied`) {
		t.Errorf("pod naming a deleted network: %v, want a denial by %s", err, denier)
	}
}
