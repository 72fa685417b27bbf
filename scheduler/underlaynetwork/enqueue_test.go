package underlaynetwork

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

func TestEventsToRegister(t *testing.T) {
	w := newWorld(t, nil)
	events, err := w.p.EventsToRegister(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[fwk.EventResource]fwk.ActionType{}
	for _, e := range events {
		if e.QueueingHintFn == nil {
			t.Errorf("%s has no queueing hint", e.Event.Label())
		}
		got[e.Event.Resource] = e.Event.ActionType
	}
	want := map[fwk.EventResource]fwk.ActionType{
		fwk.Node:        fwk.Add | fwk.UpdateNodeLabel | fwk.UpdateNodeAnnotation,
		fwk.AssignedPod: fwk.Delete,
		fwk.TargetPod:   fwk.Update,
		"spiderippools.v2beta1.spiderpool.spidernet.io":       fwk.Add | fwk.Update,
		"spidermultusconfigs.v2beta1.spiderpool.spidernet.io": fwk.Add | fwk.Update,
		"network-attachment-definitions.v1.k8s.cni.cncf.io":   fwk.Add | fwk.Update,
	}
	if len(got) != len(want) {
		t.Errorf("events %v, want %v", got, want)
	}
	for r, a := range want {
		if got[r] != a {
			t.Errorf("%s: %v, want %v", r, got[r], a)
		}
	}
	// Resources the apiserver does not serve are left out: the scheduler would wait for them forever.
	w.p.served = served{pools: true}
	events, _ = w.p.EventsToRegister(context.Background())
	if len(events) != 4 {
		t.Errorf("with only SpiderIPPool served: %d events, want 4", len(events))
	}
}

func TestNodeHint(t *testing.T) {
	w := newWorld(t, nil)
	w.seed()
	logger, _ := ktesting.NewTestContext(t)
	node := func(labels map[string]string) *v1.Node {
		return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels}}
	}
	withOther := func(state string) map[string]string { l := nic(state); l["zone"] = "x"; return l }
	for _, tc := range []struct {
		name     string
		pod      *v1.Pod
		old, new *v1.Node
		want     fwk.QueueingHint
	}{
		{name: "link turns up", pod: seedPod(), old: node(nic(down)), new: node(nic(up)), want: fwk.Queue},
		{name: "label appears up", pod: seedPod(), old: node(nil), new: node(nic(up)), want: fwk.Queue},
		{name: "node added with the link up", pod: seedPod(), new: node(nic(up)), want: fwk.Queue},
		{name: "node added with the link down", pod: seedPod(), new: node(nic(down)), want: fwk.QueueSkip},
		{name: "link goes down", pod: seedPod(), old: node(nic(up)), new: node(nic(down)), want: fwk.QueueSkip},
		{name: "an unrelated label on a node that already fit", pod: seedPod(), old: node(nic(up)), new: node(withOther(up)), want: fwk.QueueSkip},
		{name: "another NIC turns up", pod: seedPod(), old: node(nic(down)), new: node(map[string]string{labelOf("ens224"): down, labelOf("ens256"): up}), want: fwk.QueueSkip},
		{name: "pod's config is missing: no node helps", pod: underlayPod(map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/nope"}), old: node(nic(down)), new: node(nic(up)), want: fwk.QueueSkip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var old any
			if tc.old != nil {
				old = tc.old
			}
			got, err := w.p.isSchedulableAfterNodeChange(logger, tc.pod, old, tc.new)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNodeHintForPoolAffinity(t *testing.T) {
	w := newWorld(t, nil)
	pool, _ := w.seed()
	pool.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"underlay-segment": "a"}}
	w.pool(pool)
	logger, _ := ktesting.NewTestContext(t)
	old := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: nic(up)}}
	cur := old.DeepCopy()
	cur.Labels["underlay-segment"] = "a"
	if got, _ := w.p.isSchedulableAfterNodeChange(logger, seedPod(), old, cur); got != fwk.Queue {
		t.Errorf("node joined the pool's segment: %v, want Queue", got)
	}
}

