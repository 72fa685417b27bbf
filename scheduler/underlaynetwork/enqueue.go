package underlaynetwork

import (
	"context"
	"maps"
	"reflect"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/util"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/scheduler/underlaynetwork/cache"
)

// EventsToRegister returns the events that can make a pod this plugin rejected schedulable, each with a
// queueing hint that requeues the pod only when the event concerns it:
//   - a node added, or its labels or annotations changed, so that it now has the pod's NICs up and an
//     eligible pool (a pool of the master NIC's subnet, for a network with matchMasterSubnet);
//   - a SpiderIPPool the pod may use added, or changed so that it has more free addresses (ips grew,
//     allocatedIPCount dropped) or admits more pods or nodes;
//   - a SpiderMultusConfig or NetworkAttachmentDefinition the pod names added or changed;
//   - a bound pod deleted that held or had claimed an address of a pool the pod may use;
//   - the pod's own network or pool annotations (or labels, for pool affinities) changed.
//
// Custom resources are registered only when the apiserver serves them: kube-scheduler waits for an
// informer of each before it schedules.
func (p *Plugin) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	events := []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel | fwk.UpdateNodeAnnotation}, QueueingHintFn: p.isSchedulableAfterNodeChange},
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete}, QueueingHintFn: p.isSchedulableAfterPodDeleted},
		{Event: fwk.ClusterEvent{Resource: fwk.TargetPod, ActionType: fwk.Update}, QueueingHintFn: p.isSchedulableAfterPodUpdated},
	}
	if p.served.pools {
		events = append(events, fwk.ClusterEventWithHint{
			Event: fwk.ClusterEvent{Resource: eventResource(poolsGVR), ActionType: fwk.Add | fwk.Update}, QueueingHintFn: p.isSchedulableAfterPoolChange})
	}
	if p.served.configs {
		events = append(events, fwk.ClusterEventWithHint{
			Event: fwk.ClusterEvent{Resource: eventResource(configsGVR), ActionType: fwk.Add | fwk.Update}, QueueingHintFn: p.networkHint(podnet.KindMultusConfig)})
	}
	if p.served.nads {
		events = append(events, fwk.ClusterEventWithHint{
			Event: fwk.ClusterEvent{Resource: eventResource(nadsGVR), ActionType: fwk.Add | fwk.Update}, QueueingHintFn: p.networkHint(podnet.KindNAD)})
	}
	return events, nil
}

// isSchedulableAfterNodeChange requeues the pod when the node now fits it (NICs up, an eligible pool for
// every address, capacity aside) and did not before.
func (p *Plugin) isSchedulableAfterNodeChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldNode, newNode, err := util.As[*v1.Node](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	n, _, st := p.resolve(pod)
	if st != nil {
		return fwk.QueueSkip, nil // the pod's own networks or pools are missing; no node fixes that
	}
	s := p.stateFor(n)
	if !s.mayFit(newNode) {
		return fwk.QueueSkip, nil
	}
	if oldNode != nil && s.mayFit(oldNode) {
		return fwk.QueueSkip, nil
	}
	logger.V(4).Info("Node now fits the pod's underlay", "pod", klog.KObj(pod), "node", newNode.Name)
	return fwk.Queue, nil
}

