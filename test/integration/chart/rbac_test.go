//go:build integration

package chart

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/underlink/underlink/certs"
	"github.com/underlink/underlink/certs/rotation"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/poll"
	"github.com/underlink/underlink/webhook/registration"
)

// chartAccess is one SubjectAccessReview: verb on resource (group/resource[/subresource]) named name in ns.
type chartAccess struct {
	verb, group, resource, sub, ns, name string
}

func (a chartAccess) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.sub != "" {
		r += "/" + a.sub
	}
	return fmt.Sprintf("%s %s %s/%s", a.verb, r, a.ns, a.name)
}

// TestChartRBACGrantsEachComponentOnlyWhatItNeeds creates the chart's ServiceAccounts, roles and bindings
// (self-signed mode, the one with the most rules) in a real apiserver and asks it, by SubjectAccessReview,
// whether each component's ServiceAccount may do what it needs and may not do the rest: Secrets outside its
// own (and in the webhook's case, other than its certificate's), pods/exec, deleting nodes, or any "*".
func TestChartRBACGrantsEachComponentOnlyWhatItNeeds(t *testing.T) {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{})
	kc := env.Kubeconfig(t)
	chartMustTool(t, "kubectl", "--kubeconfig", kc, "create", "namespace", chartNamespace)
	rendered := chartObjects(t, renderChart(t, chartCertModes["self-signed"]...))
	chartApplyRBAC(t, kc, rendered)
	chartNoWildcards(t, rendered)
	cs := kubernetes.NewForConfigOrDie(env.Config)

	ns, secret, lease := chartNamespace, "underlink-webhook-tls", "underlink-webhook.underlink.io"
	// Denied to every component.
	common := []chartAccess{
		{"get", "", "secrets", "", "kube-system", "any"},
		{"list", "", "secrets", "", "", ""},
		{"create", "", "pods", "exec", "default", "any"},
		{"get", "", "pods", "exec", "default", "any"},
		{"delete", "", "nodes", "", "", "node-1"},
		{"*", "*", "*", "", "", ""},
		{"*", "", "pods", "", "default", ""},
		{"*", "spiderpool.spidernet.io", "spiderippools", "", "", ""},
		{"delete", "spiderpool.spidernet.io", "spiderippools", "", "", "cluster-a"},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", ""},
		{"impersonate", "", "serviceaccounts", "", ns, "underlink-webhook"},
	}
	for _, tc := range []struct {
		sa      string
		allowed []chartAccess
		denied  []chartAccess
	}{{
		sa: "underlink-webhook",
		allowed: []chartAccess{
			{"list", "", "namespaces", "", "", ""}, {"watch", "", "namespaces", "", "", ""},
			{"list", "spiderpool.spidernet.io", "spiderippools", "", "", ""},
			{"watch", "spiderpool.spidernet.io", "spidermultusconfigs", "", "", ""},
			{"list", "submariner.io", "clusters", "", "submariner-operator", ""},
			{"list", "", "pods", "", "default", ""},
			{"create", "k8s.cni.cncf.io", "network-attachment-definitions", "", "kube-system", ""},
			{"patch", "k8s.cni.cncf.io", "network-attachment-definitions", "", "kube-system", "macvlan-conf"},
			{"patch", "spiderpool.spidernet.io", "spidermultusconfigs", "status", "kube-system", "macvlan-conf"},
			{"update", "spiderpool.spidernet.io", "spidermultusconfigs", "finalizers", "kube-system", "macvlan-conf"},
			{"create", "", "events", "", "kube-system", ""},
			{"get", "", "services", "", "default", "kubernetes"},
			{"get", "coordination.k8s.io", "leases", "", ns, lease}, {"update", "coordination.k8s.io", "leases", "", ns, lease},
			{"create", "coordination.k8s.io", "leases", "", ns, ""},
			// Self-signed certificates: its own Secret by name, its own webhook configurations by name.
			{"create", "", "secrets", "", ns, ""},
			{"get", "", "secrets", "", ns, secret}, {"update", "", "secrets", "", ns, secret},
			{"list", "", "secrets", "", ns, secret}, {"watch", "", "secrets", "", ns, secret},
			// The fast-path condition (and the caBundle) of its own validating webhooks, by name.
			{"get", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", registration.ConfigurationName},
			{"list", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", registration.ConfigurationName},
			{"watch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", registration.ConfigurationName},
			{"patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", registration.ConfigurationName},
		},
		denied: []chartAccess{
			{"get", "", "secrets", "", ns, "underlink-agent-token"},
			{"list", "", "secrets", "", ns, ""},
			{"patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "someone-elses"},
			{"patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "someone-elses"},
			{"list", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", ""},
			// The default injection is the policy: no mutating webhook to patch.
			{"patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", registration.ConfigurationName},
			{"delete", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", registration.ConfigurationName},
			{"update", "spiderpool.spidernet.io", "spiderippools", "status", "", "cluster-a"},
			{"update", "spiderpool.spidernet.io", "spidermultusconfigs", "", "kube-system", "macvlan-conf"},
			{"delete", "k8s.cni.cncf.io", "network-attachment-definitions", "", "kube-system", "macvlan-conf"},
			{"get", "", "services", "", "default", "other"},
			{"update", "coordination.k8s.io", "leases", "", ns, "underlink-agent-gc"},
			{"update", "coordination.k8s.io", "leases", "", "kube-system", lease},
			{"get", "", "pods", "", "default", "any"},
		},
	}, {
		sa: "underlink-agent",
		allowed: []chartAccess{
			{"list", "", "pods", "", "", ""}, {"watch", "", "pods", "", "", ""}, {"get", "", "pods", "", "default", "p"},
			{"get", "", "nodes", "", "", "node-1"}, {"patch", "", "nodes", "", "", "node-1"}, {"watch", "", "nodes", "", "", ""},
			{"list", "", "namespaces", "", "", ""},
			{"list", "spiderpool.spidernet.io", "spiderippools", "", "", ""},
			{"update", "spiderpool.spidernet.io", "spiderippools", "status", "", "cluster-a"},
			{"watch", "spiderpool.spidernet.io", "spidermultusconfigs", "", "", ""},
			{"watch", "spiderpool.spidernet.io", "spiderreservedips", "", "", ""},
			{"get", "spiderpool.spidernet.io", "spidercoordinators", "", "", "default"},
			{"create", "", "events", "", "default", ""},
			{"create", "spiderpool.spidernet.io", "spiderendpoints", "", "default", ""},
			{"update", "spiderpool.spidernet.io", "spiderendpoints", "", "default", "web-0"},
			{"delete", "spiderpool.spidernet.io", "spiderendpoints", "", "default", "web-0"},
			{"list", "spiderpool.spidernet.io", "spiderendpoints", "", "", ""},
			{"get", "apps", "statefulsets", "", "default", "web"}, {"list", "apps", "statefulsets", "", "", ""},
			{"get", "coordination.k8s.io", "leases", "", ns, "underlink-agent-gc"},
			{"update", "coordination.k8s.io", "leases", "", ns, "underlink-agent-gc"},
		},
		denied: []chartAccess{
			{"get", "", "secrets", "", ns, secret},
			{"delete", "", "pods", "", "default", "p"},
			{"update", "", "nodes", "status", "", "node-1"},
			{"update", "apps", "statefulsets", "", "default", "web"}, {"watch", "spiderpool.spidernet.io", "spiderendpoints", "", "", ""},
			{"update", "spiderpool.spidernet.io", "spidercoordinators", "", "", "default"},
			{"create", "k8s.cni.cncf.io", "network-attachment-definitions", "", "kube-system", ""},
			{"patch", "spiderpool.spidernet.io", "spidermultusconfigs", "", "kube-system", "macvlan-conf"},
			{"update", "coordination.k8s.io", "leases", "", ns, lease},
			{"patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", registration.ConfigurationName},
		},
	}, {
		sa: "underlink-scheduler",
		allowed: []chartAccess{
			{"create", "", "pods", "binding", "default", "p"}, {"create", "", "bindings", "", "default", ""},
			{"list", "", "nodes", "", "", ""}, {"watch", "", "pods", "", "", ""},
			{"list", "spiderpool.spidernet.io", "spiderippools", "", "", ""},
			{"watch", "spiderpool.spidernet.io", "spidermultusconfigs", "", "", ""},
			{"watch", "spiderpool.spidernet.io", "spiderreservedips", "", "", ""},
			{"list", "k8s.cni.cncf.io", "network-attachment-definitions", "", "", ""},
			{"get", "coordination.k8s.io", "leases", "", ns, "underlink-scheduler"},
			{"update", "coordination.k8s.io", "leases", "", ns, "underlink-scheduler"},
			{"get", "", "configmaps", "", "kube-system", "extension-apiserver-authentication"},
		},
		denied: []chartAccess{
			{"get", "", "secrets", "", ns, secret},
			{"update", "spiderpool.spidernet.io", "spiderippools", "status", "", "cluster-a"},
			{"patch", "", "nodes", "", "", "node-1"},
			{"update", "coordination.k8s.io", "leases", "", ns, lease},
			{"get", "", "configmaps", "", "kube-system", "other"},
		},
	}} {
		t.Run(tc.sa, func(t *testing.T) {
			for _, a := range tc.allowed {
				if !chartAllowed(t, cs, tc.sa, a) {
					t.Errorf("%s may not %s; it needs to", tc.sa, a)
				}
			}
			for _, a := range append(append([]chartAccess{}, tc.denied...), common...) {
				if chartAllowed(t, cs, tc.sa, a) {
					t.Errorf("%s may %s; it must not", tc.sa, a)
				}
			}
		})
	}
}

// TestChartRBACIsEnoughForSelfSignedCertificates runs the webhook's certificate manager as the chart's
// webhook ServiceAccount (impersonated) against the chart's own webhook configurations: with exactly the
// chart's RBAC it creates its Secret, watches it through a field-selected informer, and patches the caBundle
// of both configurations (rendered with webhook.injection=webhook, the one mode with a mutating webhook).
func TestChartRBACIsEnoughForSelfSignedCertificates(t *testing.T) {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{})
	kc := env.Kubeconfig(t)
	chartMustTool(t, "kubectl", "--kubeconfig", kc, "create", "namespace", chartNamespace)
	rendered := chartObjects(t, renderChart(t, append(chartCertModes["self-signed"], "--set", "webhook.injection=webhook")...))
	chartApplyRBAC(t, kc, rendered)
	var webhooks []*unstructured.Unstructured
	for _, o := range rendered {
		if strings.HasSuffix(o.GetKind(), "WebhookConfiguration") {
			webhooks = append(webhooks, o)
		}
	}
	chartApplyObjects(t, kc, webhooks)

	sa := rest.CopyConfig(env.Config)
	sa.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + chartNamespace + ":underlink-webhook",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + chartNamespace, "system:authenticated"}}
	opts := certs.Options{
		Mode: certs.ModeSelfSigned, SecretNamespace: chartNamespace, SecretName: "underlink-webhook-tls", ServiceName: "underlink-webhook",
		MutatingWebhookConfigurations: []string{registration.ConfigurationName}, ValidatingWebhookConfigurations: []string{registration.ConfigurationName},
		Lifetime: time.Hour, Propagation: time.Second, Resync: 10 * time.Second, Identity: "underlink-webhook-0",
	}
	var logs chartSyncBuffer
	m, err := certs.New(sa, opts, logr.FromSlogHandler(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := manager.New(sa, manager.Options{
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		LeaderElection: true, LeaderElectionID: "underlink-webhook.underlink.io", LeaderElectionNamespace: chartNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AddToManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()

	admin := kubernetes.NewForConfigOrDie(env.Config)
	poll.UntilEvery(t, 30*time.Second, 200*time.Millisecond, "the chart's RBAC to let the certificate manager serve", func() (bool, string) {
		err := func() error {
			s, err := admin.CoreV1().Secrets(chartNamespace).Get(ctx, opts.SecretName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			want := s.Data[rotation.KeyCABundle]
			mw, err := admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, registration.ConfigurationName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, w := range mw.Webhooks {
				if !bytes.Equal(w.ClientConfig.CABundle, want) {
					return fmt.Errorf("mutating webhook %s: caBundle not patched", w.Name)
				}
			}
			vw, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, registration.ConfigurationName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, w := range vw.Webhooks {
				if !bytes.Equal(w.ClientConfig.CABundle, want) {
					return fmt.Errorf("validating webhook %s: caBundle not patched", w.Name)
				}
			}
			return m.ReadyCheck(nil)
		}()
		if err != nil {
			return false, fmt.Sprintf("%v\nlogs:\n%s", err, logs.String())
		}
		return true, ""
	})
	if strings.Contains(strings.ToLower(logs.String()), "forbidden") {
		t.Errorf("the certificate manager met a forbidden request under the chart's RBAC:\n%s", logs.String())
	}
}

func chartAllowed(t *testing.T, cs kubernetes.Interface, sa string, a chartAccess) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   "system:serviceaccount:" + chartNamespace + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + chartNamespace, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.sub, Namespace: a.ns, Name: a.name,
		},
	}}
	res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SubjectAccessReview %s: %v", a, err)
	}
	return res.Status.Allowed
}

// chartApplyRBAC creates the rendered ServiceAccounts, roles and bindings for real.
func chartApplyRBAC(t *testing.T, kc string, rendered []*unstructured.Unstructured) {
	t.Helper()
	var rbac []*unstructured.Unstructured
	for _, o := range rendered {
		switch o.GetKind() {
		case "ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding":
			rbac = append(rbac, o)
		}
	}
	if len(rbac) < 15 {
		t.Fatalf("only %d RBAC chartObjects rendered", len(rbac))
	}
	chartApplyObjects(t, kc, rbac)
}

func chartApplyObjects(t *testing.T, kc string, objs []*unstructured.Unstructured) {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		j, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteString("\n")
	}
	p := filepath.Join(t.TempDir(), "chartObjects.json")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	chartMustTool(t, "kubectl", "--kubeconfig", kc, "apply", "--server-side", "-f", p)
}

// chartNoWildcards fails on any "*" in a rendered role's verbs, resources or API groups.
func chartNoWildcards(t *testing.T, rendered []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range rendered {
		if o.GetKind() != "Role" && o.GetKind() != "ClusterRole" {
			continue
		}
		var r rbacv1.ClusterRole
		chartDecodeStrict(t, o, &r)
		for _, rule := range r.Rules {
			for _, v := range append(append(append([]string{}, rule.Verbs...), rule.Resources...), rule.APIGroups...) {
				if v == "*" {
					t.Errorf("%s %s has a wildcard rule: %+v", o.GetKind(), o.GetName(), rule)
				}
			}
		}
	}
}

// chartSyncBuffer is a bytes.Buffer the manager's goroutines write while the test reads it.
type chartSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *chartSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *chartSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
