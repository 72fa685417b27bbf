//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/underlink/underlink/api/scheme"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/webhook/registration"
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

// seedObject decodes the first document of a seed manifest, unchanged, as unstructured.
func seedObject(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	test.DecodeSeed(t, name, &u.Object)
	return u
}

// deniedBy reports whether err is a denial by one of underlink's webhooks.
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

func createNamespace(t *testing.T, c client.Client, name string, labels, annotations map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
	if err := c.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func submarinerClusterObject(id, pods, services string) *submarinerv1.Cluster {
	return &submarinerv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: "submariner-operator", Name: id},
		Spec: submarinerv1.ClusterSpec{ClusterID: id, ClusterCIDR: []string{pods}, ServiceCIDR: []string{services}}}
}

// eventually polls cond until it holds or the timeout passes, then fails t with the last reason.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, why := cond()
		last = why
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %v: %s", what, timeout, last)
	}
}
