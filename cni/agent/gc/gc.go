// Package gc frees the pool addresses of pods that are gone: allocations whose pod does not exist or is
// now another pod under the same name (another UID), or whose pod has finished (Succeeded or Failed),
// after they stayed so for a grace period. An address recorded on a node that is down (NotReady, or its
// kubelet's Lease not renewed) is kept until the node is back, or until the operator's node-lost
// timeout. It also frees the addresses set aside as in conflict that an operator cleared (annotation
// underlink.io/clear-ip-conflicts). One agent of the cluster collects at a time (a Lease), since every
// pass lists every pod.
package gc

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/endpoint"
	"github.com/underlink/underlink/cni/agent/metrics"
	"github.com/underlink/underlink/cni/agent/store"
	"github.com/underlink/underlink/cni/ipam"
)

// Collector runs garbage collection passes.
type Collector struct {
	// Live reads pools and pods from the apiserver.
	Live client.Reader
	// Writer removes the clear-conflicts annotation of a pool once its addresses are freed; nil leaves
	// it (the next pass frees nothing more).
	Writer  client.Writer
	Store   *store.Store
	Grace   *ipam.Grace
	Metrics *metrics.Metrics
	// NodeLostAfter frees the addresses of gone pods of a node that has been down that long (0: never,
	// only once the node is back); --gc-node-lost-timeout.
	NodeLostAfter time.Duration
	// StatefulSets keeps the addresses of StatefulSet pods whose ordinal their StatefulSet still wants
	// (recorded in SpiderEndpoints), and deletes the endpoints of ordinals no longer wanted once their pod
	// is gone; --statefulset-fixed-ips.
	StatefulSets bool
	// Events records the releases and the addresses kept for a down node on the pool (and a finished
	// pod's release on the pod); nil records none.
	Events EventRecorder
	Log    logr.Logger

	// kept remembers the addresses reported as kept for a down node, so each is reported once.
	kept map[string]bool
}

// EventRecorder records an Event on an object.
type EventRecorder interface {
	Event(ctx context.Context, ref corev1.ObjectReference, eventType, reason, message string)
}

// Event reasons of garbage collection.
const (
	ReasonReleased        = "AddressReleased"
	ReasonKeptForDownNode = "AddressKeptForDownNode"
)

// Once runs one pass and returns the number of addresses freed.
func (c *Collector) Once(ctx context.Context) (int, error) {
	// Pools first, then pods: an address is only given to an existing pod, so a pod missing from the
	// later list was deleted after the allocation was read.
	var pools spv2.SpiderIPPoolList
	if err := c.Live.List(ctx, &pools); err != nil {
		return 0, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	cl, err := c.cluster(ctx)
	if err != nil {
		return 0, err
	}
	eps, sets, err := c.statefulSets(ctx)
	if err != nil {
		return 0, err
	}
	cl.Kept = ipam.KeptAddresses(eps, sets)
	var orphans []ipam.Orphan
	kept := map[string]bool{}
	freed := 0
	byName := map[string]*spv2.SpiderIPPool{}
	for i := range pools.Items {
		byName[pools.Items[i].Name] = &pools.Items[i]
		p, err := ipam.Load(&pools.Items[i])
		if err != nil {
			c.Log.Info("skipping a pool garbage collection cannot read", "pool", pools.Items[i].Name, "err", err.Error())
			continue
		}
		o, held := ipam.Collectable(p.Name, p.Allocations(), cl)
		orphans = append(orphans, o...)
		for _, h := range held {
			k := h.Pool + "/" + h.IP.String() + "/" + h.Allocation.PodUID
			kept[k] = true
			if !c.kept[k] {
				c.Log.Info("address kept for a down node", "pool", h.Pool, "ip", h.IP.String(), "reason", h.Reason)
				c.event(ctx, poolRef(&pools.Items[i]), corev1.EventTypeWarning, ReasonKeptForDownNode, fmt.Sprintf(
					"%s is not given to another pod: %s, and its container may still answer with it on the underlay; it is freed once the node is back and releases it%s",
					h.IP, h.Reason, c.lostHint()))
			}
		}
		n, err := c.clearConflicts(ctx, &pools.Items[i], p)
		freed += n
		if err != nil {
			return freed, err
		}
	}
	c.kept = kept
	if c.Metrics.GCKept != nil {
		c.Metrics.GCKept.Set(float64(len(kept)))
	}
	for _, o := range c.Grace.Due(time.Now(), orphans) {
		r := c.Store.Do(ctx, o.Pool, store.Op{Kind: store.ReleaseIfHeld, IP: o.IP, Record: o.Allocation})
		if r.Err != nil {
			return freed, fmt.Errorf("free %s in SpiderIPPool %s: %w", o.IP, o.Pool, r.Err)
		}
		if len(r.Freed) > 0 {
			freed++
			c.Metrics.GCFreed.WithLabelValues(o.Pool).Inc()
			c.Log.Info("freed leaked address", "pool", o.Pool, "ip", o.IP.String(), "pod", o.Allocation.NamespacedName, "reason", o.Reason)
			msg := fmt.Sprintf("garbage collection freed %s (interface %s of pod %s, UID %s, node %s): %s", o.IP, o.Allocation.NIC,
				o.Allocation.NamespacedName, o.Allocation.PodUID, orDash(o.Allocation.Node), o.Reason)
			if p := byName[o.Pool]; p != nil {
				c.event(ctx, poolRef(p), corev1.EventTypeNormal, ReasonReleased, msg)
			}
			if ns, name, ok := strings.Cut(o.Allocation.NamespacedName, "/"); ok && cl.Pods[o.Allocation.NamespacedName] == o.Allocation.PodUID && o.Allocation.PodUID != "" {
				c.event(ctx, corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ns, Name: name, UID: types.UID(o.Allocation.PodUID)},
					corev1.EventTypeNormal, ReasonReleased, msg)
			}
		}
	}
	return freed, c.dropEndpoints(ctx, eps, sets, cl.Pods)
}

