package underlaynetwork

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"

	configv1 "github.com/underlink/underlink/scheduler/apis/config/v1"
	"github.com/underlink/underlink/scheduler/underlaynetwork/cache"
)

// waiting stands in for kube-scheduler's waiting pods: the pods Permit told to wait, and which of them
// the plugin allowed.
type waiting struct {
	mu      sync.Mutex
	pods    map[types.UID]*waitingPod
	allowed []string
}

type waitingPod struct {
	w   *waiting
	pod *v1.Pod
}

func (wp *waitingPod) GetPod() *v1.Pod             { return wp.pod }
func (wp *waitingPod) GetPendingPlugins() []string { return []string{Name} }
func (wp *waitingPod) Reject(string, string) bool  { return false }
func (wp *waitingPod) Preempt(string, string) bool { return false }
func (wp *waitingPod) Allow(plugin string) {
	wp.w.mu.Lock()
	defer wp.w.mu.Unlock()
	if plugin == Name {
		wp.w.allowed = append(wp.w.allowed, wp.pod.Name)
		delete(wp.w.pods, wp.pod.UID)
	}
}

func (w *waiting) get(uid types.UID) fwk.WaitingPod {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wp, ok := w.pods[uid]; ok {
		return wp
	}
	return nil
}

func (w *waiting) add(pod *v1.Pod) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pods[pod.UID] = &waitingPod{w: w, pod: pod}
}

func (w *waiting) took() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.allowed
	w.allowed = nil
	return out
}

// pacedWorld is a world whose plugin paces starts at limit per node, with kube-scheduler's waiting pods
// stood in for.
func pacedWorld(t *testing.T, limit int32) (*world, *waiting) {
	w := newWorld(t, &configv1.UnderlayNetworkArgs{MaxStartingPodsPerNode: ptr(limit)})
	wt := &waiting{pods: map[types.UID]*waitingPod{}}
	w.p.starts = cache.NewStarts(int(limit), time.Minute, time.Now)
	w.p.waitingPod = wt.get
	w.seed()
	w.node("n1", nic(up))
	return w, wt
}

// permit runs a pod's cycle up to Permit on node n1, and records a pod told to wait as kube-scheduler
// does.
func (w *world) permit(t *testing.T, wt *waiting, pod *v1.Pod) *fwk.Status {
	t.Helper()
	c := w.cycle(pod)
	if st := c.reserve("n1"); !st.IsSuccess() {
		t.Fatalf("Reserve %s: %v", pod.Name, st)
	}
	st, timeout := w.p.Permit(context.Background(), c.state, pod, "n1")
	if st.Code() == fwk.Wait {
		if timeout != permitWait {
			t.Errorf("Permit %s waits %s, want %s", pod.Name, timeout, permitWait)
		}
		wt.add(pod)
	}
	return st
}

func bound(pod *v1.Pod, node string, conds ...v1.PodCondition) *v1.Pod {
	p := pod.DeepCopy()
	p.Spec.NodeName, p.Spec.SchedulerName = node, "underlink-scheduler"
	p.Status.Phase, p.Status.Conditions = v1.PodPending, conds
	return p
}

var sandboxReady = v1.PodCondition{Type: v1.PodReadyToStartContainers, Status: v1.ConditionTrue}

