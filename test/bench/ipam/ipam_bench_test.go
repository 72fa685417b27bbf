//go:build integration

// Package ipam measures cluster-wide IPAM allocations per second: underlink-ipam (through underlink-agent)
// against Spiderpool v1.2.2 (its IPAM plugin through its agent) and whereabouts v0.9.2, each as the CNI
// binary a runtime execs, on the same apiserver and nodes, with pools of the same size, and checks that
// none gave an address twice. Run it with `make bench-ipam` (root; the cached kube-apiserver, etcd,
// whereabouts binary and CRDs from hack/build-tools.sh, Spiderpool from hack/build-peers.sh).
package ipam

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	agentclient "github.com/underlink/underlink/cni/agent/client"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// Pools of the same size for both: 1023 addresses, room for 10 × 100 pods.
const (
	oursSubnet = "172.110.64.0/20"
	oursRange  = "172.110.64.1-172.110.67.255"
	// Spiderpool's are in spiderpool_test.go.
	theirsRange = "172.110.80.0/20"
	theirsFirst = "172.110.80.1"
	theirsLast  = "172.110.83.255"
)

func scale(b *testing.B) (nodes, perNode, parallel int) {
	get := func(key string, def int) int {
		if v := os.Getenv(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				b.Fatalf("%s=%q: want a positive number", key, v)
			}
			return n
		}
		return def
	}
	return get("UNDERLINK_BENCH_NODES", 10), get("UNDERLINK_BENCH_ADDS_PER_NODE", 100), get("UNDERLINK_BENCH_PARALLEL_PER_NODE", 10)
}

type run struct {
	name      string
	wall      time.Duration
	ok        int
	failed    int
	dups      int
	firstErrs []string
	// cpu says where the machine's CPU went during the run.
	cpu string
}

func (r run) rate() float64 { return float64(r.ok) / r.wall.Seconds() }

// recorder counts the answers to one run's ADDs, from any goroutine: successes, failures with the
// first three errors, and each address given twice (to two pods of the run, or to a pod and one that
// held it before the run).
type recorder struct {
	b    *testing.B
	r    *run
	mu   sync.Mutex
	seen map[netip.Addr]string
}

func newRecorder(b *testing.B, r *run, held []netip.Addr) *recorder {
	c := &recorder{b: b, r: r, seen: map[netip.Addr]string{}}
	for _, a := range held {
		c.seen[a] = "a pre-filled pod"
	}
	return c
}

// record counts pod's ADD, which gave ip or failed with err.
func (c *recorder) record(pod string, ip netip.Addr, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.r.failed++
		if len(c.r.firstErrs) < 3 {
			c.r.firstErrs = append(c.r.firstErrs, err.Error())
		}
		return
	}
	c.r.ok++
	if other, dup := c.seen[ip]; dup {
		c.r.dups++
		c.b.Errorf("%s gave %s to %s and %s", c.r.name, ip, other, pod)
	}
	c.seen[ip] = pod
}

