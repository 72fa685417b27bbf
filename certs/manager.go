package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/underlink/underlink/certs/pki"
	"github.com/underlink/underlink/certs/rotation"
)

// AnnotationWrittenBy names the replica (Options.Identity) that last wrote the Secret.
const AnnotationWrittenBy = "certs.underlink.io/written-by"

var (
	rotationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "underlink_webhook_certificate_changes_total",
		Help: "Changes the leader made to the webhook's self-signed certificate Secret, by action (create, introduce-ca, reissue, prune).",
	}, []string{"action"})
	caBundlePatchesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "underlink_webhook_cabundle_patches_total",
		Help: "Webhook configurations whose caBundle the leader patched.",
	})
	servingNotAfter = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "underlink_webhook_serving_certificate_expiry_timestamp_seconds",
		Help: "When the serving certificate this replica serves expires (Unix seconds).",
	})
)

func init() {
	metrics.Registry.MustRegister(rotationsTotal, caBundlePatchesTotal, servingNotAfter)
}

// Manager provides the webhook server's serving certificate. In self-signed mode it keeps the certificate
// Secret and the caBundles current (leader only) and serves the Secret's pair on every replica; in
// cert-manager mode it only sets the TLS floor and the webhook server reads --cert-dir.
type Manager struct {
	opts   Options
	policy rotation.Policy
	client kubernetes.Interface
	log    logr.Logger
	now    func() time.Time

	serving atomic.Pointer[tls.Certificate]
	// wake tells the leader's loop that the Secret changed.
	wake chan struct{}
}

// New validates opts and makes a Manager; call it before building the webhook server (TLSOpts) and hand
// the controller-runtime manager to AddToManager.
func New(cfg *rest.Config, opts Options, log logr.Logger) (*Manager, error) {
	if opts.Mode == "" {
		opts.Mode = ModeSelfSigned
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{opts: opts, policy: opts.policy(), log: log, now: time.Now, wake: make(chan struct{}, 1)}
	if opts.Mode == ModeSelfSigned {
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("certificate manager: client: %w", err)
		}
		m.client = c
	}
	return m, nil
}

// TLSOpts are the webhook server's TLS options: TLS 1.2 at least, and in self-signed mode the Secret's
// current pair (controller-runtime then skips its own certwatcher on --cert-dir).
func (m *Manager) TLSOpts() []func(*tls.Config) {
	if m.opts.Mode == ModeCertManager {
		return []func(*tls.Config){RequireTLS12}
	}
	return []func(*tls.Config){RequireTLS12, func(c *tls.Config) { c.GetCertificate = m.getCertificate }}
}

// AddToManager registers, in self-signed mode, the Secret watch every replica runs, the rotation loop
// only the elected leader runs, and a readiness check that passes once a certificate is loaded.
func (m *Manager) AddToManager(mgr manager.Manager) error {
	if m.opts.Mode != ModeSelfSigned {
		return nil
	}
	if err := mgr.Add(&servingSync{m: m}); err != nil {
		return err
	}
	if err := mgr.Add(&rotator{m: m}); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("serving-certificate", m.ReadyCheck)
}

// ReadyCheck fails until a serving certificate has been loaded from the Secret.
func (m *Manager) ReadyCheck(*http.Request) error {
	if m.opts.Mode == ModeSelfSigned && m.serving.Load() == nil {
		return fmt.Errorf("no serving certificate loaded yet from Secret %s/%s", m.opts.SecretNamespace, m.opts.SecretName)
	}
	return nil
}

func (m *Manager) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.serving.Load(); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("no serving certificate loaded yet from Secret %s/%s", m.opts.SecretNamespace, m.opts.SecretName)
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// load serves the Secret's pair if it is usable and new; a corrupt Secret keeps the last good pair
// serving until the leader replaces it.
func (m *Manager) load(secret *corev1.Secret) {
	defer m.poke()
	kp, err := pki.ParseKeyPair(secret.Data[rotation.KeyCert], secret.Data[rotation.KeyKey])
	if err != nil {
		m.log.Info("certificate Secret holds no usable serving pair; keeping the current one until the leader replaces it", "secret", klogRef(secret), "reason", err.Error())
		return
	}
	if cur := m.serving.Load(); cur != nil && bytes.Equal(cur.Certificate[0], kp.Cert.Raw) {
		return
	}
	pair, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		m.log.Info("certificate Secret's serving pair does not load", "secret", klogRef(secret), "reason", err.Error())
		return
	}
	pair.Leaf = kp.Cert
	m.serving.Store(&pair)
	servingNotAfter.Set(float64(kp.Cert.NotAfter.Unix()))
	m.log.Info("serving new certificate", "secret", klogRef(secret), "serial", kp.Cert.SerialNumber.Text(16), "issuer", kp.Cert.Issuer.CommonName, "notAfter", kp.Cert.NotAfter)
}

