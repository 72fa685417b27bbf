// Package agent wires underlink-agent, the node daemon (a hostNetwork DaemonSet): the IPAM service on a
// root-only unix socket (cni/agent/service, writing pools through cni/agent/store), the underlay link
// watcher that keeps the node's <prefix><nic> labels (api/underlay; cni/agent/linkwatch), the
// garbage collector of leaked addresses (cni/agent/gc, one agent at a time), Prometheus metrics and
// /healthz and /readyz, and the answers Spiderpool's CNI plugins need for the DEL of the pods Spiderpool
// set up before underlink replaced it (cni/agent/spidercompat). Its only state is the apiserver's: a
// restarted agent trusts nothing local.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/underlink/underlink/api/scheme"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/gc"
	"github.com/underlink/underlink/cni/agent/linkwatch"
	"github.com/underlink/underlink/cni/agent/metrics"
	"github.com/underlink/underlink/cni/agent/pools"
	"github.com/underlink/underlink/cni/agent/prealloc"
	"github.com/underlink/underlink/cni/agent/reserved"
	"github.com/underlink/underlink/cni/agent/service"
	"github.com/underlink/underlink/cni/agent/spidercompat"
	"github.com/underlink/underlink/cni/agent/store"
	"github.com/underlink/underlink/cni/cniinstall"
	"github.com/underlink/underlink/cni/ipam"
	"github.com/underlink/underlink/cni/ipam/protocol"
)

// Options configure an agent.
type Options struct {
	Config   *rest.Config
	NodeName string
	// Socket is where IPAM is served, e.g. /run/underlink/agent.sock.
	Socket string
	// NICs fixes the underlay NICs to watch; empty means the masters of the SpiderMultusConfigs.
	NICs []string
	// LabelPrefix starts the node labels of the NICs (api/underlay); empty means underlay.LabelPrefix.
	LabelPrefix string
	// GCInterval is the time between garbage collection passes; GCGrace how long an allocation must
	// stay orphaned before it is freed.
	GCInterval, GCGrace time.Duration
	// GCNodeLostAfter frees the addresses of pods gone from a node that has been down this long; 0 keeps
	// them until the node is back (cni/IPAM.md, "Node failure").
	GCNodeLostAfter time.Duration
	// Preallocate gives pods scheduled to the node their default network's addresses as soon as the
	// agent sees them (cni/agent/prealloc), so ADD answers without waiting for a pool write.
	Preallocate bool
	// StatefulSets keeps a StatefulSet pod's addresses for its ordinal: the pod recreated under its name
	// gets them back; they are freed once the StatefulSet no longer wants the ordinal.
	StatefulSets bool
	// MetricsAddr and HealthAddr are the listen addresses of /metrics and /healthz,/readyz; "0" disables.
	MetricsAddr, HealthAddr string
	// CNIBinDir is the host's CNI bin directory as mounted in the agent's container; with DaemonSet set,
	// the plugins underlink installed there are removed when the agent stops because its DaemonSet is
	// gone (underlink uninstalled), and kept on any other stop (a rolling update, a node drain).
	CNIBinDir, DaemonSet string
	// SpiderpoolSocket is Spiderpool's agent socket (the chart gives spidercompat.DefaultSocket),
	// answered for the DEL of pods Spiderpool set up while no Spiderpool agent serves it; "": off.
	SpiderpoolSocket string
	// PprofAddr serves net/http/pprof when set ("" or "0": off).
	PprofAddr string
	// LeaseNamespace holds the garbage collection Lease "underlink-agent-gc".
	LeaseNamespace                            string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       logr.Logger
}

// LeaseName is the Lease that elects the agent collecting garbage.
const LeaseName = "underlink-agent-gc"

