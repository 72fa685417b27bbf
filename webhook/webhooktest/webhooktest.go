// Package webhooktest runs underlink-webhook in-process against a test control plane, the way a cluster
// runs it: served over TLS with a certificate the apiserver trusts through the caBundle of the webhook
// configurations webhook/registration builds. The integration tests and the benchmark use it; the
// certificates are test-only (the product's rotation lives in certs/).
package webhooktest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/textlogger"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/webhook/app"
	"github.com/underlink/underlink/webhook/registration"
)

// Certs are a self-signed CA and a serving certificate for 127.0.0.1 signed by it.
type Certs struct {
	// CA is the PEM CA certificate, the caBundle of the webhook configurations.
	CA []byte
	// Dir holds tls.crt and tls.key, the webhook server's --cert-dir.
	Dir string
}

// NewCerts writes a fresh CA and serving certificate for the given IPs and DNS names into dir.
func NewCerts(dir string, ips []net.IP, dnsNames []string) (*Certs, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "underlink-webhook test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign test CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "underlink-webhook"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: ips, DNSNames: dnsNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	return &Certs{CA: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), Dir: dir}, nil
}

// Server is a running underlink-webhook.
type Server struct {
	// URL is https://127.0.0.1:PORT.
	URL   string
	Certs *Certs
	// Options are what the manager was started with.
	Options app.Options
	// Injection is how Register injects: the MutatingAdmissionPolicy (the chart's default) or the webhook.
	Injection registration.Injection
	stop      context.CancelFunc
	done      chan error
}

// Start runs underlink-webhook for t on a free port of 127.0.0.1, registers its webhook configurations
// and the injection policy with the apiserver of cfg, as the chart does by default, and returns once the
// apiserver calls the webhook and applies the policy. It is stopped and unregistered when t ends. o's
// Host, Port, CertDir and the metrics/probe addresses are filled in, and FastPathConfiguration when empty.
func Start(t testing.TB, cfg *rest.Config, c client.Client, o app.Options) *Server {
	t.Helper()
	return StartInjection(t, cfg, c, o, registration.InjectionPolicy)
}

// StartInjection is Start with the given injection: registration.InjectionWebhook registers the mutating
// webhook instead of the policy.
func StartInjection(t testing.TB, cfg *rest.Config, c client.Client, o app.Options, inj registration.Injection) *Server {
	t.Helper()
	s, err := start(cfg, c, o, inj, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background(), c); err != nil {
			t.Errorf("stop webhook: %v", err)
		}
	})
	return s
}

// UNDERLINK_TEST_WEBHOOK_LOG=N prints the webhook's logs at verbosity N to stderr.
func init() {
	if v, err := strconv.Atoi(os.Getenv("UNDERLINK_TEST_WEBHOOK_LOG")); err == nil {
		ctrl.SetLogger(textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(v), textlogger.Output(os.Stderr))))
	}
}

func start(cfg *rest.Config, c client.Client, o app.Options, inj registration.Injection, dir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	certs, err := NewCerts(filepath.Join(dir, "certs"), []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"})
	if err != nil {
		return nil, err
	}
	o.Host, o.Port, o.CertDir = "127.0.0.1", port, certs.Dir
	if o.MetricsAddr == "" {
		o.MetricsAddr = "0"
	}
	if o.ProbeAddr == "" {
		o.ProbeAddr = "0"
	}
	if o.DefaultNetwork == "" {
		o.DefaultNetwork = app.DefaultNetwork
	}
	// Tests run several webhooks, one after another, in one process.
	o.SkipNameValidation = true
	if o.FastPathConfiguration == "" {
		o.FastPathConfiguration = registration.ConfigurationName
	}
	mgr, err := app.New(cfg, o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{URL: fmt.Sprintf("https://127.0.0.1:%d", port), Certs: certs, Options: o, Injection: inj, stop: cancel, done: make(chan error, 1)}
	go func() { s.done <- mgr.Start(ctx) }()
	if err := s.waitServing(certs.CA); err != nil {
		cancel()
		return nil, err
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		cancel()
		return nil, errors.New("webhook cache did not sync")
	}
	if err := s.Register(context.Background(), c); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitServing waits until the server answers TLS with a certificate the CA signed.
func (s *Server) waitServing(ca []byte) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	addr := strings.TrimPrefix(s.URL, "https://")
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		select {
		case err := <-s.done:
			return false, fmt.Errorf("webhook manager exited: %v", err)
		default:
		}
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			last = err
			return false, nil
		}
		conn.Close()
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("webhook server at %s does not serve TLS (last: %v): %w", addr, last, err)
	}
	return nil
}