// servingSync watches the one certificate Secret (a field-selected informer, so the webhook needs no
// access to other Secrets) and serves its pair; it runs on every replica.
type servingSync struct{ m *Manager }

func (s *servingSync) NeedLeaderElection() bool { return false }

func (s *servingSync) Start(ctx context.Context) error {
	m := s.m
	f := informers.NewSharedInformerFactoryWithOptions(m.client, 0,
		informers.WithNamespace(m.opts.SecretNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", m.opts.SecretName).String()
		}))
	inf := f.Core().V1().Secrets().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { m.load(o.(*corev1.Secret)) },
		UpdateFunc: func(_, o any) { m.load(o.(*corev1.Secret)) },
		DeleteFunc: func(any) { m.poke() },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	<-ctx.Done()
	f.Shutdown()
	return nil
}

// rotator keeps the Secret and the caBundles current; only the leader runs it.
type rotator struct{ m *Manager }

func (r *rotator) NeedLeaderElection() bool { return true }

func (r *rotator) Start(ctx context.Context) error {
	m := r.m
	m.log.Info("certificate rotation started: this replica is the leader", "identity", m.opts.Identity, "secret", m.opts.SecretNamespace+"/"+m.opts.SecretName, "lifetime", m.opts.Lifetime)
	retry := time.Second
	for {
		next, err := m.Reconcile(ctx)
		delay := m.opts.Resync
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.log.Error(err, "certificate reconcile failed; retrying", "in", retry)
			delay, retry = retry, min(2*retry, m.opts.Resync)
		} else {
			retry = time.Second
			if !next.IsZero() {
				delay = max(min(next.Sub(m.now()), delay), 0)
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-m.wake:
			t.Stop()
		}
	}
}

// Reconcile brings the Secret and the caBundles one decision at a time to where rotation.Decide keeps
// them, and returns when they next need attention.
func (m *Manager) Reconcile(ctx context.Context) (time.Time, error) {
	const maxSteps = 4 // create/reissue/introduce/prune each settle in one step; a conflict costs one
	for range maxSteps {
		secret, err := m.client.CoreV1().Secrets(m.opts.SecretNamespace).Get(ctx, m.opts.SecretName, metav1.GetOptions{})
		var data map[string][]byte
		var ann map[string]string
		switch {
		case apierrors.IsNotFound(err):
			secret = nil
		case err != nil:
			return time.Time{}, fmt.Errorf("get certificate Secret %s/%s: %w", m.opts.SecretNamespace, m.opts.SecretName, err)
		default:
			data, ann = secret.Data, secret.Annotations
			if data == nil {
				data = map[string][]byte{}
			}
		}
		state := rotation.Parse(data, ann)
		trusted := false
		if state.Err == nil {
			if trusted, err = m.allTrust(ctx, state.Signer.Cert); err != nil {
				return time.Time{}, err
			}
		}
		now := m.now()
		d := rotation.Decide(state, trusted, now, m.policy)
		if d.Action == rotation.Keep {
			if err := m.publish(ctx, state.CABundle()); err != nil {
				return time.Time{}, err
			}
			return d.Next, nil
		}
		next, err := rotation.Apply(d, state, now, m.policy)
		if err != nil {
			return time.Time{}, fmt.Errorf("certificate Secret %s/%s: %s: %w", m.opts.SecretNamespace, m.opts.SecretName, d.Action, err)
		}
		if err := m.write(ctx, secret, next); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) {
				continue // someone else wrote it meanwhile: decide again on what is there now
			}
			return time.Time{}, err
		}
		rotationsTotal.WithLabelValues(string(d.Action)).Inc()
		m.log.Info("certificate Secret updated", "action", d.Action, "reason", d.Reason,
			"secret", m.opts.SecretNamespace+"/"+m.opts.SecretName, "generation", next.Generation,
			"signer", next.Signer.Cert.Subject.CommonName, "servingNotAfter", next.Serving.Cert.NotAfter, "caBundleCAs", len(next.Bundle))
	}
	return time.Time{}, fmt.Errorf("certificate Secret %s/%s changed under every one of %d attempts", m.opts.SecretNamespace, m.opts.SecretName, maxSteps)
}

