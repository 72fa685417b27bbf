//go:build integration

package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/underlink/underlink/api/scheme"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/poll"
	"github.com/underlink/underlink/webhook/registration"
	"github.com/underlink/underlink/webhook/webhooktest"
)

// warningRecorder keeps the admission warnings the apiserver returns, as kubectl prints them.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// take returns the warnings since the last take.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// warningClient is a client whose requests' admission warnings are recorded.
func warningClient(t *testing.T, cfg *rest.Config) (client.Client, *warningRecorder) {
	t.Helper()
	rec := &warningRecorder{}
	c := rest.CopyConfig(cfg)
	c.WarningHandlerWithContext = rec
	cl, err := client.New(c, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	return cl, rec
}

// deniedByUnderlink reports whether err is a denial by one of underlink's webhooks.
func deniedByUnderlink(err error) bool {
	if err == nil {
		return false
	}
	for _, name := range []string{registration.WebhookSpiderIPPools, registration.WebhookSpiderMultusConfigs, registration.WebhookWorkloadsOptedIn, registration.WebhookWorkloadsElsewhere, registration.WebhookInjectPods} {
		if strings.Contains(err.Error(), fmt.Sprintf("admission webhook %q denied the request", name)) {
			return true
		}
	}
	return false
}

// denialText is a denial's message and its causes rendered as kubectl prints them, "field: message".
func denialText(err error) string {
	var b strings.Builder
	b.WriteString(err.Error() + "\n")
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Details != nil {
		for _, c := range status.Status().Details.Causes {
			b.WriteString(c.Field + ": " + c.Message + "\n")
		}
	}
	return b.String()
}

// causeFields are the field paths of a denial's causes.
func causeFields(err error) []string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return nil
	}
	var out []string
	for _, c := range status.Status().Details.Causes {
		out = append(out, c.Field)
	}
	return out
}

func assertDenied(t *testing.T, err error, fieldPath, want string) {
	t.Helper()
	if !deniedByUnderlink(err) || !apierrors.IsInvalid(err) {
		t.Fatalf("%v, want an Invalid denial by underlink", err)
	}
	found := false
	for _, f := range causeFields(err) {
		found = found || f == fieldPath
	}
	if !found {
		t.Errorf("causes name %v, want %s", causeFields(err), fieldPath)
	}
	if !strings.Contains(denialText(err), want) {
		t.Errorf("denial lacks %q:\n%s", want, denialText(err))
	}
}

func submarinerClusterObject(id, pods, services string) *submarinerv1.Cluster {
	return &submarinerv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: "submariner-operator", Name: id},
		Spec: submarinerv1.ClusterSpec{ClusterID: id, ClusterCIDR: []string{pods}, ServiceCIDR: []string{services}}}
}

func testPod(ns, name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}
}

func hijackConfig(name string, hijack ...string) *spv2.SpiderMultusConfig {
	macvlan := "macvlan"
	return &spv2.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: name},
		Spec: spv2.MultusCNIConfigSpec{CniType: &macvlan,
			MacvlanConfig:     &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224"}, SpiderpoolConfigPools: &spv2.SpiderpoolPools{IPv4IPPool: []string{"cluster-a"}}},
			CoordinatorConfig: &spv2.CoordinatorSpec{HijackCIDR: hijack}}}
}

func unstructuredSet(u interface{ UnstructuredContent() map[string]any }, value string, path ...string) error {
	m := u.UnstructuredContent()
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = value
	return nil
}

// waitCondition waits until kube-system/macvlan-conf has the condition typ with status and reason, and a
// message containing msg.
func waitCondition(t *testing.T, c client.Client, typ string, status metav1.ConditionStatus, reason, msg string) {
	t.Helper()
	poll.Until(t, 60*time.Second, "condition "+typ+"="+string(status), func() (bool, string) {
		smc := &spv2.SpiderMultusConfig{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "kube-system", Name: "macvlan-conf"}, smc); err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(smc.Status.Conditions, typ)
		if cond == nil {
			return false, "no condition"
		}
		return cond.Status == status && cond.Reason == reason && strings.Contains(cond.Message, msg),
			string(cond.Status) + " " + cond.Reason + ": " + cond.Message
	})
}

// waitEvent waits for an Event of kube-system/macvlan-conf with reason and type whose note contains note.
func waitEvent(t *testing.T, c client.Client, reason, typ, note string) {
	t.Helper()
	poll.Until(t, 60*time.Second, "Event "+reason, func() (bool, string) {
		var list eventsv1.EventList
		if err := c.List(context.Background(), &list, client.InNamespace("kube-system")); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Kind == "SpiderMultusConfig" && e.Regarding.Name == "macvlan-conf" {
				seen = append(seen, e.Reason+": "+e.Note)
				if e.Reason == reason && e.Type == typ && strings.Contains(e.Note, note) {
					return true, ""
				}
			}
		}
		return false, strings.Join(seen, " | ")
	})
}

// waitFastPath waits until both workload webhooks' fast-path condition satisfies ok.
func waitFastPath(t *testing.T, c client.Client, ok func(expr string) bool) {
	t.Helper()
	if _, err := webhooktest.WaitFastPath(context.Background(), c, ok); err != nil {
		t.Fatal(err)
	}
}

// kubectl runs the cached kubectl against kubeconfig and returns its stdout and stderr together, as a
// terminal shows them (warnings among them).
func kubectl(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	cmd := bed.Tool(t, "kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// runDoctorCLI runs `underlink doctor` (cmd/underlink, built once per test binary).
func runDoctorCLI(t *testing.T, kubeconfig string, args ...string) (string, int) {
	t.Helper()
	bin := filepath.Join(bed.Commands(t, "underlink"), "underlink")
	cmd := exec.Command(bin, append([]string{"doctor", "--kubeconfig", kubeconfig}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if errOut.Len() > 0 {
		t.Logf("underlink doctor stderr: %s", errOut.String())
	}
	return out.String(), code
}

// decisions sums underlink_admission_decisions_total over the series whose labels include match, from
// controller-runtime's metrics registry (the one the webhook's /metrics endpoint serves).
func decisions(t *testing.T, match map[string]string) float64 {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != "underlink_admission_decisions_total" {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