func TestPoolHint(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	for _, tc := range []struct {
		name   string
		pod    func() *v1.Pod
		change func(w *world, seed *spv2.SpiderIPPool) (old, new *spv2.SpiderIPPool)
		want   fwk.QueueingHint
	}{
		{
			name: "an address released in the pod's pool",
			pod:  seedPod,
			change: func(w *world, p *spv2.SpiderIPPool) (*spv2.SpiderIPPool, *spv2.SpiderIPPool) {
				n := p.DeepCopy()
				n.ResourceVersion = w.rv()
				n.Status.AllocatedIPs = allocations(t, "x")
				n.Status.AllocatedIPCount = ptr(int64(1))
				return p, n
			},
			want: fwk.Queue,
		},
		{
			name: "an address allocated",
			pod:  seedPod,
			change: func(w *world, p *spv2.SpiderIPPool) (*spv2.SpiderIPPool, *spv2.SpiderIPPool) {
				n := p.DeepCopy()
				n.ResourceVersion = w.rv()
				n.Status.AllocatedIPs = allocations(t, "x", "y", "z")
				return p, n
			},
			want: fwk.QueueSkip,
		},
		{
			name: "ips grew",
			pod:  seedPod,
			change: func(w *world, p *spv2.SpiderIPPool) (*spv2.SpiderIPPool, *spv2.SpiderIPPool) {
				n := p.DeepCopy()
				n.ResourceVersion = w.rv()
				n.Spec.IPs = []string{"172.110.1.1-172.110.1.250"}
				return p, n
			},
			want: fwk.Queue,
		},
		{
			name: "a pool the pod does not use",
			pod:  seedPod,
			change: func(w *world, p *spv2.SpiderIPPool) (*spv2.SpiderIPPool, *spv2.SpiderIPPool) {
				n := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "other", ResourceVersion: w.rv()}, Spec: spv2.IPPoolSpec{Subnet: "10.0.0.0/24", IPs: []string{"10.0.0.1"}}}
				return nil, n
			},
			want: fwk.QueueSkip,
		},
		{
			name: "the pool the pod named is created",
			pod: func() *v1.Pod {
				return underlayPod(map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", spv2.AnnoPodIPPool: `{"ipv4":["late"]}`})
			},
			change: func(w *world, p *spv2.SpiderIPPool) (*spv2.SpiderIPPool, *spv2.SpiderIPPool) {
				n := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "late", ResourceVersion: w.rv()}, Spec: spv2.IPPoolSpec{Subnet: "10.0.0.0/24", IPs: []string{"10.0.0.1"}}}
				return nil, n
			},
			want: fwk.Queue,
		},
		{
			name: "a new default pool for a pod that takes the defaults",
			pod:  seedPod,
			change: func(w *world, p *spv2.SpiderIPPool) (*spv2.SpiderIPPool, *spv2.SpiderIPPool) {
				_, smc := w.seed()
				smc.Spec.MacvlanConfig.SpiderpoolConfigPools = nil
				w.multusConfig(smc)
				n := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "default-2", ResourceVersion: w.rv()}, Spec: spv2.IPPoolSpec{Subnet: "10.0.0.0/24", IPs: []string{"10.0.0.1"}, Default: ptr(true)}}
				return nil, n
			},
			want: fwk.Queue,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			p, _ := w.seed()
			p.Status.AllocatedIPs = allocations(t, "x", "y")
			p = w.pool(p)
			old, cur := tc.change(w, p)
			var oldObj any
			if old != nil {
				oldObj = toUnstructured(t, old)
			}
			got, err := w.p.isSchedulableAfterPoolChange(logger, tc.pod(), oldObj, toUnstructured(t, cur))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			// The hint records the event's pool, so the requeued pod sees it even if the plugin's own
			// informer lags behind the scheduler's.
			if held, _ := w.p.store.Pool(cur.Name); held == nil || held.ResourceVersion != cur.ResourceVersion {
				t.Errorf("store holds %+v, want version %s", held, cur.ResourceVersion)
			}
		})
	}
}

