//go:build integration

package certs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/underlink/underlink/certs"
	"github.com/underlink/underlink/certs/pki"
	"github.com/underlink/underlink/certs/rotation"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/poll"
)

var (
	env *controlplane.Env
	cs  kubernetes.Interface
)

func TestMain(m *testing.M) {
	var err error
	env, err = controlplane.NewEnv(controlplane.EnvOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cs = kubernetes.NewForConfigOrDie(env.Config)
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// TestSelfSignedModeCreatesTheSecretPatchesCABundleAndServes: one replica on an empty cluster creates the
// Secret, patches its CA into every webhook of both configurations, serves the pair (TLS 1.2 minimum) for
// the Service's DNS names, and the apiserver admits through it.
func TestSelfSignedModeCreatesTheSecretPatchesCABundleAndServes(t *testing.T) {
	tc := newCase(t, "create", 1)
	r := tc.startReplica("replica-0", time.Hour, time.Second)

	var secret *corev1.Secret
	poll.Until(t, 20*time.Second, "the Secret created with the caBundle patched in", func() (bool, string) {
		s, err := cs.CoreV1().Secrets(tc.ns).Get(context.Background(), tc.opts.SecretName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		secret = s
		b := tc.bundles()
		for name, got := range b {
			if !bytes.Equal(got, s.Data[rotation.KeyCABundle]) {
				return false, fmt.Sprintf("webhook %s: caBundle not yet the Secret's ca.crt", name)
			}
		}
		return len(b) == 2, fmt.Sprintf("%d webhooks patched", len(b))
	})
	if secret.Type != corev1.SecretTypeTLS || secret.Annotations[certs.AnnotationWrittenBy] != "replica-0" {
		t.Errorf("Secret type %q written by %q, want %s by replica-0", secret.Type, secret.Annotations[certs.AnnotationWrittenBy], corev1.SecretTypeTLS)
	}
	leaf := handshake(t, r.port, secret.Data[rotation.KeyCABundle], "underlink-webhook."+tc.ns+".svc")
	want, _ := pki.ParseKeyPair(secret.Data[rotation.KeyCert], secret.Data[rotation.KeyKey])
	if !leaf.Equal(want.Cert) {
		t.Errorf("replica serves serial %x, the Secret holds %x", leaf.SerialNumber, want.Cert.SerialNumber)
	}
	if lifetime := leaf.NotAfter.Sub(leaf.NotBefore); lifetime < time.Hour || lifetime > time.Hour+pki.MaxBackdate {
		t.Errorf("serving certificate valid for %v, want the configured hour", lifetime)
	}
	// TLS 1.2 minimum.
	conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}) //nolint:gosec // the point is an old version
	if err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded; the webhook must refuse TLS below 1.2")
	}
	if err := tc.createPod("p0"); err != nil {
		t.Fatalf("pod admission through the webhook: %v", err)
	}
	if r.calls.Load() == 0 {
		t.Error("the apiserver admitted the pod without calling the webhook")
	}
}

