package underlaynetwork

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-logr/logr"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

// benchWorld is the benchmark's cluster: the seed's network and 1000 nodes with ens224 up (down on
// every tenth node when someDown).
func benchWorld(b *testing.B, someDown bool) (*world, []fwk.NodeInfo) {
	t := &testing.T{}
	w := newWorld(t, nil)
	w.p.logger = logr.Discard() // as in kube-scheduler below -v=4
	w.seed()
	var nodes []fwk.NodeInfo
	for i := 0; i < 1000; i++ {
		state := up
		if someDown && i%10 == 9 {
			state = down
		}
		nodes = append(nodes, nodeInfo(w.node(fmt.Sprintf("node-%04d", i), nic(state))))
	}
	if t.Failed() {
		b.Fatal("setting up the world failed")
	}
	return w, nodes
}

// BenchmarkPreFilterUnderlayPod is the plugin's whole cost for an underlay pod when every node fits:
// resolving its needs and checking 1000 nodes (Filter is then skipped).
func BenchmarkPreFilterUnderlayPod(b *testing.B) {
	w, nodes := benchWorld(b, false)
	pod := seedPod()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, st := w.p.PreFilter(ctx, framework.NewCycleState(), pod, nodes); !st.IsSkip() {
			b.Fatal(st)
		}
	}
}

// BenchmarkFilterUnderlayPod is one Filter call, made per node when some node does not fit.
func BenchmarkFilterUnderlayPod(b *testing.B) {
	w, nodes := benchWorld(b, true)
	pod := seedPod()
	ctx := context.Background()
	state := framework.NewCycleState()
	if _, st := w.p.PreFilter(ctx, state, pod, nodes); !st.IsSuccess() {
		b.Fatal(st)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.p.Filter(ctx, state, pod, nodes[i%len(nodes)])
	}
}

// BenchmarkPreFilterPlainPod is the plugin's cost for a pod of the primary network.
func BenchmarkPreFilterPlainPod(b *testing.B) {
	w, nodes := benchWorld(b, false)
	pod := underlayPod(nil)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, st := w.p.PreFilter(ctx, framework.NewCycleState(), pod, nodes); !st.IsSkip() {
			b.Fatal(st)
		}
	}
}

// BenchmarkReserveUnreserve is the cost of recording and releasing a pod's claim.
func BenchmarkReserveUnreserve(b *testing.B) {
	w, nodes := benchWorld(b, false)
	pod := seedPod()
	ctx := context.Background()
	state := framework.NewCycleState()
	w.p.PreFilter(ctx, state, pod, nodes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if st := w.p.Reserve(ctx, state, pod, "node-0001"); !st.IsSuccess() {
			b.Fatal(st)
		}
		w.p.Unreserve(ctx, state, pod, "node-0001")
	}
}