func TestNetworkHint(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	w := newWorld(t, nil)
	_, smc := w.seed()
	typo := underlayPod(map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-confg"})
	fixed := smc.DeepCopy()
	fixed.Name = "macvlan-confg"
	fixed.ResourceVersion = w.rv()
	hint := w.p.networkHint("SpiderMultusConfig")
	if got, _ := hint(logger, typo, nil, toUnstructured(t, fixed)); got != fwk.Queue {
		t.Errorf("the config the pod names was created: %v, want Queue", got)
	}
	if c := w.cycle(typo); !c.resolved() {
		t.Errorf("requeued pod does not see the config the event carried: %v", c.pre)
	}
	other := smc.DeepCopy()
	other.Name, other.ResourceVersion = "unrelated", w.rv()
	if got, _ := hint(logger, seedPod(), nil, toUnstructured(t, other)); got != fwk.QueueSkip {
		t.Errorf("a config the pod does not name: %v, want QueueSkip", got)
	}
	same := smc.DeepCopy()
	same.ResourceVersion = w.rv()
	same.Status.Conditions = []metav1.Condition{{Type: "Aligned", Status: "True", Reason: "Aligned", LastTransitionTime: metav1.Now()}}
	if got, _ := hint(logger, seedPod(), toUnstructured(t, smc), toUnstructured(t, same)); got != fwk.QueueSkip {
		t.Errorf("a status-only change: %v, want QueueSkip", got)
	}
	changed := same.DeepCopy()
	changed.ResourceVersion = w.rv()
	changed.Spec.MacvlanConfig.Master = []string{"ens256"}
	if got, _ := hint(logger, seedPod(), toUnstructured(t, same), toUnstructured(t, changed)); got != fwk.Queue {
		t.Errorf("master changed: %v, want Queue", got)
	}
}

func TestPodDeletedHint(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	w := newWorld(t, nil)
	w.seed()
	w.node("n1", nic(up))
	holder := w.cycle(seedPod())
	if st := holder.reserve("n1"); !st.IsSuccess() {
		t.Fatal(st)
	}
	waiting := seedPod()
	if got, _ := w.p.isSchedulableAfterPodDeleted(logger, waiting, holder.pod, nil); got != fwk.Queue {
		t.Errorf("a pod holding a claim on the same pool was deleted: %v, want Queue", got)
	}
	if w.p.store.Placed(holder.pod.UID) {
		t.Error("the deleted pod's claim is still counted")
	}
	plain := underlayPod(nil)
	if got, _ := w.p.isSchedulableAfterPodDeleted(logger, waiting, plain, nil); got != fwk.QueueSkip {
		t.Errorf("a plain pod was deleted: %v, want QueueSkip", got)
	}
	// A pod bound before the plugin recorded its claim is judged by the pools it refers to.
	untracked := seedPod()
	untracked.Spec.NodeName = "n1"
	if got, _ := w.p.isSchedulableAfterPodDeleted(logger, waiting, untracked, nil); got != fwk.Queue {
		t.Errorf("an untracked pod of the same pool was deleted: %v, want Queue", got)
	}
}

func TestPodUpdatedHint(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	w := newWorld(t, nil)
	old := underlayPod(map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-confg"})
	fixed := old.DeepCopy()
	fixed.Annotations[nadv1.DefaultNetworkAnnotation] = "kube-system/macvlan-conf"
	if got, _ := w.p.isSchedulableAfterPodUpdated(logger, old, old, fixed); got != fwk.Queue {
		t.Errorf("annotation fixed: %v, want Queue", got)
	}
	other := old.DeepCopy()
	other.Annotations["example.com/unrelated"] = "x"
	if got, _ := w.p.isSchedulableAfterPodUpdated(logger, old, old, other); got != fwk.QueueSkip {
		t.Errorf("unrelated annotation: %v, want QueueSkip", got)
	}
	relabelled := old.DeepCopy()
	relabelled.Labels = map[string]string{"app": "db"}
	if got, _ := w.p.isSchedulableAfterPodUpdated(logger, old, old, relabelled); got != fwk.Queue {
		t.Errorf("labels changed: %v, want Queue", got)
	}
}