// mayFit reports whether node has the NICs up and an eligible candidate pool for every address,
// whatever the pools' capacity.
func (s *cycleState) mayFit(node *v1.Node) bool {
	if s.linkReason(node) != "" {
		return false
	}
	on := nodeOf(node)
	for i := range s.reqs {
		r := &s.reqs[i]
		if r.master != "" {
			on.Addrs = masterAddrs(node, r)
		}
		ok := false
		for _, c := range r.cands {
			if c.Pool.Serves(on, r.master) == nil {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// isSchedulableAfterPoolChange first records the event's pool in the cache (the plugin's own informer
// may not have it yet, and the requeued pod must see it), then requeues the pod when the pool is one it
// may use and the change can give it an address.
func (p *Plugin) isSchedulableAfterPoolChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	newPool, err := fromUnstructured[spv2.SpiderIPPool](newObj)
	if err != nil || newPool == nil {
		return fwk.Queue, err
	}
	p.store.SetPool(newPool)
	var old *cache.Pool
	if oldObj != nil {
		oldPool, err := fromUnstructured[spv2.SpiderIPPool](oldObj)
		if err != nil {
			return fwk.Queue, err
		}
		old = p.poolVersion(oldPool)
	}
	cur := p.poolVersion(newPool)
	_, r, _ := p.resolve(pod)
	if !r.concerns(cur) || !cache.MayHelp(old, cur) {
		return fwk.QueueSkip, nil
	}
	logger.V(4).Info("Pool change may give the pod an address", "pod", klog.KObj(pod), "pool", cur.Name, "free", cur.Capacity())
	return fwk.Queue, nil
}

// poolVersion returns the cache's Pool for exactly this version when it holds it, sparing a re-parse
// of status.allocatedIPs for every pending pod of an event.
func (p *Plugin) poolVersion(pool *spv2.SpiderIPPool) *cache.Pool {
	if cur, ok := p.store.Pool(pool.Name); ok && cur.ResourceVersion == pool.ResourceVersion {
		return cur
	}
	return cache.NewPool(pool)
}

// networkHint records the event's SpiderMultusConfig or NAD in the cache and requeues the pod when it
// names that network and the network appeared or changed what it asks of nodes and pools.
func (p *Plugin) networkHint(kind string) fwk.QueueingHintFn {
	return func(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
		ns, name, rv, n, err := networkOf(kind, newObj)
		if err != nil || name == "" {
			return fwk.Queue, err
		}
		p.store.SetNetwork(ns, name, rv, n)
		_, r, _ := p.resolve(pod)
		if !r.networks.Has(ns + "/" + name) {
			return fwk.QueueSkip, nil
		}
		if oldObj != nil {
			_, _, _, old, err := networkOf(kind, oldObj)
			if err == nil && reflect.DeepEqual(old, n) {
				return fwk.QueueSkip, nil
			}
		}
		logger.V(4).Info("Network the pod names appeared or changed", "pod", klog.KObj(pod), "kind", kind, "network", ns+"/"+name)
		return fwk.Queue, nil
	}
}

// isSchedulableAfterPodDeleted gives back the deleted pod's claims at once (the plugin's own pod
// handler may run later) and requeues the pod when the deleted one had claimed or held an address of
// a pool the pod may use.
func (p *Plugin) isSchedulableAfterPodDeleted(logger klog.Logger, pod *v1.Pod, oldObj, _ any) (fwk.QueueingHint, error) {
	deleted, _, err := util.As[*v1.Pod](oldObj, nil)
	if err != nil {
		return fwk.Queue, err
	}
	claims := p.store.Claims(deleted.UID)
	p.store.Release(deleted.UID)
	_, r, _ := p.resolve(pod)
	var pools []string
	for name := range claims {
		pools = append(pools, name)
	}
	if len(pools) == 0 && p.mayNeedUnderlay(deleted) {
		// Not tracked (bound before the claim was recorded): use the pools it refers to.
		_, dr, _ := p.resolve(deleted)
		pools = dr.pools.UnsortedList()
		for _, fam := range dr.defaultFamilies.UnsortedList() {
			for _, pl := range p.store.DefaultPools(fam) {
				pools = append(pools, pl.Name)
			}
		}
	}
	for _, name := range pools {
		pl, ok := p.store.Pool(name)
		if (ok && r.concerns(pl)) || (!ok && r.pools.Has(name)) {
			logger.V(4).Info("Deleted pod had an address of a pool the pod may use", "pod", klog.KObj(pod), "deleted", klog.KObj(deleted), "pool", name)
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

// isSchedulableAfterPodUpdated requeues the pod when its own network or pool annotations changed, or
// its labels (pools may admit pods by label).
func (p *Plugin) isSchedulableAfterPodUpdated(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldPod, newPod, err := util.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	for _, key := range []string{nadv1.DefaultNetworkAnnotation, nadv1.NetworksAnnotation, spv2.AnnoPodIPPool, spv2.AnnoPodIPPools} {
		if oldPod.Annotations[key] != newPod.Annotations[key] {
			return fwk.Queue, nil
		}
	}
	if !maps.Equal(oldPod.Labels, newPod.Labels) {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}