// statefulSets reads the SpiderEndpoints and the StatefulSets (by "namespace/name") the addresses kept
// for StatefulSet pods are judged by; nothing when StatefulSet fixed addresses are off.
func (c *Collector) statefulSets(ctx context.Context) ([]spv2.SpiderEndpoint, map[string]ipam.Ordinals, error) {
	if !c.StatefulSets {
		return nil, nil, nil
	}
	var eps spv2.SpiderEndpointList
	if err := c.Live.List(ctx, &eps); err != nil {
		return nil, nil, fmt.Errorf("list SpiderEndpoints: %w", err)
	}
	var list appsv1.StatefulSetList
	if err := c.Live.List(ctx, &list); err != nil {
		return nil, nil, fmt.Errorf("list StatefulSets: %w", err)
	}
	sets := map[string]ipam.Ordinals{}
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp == nil {
			sets[list.Items[i].Namespace+"/"+list.Items[i].Name] = endpoint.OrdinalsOf(&list.Items[i])
		}
	}
	return eps.Items, sets, nil
}

// dropEndpoints deletes the SpiderEndpoints of StatefulSet pods whose ordinal is no longer wanted and
// whose pod is gone: their addresses are no longer kept, and are freed as any gone pod's.
func (c *Collector) dropEndpoints(ctx context.Context, eps []spv2.SpiderEndpoint, sets map[string]ipam.Ordinals, pods ipam.LivePods) error {
	if c.Writer == nil {
		return nil
	}
	for i := range eps {
		ep := &eps[i]
		if ep.Status.OwnerControllerType != spv2.OwnerStatefulSet || ipam.EndpointKept(ep, sets) {
			continue
		}
		if _, exists := pods[ep.Namespace+"/"+ep.Name]; exists {
			continue
		}
		if err := endpoint.Delete(ctx, c.Writer, ep); err != nil {
			return fmt.Errorf("delete SpiderEndpoint %s/%s of an ordinal its StatefulSet no longer wants: %w", ep.Namespace, ep.Name, err)
		}
		c.Log.Info("deleted the endpoint of an ordinal its StatefulSet no longer wants", "endpoint", ep.Namespace+"/"+ep.Name)
	}
	return nil
}

func (c *Collector) lostHint() string {
	if c.NodeLostAfter > 0 {
		return fmt.Sprintf(", or after the node has been down for %s (--gc-node-lost-timeout)", c.NodeLostAfter)
	}
	return " (no node-lost timeout is set: agent.gcNodeLostTimeout)"
}

func (c *Collector) event(ctx context.Context, ref corev1.ObjectReference, eventType, reason, message string) {
	if c.Events != nil {
		c.Events.Event(ctx, ref, eventType, reason, message)
	}
}