// TestCorruptedSecretIsReplacedNotCrashedOn: a wrong-typed Secret of the name and later garbage in
// tls.crt are both replaced by a fresh pair, served and trusted; the replica keeps running throughout.
func TestCorruptedSecretIsReplacedNotCrashedOn(t *testing.T) {
	tc := newCase(t, "corrupt", 1)
	ctx := context.Background()
	_, err := cs.CoreV1().Secrets(tc.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: tc.opts.SecretName, Namespace: tc.ns},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"ca.crt": []byte("not a certificate")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := tc.startReplica("replica-0", time.Hour, time.Second)
	first := tc.waitServedAndTrusted(r, func(s *corev1.Secret) bool { return s.Type == corev1.SecretTypeTLS })

	s, err := cs.CoreV1().Secrets(tc.ns).Get(ctx, tc.opts.SecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data[rotation.KeyCert] = []byte("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
	if _, err := cs.CoreV1().Secrets(tc.ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	second := tc.waitServedAndTrusted(r, func(s *corev1.Secret) bool {
		kp, err := pki.ParseKeyPair(s.Data[rotation.KeyCert], s.Data[rotation.KeyKey])
		return err == nil && !kp.Cert.Equal(first)
	})
	if second.Equal(first) {
		t.Error("the corrupted Secret was not replaced")
	}
	select {
	case err := <-r.done:
		t.Fatalf("the replica stopped on a corrupted Secret: %v", err)
	default:
	}
	if err := tc.createPod("after-corruption"); err != nil {
		t.Fatalf("admission after the Secret was replaced: %v", err)
	}
}

// TestRotationUnderLoadWithTwoReplicas is the rotation acceptance at test scale: two replicas, each behind
// its own webhook of one MutatingWebhookConfiguration (failurePolicy Fail), so every pod create goes
// through both; a short lifetime; pods created at a steady rate. No admission may fail, the certificates
// must rotate at least twice, the caBundle must change with every rotation, only the leader writes the
// Secret, and at the end both replicas serve the Secret's current pair.
// UNDERLINK_CERTS_SOAK=1 runs the full figure: a 2-minute lifetime for 5 minutes.
func TestRotationUnderLoadWithTwoReplicas(t *testing.T) {
	lifetime, duration, interval := 24*time.Second, 60*time.Second, 100*time.Millisecond
	if os.Getenv("UNDERLINK_CERTS_SOAK") == "1" {
		lifetime, duration = 2*time.Minute, 5*time.Minute
	}
	tc := newCase(t, "rotate", 2)
	r0 := tc.startReplica("replica-0", lifetime, time.Second)
	r1 := tc.startReplica("replica-1", lifetime, time.Second)
	first := tc.waitServedAndTrusted(r0, nil)
	tc.waitServedAndTrusted(r1, func(s *corev1.Secret) bool { return true })
	leader := tc.leader(r0, r1)

	// Watch the caBundle and the Secret's writers while the load runs.
	ctx, stop := context.WithCancel(context.Background())
	var (
		mu       sync.Mutex
		bundles  [][]byte
		writers  = map[string]bool{}
		wg       sync.WaitGroup
		failures []string
		created  int
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if c, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, tc.name, metav1.GetOptions{}); err == nil {
				b := c.Webhooks[0].ClientConfig.CABundle
				mu.Lock()
				if len(bundles) == 0 || !bytes.Equal(bundles[len(bundles)-1], b) {
					bundles = append(bundles, b)
				}
				mu.Unlock()
			}
			if s, err := cs.CoreV1().Secrets(tc.ns).Get(ctx, tc.opts.SecretName, metav1.GetOptions{}); err == nil {
				mu.Lock()
				writers[s.Annotations[certs.AnnotationWrittenBy]] = true
				mu.Unlock()
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	startGen := tc.generation()
	deadline := time.Now().Add(duration)
	tick := time.NewTicker(interval)
	for i := 0; time.Now().Before(deadline); i++ {
		<-tick.C
		created++
		if err := tc.createPod("load-" + strconv.Itoa(i)); err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", time.Now().Format(time.RFC3339Nano), err))
		}
	}
	tick.Stop()
	stop()
	wg.Wait()

	rotations := tc.generation() - startGen
	t.Logf("lifetime %v, %v of load: %d pods created, %d failed admissions, %d rotations, %d distinct caBundles, calls replica-0=%d replica-1=%d, leader %s",
		lifetime, duration, created, len(failures), rotations, len(bundles), r0.calls.Load(), r1.calls.Load(), leader.name)
	if len(failures) > 0 {
		t.Errorf("%d of %d admissions failed, want 0; first: %s", len(failures), created, failures[0])
	}
	if rotations < 2 {
		t.Errorf("%d rotations in %v with a %v lifetime, want at least 2", rotations, duration, lifetime)
	}
	// Each rotation adds a CA to the bundle and, a third of a lifetime later, prunes the old one.
	if len(bundles) < rotations+1 {
		t.Errorf("caBundle took %d values over %d rotations; it must change with every rotation", len(bundles), rotations)
	}
	if len(writers) != 1 || !writers[leader.name] {
		t.Errorf("Secret written by %v; only the leader %s may write it", writers, leader.name)
	}
	if r0.calls.Load() < int64(created) || r1.calls.Load() < int64(created) {
		t.Errorf("each replica must admit every pod: replica-0 %d, replica-1 %d calls for %d pods", r0.calls.Load(), r1.calls.Load(), created)
	}
	cur := tc.waitServedAndTrusted(r0, nil)
	if got := tc.waitServedAndTrusted(r1, nil); !got.Equal(cur) {
		t.Errorf("replicas serve different certificates: %x and %x", cur.SerialNumber, got.SerialNumber)
	}
	if cur.Equal(first) {
		t.Error("the served certificate never changed")
	}
}

// TestOnlyTheLeaderRotatesAndAFollowerTakesOver: the follower never writes the Secret while the leader
// lives; when the leader stops, the follower is elected and carries on rotating.
func TestOnlyTheLeaderRotatesAndAFollowerTakesOver(t *testing.T) {
	tc := newCase(t, "failover", 2)
	r0 := tc.startReplica("replica-0", 18*time.Second, time.Second)
	r1 := tc.startReplica("replica-1", 18*time.Second, time.Second)
	tc.waitServedAndTrusted(r0, nil)
	leader := tc.leader(r0, r1)
	follower := r0
	if leader == r0 {
		follower = r1
	}
	gen := tc.generation()
	poll.Until(t, 30*time.Second, "a rotation by the leader "+leader.name, func() (bool, string) {
		g, by := tc.generation(), tc.writtenBy()
		if by != leader.name {
			t.Fatalf("Secret written by %s while %s leads", by, leader.name)
		}
		return g > gen, fmt.Sprintf("generation %d", g)
	})
	leader.stop()
	gen = tc.generation()
	poll.Until(t, 40*time.Second, "a rotation by the new leader "+follower.name, func() (bool, string) {
		return tc.generation() > gen && tc.writtenBy() == follower.name, fmt.Sprintf("generation %d by %s", tc.generation(), tc.writtenBy())
	})
	tc.waitServedAndTrusted(follower, nil)
}

// ---- harness ----

type testCase struct {
	t    *testing.T
	name string // of the webhook configurations, lease and namespace
	ns   string
	opts certs.Options
	reps []*replica
}

type replica struct {
	name  string
	port  int
	mgr   manager.Manager
	calls atomic.Int64
	done  chan error
	stop  func()
}

// newCase makes a namespace and a mutating (one webhook per replica slot) and a validating configuration
// pointing at https://127.0.0.1:<port> of each replica; ports are reserved now so the configurations can
// name them before the replicas start.
func newCase(t *testing.T, name string, slots int) *testCase {
	ctx := context.Background()
	tc := &testCase{t: t, name: "certs-" + name, ns: "certs-" + name}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tc.ns, Labels: map[string]string{"certs-test": tc.name}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tc.opts = certs.Options{
		Mode: certs.ModeSelfSigned, SecretNamespace: tc.ns, SecretName: "underlink-webhook-tls", ServiceName: "underlink-webhook",
		ExtraHosts:                    []string{"127.0.0.1"},
		MutatingWebhookConfigurations: []string{tc.name}, ValidatingWebhookConfigurations: []string{tc.name},
		Resync: 5 * time.Second,
	}
	for i := range slots {
		tc.reps = append(tc.reps, &replica{name: "replica-" + strconv.Itoa(i), port: freePort(t)})
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"certs-test": tc.name}}
	mw := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: tc.name}}
	vw := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: tc.name}}
	for i, r := range tc.reps {
		url := fmt.Sprintf("https://127.0.0.1:%d/admit", r.port)
		rule := []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}}
		mw.Webhooks = append(mw.Webhooks, admissionregistrationv1.MutatingWebhook{
			Name: fmt.Sprintf("r%d.certs.test.underlink.io", i), ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
			Rules: rule, FailurePolicy: ptr.To(admissionregistrationv1.Fail), SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"}, NamespaceSelector: sel, TimeoutSeconds: ptr.To[int32](5),
		})
		vw.Webhooks = append(vw.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name: fmt.Sprintf("r%d.certs.test.underlink.io", i), ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
			Rules: rule, FailurePolicy: ptr.To(admissionregistrationv1.Fail), SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"}, NamespaceSelector: sel, TimeoutSeconds: ptr.To[int32](5),
		})
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mw, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, vw, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, r := range tc.reps {
			if r.stop != nil {
				r.stop()
			}
		}
		ctx := context.Background()
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, tc.name, metav1.DeleteOptions{})
		_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, tc.name, metav1.DeleteOptions{})
	})
	return tc
}

