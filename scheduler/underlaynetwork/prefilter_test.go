package underlaynetwork

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	configv1 "github.com/underlink/underlink/scheduler/apis/config/v1"
)

func TestPreFilter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(w *world)
		args    configv1.UnderlayNetworkArgs
		ann     map[string]string
		code    fwk.Code
		reason  string
		nics    []string
		pools   [][]string // candidate pool names per request
		shared  bool
		uniform bool
	}{
		{name: "a pod of the primary network is skipped", code: fwk.Skip},
		{
			name: "seed pod: ens224 and cluster-a",
			ann:  map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"},
			nics: []string{"ens224"}, pools: [][]string{{"cluster-a"}}, uniform: true,
		},
		{
			// Multus reads a default network without a namespace in kube-system, not the pod's namespace.
			name: "a bare default network is Multus' kube-system one",
			ann:  map[string]string{nadv1.DefaultNetworkAnnotation: "macvlan-conf"},
			nics: []string{"ens224"}, pools: [][]string{{"cluster-a"}}, uniform: true,
		},
		{
			name:   "the seed deployment's misspelt config is named",
			ann:    map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-confg"},
			code:   fwk.UnschedulableAndUnresolvable,
			reason: "network kube-system/macvlan-confg (v1.multus-cni.io/default-network) not found: no SpiderMultusConfig or NetworkAttachmentDefinition kube-system/macvlan-confg",
		},
		{
			name: "args default network applies to pods without annotations",
			args: configv1.UnderlayNetworkArgs{DefaultNetwork: "kube-system/macvlan-conf"},
			nics: []string{"ens224"}, pools: [][]string{{"cluster-a"}}, uniform: true,
		},
		{
			name: "a network that needs no underlay is skipped",
			setup: func(w *world) {
				w.nad(&nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "br"},
					Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: `{"type":"bridge","ipam":{"type":"host-local"}}`}})
			},
			ann:  map[string]string{nadv1.NetworksAnnotation: "br"},
			code: fwk.Skip,
		},
		{
			name: "a NAD without SpiderMultusConfig is read from its CNI config",
			setup: func(w *world) {
				w.nad(&nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ul"},
					Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: `{"type":"macvlan","master":"ens256","ipam":{"type":"underlink-ipam","ipv4Pools":["cluster-a"]}}`}})
			},
			ann:  map[string]string{nadv1.NetworksAnnotation: "ul@ul0"},
			nics: []string{"ens256"}, pools: [][]string{{"cluster-a"}}, uniform: true,
		},
		{
			name: "both annotations: two addresses from one pool",
			ann:  map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", nadv1.NetworksAnnotation: "kube-system/macvlan-conf"},
			nics: []string{"ens224"}, pools: [][]string{{"cluster-a"}, {"cluster-a"}}, shared: true,
		},
		{
			name: "the pod's ippool annotation overrides the config's pools",
			setup: func(w *world) {
				p, _ := w.seed()
				p.Name, p.Spec.IPs, p.Spec.Default = "cluster-a2", []string{"172.110.1.201-172.110.1.250"}, nil
				w.pool(p)
			},
			ann:  map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", spv2.AnnoPodIPPool: `{"ipv4":["cluster-a2"]}`},
			nics: []string{"ens224"}, pools: [][]string{{"cluster-a2"}}, uniform: true,
		},
		{
			name:   "a pool that does not exist is named",
			ann:    map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", spv2.AnnoPodIPPool: `{"ipv4":["nope"]}`},
			code:   fwk.UnschedulableAndUnresolvable,
			reason: `network kube-system/macvlan-conf (v1.multus-cni.io/default-network) on eth0: pod annotation ipam.spidernet.io/ippool ipv4[0]: "nope": no SpiderIPPool of that name exists`,
		},
		{
			// As at ADD (pkg/poolchoice): a named pool that does not exist is a configuration error, even
			// when another candidate exists.
			name:   "a named pool that does not exist fails the pod beside another candidate",
			ann:    map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", spv2.AnnoPodIPPool: `{"ipv4":["nope","cluster-a"]}`},
			code:   fwk.UnschedulableAndUnresolvable,
			reason: `ipv4[0]: "nope": no SpiderIPPool of that name exists; create it or fix the name`,
		},
		{
			name:   "an unreadable pool annotation is named",
			ann:    map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", spv2.AnnoPodIPPool: `cluster-a`},
			code:   fwk.UnschedulableAndUnresolvable,
			reason: `pod annotation ipam.spidernet.io/ippool: "cluster-a": is not a JSON object`,
		},
		{
			name:   "an unreadable networks annotation is named",
			ann:    map[string]string{nadv1.NetworksAnnotation: `[{"name":}]`},
			code:   fwk.UnschedulableAndUnresolvable,
			reason: `annotation k8s.v1.cni.cncf.io/networks="[{\"name\":}]": is not a JSON list`,
		},
		{
			name: "a config that cannot be used is named with its field",
			setup: func(w *world) {
				_, smc := w.seed()
				smc.Spec.MacvlanConfig.Master = nil
				w.multusConfig(smc)
			},
			ann:    map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"},
			code:   fwk.UnschedulableAndUnresolvable,
			reason: "network kube-system/macvlan-conf (v1.multus-cni.io/default-network) cannot be used: SpiderMultusConfig kube-system/macvlan-conf has spec.cniType macvlan but no spec.macvlan.master",
		},
		{
			name: "a pool whose status cannot be read is named",
			setup: func(w *world) {
				p, _ := w.seed()
				p.Status.AllocatedIPs = ptr("{broken")
				w.pool(p)
			},
			ann:    map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"},
			code:   fwk.UnschedulableAndUnresolvable,
			reason: "SpiderIPPool cluster-a: status.allocatedIPs is not a JSON object",
		},
		{
			name: "a disabled pool",
			setup: func(w *world) {
				p, _ := w.seed()
				p.Spec.Disable = ptr(true)
				w.pool(p)
			},
			ann:    map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"},
			code:   fwk.UnschedulableAndUnresolvable,
			reason: "SpiderIPPool cluster-a: spec.disable is true",
		},
		{
			name: "a pool limited to other namespaces",
			setup: func(w *world) {
				p, _ := w.seed()
				p.Spec.NamespaceName = []string{"team-b"}
				w.pool(p)
			},
			ann:    map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"},
			code:   fwk.UnschedulableAndUnresolvable,
			reason: `SpiderIPPool cluster-a: spec.namespaceName [team-b] does not include namespace "default"`,
		},
		{
			name: "a config without pools takes the cluster default pools",
			setup: func(w *world) {
				_, smc := w.seed()
				smc.Spec.MacvlanConfig.SpiderpoolConfigPools = nil
				w.multusConfig(smc)
			},
			ann:  map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"},
			nics: []string{"ens224"}, pools: [][]string{{"cluster-a"}}, uniform: true,
		},
		{
			name: "no pool named and no default pool",
			setup: func(w *world) {
				p, smc := w.seed()
				smc.Spec.MacvlanConfig.SpiderpoolConfigPools = nil
				w.multusConfig(smc)
				p.Spec.Default = ptr(false)
				w.pool(p)
			},
			ann:    map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"},
			code:   fwk.UnschedulableAndUnresolvable,
			reason: "no SpiderIPPool has spec.default: true; name pools in the network's configuration or in a pod annotation",
		},
		{
			name: "dual stack: one IPv4 and one IPv6 address",
			setup: func(w *world) {
				_, smc := w.seed()
				smc.Spec.MacvlanConfig.SpiderpoolConfigPools.IPv6IPPool = []string{"v6"}
				w.multusConfig(smc)
				w.pool(&spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: spv2.IPPoolSpec{Subnet: "fd00::/120", IPs: []string{"fd00::1-fd00::ff"}}})
			},
			ann:  map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"},
			nics: []string{"ens224"}, pools: [][]string{{"cluster-a"}, {"v6"}}, uniform: true,
		},
		{
			name: "an IPv6 pool named as IPv4",
			setup: func(w *world) {
				_, smc := w.seed()
				smc.Spec.MacvlanConfig.SpiderpoolConfigPools.IPv4IPPool = []string{"v6"}
				w.multusConfig(smc)
				w.pool(&spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: spv2.IPPoolSpec{Subnet: "fd00::/120", IPs: []string{"fd00::1-fd00::ff"}}})
			},
			ann:    map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"},
			code:   fwk.UnschedulableAndUnresolvable,
			reason: `spec.macvlan.ippools.ipv4[0]: "v6": SpiderIPPool is IPv6, listed as IPv4`,
		},
		{
			name: "node-scoped pools make scores differ",
			setup: func(w *world) {
				p, _ := w.seed()
				p.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "a"}}
				w.pool(p)
			},
			ann:  map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"},
			nics: []string{"ens224"}, pools: [][]string{{"cluster-a"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			w := newWorld(t, &args)
			w.seed()
			if tc.setup != nil {
				tc.setup(w)
			}
			c := w.cycle(underlayPod(tc.ann))
			code := c.pre.Code()
			if c.resolved() {
				code = fwk.Success // the world has no nodes, so every node fits and Filter is skipped
			}
			if code != tc.code {
				t.Fatalf("code %v (%q), want %v", c.pre.Code(), c.pre.Message(), tc.code)
			}
			if !strings.Contains(c.pre.Message(), tc.reason) {
				t.Errorf("reason %q, want it to contain %q", c.pre.Message(), tc.reason)
			}
			st, err := readState(c.state)
			if tc.code != fwk.Success {
				if err == nil {
					t.Error("state written for a pod that is not scheduled by the plugin")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(st.nics, ",") != strings.Join(tc.nics, ",") {
				t.Errorf("nics %v, want %v", st.nics, tc.nics)
			}
			var pools [][]string
			for _, r := range st.reqs {
				var names []string
				for _, c := range r.cands {
					names = append(names, c.Pool.Name)
				}
				pools = append(pools, names)
			}
			if len(pools) != len(tc.pools) || strings.Join(flatten(pools), ",") != strings.Join(flatten(tc.pools), ",") {
				t.Errorf("candidate pools %v, want %v", pools, tc.pools)
			}
			if st.shared != tc.shared || st.uniform != tc.uniform {
				t.Errorf("shared %v uniform %v, want %v %v", st.shared, st.uniform, tc.shared, tc.uniform)
			}
		})
	}
}