// Run runs the agent until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.NodeName == "" {
		return errors.New("--node-name is empty and neither $NODE_NAME nor the hostname gave one")
	}
	log := o.Log.WithValues("node", o.NodeName)
	mgr, err := ctrl.NewManager(o.Config, manager.Options{
		Scheme:                 scheme.New(),
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress: o.HealthAddr,
		PprofBindAddress:       o.PprofAddr,
		Cache: cache.Options{
			// Every read the agent makes from its cache has its informer started below; a read of
			// anything else (a whole SpiderIPPool, say) fails instead of silently watching it.
			ReaderFailOnMissingInformer: true,
			DefaultTransform:            cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				// Only this node's pods and this node: the agent serves its own node.
				&corev1.Pod{}:  {Field: fields.OneTermEqualSelector("spec.nodeName", o.NodeName)},
				&corev1.Node{}: {Field: fields.OneTermEqualSelector("metadata.name", o.NodeName)},
			},
		},
	})
	if err != nil {
		return fmt.Errorf("set up the agent's client and cache: %w", err)
	}
	// Pools are watched by their metadata only (cni/agent/pools says why).
	for _, obj := range []client.Object{&corev1.Pod{}, &corev1.Node{}, &corev1.Namespace{}, pools.Metadata(), &spv2.SpiderMultusConfig{}, &spv2.SpiderReservedIP{}} {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
	}

	m := metrics.New(ctrlmetrics.Registry)
	// Every pool's counters exist at 0 from the moment the agent sees the pool, so the first scrape
	// already has them and rate() sees the first event.
	poolInf, err := mgr.GetCache().GetInformer(ctx, pools.Metadata())
	if err != nil {
		return fmt.Errorf("watch SpiderIPPools: %w", err)
	}
	if _, err := poolInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if p, ok := obj.(client.Object); ok {
			m.ForPool(p.GetName())
		}
	}}); err != nil {
		return fmt.Errorf("watch SpiderIPPools: %w", err)
	}
	view := pools.New(mgr.GetCache(), mgr.GetAPIReader())
	poolMetrics := store.NewPoolCollector(view)
	poolMetrics.Node = o.NodeName
	ctrlmetrics.Registry.MustRegister(poolMetrics)
	resv := &reserved.Source{Reader: mgr.GetCache(), Log: log.WithName("reserved")}
	resvInf, err := mgr.GetCache().GetInformer(ctx, &spv2.SpiderReservedIP{})
	if err != nil {
		return fmt.Errorf("watch SpiderReservedIPs: %w", err)
	}
	if err := resv.Watch(resvInf); err != nil {
		return fmt.Errorf("watch SpiderReservedIPs: %w", err)
	}
	statusWriter, err := store.NewMetadataWriter(mgr.GetConfig())
	if err != nil {
		return err
	}
	st := store.New(ctx, mgr.GetClient(), view, m, log.WithName("store"), store.Options{Reserved: resv.Set, StatusWriter: statusWriter})

	// Listen before the caches sync: a plugin that calls meanwhile waits in the backlog instead of
	// failing with "no such file".
	l, err := service.Listen(o.Socket)
	if err != nil {
		return err
	}
	var synced atomic.Bool
	events := &service.EventWriter{Client: mgr.GetClient(), Host: o.NodeName}
	svc := &service.Service{Cache: mgr.GetCache(), Pools: view, Live: mgr.GetAPIReader(), Store: st, NodeName: o.NodeName, Metrics: m,
		Events: events, Log: log.WithName("ipam"), StatefulSets: o.StatefulSets, Writer: mgr.GetClient()}
	srv := &service.Server{
		Service: svc,
		Socket:  o.Socket,
		Ready:   synced.Load,
		Log:     log.WithName("ipam"),
	}
	cs, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return err
	}
	// primed says the view has read every pool once, so what it holds at the end knows every address
	// this node's pods hold (uninstallIfRemoved).
	var primed atomic.Bool
	runnables := []manager.Runnable{
		runnable(func(ctx context.Context) error { return srv.Serve(ctx, l) }),
		runnable(func(ctx context.Context) error {
			if !mgr.GetCache().WaitForCacheSync(ctx) {
				return ctx.Err()
			}
			synced.Store(true)
			log.Info("caches synced; serving")
			// The first request would read them all anyway; reading them now also covers a node whose
			// pods were set up by an earlier agent and that serves no request before it stops.
			if _, err := view.List(ctx); err != nil {
				log.Info("reading the SpiderIPPools failed; the next request reads them", "err", err.Error())
			} else {
				primed.Store(true)
			}
			<-ctx.Done()
			return nil
		}),
		&service.Journal{Dir: protocol.JournalDir(o.Socket), Service: svc, Ready: synced.Load, Log: log.WithName("journal")},
		&linkwatch.Watcher{
			Client: mgr.GetClient(), Reader: mgr.GetCache(), Informers: mgr.GetCache(), NodeName: o.NodeName,
			LabelPrefix: o.LabelPrefix, NICs: o.NICs, Metrics: m, Log: log.WithName("linkwatch"),
		},
		&gc.Runner{
			Collector: &gc.Collector{Live: mgr.GetAPIReader(), Writer: mgr.GetClient(), Store: st, Grace: &ipam.Grace{Period: o.GCGrace}, Metrics: m,
				NodeLostAfter: o.GCNodeLostAfter, StatefulSets: o.StatefulSets, Events: events, Log: log.WithName("gc")},
			Interval: o.GCInterval, Clientset: cs,
			LeaseNamespace: o.LeaseNamespace, LeaseName: LeaseName, Identity: o.NodeName + "_" + utilrand.String(8),
			LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod,
			Log: log.WithName("gc"),
		},
	}
	if o.SpiderpoolSocket != "" {
		runnables = append(runnables, &spidercompat.Server{
			Socket: o.SpiderpoolSocket, NodeName: o.NodeName, Releaser: svc, Coordinators: mgr.GetAPIReader(), Pods: mgr.GetCache(),
			Ready: synced.Load, Log: log.WithName("spidercompat"),
		})
	}
	if o.Preallocate {
		runnables = append(runnables, &prealloc.Runner{
			Informers: mgr.GetCache(), Reader: mgr.GetCache(), Allocator: svc, NodeName: o.NodeName, Log: log.WithName("prealloc"),
		})
	}
	for _, r := range runnables {
		if err := mgr.Add(r); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("caches-synced", func(*http.Request) error {
		if !synced.Load() {
			return errors.New("caches not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	log.Info("starting underlink-agent", "socket", o.Socket, "spiderpoolSocket", o.SpiderpoolSocket, "nics", o.NICs, "labelPrefix", o.LabelPrefix, "preallocate", o.Preallocate, "gcInterval", o.GCInterval.String(), "gcGrace", o.GCGrace.String(), "pid", os.Getpid())
	err = mgr.Start(ctx)
	_ = os.Remove(o.Socket)
	if o.CNIBinDir != "" && o.DaemonSet != "" {
		held := func() ([]*spv2.SpiderIPPool, bool) { return view.Held(), primed.Load() }
		uninstallIfRemoved(cs, mgr.GetAPIReader(), held, o, log)
	}
	return err
}

// uninstallIfRemoved removes the CNI plugins underlink installed on this node when the agent stops
// because underlink is being uninstalled: its DaemonSet is gone or being deleted, or its ServiceAccount
// or its RBAC is (helm deletes those right after the DaemonSet). Any other answer (the DaemonSet is
// there: a rolling update or a node drain; the apiserver cannot be reached) keeps them, since pods on
// the node still need them for their DEL.
//
// Uninstalled, the plugins still stay while any pool records an address given on this node
// (pluginUsers): those pods' sandboxes were set up by underlink's plugins, and Multus runs them again
// for their DEL (a user moving back to Spiderpool uninstalls underlink first). The pools are read
// from the apiserver when the agent still may, else taken as this agent last read or wrote them
// (held): helm has usually removed its RBAC by the time it stops, and only this agent writes records
// of this node.
func uninstallIfRemoved(cs kubernetes.Interface, live client.Reader, held func() ([]*spv2.SpiderIPPool, bool), o Options, log logr.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ns := o.LeaseNamespace
	ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, o.DaemonSet, metav1.GetOptions{})
	gone := apierrors.IsNotFound(err) || apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) || (err == nil && ds.DeletionTimestamp != nil)
	if !gone {
		log.Info("DaemonSet still there; the CNI plugins stay installed", "daemonset", ns+"/"+o.DaemonSet, "err", fmt.Sprint(err))
		return
	}
	var pools []*spv2.SpiderIPPool
	source := "apiserver"
	var list spv2.SpiderIPPoolList
	if lerr := live.List(ctx, &list); lerr == nil {
		for i := range list.Items {
			pools = append(pools, &list.Items[i])
		}
	} else {
		var known bool
		pools, known = held()
		source = "as this agent last read or wrote them (reading them now failed: " + lerr.Error() + ")"
		if !known {
			log.Info("underlink uninstalled, but the CNI plugins stay installed: which pods of this node still need them for their DEL is unknown (the agent never read the SpiderIPPools, and reading them now failed)",
				"daemonset", ns+"/"+o.DaemonSet, "err", lerr.Error(), "fix", removeLater(o))
			return
		}
	}
	pods, unreadable := pluginUsers(pools, o.NodeName)
	if len(pods) > 0 || len(unreadable) > 0 {
		log.Info("underlink uninstalled, but the CNI plugins stay installed: pods of this node hold addresses underlink gave them, and their DEL runs underlink's plugins",
			"daemonset", ns+"/"+o.DaemonSet, "pods", pods, "poolsWithUnreadableStatus", unreadable, "pools", source, "fix", removeLater(o))
		return
	}
	removed, left, rerr := cniinstall.Uninstall(o.CNIBinDir)
	log.Info("underlink uninstalled: removed the CNI plugins it installed", "daemonset", ns+"/"+o.DaemonSet, "removed", removed, "leftChanged", left, "err", fmt.Sprint(rerr))
}

// removeLater says how an operator removes the plugins once the pods that needed them are gone.
func removeLater(o Options) string {
	return fmt.Sprintf("once these pods are deleted, remove the plugins underlink installed with its image's underlink-cni-install, e.g. "+
		"`kubectl debug node/%s -it --profile=sysadmin --image=<underlink-agent image> -- /usr/local/bin/underlink-cni-install --uninstall --to=/host<the host's CNI bin directory, chart value agent.cniBinDir>` "+
		"(it removes only the files it installed and left unchanged)", o.NodeName)
}

// pluginUsers returns the pods ("namespace/name", sorted) to which pools record an address given on
// node, and the pools whose status cannot be read. Only underlink-agent records the node (an additive
// key; Spiderpool's records have none), and only for the pods it served on its own node: their
// sandboxes were set up by underlink-ipam, whose network runs underlink's plugins. A record outlives
// its sandbox only until the DEL or garbage collection frees it, or for a StatefulSet's ordinal:
// keeping the plugins a little longer than needed is the safe side, since a DEL that cannot find its
// plugin leaves the pod Terminating. Pods on the node are not the test: a pod deleted with --force
// still has its sandbox, whose DEL the kubelet still runs.
func pluginUsers(pools []*spv2.SpiderIPPool, node string) (pods, unreadable []string) {
	seen := map[string]bool{}
	for _, p := range pools {
		allocs, err := spv2.ParseAllocations(p.Status)
		if err != nil {
			unreadable = append(unreadable, p.Name)
			continue
		}
		for _, a := range allocs {
			if a.Node != node || a.IsConflict() || seen[a.NamespacedName] {
				continue
			}
			seen[a.NamespacedName] = true
			pods = append(pods, a.NamespacedName)
		}
	}
	sort.Strings(pods)
	sort.Strings(unreadable)
	return pods, unreadable
}

// runnable is a manager.Runnable that runs on every agent (no leader election).
type runnable func(context.Context) error

func (r runnable) Start(ctx context.Context) error { return r(ctx) }
func (r runnable) NeedLeaderElection() bool        { return false }