// startReplica runs one webhook process as cmd/underlink-webhook wires it: certs.New before the webhook
// server (TLSOpts), a leader-elected controller-runtime manager, certs.AddToManager. Replica i serves
// webhook i of the configurations; its handler allows and counts.
func (tc *testCase) startReplica(name string, lifetime, propagation time.Duration) *replica {
	t := tc.t
	var r *replica
	for _, rr := range tc.reps {
		if rr.name == name {
			r = rr
		}
	}
	opts := tc.opts
	opts.Identity, opts.Lifetime, opts.Propagation = name, lifetime, propagation
	// Logs go to stderr, which go test shows for a failing package (or with -v).
	log := funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, time.Now().Format("15:04:05.000"), prefix, args) }, funcr.Options{}).WithValues("replica", name)
	m, err := certs.New(env.Config, opts, log.WithName("certs"))
	if err != nil {
		t.Fatal(err)
	}
	srv := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: r.port, TLSOpts: m.TLSOpts()})
	srvHandler := &webhook.Admission{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		r.calls.Add(1)
		return admission.Allowed("")
	})}
	mgr, err := manager.New(env.Config, manager.Options{
		Logger:                        log,
		WebhookServer:                 srv,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              tc.name,
		LeaderElectionNamespace:       tc.ns,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 ptr.To(4 * time.Second),
		RenewDeadline:                 ptr.To(3 * time.Second),
		RetryPeriod:                   ptr.To(500 * time.Millisecond),
	})
	if err != nil {
		t.Fatal(err)
	}
	// controller-runtime starts the webhook server only once GetWebhookServer has been called.
	mgr.GetWebhookServer().Register("/admit", srvHandler)
	if err := m.AddToManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.mgr, r.done = mgr, make(chan error, 1)
	go func() { r.done <- mgr.Start(ctx) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-r.done:
				if err != nil {
					t.Errorf("%s stopped with %v", name, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("%s did not stop", name)
			}
		})
	}
	return r
}

