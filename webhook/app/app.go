// Package app assembles underlink-webhook: one controller-runtime manager that serves the admission
// webhooks on every replica and runs the SpiderMultusConfig controller on the elected leader. The
// binary (cmd/underlink-webhook), the integration tests and the benchmark all start it through New.
package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/api/scheme"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/certs"
	"github.com/underlink/underlink/webhook/admit"
	"github.com/underlink/underlink/webhook/controller"
	"github.com/underlink/underlink/webhook/fastpath"
	"github.com/underlink/underlink/webhook/registration"
	"github.com/underlink/underlink/webhook/snapshot"
)

// Defaults of the flags and the Helm values.
const (
	DefaultNetwork          = "kube-system/macvlan-conf"
	DefaultSchedulerName    = "underlink-scheduler" // suggested --scheduler-name; off unless set
	DefaultPort             = 9443
	DefaultCertDir          = "/tmp/k8s-webhook-server/serving-certs"
	DefaultMetricsAddr      = ":8080"
	DefaultProbeAddr        = ":8081"
	DefaultLeaderElectionID = "underlink-webhook.underlink.io"
)

// Options configure the manager.
type Options struct {
	// Drain, when set, closes kept-alive connections after each answer and fails readiness once the
	// replica is told to stop (SignalContext).
	Drain *Drain
	// DefaultNetwork is injected into pods of opted-in namespaces that name none.
	DefaultNetwork string
	// SchedulerName, when not empty, is set on injected pods still on the default scheduler.
	SchedulerName string
	// Snapshot says which cluster is local and the static clusters; APIServerServiceIP is filled in by New.
	Snapshot snapshot.Options

	// Host and Port the webhook server listens on; CertDir holds tls.crt and tls.key (reloaded on change).
	Host    string
	Port    int
	CertDir string

	// MetricsAddr and ProbeAddr are the metrics and health endpoints; "0" turns one off.
	MetricsAddr string
	ProbeAddr   string

	// LeaderElection makes one replica run the controller; the webhooks run on every replica.
	LeaderElection          bool
	LeaderElectionNamespace string
	LeaderElectionID        string

	// DisableController serves only the webhooks (a replica set aside for admission, and benchmarks).
	DisableController bool
	// SkipNameValidation lets one process run several managers with the same controllers (tests).
	SkipNameValidation bool
	// FastPathConfiguration names the ValidatingWebhookConfiguration whose fast-path condition the
	// controller keeps (webhook/fastpath); empty leaves the condition as registered (every pod with a
	// network annotation is sent to the webhook).
	FastPathConfiguration string

	// EnableHTTP2 serves the webhooks and metrics over HTTP/2 too. Off by default, as Kubebuilder
	// scaffolds it: HTTP/2's stream handling has had denial-of-service flaws (CVE-2023-44487,
	// CVE-2023-39325) that HTTP/1.1 does not have.
	EnableHTTP2 bool
	// InsecureMetrics serves /metrics over plain HTTP without authentication (tests, benchmarks);
	// otherwise controller-runtime's secure serving asks the apiserver to authenticate and authorize
	// every scrape (TokenReview, SubjectAccessReview of GET /metrics).
	InsecureMetrics bool

	// Certs, when set, provides the serving certificate (certs/: self-signed rotation, or cert-manager's
	// files in CertDir) and the TLS floor; nil serves CertDir's pair as is (tests).
	Certs *certs.Manager
}

