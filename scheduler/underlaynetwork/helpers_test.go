package underlaynetwork

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/pkg/podnet"
	configv1 "github.com/underlink/underlink/scheduler/apis/config/v1"
	"github.com/underlink/underlink/scheduler/underlaynetwork/cache"
	"github.com/underlink/underlink/test"
)

func ptr[T any](v T) *T { return &v }

// world is the cluster a test plugin sees: its objects go through the same informer handlers and
// unstructured conversion as in kube-scheduler.
type world struct {
	t      *testing.T
	p      *Plugin
	nodes  map[string]*v1.Node
	ns     map[string]map[string]string
	nextRV int
}

func newWorld(t *testing.T, args *configv1.UnderlayNetworkArgs) *world {
	t.Helper()
	a, err := configv1.Decode(args)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, nodes: map[string]*v1.Node{}, ns: map[string]map[string]string{"default": {}, "kube-system": {}}, nextRV: 100}
	logger, _ := ktesting.NewTestContext(t)
	w.p = &Plugin{
		args:   a,
		store:  cache.NewStore(),
		links:  cache.NewLinks(),
		served: served{pools: true, configs: true, nads: true},
		logger: logger,
		node: func(name string) (*v1.Node, error) {
			if n, ok := w.nodes[name]; ok {
				return n, nil
			}
			return nil, fmt.Errorf("node %q not found", name)
		},
		nsLabels: func(name string) (map[string]string, error) {
			if l, ok := w.ns[name]; ok {
				return l, nil
			}
			return nil, fmt.Errorf("namespace %q not found", name)
		},
	}
	return w
}

func (w *world) rv() string { w.nextRV++; return fmt.Sprint(w.nextRV) }

func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// pool adds or updates a SpiderIPPool, as the informer would.
func (w *world) pool(p *spv2.SpiderIPPool) *spv2.SpiderIPPool {
	p = p.DeepCopy()
	p.ResourceVersion = w.rv()
	w.p.poolHandlers(w.p.store).OnAdd(toUnstructured(w.t, p), false)
	return p
}

func (w *world) multusConfig(smc *spv2.SpiderMultusConfig) *spv2.SpiderMultusConfig {
	smc = smc.DeepCopy()
	smc.ResourceVersion = w.rv()
	w.p.networkHandlers(w.p.store, podnet.KindMultusConfig).OnAdd(toUnstructured(w.t, smc), false)
	return smc
}

func (w *world) nad(nad *nadv1.NetworkAttachmentDefinition) *nadv1.NetworkAttachmentDefinition {
	nad = nad.DeepCopy()
	nad.ResourceVersion = w.rv()
	w.p.networkHandlers(w.p.store, podnet.KindNAD).OnAdd(toUnstructured(w.t, nad), false)
	return nad
}

func (w *world) node(name string, labels map[string]string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	w.nodes[name] = n
	return n
}

// seed loads the seed's pool and multus config for cluster-a.
func (w *world) seed() (*spv2.SpiderIPPool, *spv2.SpiderMultusConfig) {
	w.t.Helper()
	pool := &spv2.SpiderIPPool{}
	smc := &spv2.SpiderMultusConfig{}
	for name, into := range map[string]any{"cluster-a-ippool.yaml": pool, "cluster-a-multusconfig.yaml": smc} {
		test.DecodeSeed(w.t, name, into)
	}
	return w.pool(pool), w.multusConfig(smc)
}

var podCount int

func underlayPod(ann map[string]string) *v1.Pod {
	podCount++
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: "default", Name: fmt.Sprintf("pod-%d", podCount), UID: types.UID(fmt.Sprintf("uid-%d", podCount)), Annotations: ann,
	}}
}

func seedPod() *v1.Pod {
	return underlayPod(map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"})
}

// allocations encodes a status.allocatedIPs holding one address per uid.
func allocations(t *testing.T, uids ...string) *string {
	t.Helper()
	a := spv2.PoolIPAllocations{}
	for i, uid := range uids {
		a[fmt.Sprintf("172.110.1.%d", i+1)] = spv2.PoolIPAllocation{NIC: "eth0", NamespacedName: "default/" + uid, PodUID: uid}
	}
	s, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cycle is one scheduling cycle of the plugin for a pod.
type cycle struct {
	w     *world
	pod   *v1.Pod
	state fwk.CycleState
	pre   *fwk.Status
}

func (w *world) cycle(pod *v1.Pod) *cycle {
	state := framework.NewCycleState()
	var nodes []fwk.NodeInfo
	for _, n := range w.nodes {
		nodes = append(nodes, nodeInfo(n))
	}
	_, st := w.p.PreFilter(context.Background(), state, pod, nodes)
	return &cycle{w: w, pod: pod, state: state, pre: st}
}

// resolved reports whether PreFilter took the pod on: Success, or Skip with its state written because
// every node fits (Filter is then not run).
func (c *cycle) resolved() bool {
	_, err := readState(c.state)
	return c.pre.IsSuccess() || (c.pre.IsSkip() && err == nil)
}

func nodeInfo(n *v1.Node) fwk.NodeInfo {
	ni := framework.NewNodeInfo()
	ni.SetNode(n)
	return ni
}

func (c *cycle) filter(node string) *fwk.Status {
	return c.w.p.Filter(context.Background(), c.state, c.pod, nodeInfo(c.w.nodes[node]))
}

// fitError renders the FailedScheduling message kube-scheduler would write for the pod, filtering it on
// every node of the world.
func (c *cycle) fitError() string {
	d := framework.Diagnosis{NodeToStatus: framework.NewDefaultNodeToStatus()}
	if c.pre.IsRejected() {
		d.PreFilterMsg = c.pre.Message()
	} else if c.pre.IsSuccess() {
		for name := range c.w.nodes {
			if st := c.filter(name); !st.IsSuccess() {
				d.NodeToStatus.Set(name, st)
			}
		}
	}
	return (&framework.FitError{Pod: c.pod, NumAllNodes: len(c.w.nodes), Diagnosis: d}).Error()
}

func (c *cycle) reserve(node string) *fwk.Status {
	return c.w.p.Reserve(context.Background(), c.state, c.pod, node)
}

const up, down = underlay.LinkUp, underlay.LinkDown

// labelOf is the node label of a NIC's link state under the default prefix.
func labelOf(nic string) string { return underlay.LabelKey(underlay.LabelPrefix, nic) }

func nic(state string) map[string]string {
	return map[string]string{labelOf("ens224"): state}
}