// leader is the replica the lease names: controller-runtime closes Elected() on the winner.
func (tc *testCase) leader(rs ...*replica) *replica {
	var l *replica
	poll.Until(tc.t, 20*time.Second, "a leader elected", func() (bool, string) {
		for _, r := range rs {
			select {
			case <-r.mgr.Elected():
				l = r
				return true, ""
			default:
			}
		}
		lease, err := cs.CoordinationV1().Leases(tc.ns).Get(context.Background(), tc.name, metav1.GetOptions{})
		return false, fmt.Sprintf("no replica elected yet (lease %v)", leaseHolder(lease, err))
	})
	return l
}

func leaseHolder(l *coordinationv1.Lease, err error) string {
	if err != nil {
		return err.Error()
	}
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

// waitServedAndTrusted waits until the Secret satisfies cond (nil: any usable Secret), its ca.crt is in
// every webhook, and r serves its serving certificate, verified against the caBundle the apiserver holds.
func (tc *testCase) waitServedAndTrusted(r *replica, cond func(*corev1.Secret) bool) *x509.Certificate {
	var served *x509.Certificate
	poll.Until(tc.t, 30*time.Second, r.name+" serving a certificate the webhooks trust", func() (bool, string) {
		s, err := cs.CoreV1().Secrets(tc.ns).Get(context.Background(), tc.opts.SecretName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if cond != nil && !cond(s) {
			return false, "Secret not yet as wanted"
		}
		kp, err := pki.ParseKeyPair(s.Data[rotation.KeyCert], s.Data[rotation.KeyKey])
		if err != nil {
			return false, err.Error()
		}
		for name, b := range tc.bundles() {
			if !bytes.Equal(b, s.Data[rotation.KeyCABundle]) {
				return false, "caBundle of " + name + " is not the Secret's ca.crt yet"
			}
		}
		leaf, err := dial(r.port, s.Data[rotation.KeyCABundle], "127.0.0.1")
		if err != nil {
			return false, err.Error()
		}
		if !leaf.Equal(kp.Cert) {
			return false, fmt.Sprintf("%s serves %x, Secret holds %x", r.name, leaf.SerialNumber, kp.Cert.SerialNumber)
		}
		served = leaf
		return true, ""
	})
	return served
}

// bundles are the caBundles of every webhook of both configurations, by kind/webhook.
func (tc *testCase) bundles() map[string][]byte {
	out := map[string][]byte{}
	ctx := context.Background()
	if c, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, tc.name, metav1.GetOptions{}); err == nil {
		for _, w := range c.Webhooks {
			out["mutating/"+w.Name] = w.ClientConfig.CABundle
		}
	}
	if c, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, tc.name, metav1.GetOptions{}); err == nil {
		for _, w := range c.Webhooks {
			out["validating/"+w.Name] = w.ClientConfig.CABundle
		}
	}
	return out
}

func (tc *testCase) generation() int {
	s, err := cs.CoreV1().Secrets(tc.ns).Get(context.Background(), tc.opts.SecretName, metav1.GetOptions{})
	if err != nil {
		tc.t.Fatal(err)
	}
	g, _ := strconv.Atoi(s.Annotations[rotation.AnnotationGeneration])
	return g
}

func (tc *testCase) writtenBy() string {
	s, err := cs.CoreV1().Secrets(tc.ns).Get(context.Background(), tc.opts.SecretName, metav1.GetOptions{})
	if err != nil {
		tc.t.Fatal(err)
	}
	return s.Annotations[certs.AnnotationWrittenBy]
}

func (tc *testCase) createPod(name string) error {
	_, err := cs.CoreV1().Pods(tc.ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "pause"}}},
	}, metav1.CreateOptions{})
	return err
}

func handshake(t *testing.T, port int, caBundle []byte, serverName string) *x509.Certificate {
	t.Helper()
	leaf, err := dial(port, caBundle, serverName)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// dial makes a TLS handshake to 127.0.0.1:port as the apiserver would: trusting only caBundle and
// checking serverName; it returns the served leaf.
func dial(port int, caBundle []byte, serverName string) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caBundle) {
		return nil, errors.New("caBundle holds no certificate")
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		&tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, fmt.Errorf("handshake with 127.0.0.1:%d as %s: %w", port, serverName, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