func flatten(x [][]string) []string {
	var out []string
	for _, y := range x {
		out = append(append(out, y...), "|")
	}
	return out
}

// TestPreFilterSkipsFilterWhenEveryNodeFits pins the fast path: Filter is not called once per node when
// PreFilter already saw every node pass, and is when one does not, so that node gets its reason.
func TestPreFilterSkipsFilterWhenEveryNodeFits(t *testing.T) {
	w := newWorld(t, nil)
	w.seed()
	w.node("n1", nic(up))
	w.node("n2", nic(up))
	c := w.cycle(seedPod())
	if !c.pre.IsSkip() || !c.resolved() {
		t.Fatalf("every node fits: %v, want Skip with the state written for Reserve", c.pre)
	}
	if st := c.reserve("n1"); !st.IsSuccess() || !w.p.store.Placed(c.pod.UID) {
		t.Errorf("Reserve after a skipped Filter: %v", st)
	}
	w.node("n3", nic(down))
	if c := w.cycle(seedPod()); !c.pre.IsSuccess() {
		t.Errorf("one node down: %v, want Success so that Filter runs", c.pre)
	}
	plain := w.cycle(underlayPod(nil))
	if _, err := readState(plain.state); !plain.pre.IsSkip() || err == nil {
		t.Errorf("plain pod: %v, state %v; want Skip without state", plain.pre, err)
	}
}

// TestPreFilterUsesCycleSnapshot pins that a config deleted after PreFilter does not change the cycle:
// Filter decides on what PreFilter read.
func TestPreFilterUsesCycleSnapshot(t *testing.T) {
	w := newWorld(t, nil)
	_, smc := w.seed()
	w.node("n1", nic(up))
	c := w.cycle(seedPod())
	w.p.networkHandlers(w.p.store, "SpiderMultusConfig").OnDelete(toUnstructured(t, smc))
	if st := c.filter("n1"); !st.IsSuccess() {
		t.Errorf("filter after the config was deleted mid-cycle: %v", st)
	}
	if c2 := w.cycle(seedPod()); c2.pre.Code() != fwk.UnschedulableAndUnresolvable {
		t.Errorf("next cycle: %v, want the config reported missing", c2.pre)
	}
}
