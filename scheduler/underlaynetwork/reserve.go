package underlaynetwork

import (
	"context"
	"errors"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// Reserve claims the pod's addresses on the pools the node gives it, so the next cycle sees them taken
// even though no agent has allocated them yet: a burst of pods never overcommits a pool. The claim
// stays until the pod is deleted or finishes (the pool's status then counts its address, or it is
// released), or until Unreserve.
func (p *Plugin) Reserve(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	st, err := readState(state)
	if errors.Is(err, fwk.ErrNotFound) {
		return nil // the pod needs no underlay
	}
	if err != nil {
		return fwk.AsStatus(err)
	}
	if len(st.reqs) == 0 {
		return nil
	}
	node, err := p.node(nodeName)
	if err != nil {
		return fwk.AsStatus(err)
	}
	claims, reason := st.claimsOn(node)
	if reason != "" {
		return fwk.NewStatus(fwk.Unschedulable, reason)
	}
	p.store.Place(pod.UID, pod.Namespace+"/"+pod.Name, claims)
	p.logger.V(4).Info("Reserved pool addresses", "pod", klogKObj(pod), "node", nodeName, "claims", claims)
	return nil
}

// Unreserve gives back the claims Reserve made, and the pod's start slot or place in the queue (Permit),
// when the pod is not bound after all. It is idempotent.
func (p *Plugin) Unreserve(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) {
	if p.starts != nil {
		p.allow(p.starts.Forget(pod.UID))
	}
	if p.store.Release(pod.UID) {
		p.logger.V(4).Info("Released pool addresses of an unreserved pod", "pod", klogKObj(pod), "node", nodeName)
	}
}