func poolRef(p *spv2.SpiderIPPool) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "SpiderIPPool", APIVersion: spv2.GroupVersion.String(), Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cluster reads what the pass judges the pools' allocations by: the pods, the finished pods, the nodes
// and their Leases.
func (c *Collector) cluster(ctx context.Context) (ipam.Cluster, error) {
	live, err := c.livePods(ctx)
	if err != nil {
		return ipam.Cluster{}, err
	}
	cl := ipam.Cluster{Pods: live, Finished: map[string]ipam.FinishedPod{}, NodeLostAfter: c.NodeLostAfter, Now: time.Now()}
	for _, phase := range []corev1.PodPhase{corev1.PodSucceeded, corev1.PodFailed} {
		var pods corev1.PodList
		if err := c.Live.List(ctx, &pods, client.MatchingFields{"status.phase": string(phase)}); err != nil {
			return ipam.Cluster{}, fmt.Errorf("list %s pods: %w", phase, err)
		}
		for _, p := range pods.Items {
			grace := time.Duration(0)
			if p.Spec.TerminationGracePeriodSeconds != nil {
				grace = time.Duration(*p.Spec.TerminationGracePeriodSeconds) * time.Second
			}
			cl.Finished[p.Namespace+"/"+p.Name] = ipam.FinishedPod{UID: string(p.UID), Phase: string(phase), Grace: grace}
		}
	}
	var nodes corev1.NodeList
	if err := c.Live.List(ctx, &nodes); err != nil {
		return ipam.Cluster{}, fmt.Errorf("list nodes: %w", err)
	}
	var leases coordinationv1.LeaseList
	if err := c.Live.List(ctx, &leases, client.InNamespace(corev1.NamespaceNodeLease)); err != nil {
		return ipam.Cluster{}, fmt.Errorf("list the nodes' Leases in %s: %w", corev1.NamespaceNodeLease, err)
	}
	byNode := map[string]*coordinationv1.Lease{}
	for i := range leases.Items {
		byNode[leases.Items[i].Name] = &leases.Items[i]
	}
	cl.Nodes = map[string]ipam.NodeState{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		cl.Nodes[n.Name] = NodeStateOf(n, byNode[n.Name], cl.Now)
	}
	return cl, nil
}

// NodeStateOf says whether node is up at now: Ready, and its kubelet's Lease renewed within the Lease's
// duration. A kubelet that stopped is seen by its Lease within that duration (40 s by default), before
// the node controller marks the node NotReady (node-monitor-grace-period, 50 s).
func NodeStateOf(node *corev1.Node, lease *coordinationv1.Lease, now time.Time) ipam.NodeState {
	var ready *corev1.NodeCondition
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == corev1.NodeReady {
			ready = &node.Status.Conditions[i]
		}
	}
	if ready == nil || ready.Status != corev1.ConditionTrue {
		st := ipam.NodeState{Why: "NotReady"}
		if ready != nil {
			st.Since = ready.LastTransitionTime.Time
			if ready.Status == corev1.ConditionUnknown {
				st.Why = "not reporting (Ready Unknown)"
			}
		}
		if lease != nil && lease.Spec.RenewTime != nil && lease.Spec.RenewTime.After(st.Since) {
			st.Since = lease.Spec.RenewTime.Time
		}
		return st
	}
	if lease != nil && lease.Spec.RenewTime != nil {
		d := 40 * time.Second
		if lease.Spec.LeaseDurationSeconds != nil {
			d = time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
		}
		if renewed := lease.Spec.RenewTime.Time; now.Sub(renewed) > d {
			return ipam.NodeState{Since: renewed, Renewed: renewed, Why: "its kubelet's Lease not renewed since " + renewed.UTC().Format(time.RFC3339)}
		}
		return ipam.NodeState{Up: true, Renewed: lease.Spec.RenewTime.Time}
	}
	return ipam.NodeState{Up: true}
}

// clearConflicts frees the addresses set aside as conflicts that an operator listed in the pool's
// AnnoClearIPConflicts annotation ("all", or addresses separated by commas), then removes the
// annotation.
func (c *Collector) clearConflicts(ctx context.Context, obj *spv2.SpiderIPPool, p *ipam.Pool) (int, error) {
	v, ok := obj.Annotations[spv2.AnnoClearIPConflicts]
	if !ok {
		return 0, nil
	}
	want := map[string]bool{}
	for _, f := range strings.Split(v, ",") {
		want[strings.TrimSpace(f)] = true
	}
	freed := 0
	for ip := range p.Conflicts() {
		if !want["all"] && !want[ip.String()] {
			continue
		}
		r := c.Store.Do(ctx, p.Name, store.Op{Kind: store.ClearConflict, IP: ip})
		if r.Err != nil {
			return freed, fmt.Errorf("clear the conflict of %s in SpiderIPPool %s: %w", ip, p.Name, r.Err)
		}
		if len(r.Freed) > 0 {
			freed++
			c.Log.Info("conflict cleared by the operator", "pool", p.Name, "ip", ip.String())
		}
	}
	if c.Writer == nil {
		return freed, nil
	}
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, spv2.AnnoClearIPConflicts))
	target := &spv2.SpiderIPPool{}
	target.Name = obj.Name
	if err := c.Writer.Patch(ctx, target, client.RawPatch(types.MergePatchType, patch)); err != nil && !apierrors.IsNotFound(err) {
		return freed, fmt.Errorf("remove %s from SpiderIPPool %s: %w", spv2.AnnoClearIPConflicts, obj.Name, err)
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
