package underlaynetwork

import (
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	toolscache "k8s.io/client-go/tools/cache"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

func TestEventResourceNames(t *testing.T) {
	// kube-scheduler parses these with schema.ParseResourceArg into its dynamic informers.
	for gvr, want := range map[string]string{
		string(eventResource(poolsGVR)):   "spiderippools.v2beta1.spiderpool.spidernet.io",
		string(eventResource(configsGVR)): "spidermultusconfigs.v2beta1.spiderpool.spidernet.io",
		string(eventResource(nadsGVR)):    "network-attachment-definitions.v1.k8s.cni.cncf.io",
	} {
		if gvr != want {
			t.Errorf("got %s, want %s", gvr, want)
		}
	}
}

func TestFromUnstructured(t *testing.T) {
	w := newWorld(t, nil)
	pool, _ := w.seed()
	u := toUnstructured(t, pool)
	for name, obj := range map[string]any{
		"unstructured": u,
		"typed":        pool,
		"tombstone":    toolscache.DeletedFinalStateUnknown{Key: "cluster-a", Obj: u},
	} {
		got, err := fromUnstructured[spv2.SpiderIPPool](obj)
		if err != nil || got.Name != "cluster-a" || len(got.Spec.IPs) != 1 {
			t.Errorf("%s: %+v %v", name, got, err)
		}
	}
	bad := &unstructured.Unstructured{Object: map[string]any{"kind": "SpiderIPPool", "metadata": map[string]any{"name": "broken"}, "spec": map[string]any{"ips": "not-a-list"}}}
	if _, err := fromUnstructured[spv2.SpiderIPPool](bad); err == nil || !strings.Contains(err.Error(), "SpiderIPPool /broken cannot be read") {
		t.Errorf("malformed object: %v, want an error naming it", err)
	}
}

func TestTrackBoundPods(t *testing.T) {
	w := newWorld(t, nil)
	pool, _ := w.seed()
	pool.Spec.IPs = []string{"172.110.1.1-172.110.1.2"}
	w.pool(pool)
	w.node("n1", nic(up))
	getNode := func(name string) (*v1.Node, error) {
		if n, ok := w.nodes[name]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("not found")
	}
	free := func() int64 { a, _ := w.p.store.Availability("cluster-a"); return a.Free() }

	// Bound by another scheduler: counted once, however many updates arrive.
	other := seedPod()
	other.Spec.NodeName = "n1"
	w.p.trackPod(other, getNode)
	w.p.trackPod(other, getNode)
	if got := free(); got != 1 {
		t.Fatalf("free %d after a bound pod was seen, want 1", got)
	}
	// Pending pods and plain pods claim nothing.
	w.p.trackPod(seedPod(), getNode)
	plain := underlayPod(nil)
	plain.Spec.NodeName = "n1"
	w.p.trackPod(plain, getNode)
	if got := free(); got != 1 {
		t.Errorf("free %d, want 1", got)
	}
	// A finished pod gives its claim back; so does a deleted one (also as a tombstone).
	done := other.DeepCopy()
	done.Status.Phase = v1.PodSucceeded
	w.p.trackPod(done, getNode)
	if got := free(); got != 2 {
		t.Errorf("free %d after the pod finished, want 2", got)
	}
	again := seedPod()
	again.Spec.NodeName = "n1"
	w.p.trackPod(again, getNode)
	w.p.forgetPod(toolscache.DeletedFinalStateUnknown{Obj: again})
	if got := free(); got != 2 {
		t.Errorf("free %d after the pod was deleted, want 2", got)
	}
	// A bound pod on a node the lister does not know yet waits for its next update.
	lost := seedPod()
	lost.Spec.NodeName = "unknown"
	w.p.trackPod(lost, getNode)
	if w.p.store.Placed(lost.UID) {
		t.Error("claim recorded without its node")
	}
}
