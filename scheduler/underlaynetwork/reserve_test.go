package underlaynetwork

import (
	"context"
	"testing"

	fwk "k8s.io/kube-scheduler/framework"
)

// TestBurstNeverOvercommits places five pods on a pool with three free addresses, one cycle after the
// other as kube-scheduler does, before any agent allocates: three fit, two are rejected with the pool's
// reason; releasing one (deleted pod) lets the next fit.
func TestBurstNeverOvercommits(t *testing.T) {
	w := newWorld(t, nil)
	pool, _ := w.seed()
	pool.Spec.IPs = []string{"172.110.1.1-172.110.1.5"}
	pool.Status.AllocatedIPs = allocations(t, "old-1", "old-2")
	pool = w.pool(pool)
	w.node("n1", nic(up))
	w.node("n2", nic(up))

	var bound []*cycle
	var rejected []string
	for i := 0; i < 5; i++ {
		c := w.cycle(seedPod())
		var fit string
		for _, n := range []string{"n1", "n2"} {
			if c.filter(n).IsSuccess() {
				fit = n
				break
			}
		}
		if fit == "" {
			rejected = append(rejected, c.fitError())
			continue
		}
		if st := c.reserve(fit); !st.IsSuccess() {
			t.Fatalf("Reserve: %v", st)
		}
		bound = append(bound, c)
	}
	if len(bound) != 3 || len(rejected) != 2 {
		t.Fatalf("%d bound, %d rejected; want 3 and 2", len(bound), len(rejected))
	}
	want := "0/2 nodes are available: 2 node(s) had no free IP in pool cluster-a (5/5 taken: 2 allocated, 3 reserved for scheduled pods)."
	if rejected[0] != want {
		t.Errorf("message\n got %q\nwant %q", rejected[0], want)
	}

	// The agent allocates for the three; the counts move from reserved to allocated.
	pool.Status.AllocatedIPs = allocations(t, "old-1", "old-2", string(bound[0].pod.UID), string(bound[1].pod.UID), string(bound[2].pod.UID))
	pool = w.pool(pool)
	if got := w.cycle(seedPod()).fitError(); got != "0/2 nodes are available: 2 node(s) had no free IP in pool cluster-a (5/5 allocated)." {
		t.Errorf("after allocation: %q", got)
	}

	// One bound pod is deleted and its address released: one more fits.
	w.p.forgetPod(bound[0].pod)
	pool.Status.AllocatedIPs = allocations(t, "old-1", "old-2", string(bound[1].pod.UID), string(bound[2].pod.UID))
	w.pool(pool)
	if st := w.cycle(seedPod()).filter("n1"); !st.IsSuccess() {
		t.Errorf("after a pod and its address went: %v", st)
	}
}

func TestUnreserveGivesBack(t *testing.T) {
	w := newWorld(t, nil)
	pool, _ := w.seed()
	pool.Spec.IPs = []string{"172.110.1.1"}
	w.pool(pool)
	w.node("n1", nic(up))
	c := w.cycle(seedPod())
	if st := c.reserve("n1"); !st.IsSuccess() {
		t.Fatal(st)
	}
	if st := w.cycle(seedPod()).filter("n1"); st.IsSuccess() {
		t.Fatal("the reserved address was handed out twice")
	}
	w.p.Unreserve(context.Background(), c.state, c.pod, "n1")
	w.p.Unreserve(context.Background(), c.state, c.pod, "n1") // idempotent
	if st := w.cycle(seedPod()).filter("n1"); !st.IsSuccess() {
		t.Errorf("after Unreserve: %v", st)
	}
}

func TestReserveSkipsPlainPods(t *testing.T) {
	w := newWorld(t, nil)
	w.seed()
	w.node("n1", nil)
	c := w.cycle(underlayPod(nil))
	if st := c.reserve("n1"); !st.IsSuccess() {
		t.Errorf("plain pod: %v", st)
	}
	if w.p.store.Placed(c.pod.UID) {
		t.Error("plain pod got a claim")
	}
}

func TestReserveOnUnknownNodeIsAnError(t *testing.T) {
	w := newWorld(t, nil)
	w.seed()
	w.node("n1", nic(up))
	c := w.cycle(seedPod())
	if st := c.reserve("gone"); st.Code() != fwk.Error {
		t.Errorf("got %v, want Error", st)
	}
}