// Register creates (or replaces) the webhook configurations pointing at this server, and the injection
// policy unless s.Injection is registration.InjectionWebhook, and waits until the apiserver uses them: a
// dry-run create of a pool with its gateway outside its subnet is refused by the webhook rather than by
// nothing, and a dry-run pod of an opted-in probe namespace comes back injected.
func (s *Server) Register(ctx context.Context, c client.Client) error {
	o := registration.Options{URL: s.URL, CABundle: s.Certs.CA, Injection: s.Injection}
	v := registration.Validating(o)
	// The configurations are the product's, except the timeout: tests share a busy machine, and a
	// webhook call that waits for a CPU is not what they test.
	for i := range v.Webhooks {
		v.Webhooks[i].TimeoutSeconds = ptr(TestTimeoutSeconds)
	}
	objs := []client.Object{v}
	if s.Injection == registration.InjectionWebhook {
		m := registration.Mutating(o)
		for i := range m.Webhooks {
			m.Webhooks[i].TimeoutSeconds = ptr(TestTimeoutSeconds)
		}
		objs = append(objs, m)
	} else {
		policy, binding := registration.InjectPolicy(registration.Policy{DefaultNetwork: s.Options.DefaultNetwork, SchedulerName: s.Options.SchedulerName})
		objs = append(objs, policy, binding)
	}
	for _, obj := range objs {
		if err := c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		obj.SetResourceVersion("")
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("register %T: %w", obj, err)
		}
	}
	gw := "10.0.0.1"
	probe := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "underlink-webhook-probe"},
		Spec: spv2.IPPoolSpec{Subnet: "192.0.2.0/24", IPs: []string{"192.0.2.10"}, Gateway: &gw}}
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		last = c.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		return last != nil && strings.Contains(last.Error(), registration.WebhookSpiderIPPools), nil
	})
	if err != nil {
		return fmt.Errorf("the apiserver does not call the webhook at %s (last answer to a dry-run pool: %v): %w", s.URL, last, err)
	}
	if s.Injection != registration.InjectionWebhook {
		return waitInjecting(ctx, c)
	}
	return nil
}

// ProbeNamespace is the opted-in namespace Register creates to see the injection policy at work.
const ProbeNamespace = "underlink-webhook-probe"

// waitInjecting waits until the apiserver applies the injection policy (it loads policies
// asynchronously): a dry-run pod of ProbeNamespace comes back with a default network, or is denied by the
// validating webhook for the network it was given (the test may not have created that network).
func waitInjecting(ctx context.Context, c client.Client) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ProbeNamespace, Labels: map[string]string{registration.InjectLabel: registration.InjectEnabled}}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create the probe namespace: %w", err)
	}
	const key = "v1.multus-cni.io/default-network"
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ProbeNamespace, Name: "probe"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "probe"}}}}
		if last = c.Create(ctx, pod, client.DryRunAll); last != nil {
			return strings.Contains(last.Error(), key), nil
		}
		_, ok := pod.Annotations[key]
		return ok, nil
	})
	if err != nil {
		return fmt.Errorf("the apiserver does not apply MutatingAdmissionPolicy %s (last error: %v): %w", registration.PolicyName, last, err)
	}
	return nil
}

// WaitFastPath waits until the fast-path condition of both workload webhooks satisfies ok (the
// controller writes it asynchronously) and returns the last expression seen.
func WaitFastPath(ctx context.Context, c client.Client, ok func(expr string) bool) (string, error) {
	last := ""
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := c.Get(ctx, client.ObjectKey{Name: registration.ConfigurationName}, cfg); err != nil {
			return false, nil
		}
		n := 0
		for _, w := range cfg.Webhooks {
			for _, mc := range w.MatchConditions {
				if mc.Name == registration.FastPathConditionName {
					last = mc.Expression
					if ok(mc.Expression) {
						n++
					}
				}
			}
		}
		return n == 2, nil
	})
	if err != nil {
		return last, fmt.Errorf("fast-path condition of %s not as expected (last: %s): %w", registration.ConfigurationName, last, err)
	}
	return last, nil
}

// TestTimeoutSeconds is the webhook timeout of test registrations (the apiserver's maximum).
const TestTimeoutSeconds int32 = 30

func ptr[T any](v T) *T { return &v }

// Unregister deletes the webhook configurations, so the apiserver stops calling the server.
func (s *Server) Unregister(ctx context.Context, c client.Client) error {
	policy, binding := registration.InjectPolicy(registration.Policy{})
	for _, obj := range []client.Object{registration.Mutating(registration.Options{}), registration.Validating(registration.Options{}), binding, policy} {
		if err := c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// Stop unregisters the configurations and stops the manager.
func (s *Server) Stop(ctx context.Context, c client.Client) error {
	err := s.Unregister(ctx, c)
	s.stop()
	if merr := <-s.done; merr != nil && err == nil {
		err = merr
	}
	return err
}