// BenchmarkIPAMAllocations runs 10 nodes × 100 ADDs through each plugin binary (10 in flight per node)
// and reports allocations/s of each, their ratio, and duplicates (which must be 0).
func BenchmarkIPAMAllocations(b *testing.B) {
	nodes, perNode, parallel := scale(b)
	// Profiling our side alone; the figure that counts is the one beside the peer's.
	skipPeer := os.Getenv("UNDERLINK_BENCH_SKIP_PEER") == "1"
	bin := controlplane.BinDir()
	wb := filepath.Join(bin, "whereabouts")
	if _, err := os.Stat(wb); err != nil {
		b.Fatalf("whereabouts is not built: hack/build-tools.sh whereabouts (%v)", err)
	}
	var spPlugin string
	if !skipPeer {
		spPlugin = spiderpoolPlugin(b)
	}
	dir := b.TempDir()
	if err := netbed.BuildCommands(dir, "underlink-agent", "underlink-ipam"); err != nil {
		b.Fatal(err)
	}
	env := controlplane.StartEnv(b, controlplane.EnvOptions{})
	kubeconfig := env.Kubeconfig(b)
	installWhereaboutsCRDs(b, env)
	bed := netbed.New(b)
	underlay := bed.Cluster(netbed.ClusterA)
	scratch := bed.Pod("scratch")
	ctx := context.Background()

	gw := "172.110.0.1"
	ipv4 := int64(4)
	for _, pool := range []*spv2.SpiderIPPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Spec: spv2.IPPoolSpec{Subnet: oursSubnet, Gateway: &gw, IPs: []string{oursRange}}},
		// spec.ipVersion as Spiderpool's mutating webhook (in its controller) sets it; its agent skips a pool
		// without it ("nil ippool ipVersion").
		{ObjectMeta: metav1.ObjectMeta{Name: spiderPool}, Spec: spv2.IPPoolSpec{IPVersion: &ipv4, Subnet: spiderSubnet, Gateway: &gw, IPs: []string{spiderRange}}},
	} {
		if err := env.Client.Create(ctx, pool); err != nil {
			b.Fatal(err)
		}
	}
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}); err != nil {
		b.Fatal(err)
	}
	type node struct {
		net          *netbed.Node
		name, socket string
		// spSocket is Spiderpool's agent's IPAM socket.
		spSocket string
		pods     []*corev1.Pod
	}
	// Each system's daemons run for its own measurement only: an idle agent of the other still decodes
	// every pool write it watches, and that CPU would be charged to the system being measured.
	var agents []*netbed.Process
	stopAgents := func() {
		for _, p := range agents {
			_ = p.Stop(5 * time.Second)
		}
		agents = nil
	}
	var ns []*node
	for i := 1; i <= nodes; i++ {
		n := bed.Node(netbed.NodeSpec{Name: fmt.Sprintf("node%d", i), Cluster: underlay})
		if _, err := bed.Relay(n.NS, "", env.Config.Host); err != nil {
			b.Fatal(err)
		}
		if err := env.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Spec.Name}}); err != nil {
			b.Fatal(err)
		}
		nd := &node{net: n, name: n.Spec.Name, socket: filepath.Join(bed.Dir(), n.Spec.Name, "agent.sock"), spSocket: filepath.Join(bed.Dir(), n.Spec.Name, "spiderpool.sock")}
		args := []string{"--kubeconfig", kubeconfig, "--node-name", nd.name, "--socket", nd.socket,
			"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--kube-api-qps", "500", "--kube-api-burst", "1000"}
		// Extra agent flags for profiling, e.g. --pprof-bind-address=127.0.0.1:6060 (inside each node's namespace).
		args = append(args, strings.Fields(os.Getenv("UNDERLINK_BENCH_AGENT_ARGS"))...)
		p, err := bed.Start(n.NS, "agent-"+nd.name, exec.Command(filepath.Join(dir, "underlink-agent"), args...))
		if err != nil {
			b.Fatal(err)
		}
		agents = append(agents, p)
		cl := agentclient.New(nd.socket, time.Second)
		poll.UntilEvery(b, 60*time.Second, 50*time.Millisecond, "agent on "+nd.name+" serving", func() (bool, string) {
			if err := cl.Health(ctx); err != nil {
				return false, fmt.Sprintf("%v\n%s", err, p.Logs())
			}
			return true, ""
		})
		for j := 0; j < perNode; j++ {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("%s-pod%03d", nd.name, j)},
				Spec: corev1.PodSpec{NodeName: nd.name, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}}}
			if err := env.Client.Create(ctx, pod); err != nil {
				b.Fatal(err)
			}
			nd.pods = append(nd.pods, pod)
		}
		ns = append(ns, nd)
	}
	oursConf := func(n *node) []byte {
		return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"bench","type":"macvlan","master":"ens224",
		 "ipam":{"type":"underlink-ipam","socket":%q,"timeoutSeconds":120,"ipv4Pools":["bench"]}}`, n.socket))
	}
	// whereabouts refuses to run without its flat configuration file (whereabouts.d/whereabouts.conf).
	flat := filepath.Join(dir, "whereabouts.conf")
	if err := os.WriteFile(flat, []byte(fmt.Sprintf(`{"datastore":"kubernetes","kubernetes":{"kubeconfig":%q},"log_level":"error"}`, kubeconfig)), 0o600); err != nil {
		b.Fatal(err)
	}
	theirsConf := []byte(fmt.Sprintf(`{"cniVersion":"0.3.1","name":"bench","type":"macvlan","master":"ens224",
	 "ipam":{"type":"whereabouts","range":%q,"range_start":%q,"range_end":%q,"gateway":"172.110.0.1",
	  "log_level":"error","log_file":%q,"configuration_path":%q,"kubernetes":{"kubeconfig":%q}}}`,
		theirsRange, theirsFirst, theirsLast, filepath.Join(dir, "whereabouts.log"), flat, kubeconfig))

	measure := func(name string, plugin string, conf func(*node) []byte) run {
		r := run{name: name}
		cpuBefore := takeCPU()
		rec := newRecorder(b, &r, nil)
		var wg sync.WaitGroup
		start := time.Now()
		for _, n := range ns {
			sem := make(chan struct{}, parallel)
			for _, pod := range n.pods {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					ip, err := add(ctx, plugin, conf(n), scratch.Path(), n.name, pod)
					rec.record(pod.Name, ip, err)
				}()
			}
		}
		wg.Wait()
		r.wall = time.Since(start)
		r.cpu = cpuReport(cpuBefore, takeCPU(), filepath.Base(plugin), r.wall)
		return r
	}

	b.ResetTimer()
	// One pass (make bench-ipam runs -benchtime 1x): each system's agents run for their measurement only.
	var ours, spider, theirs run
	spiderLog := filepath.Join(dir, "spiderpool-ipam.log")
	for i := 0; i < b.N; i++ {
		ours = measure("underlink-ipam", filepath.Join(dir, "underlink-ipam"), oursConf)
		if skipPeer {
			continue
		}
		b.StopTimer()
		stopAgents()
		for _, n := range ns {
			agents = append(agents, startSpiderpoolAgent(b, bed, n.net, kubeconfig, n.spSocket))
		}
		b.StartTimer()
		spider = measure("spiderpool v1.2.2", spPlugin, func(n *node) []byte { return spiderpoolConf(n.spSocket, spiderLog) })
		b.StopTimer()
		stopAgents()
		b.StartTimer()
		theirs = measure("whereabouts v0.9.2", wb, func(*node) []byte { return theirsConf })
	}
	b.StopTimer()
	if skipPeer {
		ours.dups += storeDuplicates(b, env, "bench")
		fmt.Printf("\nunderlink-ipam alone (UNDERLINK_BENCH_SKIP_PEER=1, for profiling; no ratio without the peer): %d nodes × %d ADDs, %d in flight per node: %s, %.1f allocations/s, %d duplicates, %d failed\n",
			nodes, perNode, parallel, ours.wall.Round(10*time.Millisecond), ours.rate(), ours.dups, ours.failed)
		fmt.Printf("  %s\n", ours.cpu)
		for _, e := range ours.firstErrs {
			fmt.Printf("  failure: %s\n", e)
		}
		if ours.dups > 0 {
			b.Errorf("%d duplicates", ours.dups)
		}
		return
	}
	// The stores agree with what the plugins answered.
	ours.dups += storeDuplicates(b, env, "bench")
	spider.dups += storeDuplicates(b, env, spiderPool)
	theirs.dups += whereaboutsStoreDuplicates(b, env)

	b.ReportMetric(ours.rate(), "underlink-allocs/s")
	b.ReportMetric(spider.rate(), "spiderpool-allocs/s")
	b.ReportMetric(theirs.rate(), "whereabouts-allocs/s")
	b.ReportMetric(ours.rate()/theirs.rate(), "ratio")
	b.ReportMetric(ours.rate()/spider.rate(), "ratio-spiderpool")
	var t strings.Builder
	fmt.Fprintf(&t, "\nIPAM allocations: %d nodes × %d ADDs through the CNI binary (%d in flight per node), one apiserver, pools of 1023 addresses\n", nodes, perNode, parallel)
	fmt.Fprintf(&t, "%-20s %10s %15s %10s %8s\n", "plugin", "wall", "allocations/s", "duplicates", "failed")
	for _, r := range []run{ours, spider, theirs} {
		fmt.Fprintf(&t, "%-20s %10s %15.1f %10d %8d\n", r.name, r.wall.Round(10*time.Millisecond), r.rate(), r.dups, r.failed)
	}
	fmt.Fprintf(&t, "%-20s %10s %14.1f× (goal > 1×)\n", "ratio to Spiderpool", "", ours.rate()/spider.rate())
	fmt.Fprintf(&t, "%-20s %10s %14.1f× (goal ≥ 30×)\n", "ratio to whereabouts", "", ours.rate()/theirs.rate())
	for _, r := range []run{ours, spider, theirs} {
		fmt.Fprintf(&t, "  %s: %s\n", r.name, r.cpu)
	}
	for _, r := range []run{ours, spider, theirs} {
		for _, e := range r.firstErrs {
			fmt.Fprintf(&t, "  %s failure: %s\n", r.name, e)
		}
	}
	fmt.Print(t.String())
	// A failed ADD of underlink fails the bench, as in BenchmarkIPAMOccupancy. A peer's failures are a
	// figure of the table (Spiderpool's agent gives an ADD up after 5 conflicting pool writes in a row; a
	// kubelet would retry the pod), and its rate counts only the allocations that succeeded.
	if ours.failed > 0 {
		b.Errorf("%s: %d of %d ADDs failed", ours.name, ours.failed, ours.failed+ours.ok)
	}
	if ours.dups+spider.dups+theirs.dups > 0 {
		b.Errorf("duplicates: underlink-ipam %d, spiderpool %d, whereabouts %d", ours.dups, spider.dups, theirs.dups)
	}
}

// add execs plugin as a runtime does for ADD and returns the address it gave.
func add(ctx context.Context, plugin string, conf []byte, netns, node string, pod *corev1.Pod) (netip.Addr, error) {
	cmd := exec.CommandContext(ctx, plugin)
	cmd.Env = []string{
		"CNI_COMMAND=ADD", "CNI_CONTAINERID=cid-" + pod.Name, "CNI_NETNS=" + netns, "CNI_IFNAME=eth0",
		"CNI_PATH=" + filepath.Dir(plugin), "NODENAME=" + node,
		fmt.Sprintf("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_UID=%s", pod.Namespace, pod.Name, pod.UID),
	}
	cmd.Stdin = bytes.NewReader(conf)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %v: %s %s", filepath.Base(plugin), err, strings.TrimSpace(out.String()), strings.TrimSpace(errOut.String()))
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.IPs) == 0 {
		return netip.Addr{}, fmt.Errorf("%s printed %q", filepath.Base(plugin), out.String())
	}
	p, err := netip.ParsePrefix(res.IPs[0].Address)
	if err != nil {
		return netip.Addr{}, err
	}
	return p.Addr(), nil
}

func installWhereaboutsCRDs(b *testing.B, env *controlplane.Env) {
	for _, f := range controlplane.WhereaboutsCRDs() {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatalf("whereabouts CRDs are installed next to its binary by hack/build-tools.sh whereabouts: %v", err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(raw, &obj); err != nil {
			b.Fatal(err)
		}
		if err := env.Client.Create(context.Background(), &unstructured.Unstructured{Object: obj}); err != nil {
			b.Fatalf("%s: %v", f, err)
		}
	}
	// The CRDs serve once established.
	gvk := schema.GroupVersionKind{Group: "whereabouts.cni.cncf.io", Version: "v1alpha1", Kind: "IPPoolList"}
	poll.Until(b, 30*time.Second, "whereabouts CRDs served", func() (bool, string) {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk)
		if err := env.Client.List(context.Background(), l); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// storeDuplicates counts addresses the SpiderIPPool named pool gives to more than one pod interface
// (the status is a map by address, so a duplicate shows as one pod holding two, or a count mismatch):
// underlink's and Spiderpool's pools, whose status format is the same.
func storeDuplicates(b *testing.B, env *controlplane.Env, pool string) int {
	var p spv2.SpiderIPPool
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: pool}, &p); err != nil {
		b.Fatal(err)
	}
	allocs, err := spv2.ParseAllocations(p.Status)
	if err != nil {
		b.Fatal(err)
	}
	holders := map[string]bool{}
	dups := 0
	for _, a := range allocs {
		k := a.PodUID + "/" + a.NIC
		if holders[k] {
			dups++
		}
		holders[k] = true
	}
	if p.Status.AllocatedIPCount != nil && int64(len(allocs)) != *p.Status.AllocatedIPCount {
		dups++
	}
	return dups
}

// whereaboutsStoreDuplicates reads whereabouts' IPPool (spec.allocations: offset → {id, podref}) and
// counts offsets given to more than one pod.
func whereaboutsStoreDuplicates(b *testing.B, env *controlplane.Env) int {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(schema.GroupVersionKind{Group: "whereabouts.cni.cncf.io", Version: "v1alpha1", Kind: "IPPoolList"})
	if err := env.Client.List(context.Background(), l); err != nil {
		b.Fatal(err)
	}
	dups := 0
	for _, item := range l.Items {
		allocs, _, _ := unstructured.NestedMap(item.Object, "spec", "allocations")
		pods := map[string]bool{}
		for _, v := range allocs {
			ref, _, _ := unstructured.NestedString(v.(map[string]any), "podref")
			if pods[ref] {
				dups++
			}
			pods[ref] = true
		}
	}
	return dups
}
