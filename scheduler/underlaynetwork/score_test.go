package underlaynetwork

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

func TestScorePrefersHeadroom(t *testing.T) {
	w := newWorld(t, nil)
	w.seed()
	// Two racks with their own pools: rack-a has 10 free addresses, rack-b 5, rack-c none of its own.
	for _, r := range []struct{ name, rack, ips string }{
		{"rack-a", "a", "172.110.2.1-172.110.2.10"},
		{"rack-b", "b", "172.110.3.1-172.110.3.5"},
	} {
		w.pool(&spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: r.name}, Spec: spv2.IPPoolSpec{
			Subnet: "172.110.0.0/16", IPs: []string{r.ips}, NodeAffinity: &metav1.LabelSelector{MatchLabels: map[string]string{"rack": r.rack}}}})
	}
	for _, n := range []struct{ name, rack string }{{"a1", "a"}, {"b1", "b"}} {
		l := nic(up)
		l["rack"] = n.rack
		w.node(n.name, l)
	}
	pod := seedPod()
	pod.Annotations[spv2.AnnoPodIPPool] = `{"ipv4":["rack-a","rack-b"]}`
	c := w.cycle(pod)
	ctx := context.Background()
	if st := w.p.PreScore(ctx, c.state, pod, nil); !st.IsSuccess() {
		t.Fatalf("PreScore: %v", st)
	}
	var scores fwk.NodeScoreList
	for _, name := range []string{"a1", "b1"} {
		s, st := w.p.Score(ctx, c.state, pod, nodeInfo(w.nodes[name]))
		if !st.IsSuccess() {
			t.Fatal(st)
		}
		scores = append(scores, fwk.NodeScore{Name: name, Score: s})
	}
	if scores[0].Score != 10 || scores[1].Score != 5 {
		t.Fatalf("raw scores %v, want headroom 10 and 5", scores)
	}
	if st := w.p.ScoreExtensions().NormalizeScore(ctx, c.state, pod, scores); !st.IsSuccess() {
		t.Fatal(st)
	}
	if scores[0].Score != fwk.MaxScore || scores[1].Score != 50 {
		t.Errorf("normalized %v, want 100 and 50", scores)
	}
}

func TestPreScoreSkips(t *testing.T) {
	w := newWorld(t, nil)
	w.seed()
	ctx := context.Background()
	plain := underlayPod(nil)
	if st := w.p.PreScore(ctx, w.cycle(plain).state, plain, nil); !st.IsSkip() {
		t.Errorf("plain pod: %v, want Skip", st)
	}
	pod := seedPod()
	if st := w.p.PreScore(ctx, w.cycle(pod).state, pod, nil); !st.IsSkip() {
		t.Errorf("seed pod on an unscoped pool: %v, want Skip (every node gets the same pool)", st)
	}
}

func TestNormalizeScore(t *testing.T) {
	w := newWorld(t, nil)
	for _, tc := range []struct {
		name     string
		in, want []int64
		err      bool
	}{
		{name: "all zero", in: []int64{0, 0}, want: []int64{0, 0}},
		{name: "linear", in: []int64{200, 50, 0}, want: []int64{100, 25, 0}},
		{name: "IPv6 sized headroom does not overflow", in: []int64{1 << 62, 1 << 61}, want: []int64{100, 100}},
		{name: "negative is an error", in: []int64{-1}, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l fwk.NodeScoreList
			for i, s := range tc.in {
				l = append(l, fwk.NodeScore{Name: string(rune('a' + i)), Score: s})
			}
			st := w.p.NormalizeScore(context.Background(), nil, nil, l)
			if tc.err {
				if st.IsSuccess() {
					t.Error("want an error")
				}
				return
			}
			for i := range l {
				if l[i].Score != tc.want[i] {
					t.Errorf("scores %v, want %v", l, tc.want)
					break
				}
			}
		})
	}
}
