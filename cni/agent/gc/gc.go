// Package gc frees the pool addresses of pods that are gone: allocations whose pod does not exist or is
// now another pod under the same name (another UID), after they stayed so for a grace period. One agent of
// the cluster collects at a time (a Lease), since every pass lists every pod.
package gc

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/metrics"
	"github.com/underlink/underlink/cni/agent/store"
	"github.com/underlink/underlink/cni/ipam"
)

// Collector runs garbage collection passes.
type Collector struct {
	// Live reads pools and pods from the apiserver.
	Live    client.Reader
	Store   *store.Store
	Grace   *ipam.Grace
	Metrics *metrics.Metrics
	Log     logr.Logger
}

// Once runs one pass and returns the number of addresses freed.
func (c *Collector) Once(ctx context.Context) (int, error) {
	// Pools first, then pods: an address is only given to an existing pod, so a pod missing from the
	// later list was deleted after the allocation was read.
	var pools spv2.SpiderIPPoolList
	if err := c.Live.List(ctx, &pools); err != nil {
		return 0, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	live, err := c.livePods(ctx)
	if err != nil {
		return 0, err
	}
	var orphans []ipam.Orphan
	for i := range pools.Items {
		p, err := ipam.Load(&pools.Items[i])
		if err != nil {
			c.Log.Info("skipping a pool garbage collection cannot read", "pool", pools.Items[i].Name, "err", err.Error())
			continue
		}
		orphans = append(orphans, ipam.Orphans(p.Name, p.Allocations(), live)...)
	}
	freed := 0
	for _, o := range c.Grace.Due(time.Now(), orphans) {
		r := c.Store.Do(ctx, o.Pool, store.Op{Kind: store.ReleaseIfHeld, IP: o.IP, Record: o.Allocation})
		if r.Err != nil {
			return freed, fmt.Errorf("free %s in SpiderIPPool %s: %w", o.IP, o.Pool, r.Err)
		}
		if len(r.Freed) > 0 {
			freed++
			c.Metrics.GCFreed.WithLabelValues(o.Pool).Inc()
			c.Log.Info("freed", "pool", o.Pool, "ip", o.IP.String(), "pod", o.Allocation.NamespacedName, "podUID", o.Allocation.PodUID, "reason", o.Reason)
		}
	}
	return freed, nil
}

func (c *Collector) livePods(ctx context.Context) (ipam.LivePods, error) {
	live := ipam.LivePods{}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	opts := []client.ListOption{client.Limit(1000)}
	for {
		if err := c.Live.List(ctx, list, opts...); err != nil {
			return nil, fmt.Errorf("list pods: %w", err)
		}
		for _, p := range list.Items {
			live[p.Namespace+"/"+p.Name] = string(p.UID)
		}
		if list.Continue == "" {
			return live, nil
		}
		opts = []client.ListOption{client.Limit(1000), client.Continue(list.Continue)}
	}
}

// Runner runs the Collector every Interval while this agent holds the GC Lease. It runs its own
// election, so losing the Lease (an apiserver restart) only pauses collection; the agent keeps serving.
type Runner struct {
	Collector *Collector
	Interval  time.Duration
	Clientset kubernetes.Interface
	// LeaseNamespace/LeaseName name the Lease; Identity is this agent's (node name plus a random suffix).
	LeaseNamespace, LeaseName, Identity       string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       logr.Logger
}

// NeedLeaderElection is false: Runner elects itself, independently of the manager.
func (r *Runner) NeedLeaderElection() bool { return false }

// Start campaigns for the Lease until ctx ends, collecting while it leads.
func (r *Runner) Start(ctx context.Context) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: r.LeaseNamespace, Name: r.LeaseName},
		Client:     r.Clientset.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: r.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   r.LeaseDuration,
			RenewDeadline:   r.RenewDeadline,
			RetryPeriod:     r.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            r.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: r.lead,
				OnStoppedLeading: func() { r.Log.Info("stopped collecting garbage", "identity", r.Identity) },
			},
		})
		if err != nil {
			return fmt.Errorf("garbage collection election: %w", err)
		}
		le.Run(ctx)
	}
	return nil
}

func (r *Runner) lead(ctx context.Context) {
	r.Log.Info("collecting garbage", "identity", r.Identity, "interval", r.Interval.String(), "grace", r.Collector.Grace.Period.String())
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		if n, err := r.Collector.Once(ctx); err != nil {
			r.Log.Info("garbage collection pass failed", "err", err.Error())
		} else if n > 0 || r.Collector.Grace.Pending() > 0 {
			r.Log.Info("garbage collection pass", "freed", n, "waitingOutGrace", r.Collector.Grace.Pending())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