func (m *Manager) write(ctx context.Context, old *corev1.Secret, s rotation.State) error {
	data, ann := s.Encode()
	ann[AnnotationWrittenBy] = m.opts.Identity
	secrets := m.client.CoreV1().Secrets(m.opts.SecretNamespace)
	if old != nil && old.Type != corev1.SecretTypeTLS {
		// A Secret's type is immutable: a wrong-typed Secret of this name is replaced, not updated.
		uid, rv := old.UID, old.ResourceVersion
		if err := secrets.Delete(ctx, old.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}}); err != nil {
			return fmt.Errorf("delete certificate Secret %s/%s of type %q to recreate it as %s: %w", old.Namespace, old.Name, old.Type, corev1.SecretTypeTLS, err)
		}
		old = nil
	}
	if old == nil {
		_, err := secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: m.opts.SecretName, Namespace: m.opts.SecretNamespace, Annotations: ann,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "underlink-webhook", "app.kubernetes.io/component": "webhook-certificate"}},
			Type: corev1.SecretTypeTLS,
			Data: data,
		}, metav1.CreateOptions{})
		return err
	}
	upd := old.DeepCopy()
	upd.Data = data
	if upd.Annotations == nil {
		upd.Annotations = map[string]string{}
	}
	for k, v := range ann {
		upd.Annotations[k] = v
	}
	_, err := secrets.Update(ctx, upd, metav1.UpdateOptions{})
	return err
}

// webhookConfig is one configured webhook configuration as read: its resourceVersion and the caBundle of
// each of its webhooks by name.
type webhookConfig struct {
	kind, name, resourceVersion string
	bundles                     map[string][]byte
}

// webhookConfigs reads the configured webhook configurations that exist.
func (m *Manager) webhookConfigs(ctx context.Context) ([]webhookConfig, error) {
	var out []webhookConfig
	adm := m.client.AdmissionregistrationV1()
	for _, name := range m.opts.MutatingWebhookConfigurations {
		c, err := adm.MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			m.log.V(1).Info("webhook configuration not found; nothing to patch yet", "kind", "MutatingWebhookConfiguration", "name", name)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get MutatingWebhookConfiguration %s: %w", name, err)
		}
		wc := webhookConfig{kind: "MutatingWebhookConfiguration", name: name, resourceVersion: c.ResourceVersion, bundles: map[string][]byte{}}
		for _, w := range c.Webhooks {
			wc.bundles[w.Name] = w.ClientConfig.CABundle
		}
		out = append(out, wc)
	}
	for _, name := range m.opts.ValidatingWebhookConfigurations {
		c, err := adm.ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			m.log.V(1).Info("webhook configuration not found; nothing to patch yet", "kind", "ValidatingWebhookConfiguration", "name", name)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get ValidatingWebhookConfiguration %s: %w", name, err)
		}
		wc := webhookConfig{kind: "ValidatingWebhookConfiguration", name: name, resourceVersion: c.ResourceVersion, bundles: map[string][]byte{}}
		for _, w := range c.Webhooks {
			wc.bundles[w.Name] = w.ClientConfig.CABundle
		}
		out = append(out, wc)
	}
	return out, nil
}

// allTrust reports whether every webhook of every existing configuration has ca in its caBundle.
func (m *Manager) allTrust(ctx context.Context, ca *x509.Certificate) (bool, error) {
	cfgs, err := m.webhookConfigs(ctx)
	if err != nil {
		return false, err
	}
	for _, c := range cfgs {
		for _, b := range c.bundles {
			certs, err := pki.ParseCertificates(b)
			if err != nil {
				return false, nil
			}
			found := false
			for _, cc := range certs {
				if cc.Equal(ca) {
					found = true
					break
				}
			}
			if !found {
				return false, nil
			}
		}
	}
	return true, nil
}

// publish patches bundle into every webhook whose caBundle differs. The patch carries the configuration's
// resourceVersion, so a webhook removed meanwhile (helm upgrade) is never re-added half-empty.
func (m *Manager) publish(ctx context.Context, bundle []byte) error {
	cfgs, err := m.webhookConfigs(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cfgs {
		type clientConfig struct {
			CABundle []byte `json:"caBundle"`
		}
		type webhook struct {
			Name         string       `json:"name"`
			ClientConfig clientConfig `json:"clientConfig"`
		}
		var stale []webhook
		for name, b := range c.bundles {
			if !bytes.Equal(b, bundle) {
				stale = append(stale, webhook{Name: name, ClientConfig: clientConfig{CABundle: bundle}})
			}
		}
		if len(stale) == 0 {
			continue
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": c.resourceVersion}, "webhooks": stale})
		if err != nil {
			return err
		}
		adm := m.client.AdmissionregistrationV1()
		if c.kind == "MutatingWebhookConfiguration" {
			_, err = adm.MutatingWebhookConfigurations().Patch(ctx, c.name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "underlink-webhook"})
		} else {
			_, err = adm.ValidatingWebhookConfigurations().Patch(ctx, c.name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "underlink-webhook"})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("patch caBundle into %s %s: %w", c.kind, c.name, err))
			continue
		}
		caBundlePatchesTotal.Inc()
		m.log.Info("caBundle patched", "kind", c.kind, "name", c.name, "webhooks", len(stale), "caBundleCAs", bytes.Count(bundle, []byte("BEGIN CERTIFICATE")))
	}
	return errors.Join(errs...)
}

func klogRef(s *corev1.Secret) string { return s.Namespace + "/" + s.Name }
