package underlaynetwork

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/underlink/underlink/scheduler/underlaynetwork/cache"
)

// permitWait bounds a pod's wait for a start slot; past it the pod goes back to the scheduling queue.
// kube-scheduler caps a Permit wait at 15 minutes.
const permitWait = 10 * time.Minute

// expireEvery is how often pods that have been starting for longer than StartingTimeout give up their
// slots.
const expireEvery = 5 * time.Second

// findWaiting bounds the search for a promoted pod among the waiting pods: Permit admits a pod to the
// queue a moment before kube-scheduler records it as waiting.
const findWaiting = time.Second

// Permit paces the starts of underlay pods (args.MaxStartingPodsPerNode): the pod is bound now when
// fewer than that many of this profile's pods are starting on the node, and otherwise waits, in order,
// until one of them starts.
func (p *Plugin) Permit(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) (*fwk.Status, time.Duration) {
	if p.starts == nil {
		return nil, 0
	}
	if _, err := readState(state); errors.Is(err, fwk.ErrNotFound) {
		return nil, 0 // the pod needs no underlay
	} else if err != nil {
		return fwk.AsStatus(err), 0
	}
	ok, ahead := p.starts.Admit(nodeName, pod.UID)
	if ok {
		return nil, 0
	}
	starting, _ := p.starts.Counts(nodeName)
	p.logger.V(2).Info("Pod waits for a start slot on its node", "pod", klogKObj(pod), "node", nodeName, "starting", starting, "ahead", ahead)
	return fwk.NewStatus(fwk.Wait, fmt.Sprintf("%d underlay pods are starting on node %s (maxStartingPodsPerNode), %d more wait before this one", starting, nodeName, ahead)), permitWait
}

// pacing sets up the pacer of this profile: pod updates free slots, a ticker frees those of pods that
// never start, and the pods that take a freed slot are allowed.
func (p *Plugin) pacing(ctx context.Context, h fwk.Handle) error {
	limit, timeout := int(*p.args.MaxStartingPodsPerNode), p.args.StartingTimeout.Duration
	if limit == 0 {
		return nil
	}
	p.starts = cache.NewStarts(limit, timeout, time.Now)
	p.waitingPod = func(uid types.UID) fwk.WaitingPod { return h.GetWaitingPod(uid) }
	profile := h.ProfileName()
	if _, err := h.SharedInformerFactory().Core().V1().Pods().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.observeStart(obj, profile) },
		UpdateFunc: func(_, obj any) { p.observeStart(obj, profile) },
		DeleteFunc: func(obj any) {
			if pod, err := fromUnstructured[v1.Pod](obj); err == nil && pod != nil {
				p.allow(p.starts.Forget(pod.UID))
			}
		},
	}); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(expireEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.allow(p.starts.Expire())
			}
		}
	}()
	return nil
}

// observeStart frees the slot of a pod that started, and counts a bound, not yet started pod of this
// profile with pool claims that the pacer does not hold (bound before the scheduler restarted), from
// its bind.
func (p *Plugin) observeStart(obj any, profile string) {
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return
	}
	if podStarted(pod) {
		p.allow(p.starts.Forget(pod.UID))
		return
	}
	if pod.Spec.SchedulerName == profile && p.store.Placed(pod.UID) {
		p.starts.Track(pod.Spec.NodeName, pod.UID, boundAt(pod))
	}
}

// boundAt is when the pod was bound: its PodScheduled condition's transition to True (the scheduler
// writes it with the bind), or now when it has none.
func boundAt(pod *v1.Pod) time.Time {
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return time.Now()
}

// podStarted says whether a bound pod is past the start the pacer paces: its sandbox is ready (kubelet
// set PodReadyToStartContainers), it left Pending, or it is being deleted.
func podStarted(pod *v1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != v1.PodPending && pod.Status.Phase != "" {
		return true
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodReadyToStartContainers && c.Status == v1.ConditionTrue {
			return true
		}
	}
	return false
}

// allow lets the promoted pods go on to their bind. A pod is looked for a moment when it is not found
// waiting (Permit queued it, and kube-scheduler is about to record it as waiting); one that is still not
// found has left (its wait ended), and its slot goes to the next.
func (p *Plugin) allow(uids []types.UID) {
	for _, uid := range uids {
		if wp := p.waitingPod(uid); wp != nil {
			wp.Allow(Name)
			continue
		}
		go func() {
			deadline := time.Now().Add(findWaiting)
			for time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				if wp := p.waitingPod(uid); wp != nil {
					wp.Allow(Name)
					return
				}
			}
			p.allow(p.starts.Forget(uid))
		}()
	}
}