func TestPermitPacesPodStartsPerNode(t *testing.T) {
	w, wt := pacedWorld(t, 2)
	pods := []*v1.Pod{seedPod(), seedPod(), seedPod(), seedPod()}
	for i, pod := range pods {
		st := w.permit(t, wt, pod)
		if wantWait := i >= 2; (st.Code() == fwk.Wait) != wantWait {
			t.Fatalf("Permit %s: %v, want wait %v", pod.Name, st, wantWait)
		}
		if i == 3 && !strings.Contains(st.Message(), "2 underlay pods are starting on node n1 (maxStartingPodsPerNode), 1 more wait before this one") {
			t.Errorf("Permit's reason: %q", st.Message())
		}
	}

	// kubelet's updates of a bound pod whose sandbox is not ready yet free nothing.
	w.p.observeStart(bound(pods[0], "n1"), "underlink-scheduler")
	w.p.observeStart(bound(pods[0], "n1", v1.PodCondition{Type: v1.PodReadyToStartContainers, Status: v1.ConditionFalse}), "underlink-scheduler")
	if got := wt.took(); len(got) != 0 {
		t.Fatalf("allowed %v before any pod started", got)
	}
	// The first pod's sandbox is ready: the first waiting pod is allowed, the second still waits.
	w.p.observeStart(bound(pods[0], "n1", sandboxReady), "underlink-scheduler")
	if got := wt.took(); len(got) != 1 || got[0] != pods[2].Name {
		t.Fatalf("allowed %v, want [%s]", got, pods[2].Name)
	}
	// A pod deleted before it started frees its slot too.
	gone := bound(pods[1], "n1")
	gone.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	w.p.observeStart(gone, "underlink-scheduler")
	if got := wt.took(); len(got) != 1 || got[0] != pods[3].Name {
		t.Fatalf("allowed %v, want [%s]", got, pods[3].Name)
	}
}

func TestUnreserveGivesTheSlotToTheNextPod(t *testing.T) {
	w, wt := pacedWorld(t, 1)
	a, b, c := seedPod(), seedPod(), seedPod()
	w.permit(t, wt, a)
	if st := w.permit(t, wt, b); st.Code() != fwk.Wait {
		t.Fatalf("Permit %s: %v, want Wait", b.Name, st)
	}
	w.permit(t, wt, c)
	// b's wait ended (timeout or rejection): it leaves the queue, and a still holds the slot.
	w.p.Unreserve(context.Background(), nil, b, "n1")
	if got := wt.took(); len(got) != 0 {
		t.Fatalf("allowed %v while %s holds the only slot", got, a.Name)
	}
	// a's bind failed: the slot goes to c.
	w.p.Unreserve(context.Background(), nil, a, "n1")
	if got := wt.took(); len(got) != 1 || got[0] != c.Name {
		t.Fatalf("allowed %v, want [%s]", got, c.Name)
	}
}