// New returns the manager; Start it with a context that ends at shutdown.
func New(cfg *rest.Config, o Options) (manager.Manager, error) {
	if o.LeaderElectionID == "" {
		o.LeaderElectionID = DefaultLeaderElectionID
	}
	s := scheme.New()
	o.Snapshot.DefaultNetwork = o.DefaultNetwork
	if o.Snapshot.APIServerServiceIP == "" {
		o.Snapshot.APIServerServiceIP = apiserverServiceIP(cfg)
	}
	cacheOpts := cache.Options{ByObject: map[client.Object]cache.ByObject{}}
	if key := o.Snapshot.StaticClustersConfigMap; key != nil {
		// Cache just that one ConfigMap, not every ConfigMap of the cluster.
		cacheOpts.ByObject[&corev1.ConfigMap{}] = cache.ByObject{
			Namespaces: map[string]cache.Config{key.Namespace: {}},
			Field:      fields.OneTermEqualSelector("metadata.name", key.Name),
		}
	}
	if o.FastPathConfiguration != "" && !o.DisableController {
		// Watch just that one configuration (RBAC grants no other).
		cacheOpts.ByObject[&admissionregistrationv1.ValidatingWebhookConfiguration{}] = cache.ByObject{
			Field: fields.OneTermEqualSelector("metadata.name", o.FastPathConfiguration),
		}
	}
	// Pools are cached without status.allocatedIPs, the one field that grows with every allocation: no
	// rule and no controller reads it from the cache (pool-keeps-allocated-ips reads the request's
	// stored pool, the finalizer controller reads a pool live), so the cache stays small and a status
	// write costs a decode, not a copy of every allocation.
	cacheOpts.ByObject[&spv2.SpiderIPPool{}] = cache.ByObject{Transform: StripAllocations}
	srvOpts := webhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir, TLSOpts: []func(*tls.Config){certs.RequireTLS12}}
	if o.Certs != nil {
		srvOpts.TLSOpts = o.Certs.TLSOpts()
	}
	if !o.EnableHTTP2 {
		srvOpts.TLSOpts = append(srvOpts.TLSOpts, DisableHTTP2)
	}
	var srv webhook.Server
	if o.Drain != nil {
		srv = newDrainingServer(srvOpts, o.Drain)
	} else {
		srv = webhook.NewServer(srvOpts)
	}
	metricsOpts := metricsserver.Options{BindAddress: o.MetricsAddr}
	if !o.InsecureMetrics {
		metricsOpts.SecureServing = true
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
		if !o.EnableHTTP2 {
			metricsOpts.TLSOpts = []func(*tls.Config){DisableHTTP2}
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  s,
		Cache:                   cacheOpts,
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  o.ProbeAddr,
		WebhookServer:           srv,
		LeaderElection:          o.LeaderElection,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		LeaderElectionID:        o.LeaderElectionID,
		// A new leader takes over at once on a rolling update instead of waiting out the lease.
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: &o.SkipNameValidation},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	// GetWebhookServer adds the server to the manager's runnables; registering on srv alone would not.
	srv = mgr.GetWebhookServer()
	reader, live := mgr.GetCache(), &snapshot.Coalesced{Reader: mgr.GetAPIReader()}
	rules := admit.Rules{Reader: reader, LiveReader: live, Snapshot: o.Snapshot}
	srv.Register(registration.PathMutatePod, &admission.Webhook{Handler: &admit.Injector{
		Rules: rules, DefaultNetwork: o.DefaultNetwork, SchedulerName: o.SchedulerName,
	}})
	srv.Register(registration.PathValidateSpiderIPPool, &admission.Webhook{Handler: &admit.Validator{
		Rules: rules, Kinds: admit.PoolKinds,
	}})
	srv.Register(registration.PathValidateSpiderMultusConfig, &admission.Webhook{Handler: &admit.Validator{
		Rules: rules, Kinds: admit.MultusConfigKinds,
	}})
	srv.Register(registration.PathValidateWorkload, &admission.Webhook{Handler: &admit.Validator{
		Rules: rules, Kinds: admit.WorkloadKinds,
	}})

	if !o.DisableController {
		r := &controller.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("underlink-webhook"), Snapshot: o.Snapshot}
		if err := r.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("set up the SpiderMultusConfig controller: %w", err)
		}
		pr := &controller.PoolReconciler{Client: mgr.GetClient(), Live: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("underlink-webhook")}
		if err := pr.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("set up the SpiderIPPool finalizer controller: %w", err)
		}
		if o.FastPathConfiguration != "" {
			fp := &fastpath.Reconciler{Client: mgr.GetClient(), Configuration: o.FastPathConfiguration}
			if err := fp.SetupWithManager(mgr); err != nil {
				return nil, fmt.Errorf("set up the fast-path controller: %w", err)
			}
		}
	}
	if o.Certs != nil {
		if err := o.Certs.AddToManager(mgr); err != nil {
			return nil, fmt.Errorf("set up serving certificates: %w", err)
		}
	}
	if err := warmCache(mgr, o); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if o.Drain != nil {
		if err := mgr.AddReadyzCheck("drain", o.Drain.Ready); err != nil {
			return nil, err
		}
	}
	if err := mgr.AddReadyzCheck("webhook", srv.StartedChecker()); err != nil {
		return nil, err
	}
	// Not ready before the cache holds the world: a webhook answering from an empty cache would deny
	// every pod for a network that "does not exist".
	if err := mgr.AddReadyzCheck("cache", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return fmt.Errorf("informer caches not synced")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return mgr, nil
}

// StripAllocations is the cache's transform of SpiderIPPools: status.allocatedIPs is dropped;
// status.allocatedIPCount and status.totalIPCount stay.
func StripAllocations(obj any) (any, error) {
	if p, ok := obj.(*spv2.SpiderIPPool); ok {
		p.Status.AllocatedIPs = nil
		p.ManagedFields = nil
	}
	return obj, nil
}

// DisableHTTP2 offers only HTTP/1.1 in the TLS handshake.
func DisableHTTP2(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }

// warmCache registers the informers the handlers read, so they sync at start rather than on the first
// admission request. A kind whose CRD is not installed (Submariner, Multus) is skipped: the handlers then
// read an empty list and warn that alignment is unchecked.
func warmCache(mgr manager.Manager, o Options) error {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	objs := []client.Object{ns, &spv2.SpiderIPPool{}, &spv2.SpiderMultusConfig{}, &spv2.SpiderReservedIP{}, &spv2.SpiderCoordinator{}, &submarinerv1.Cluster{}, &nadv1.NetworkAttachmentDefinition{}}
	if o.Snapshot.StaticClustersConfigMap != nil {
		objs = append(objs, &corev1.ConfigMap{})
	}
	log := ctrl.Log.WithName("setup")
	for _, obj := range objs {
		if _, err := mgr.GetCache().GetInformer(context.Background(), obj); err != nil {
			if meta.IsNoMatchError(err) {
				log.Info("API not installed; reading it as empty", "type", fmt.Sprintf("%T", obj), "error", err.Error())
				continue
			}
			return fmt.Errorf("watch %T: %w", obj, err)
		}
	}
	return nil
}

// apiserverServiceIP reads the ClusterIP of default/kubernetes, which lies in the local service CIDR and
// so tells the local Submariner Cluster apart. It never changes, so it is read once, uncached.
func apiserverServiceIP(cfg *rest.Config) string {
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ip, err := snapshot.APIServerServiceIP(ctx, c)
	if err != nil {
		ctrl.Log.WithName("setup").Info("the local cluster is chosen by --local-cluster or inferred from the pools", "error", err.Error())
	}
	return ip
}
