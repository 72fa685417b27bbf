package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/webhook/registration"
)

// CheckInjectionWorks: a pod created in an opted-in namespace gets the default network, proven by a
// server-side dry run (the apiserver runs every admission step, the injection among them, and stores
// nothing).
const CheckInjectionWorks = "injection-works"

const whatInjectionWorks = "a pod created in an opted-in namespace gets the default network (server-side dry run)"

// probePod is the pod of the dry run: it names no network, and passes the restricted Pod Security level,
// so only underlink's admission decides what it gets.
func probePod(namespace string) *corev1.Pod {
	no, yes, uid := false, true, int64(65532)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, GenerateName: "underlink-doctor-probe-"},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "probe", Image: "registry.k8s.io/pause:3.10",
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &no,
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
		},
	}
}

// checkInjection creates a pod in the first namespace opted in to injection with a server-side dry run
// and checks that the apiserver answers with v1.multus-cni.io/default-network set to the default
// network. Without a writer (w nil), a default network or an opted-in namespace, it says what it could
// not prove and why.
func checkInjection(ctx context.Context, r client.Reader, w client.Writer, defaultNetwork string) (Check, error) {
	c := Check{ID: CheckInjectionWorks, What: whatInjectionWorks}
	warn := func(subject, why, fix string) (Check, error) {
		c.Findings = append(c.Findings, Finding{Severity: rules.Warn, Subject: subject, Why: why, Fix: fix})
		return finish(c), nil
	}
	if w == nil || defaultNetwork == "" {
		return finish(c), nil // nothing to prove with: the other checks say why
	}
	var nss corev1.NamespaceList
	if err := r.List(ctx, &nss, client.MatchingLabels{registration.InjectLabel: registration.InjectEnabled}); err != nil {
		if apierrors.IsForbidden(err) {
			return warn("namespaces", "cannot be listed with these credentials, so injection was not tried", "run doctor with a kubeconfig that may list namespaces")
		}
		return c, fmt.Errorf("list namespaces labelled %s=%s: %w", registration.InjectLabel, registration.InjectEnabled, err)
	}
	if len(nss.Items) == 0 {
		return warn("namespaces", fmt.Sprintf("none is labelled %s=%s, so no pod gets the default network %s", registration.InjectLabel, registration.InjectEnabled, defaultNetwork),
			fmt.Sprintf("kubectl label namespace <namespace> %s=%s", registration.InjectLabel, registration.InjectEnabled))
	}
	names := make([]string, 0, len(nss.Items))
	for _, ns := range nss.Items {
		names = append(names, ns.Name)
	}
	sort.Strings(names)
	pod := probePod(names[0])
	subject := "Namespace/" + names[0]
	if err := w.Create(ctx, pod, client.DryRunAll); err != nil {
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "cannot create resource") {
			return warn(subject, "a dry-run pod create was refused: "+err.Error(), "run doctor with a kubeconfig that may create pods there (nothing is stored), or read the refusal")
		}
		c.Findings = append(c.Findings, Finding{Severity: rules.Deny, Subject: subject,
			Why: "a dry-run create of a pod that names no network failed: " + err.Error(),
			Fix: "read the refusal: it names the admission step that refused the pod"})
		return finish(c), nil
	}
	got := pod.Annotations[nadv1.DefaultNetworkAnnotation]
	if got != defaultNetwork {
		c.Findings = append(c.Findings, Finding{Severity: rules.Deny, Subject: subject, Field: "metadata.annotations[" + nadv1.DefaultNetworkAnnotation + "]", Value: got,
			Why: fmt.Sprintf("a dry-run pod created there got %q, not the default network %s: the injection did not run", got, defaultNetwork),
			Fix: "check that the injection policy and its binding, or the mutating webhook, are installed and that underlink-webhook runs (webhooks-registered)"})
	}
	return finish(c), nil
}