// A pod promoted between Permit's answer and kube-scheduler recording it as waiting is allowed once it
// is recorded.
func TestPermitAllowsAPodRecordedWaitingLate(t *testing.T) {
	w, wt := pacedWorld(t, 1)
	a, b := seedPod(), seedPod()
	w.permit(t, wt, a)
	c := w.cycle(b)
	if st := c.reserve("n1"); !st.IsSuccess() {
		t.Fatal(st)
	}
	if st, _ := w.p.Permit(context.Background(), c.state, b, "n1"); st.Code() != fwk.Wait {
		t.Fatalf("Permit %s: %v, want Wait", b.Name, st)
	}
	w.p.observeStart(bound(a, "n1", sandboxReady), "underlink-scheduler")
	time.Sleep(50 * time.Millisecond)
	wt.add(b)
	deadline := time.Now().Add(findWaiting)
	for time.Now().Before(deadline) {
		if got := wt.took(); len(got) == 1 && got[0] == b.Name {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s, recorded as waiting 50 ms after it took the slot, was never allowed", b.Name)
}

// Pods that need no underlay are never paced, and pacing off (0) paces nothing.
func TestPermitLeavesOtherPodsAlone(t *testing.T) {
	w, wt := pacedWorld(t, 1)
	w.permit(t, wt, seedPod())
	other := underlayPod(nil)
	c := w.cycle(other)
	if st, _ := w.p.Permit(context.Background(), c.state, other, "n1"); !st.IsSuccess() {
		t.Errorf("Permit of a pod without an underlay: %v", st)
	}

	off := newWorld(t, &configv1.UnderlayNetworkArgs{MaxStartingPodsPerNode: ptr[int32](0)})
	if err := off.p.pacing(context.Background(), nil); err != nil || off.p.starts != nil {
		t.Fatalf("pacing with maxStartingPodsPerNode 0: %v, pacer %v", err, off.p.starts)
	}
	off.seed()
	off.node("n1", nic(up))
	for range 3 {
		pod := seedPod()
		c := off.cycle(pod)
		if st, _ := off.p.Permit(context.Background(), c.state, pod, "n1"); !st.IsSuccess() {
			t.Errorf("Permit with pacing off: %v", st)
		}
	}
}

func TestPacedScore(t *testing.T) {
	for _, tc := range []struct {
		headroom      int64
		limit, queued int
		want          int64
	}{
		{1, 8, 0, 1024},
		{1, 8, 7, 1024}, // a slot is free: full score
		{1, 8, 8, 910},  // one more pod would start first: 8/9
		{1, 8, 15, 512}, // eight ahead: half
		{100, 2, 3, 51200},
		{1 << 62, 8, 0, 1 << 40}, // an IPv6 pool's headroom is clamped
		{1 << 62, 10000, 20000, (1 << 40) * 10000 / 20001},
	} {
		if got := pacedScore(tc.headroom, tc.limit, tc.queued); got != tc.want {
			t.Errorf("pacedScore(%d, %d, %d) = %d, want %d", tc.headroom, tc.limit, tc.queued, got, tc.want)
		}
	}
}

// With pacing on, a burst is spread by start slots: a node whose slots are taken scores below one with a
// free slot, even when every node gives the same pools (which PreScore would skip without pacing).
func TestScoreSpreadsABurstOverStartSlots(t *testing.T) {
	w, wt := pacedWorld(t, 2)
	w.node("n2", nic(up))
	w.permit(t, wt, seedPod())
	w.permit(t, wt, seedPod())
	w.permit(t, wt, seedPod()) // waits on n1
	pod := seedPod()
	c := w.cycle(pod)
	if st := w.p.PreScore(context.Background(), c.state, pod, nil); !st.IsSuccess() {
		t.Fatalf("PreScore with pacing on: %v, want Success", st)
	}
	scores := fwk.NodeScoreList{}
	for _, n := range []string{"n1", "n2"} {
		s, st := w.p.Score(context.Background(), c.state, pod, nodeInfo(w.nodes[n]))
		if !st.IsSuccess() {
			t.Fatal(st)
		}
		scores = append(scores, fwk.NodeScore{Name: n, Score: s})
	}
	if st := w.p.NormalizeScore(context.Background(), c.state, pod, scores); !st.IsSuccess() {
		t.Fatal(st)
	}
	// n1: two starting, one waiting: 2/4 of n2's.
	if scores[0].Score != 50 || scores[1].Score != 100 {
		t.Errorf("scores %v, want n1 50, n2 100", scores)
	}
}

// After a restart the pacer holds nothing: bound pods with pool claims that have not started take slots
// from their bind on, and those bound longer ago than startingTimeout take none.
func TestPacerCountsPodsBoundBeforeARestart(t *testing.T) {
	w, _ := pacedWorld(t, 2)
	scheduled := func(pod *v1.Pod, ago time.Duration) *v1.Pod {
		return bound(pod, "n1", v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Add(-ago))})
	}
	recent, old, other := seedPod(), seedPod(), seedPod()
	for _, pod := range []*v1.Pod{recent, old, other} {
		if st := w.cycle(pod).reserve("n1"); !st.IsSuccess() { // its pool claims, as trackPod finds them
			t.Fatal(st)
		}
	}
	w.p.observeStart(scheduled(recent, 10*time.Second), "underlink-scheduler")
	w.p.observeStart(scheduled(old, 2*time.Minute), "underlink-scheduler")
	w.p.observeStart(scheduled(other, 0), "another-profile")
	if starting, waiting := w.p.starts.Counts("n1"); starting != 1 || waiting != 0 {
		t.Errorf("%d starting, %d waiting; want only the pod bound 10 s ago", starting, waiting)
	}
}
