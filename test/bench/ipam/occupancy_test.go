//go:build integration

package ipam

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	agentclient "github.com/underlink/underlink/cni/agent/client"
	"github.com/underlink/underlink/cni/ipam"
	"github.com/underlink/underlink/pkg/iprange"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// The occupancy benchmark's pools: a whole /20 each (4094 addresses; the gateway lies outside, as in
// BenchmarkIPAMAllocations), in the subnets of the allocations benchmark.
const (
	occPoolSize    = 4094
	occOursRange   = "172.110.64.1-172.110.79.254"
	occSpiderRange = "172.110.96.1-172.110.111.254"
	// occNamespace holds every pod of the benchmark: the pods the pools are pre-filled for and the pods
	// whose ADDs are timed.
	occNamespace = "bench"
)

// occLevels are the occupancies, in percent of occPoolSize, the pools are pre-filled to.
var occLevels = []int{10, 50, 90}

// Limits on one object's write, with their defaults: kube-apiserver reads a request body of at most
// 3 MiB (its generic server's MaxRequestBodyBytes), etcd takes a request of at most 1.5 MiB (its
// --max-request-bytes) and the apiserver's etcd client sends at most 2 MiB. A custom resource is
// stored in etcd as JSON, about the size of the body that wrote it, so etcd's limit binds first.
const (
	apiserverMaxBody = 3 * 1024 * 1024
	etcdMaxRequest   = 1572864
)

// filler is a pod the pools are pre-filled for: a real Pod object, never bound to a node, so that it
// stays Pending. underlink's garbage collection keeps the address of a pod that exists with the UID
// recorded (cni/ipam.Collectable: only a pod gone, replaced or Succeeded/Failed is collected), and
// Spiderpool's keeps the address of a Pending pod of that UID; it runs in spiderpool-controller, which
// the benchmark does not run (Spiderpool's agent releases nothing but on DEL).
type filler struct {
	name, uid string
	// containerID is a sandbox ID as containerd writes it (64 hex digits), node the node an underlink
	// agent would have recorded.
	containerID, node string
}

// occNode is one simulated node: its namespace and the sockets of its two agents.
type occNode struct {
	net              *netbed.Node
	name             string
	socket, spSocket string
}

// BenchmarkIPAMOccupancy measures allocations/s of underlink-ipam and of Spiderpool v1.2.2 while their
// pool of 4094 addresses is 10 %, 50 % and 90 % full: before each level both pools' status is written
// with allocations of real, never-scheduled pods in each system's own format, then
// UNDERLINK_BENCH_NODES × UNDERLINK_BENCH_OCCUPANCY_ADDS_PER_NODE new pods (defaults 10 × 20) are given an
// address through each plugin binary, underlink's agents then Spiderpool's, each running only for its
// own measurement. It fails on a failed ADD, an address given twice (by the answers, by each store, or
// over a pre-filled address) and on a pre-filled allocation that did not survive. It then finds, in
// each format, the largest status one write can carry, from the encoded object and by real writes.
//
// Each system's agents are started for its measurement only, and each answers one untimed ADD first, so
// that what is timed is a running agent's work, not its first read of the pool.
//
// UNDERLINK_BENCH_PPROF_DIR=DIR saves CPU profiles taken during each level's measurements
// (UNDERLINK_BENCH_PPROF_SECONDS long, default 15): of the first node's underlink-agent as
// DIR/agent-occ<level>.pprof, and of kube-apiserver as DIR/apiserver-<underlink|spiderpool>-occ<level>.pprof.
func BenchmarkIPAMOccupancy(b *testing.B) {
	nodes, perNode, parallel := scale(b)
	// The ADDs of each level: UNDERLINK_BENCH_OCCUPANCY_ADDS_PER_NODE, else UNDERLINK_BENCH_ADDS_PER_NODE,
	// else 20 (all levels' must fit the free tenth of the pool).
	if v := os.Getenv("UNDERLINK_BENCH_OCCUPANCY_ADDS_PER_NODE"); v != "" {
		if _, err := fmt.Sscan(v, &perNode); err != nil || perNode <= 0 {
			b.Fatalf("UNDERLINK_BENCH_OCCUPANCY_ADDS_PER_NODE=%q: want a positive number", v)
		}
	} else if os.Getenv("UNDERLINK_BENCH_ADDS_PER_NODE") == "" {
		perNode = 20
	}
	if fill := int(math.Round(float64(occLevels[len(occLevels)-1]) * occPoolSize / 100)); fill+nodes*(perNode+1) > occPoolSize {
		b.Fatalf("%d nodes × %d ADDs (and one untimed each) do not fit in the %d free addresses of the fullest level", nodes, perNode, occPoolSize-fill)
	}
	spPlugin := spiderpoolPlugin(b)
	dir := b.TempDir()
	if err := netbed.BuildCommands(dir, "underlink-agent", "underlink-ipam"); err != nil {
		b.Fatal(err)
	}
	pprofDir := os.Getenv("UNDERLINK_BENCH_PPROF_DIR")
	pprofSeconds := 15
	if v := os.Getenv("UNDERLINK_BENCH_PPROF_SECONDS"); v != "" {
		if _, err := fmt.Sscan(v, &pprofSeconds); err != nil || pprofSeconds <= 0 {
			b.Fatalf("UNDERLINK_BENCH_PPROF_SECONDS=%q: want a positive number", v)
		}
	}
	env := controlplane.StartEnv(b, controlplane.EnvOptions{})
	kubeconfig := env.Kubeconfig(b)
	bed := netbed.New(b)
	underlay := bed.Cluster(netbed.ClusterA)
	scratch := bed.Pod("scratch")
	ctx := context.Background()

	gw := "172.110.0.1"
	ipv4 := int64(4)
	for _, pool := range []*spv2.SpiderIPPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Spec: spv2.IPPoolSpec{Subnet: oursSubnet, Gateway: &gw, IPs: []string{occOursRange}}},
		{ObjectMeta: metav1.ObjectMeta{Name: spiderPool}, Spec: spv2.IPPoolSpec{IPVersion: &ipv4, Subnet: spiderSubnet, Gateway: &gw, IPs: []string{occSpiderRange}}},
	} {
		if err := env.Client.Create(ctx, pool); err != nil {
			b.Fatal(err)
		}
	}
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: occNamespace}}); err != nil {
		b.Fatal(err)
	}

	var bedNodes []*occNode
	for i := 1; i <= nodes; i++ {
		n := bed.Node(netbed.NodeSpec{Name: fmt.Sprintf("node%d", i), Cluster: underlay})
		if _, err := bed.Relay(n.NS, "", env.Config.Host); err != nil {
			b.Fatal(err)
		}
		if err := env.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Spec.Name}}); err != nil {
			b.Fatal(err)
		}
		bedNodes = append(bedNodes, &occNode{net: n, name: n.Spec.Name,
			socket: filepath.Join(bed.Dir(), n.Spec.Name, "agent.sock"), spSocket: filepath.Join(bed.Dir(), n.Spec.Name, "spiderpool.sock")})
	}
	maxFill := int(math.Round(float64(occLevels[len(occLevels)-1]) * occPoolSize / 100))
	fillers := createFillers(b, env, maxFill, nodes)
	oursAddrs := firstAddrs(b, occOursRange, maxFill)
	spiderAddrs := firstAddrs(b, occSpiderRange, maxFill)

	oursConf := func(n *occNode) []byte {
		return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"bench","type":"macvlan","master":"ens224",
		 "ipam":{"type":"underlink-ipam","socket":%q,"timeoutSeconds":120,"ipv4Pools":["bench"]}}`, n.socket))
	}
	spiderLog := filepath.Join(dir, "spiderpool-ipam.log")
	spiderConf := func(n *occNode) []byte { return spiderpoolConf(n.spSocket, spiderLog) }
	agentArgs := strings.Fields(os.Getenv("UNDERLINK_BENCH_AGENT_ARGS"))
	if pprofDir != "" {
		agentArgs = append(agentArgs, "--pprof-bind-address=127.0.0.1:6060")
	}

	type level struct {
		percent, filled int
		ours, spider    run
		// oursAdded and spiderAdded count the ADDs that succeeded, the untimed first ones included.
		oursAdded, spiderAdded int
	}
	var levels []level
	var agents []*netbed.Process
	stopAgents := func() {
		for _, p := range agents {
			_ = p.Stop(5 * time.Second)
		}
		agents = nil
	}
	b.ResetTimer()
	b.StopTimer() // only the ADDs are timed
	for i := 0; i < b.N; i++ {
		levels = levels[:0]
		for _, pct := range occLevels {
			filled := int(math.Round(float64(pct) * occPoolSize / 100))
			writeOursFill(b, env, "bench", fillers[:filled], oursAddrs[:filled])
			writeSpiderFill(b, env, spiderPool, fillers[:filled], spiderAddrs[:filled])
			pods := createADDPods(b, env, bedNodes, perNode+1, fmt.Sprintf("i%d-occ%d", i, pct))
			lv := level{percent: pct, filled: filled}

			for _, n := range bedNodes {
				agents = append(agents, startUnderlinkAgent(b, bed, n, filepath.Join(dir, "underlink-agent"), kubeconfig, agentArgs))
			}
			var profs []func() error
			startProfiles := func(system string) {
				profs = nil
				if pprofDir == "" {
					return
				}
				if system == "underlink" {
					out := filepath.Join(pprofDir, fmt.Sprintf("agent-occ%d.pprof", pct))
					profs = append(profs, background(func() error { return fetchAgentProfile(bedNodes[0].net.NS, pprofSeconds, out) }))
				}
				out := filepath.Join(pprofDir, fmt.Sprintf("apiserver-%s-occ%d.pprof", system, pct))
				profs = append(profs, background(func() error { return fetchAPIServerProfile(env.Config, pprofSeconds, out) }))
			}
			waitProfiles := func() {
				for _, wait := range profs {
					if err := wait(); err != nil {
						b.Errorf("CPU profile at %d %%: %v", pct, err)
					}
				}
			}
			var warm int
			lv.ours, warm = occMeasure(b, ctx, "underlink-ipam", filepath.Join(dir, "underlink-ipam"), oursConf, bedNodes, pods, parallel, scratch.Path(), oursAddrs[:filled],
				func() { startProfiles("underlink") })
			lv.oursAdded = lv.ours.ok + warm
			waitProfiles()
			stopAgents()

			for _, n := range bedNodes {
				agents = append(agents, startSpiderpoolAgent(b, bed, n.net, kubeconfig, n.spSocket))
			}
			lv.spider, warm = occMeasure(b, ctx, "spiderpool v1.2.2", spPlugin, spiderConf, bedNodes, pods, parallel, scratch.Path(), spiderAddrs[:filled],
				func() { startProfiles("spiderpool") })
			lv.spiderAdded = lv.spider.ok + warm
			waitProfiles()
			stopAgents()

			// The stores agree with the answers, and every pre-filled allocation is still there.
			lv.ours.dups += storeDuplicates(b, env, "bench") + fillLost(b, env, "bench", fillers[:filled], oursAddrs[:filled], lv.oursAdded)
			lv.spider.dups += storeDuplicates(b, env, spiderPool) + fillLost(b, env, spiderPool, fillers[:filled], spiderAddrs[:filled], lv.spiderAdded)
			levels = append(levels, lv)
			b.ReportMetric(lv.ours.rate(), fmt.Sprintf("underlink-allocs/s-at-%d%%", pct))
			b.ReportMetric(lv.spider.rate(), fmt.Sprintf("spiderpool-allocs/s-at-%d%%", pct))
		}
	}

	sizes := []formatSize{
		maxEntries(b, env, "underlink", underlinkSizeFormat()),
		maxEntries(b, env, "Spiderpool v1.2.2", spiderSizeFormat()),
	}

	var t strings.Builder
	fmt.Fprintf(&t, "\nIPAM allocations as the pool fills: %d nodes × %d ADDs per level through the CNI binary (%d in flight per node), one apiserver, pools of %d addresses pre-filled to the level\n",
		nodes, perNode, parallel, occPoolSize)
	fmt.Fprintf(&t, "%-10s %9s %20s %21s %8s %18s\n", "occupancy", "prefilled", "underlink allocs/s", "Spiderpool allocs/s", "ratio", "Spiderpool failed")
	for _, lv := range levels {
		fmt.Fprintf(&t, "%7d %% %10d %20.1f %21.1f %7.1f× %10d of %3d\n", lv.percent, lv.filled, lv.ours.rate(), lv.spider.rate(), lv.ours.rate()/lv.spider.rate(),
			lv.spider.failed, lv.spider.failed+lv.spider.ok)
	}
	if len(levels) > 1 {
		first, last := levels[0], levels[len(levels)-1]
		ms := func(r run) float64 { return 1000 / r.rate() }
		fmt.Fprintf(&t, "wall time per allocation from %d %% to %d %%: underlink %.1f → %.1f ms (%.2f×, %+.1f ms), Spiderpool %.1f → %.1f ms (%.2f×, %+.1f ms)\n",
			first.percent, last.percent, ms(first.ours), ms(last.ours), ms(last.ours)/ms(first.ours), ms(last.ours)-ms(first.ours),
			ms(first.spider), ms(last.spider), ms(last.spider)/ms(first.spider), ms(last.spider)-ms(first.spider))
	}
	for _, lv := range levels {
		for _, r := range []run{lv.ours, lv.spider} {
			fmt.Fprintf(&t, "  %d %%, %s: %s, %d duplicates, %d failed; %s\n", lv.percent, r.name, r.wall.Round(10*time.Millisecond), r.dups, r.failed, r.cpu)
			for _, e := range r.firstErrs {
				fmt.Fprintf(&t, "    failure: %s\n", e)
			}
		}
	}
	fmt.Fprintf(&t, "largest status.allocatedIPs one pool can hold (etcd's --max-request-bytes %d binds before kube-apiserver's %d-byte request body; a custom resource is stored as JSON):\n",
		etcdMaxRequest, apiserverMaxBody)
	for _, s := range sizes {
		fmt.Fprintf(&t, "  %s\n", s)
	}
	fmt.Print(t.String())

	// A failed ADD of underlink fails the bench. Spiderpool's agent gives up an ADD after 5 conflicting
	// pool writes in a row (a kubelet would retry the pod): its failures are a figure of the table, and
	// its rate counts only the allocations that succeeded.
	for _, lv := range levels {
		if lv.ours.failed > 0 {
			b.Errorf("%s at %d %%: %d of %d ADDs failed", lv.ours.name, lv.percent, lv.ours.failed, lv.ours.failed+lv.ours.ok)
		}
		for _, r := range []run{lv.ours, lv.spider} {
			if r.dups > 0 {
				b.Errorf("%s at %d %%: %d duplicates or lost pre-filled allocations", r.name, lv.percent, r.dups)
			}
		}
	}
}

// startUnderlinkAgent runs underlink-agent for n in its namespace, as BenchmarkIPAMAllocations does, and
// waits until it serves.
func startUnderlinkAgent(b *testing.B, bed *netbed.Bed, n *occNode, bin, kubeconfig string, extra []string) *netbed.Process {
	args := []string{"--kubeconfig", kubeconfig, "--node-name", n.name, "--socket", n.socket,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--kube-api-qps", "500", "--kube-api-burst", "1000"}
	args = append(args, extra...)
	p, err := bed.Start(n.net.NS, "agent-"+n.name, exec.Command(bin, args...))
	if err != nil {
		b.Fatal(err)
	}
	cl := agentclient.New(n.socket, time.Second)
	poll.UntilEvery(b, 60*time.Second, 50*time.Millisecond, "agent on "+n.name+" serving", func() (bool, string) {
		if err := cl.Health(context.Background()); err != nil {
			return false, fmt.Sprintf("%v\n%s", err, p.Logs())
		}
		return true, ""
	})
	return p
}

// occMeasure execs plugin for ADD for the first pod of each node (one node after the other, untimed:
// the agents' first ADD), then times the ADDs of the other pods of pods (by node), parallel at a time per
// node, in the order BenchmarkIPAMAllocations does; started is called just before the clock starts. It
// counts as a duplicate an address given twice or one of prefilled, and returns how many untimed ADDs
// succeeded.
func occMeasure(b *testing.B, ctx context.Context, name, plugin string, conf func(*occNode) []byte, nodes []*occNode,
	pods map[string][]*corev1.Pod, parallel int, netns string, prefilled []netip.Addr, started func()) (run, int) {
	r := run{name: name}
	rec := newRecorder(b, &r, prefilled)
	var wg sync.WaitGroup
	one := func(n *occNode, pod *corev1.Pod) {
		ip, err := add(ctx, plugin, conf(n), netns, n.name, pod)
		rec.record(pod.Name, ip, err)
	}
	for _, n := range nodes {
		one(n, pods[n.name][0]) // one node at a time: Spiderpool's agents give up after 5 conflicts
	}
	warm := r.ok
	r.ok = 0

	started()
	cpuBefore := takeCPU()
	b.StartTimer()
	start := time.Now()
	for _, n := range nodes {
		sem := make(chan struct{}, parallel)
		for _, pod := range pods[n.name][1:] {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				one(n, pod)
			}()
		}
	}
	wg.Wait()
	r.wall = time.Since(start)
	b.StopTimer()
	r.cpu = cpuReport(cpuBefore, takeCPU(), filepath.Base(plugin), r.wall)
	return r, warm
}

// background runs f in a goroutine and returns a func that waits for its result.
func background(f func() error) (wait func() error) {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return func() error { return <-done }
}

// fetchAPIServerProfile saves a CPU profile of kube-apiserver, seconds long, to out.
func fetchAPIServerProfile(cfg *rest.Config, seconds int, out string) error {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return err
	}
	raw, err := rc.Get().AbsPath("/debug/pprof/profile").Param("seconds", fmt.Sprint(seconds)).
		Timeout(time.Duration(seconds)*time.Second + time.Minute).DoRaw(context.Background())
	if err != nil {
		return err
	}
	return os.WriteFile(out, raw, 0o644)
}

// createFillers creates n pods that are never scheduled, the holders of the pre-filled allocations,
// named as a Deployment's pods are.
func createFillers(b *testing.B, env *controlplane.Env, n, nodes int) []filler {
	out := make([]filler, n)
	errs := make(chan error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: occNamespace, Name: deploymentPodName(i)},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}}}
				if err := env.Client.Create(context.Background(), pod); err != nil {
					errs <- err
					continue
				}
				out[i] = filler{name: pod.Name, uid: string(pod.UID), containerID: randomHex(32), node: fmt.Sprintf("node%d", i%nodes+1)}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("create the pods the pools are pre-filled for: %v", err)
	}
	return out
}

// createADDPods creates, for each node, perNode pods bound to it whose ADDs a level times.
func createADDPods(b *testing.B, env *controlplane.Env, nodes []*occNode, perNode int, tag string) map[string][]*corev1.Pod {
	out := map[string][]*corev1.Pod{}
	for _, n := range nodes {
		for j := 0; j < perNode; j++ {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: occNamespace, Name: fmt.Sprintf("%s-%s-pod%03d", tag, n.name, j)},
				Spec: corev1.PodSpec{NodeName: n.name, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}}}
			if err := env.Client.Create(context.Background(), pod); err != nil {
				b.Fatal(err)
			}
			out[n.name] = append(out[n.name], pod)
		}
	}
	return out
}

// deploymentPodName is the i-th pod of a Deployment "web": its ReplicaSet's hash and a five-letter
// suffix of the alphabet Kubernetes draws from, of the lengths Kubernetes writes.
func deploymentPodName(i int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	var s [5]byte
	for k := 4; k >= 0; k-- {
		s[k] = alphabet[i%len(alphabet)]
		i /= len(alphabet)
	}
	return "web-5d8f7c9b64-" + string(s[:])
}

func randomHex(n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic(err)
	}
	return hex.EncodeToString(buf)
}

func randomUID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// firstAddrs are the n lowest addresses of r: both systems give the lowest free address, so a pool
// filled from empty holds these.
func firstAddrs(b *testing.B, r string, n int) []netip.Addr {
	set, err := iprange.ParseSet([]string{r}, 4)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]netip.Addr, 0, n)
	for _, rg := range set.Ranges() {
		for a := rg.First; len(out) < n; a = a.Next() {
			out = append(out, a)
			if a == rg.Last {
				break
			}
		}
	}
	if len(out) < n {
		b.Fatalf("%s holds fewer than %d addresses", r, n)
	}
	return out
}

// oursAllocations are underlink's records of fillers on addrs, as its agent writes them after an ADD:
// the interface, the pod, its UID, the sandbox and the node.
func oursAllocations(fillers []filler, addrs []netip.Addr) spv2.PoolIPAllocations {
	allocs := make(spv2.PoolIPAllocations, len(fillers))
	for i, f := range fillers {
		allocs[addrs[i].String()] = spv2.PoolIPAllocation{NIC: "eth0", NamespacedName: occNamespace + "/" + f.name, PodUID: f.uid, ContainerID: f.containerID, Node: f.node}
	}
	return allocs
}

// spiderRecord is one allocation as Spiderpool v1.2.2 records it in status.allocatedIPs: the pod and
// its UID only (the interface and the node are in its SpiderEndpoint).
type spiderRecord struct {
	Pod    string `json:"pod"`
	PodUID string `json:"podUid"`
}

// spiderAllocatedIPs is status.allocatedIPs as Spiderpool's agent writes it: the map of address to
// record, JSON-encoded (keys sorted), nil when empty.
func spiderAllocatedIPs(fillers []filler, addrs []netip.Addr) *string {
	if len(fillers) == 0 {
		return nil
	}
	m := make(map[string]spiderRecord, len(fillers))
	for i, f := range fillers {
		m[addrs[i].String()] = spiderRecord{Pod: occNamespace + "/" + f.name, PodUID: f.uid}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	s := string(raw)
	return &s
}

// writeOursFill sets underlink's pool's status to fillers on addrs, and checks that it is what
// underlink's allocator writes for those allocations: it loads, and renders back the same bytes.
func writeOursFill(b *testing.B, env *controlplane.Env, name string, fillers []filler, addrs []netip.Addr) {
	var p spv2.SpiderIPPool
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: name}, &p); err != nil {
		b.Fatal(err)
	}
	enc, err := oursAllocations(fillers, addrs).Encode()
	if err != nil {
		b.Fatal(err)
	}
	total, allocated := int64(occPoolSize), int64(len(fillers))
	p.Status = spv2.IPPoolStatus{AllocatedIPs: enc, TotalIPCount: &total, AllocatedIPCount: &allocated}
	pool, err := ipam.Load(&p)
	if err != nil {
		b.Fatalf("underlink's allocator refuses the pre-filled pool: %v", err)
	}
	if !pool.StatusCurrent(p.Status) || pool.Total() != occPoolSize {
		b.Fatalf("the pre-filled status is not what underlink's allocator writes (total %d)", pool.Total())
	}
	if err := env.Client.Status().Update(context.Background(), &p); err != nil {
		b.Fatal(err)
	}
}

// writeSpiderFill sets Spiderpool's pool's status to fillers on addrs in Spiderpool's format, with the
// counts its agent and controller keep.
func writeSpiderFill(b *testing.B, env *controlplane.Env, name string, fillers []filler, addrs []netip.Addr) {
	var p spv2.SpiderIPPool
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: name}, &p); err != nil {
		b.Fatal(err)
	}
	total, allocated := int64(occPoolSize), int64(len(fillers))
	p.Status = spv2.IPPoolStatus{AllocatedIPs: spiderAllocatedIPs(fillers, addrs), TotalIPCount: &total, AllocatedIPCount: &allocated}
	if err := env.Client.Status().Update(context.Background(), &p); err != nil {
		b.Fatal(err)
	}
}

// fillLost counts the pre-filled allocations of pool that are gone or changed hands, and a count of
// allocations other than the pre-filled ones plus the ADDs that succeeded.
func fillLost(b *testing.B, env *controlplane.Env, pool string, fillers []filler, addrs []netip.Addr, added int) int {
	var p spv2.SpiderIPPool
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: pool}, &p); err != nil {
		b.Fatal(err)
	}
	allocs, err := spv2.ParseAllocations(p.Status)
	if err != nil {
		b.Fatal(err)
	}
	lost := 0
	for i, f := range fillers {
		if a, ok := allocs[addrs[i].String()]; !ok || a.PodUID != f.uid {
			lost++
			if lost <= 3 {
				b.Errorf("SpiderIPPool %s: the pre-filled allocation of %s to %s is now %+v (held %v)", pool, addrs[i], f.name, a, ok)
			}
		}
	}
	if len(allocs) != len(fillers)+added {
		b.Errorf("SpiderIPPool %s holds %d allocations, want %d pre-filled + %d added", pool, len(allocs), len(fillers), added)
		lost++
	}
	return lost
}

// fetchAgentProfile saves a CPU profile of the underlink-agent listening for pprof on 127.0.0.1:6060
// inside n.
func fetchAgentProfile(n *netbed.Netns, seconds int, out string) error {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := n.Do(func(ns.NetNS) error {
			var err error
			conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}}}
	var resp *http.Response
	var err error
	for i := 0; i < 50; i++ {
		if resp, err = c.Get(fmt.Sprintf("http://127.0.0.1:6060/debug/pprof/profile?seconds=%d", seconds)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sizeFormat builds a pool of one system with the n lowest addresses of 172.111.0.0/16 allocated, in
// that system's status format.
type sizeFormat struct {
	// entry describes what one allocation records.
	entry string
	pool  func(n int) *spv2.SpiderIPPool
}

// sizeFillers are pods of realistic names and sandbox IDs for the size search, spread over 10 nodes.
func sizeFillers(n int) []filler {
	out := make([]filler, n)
	for i := range out {
		out[i] = filler{name: deploymentPodName(i), uid: randomUID(), containerID: randomHex(32), node: fmt.Sprintf("node%d", i%10+1)}
	}
	return out
}

const (
	sizeSubnet = "172.111.0.0/16"
	sizeRange  = "172.111.0.1-172.111.255.254"
	sizeMax    = 65534
	// sizeGateway is the last address, out of reach of the search.
	sizeGateway = "172.111.255.254"
)

func underlinkSizeFormat() sizeFormat {
	fillers := sizeFillers(sizeMax)
	gw := sizeGateway
	return sizeFormat{
		entry: `interface, pod, podUid, containerID (64 hex), node`,
		pool: func(n int) *spv2.SpiderIPPool {
			addrs := sizeAddrs(n)
			enc, err := oursAllocations(fillers[:n], addrs).Encode()
			if err != nil {
				panic(err)
			}
			total, allocated := int64(sizeMax-1), int64(n)
			return &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "size-underlink"},
				Spec:   spv2.IPPoolSpec{Subnet: sizeSubnet, Gateway: &gw, IPs: []string{sizeRange}},
				Status: spv2.IPPoolStatus{AllocatedIPs: enc, TotalIPCount: &total, AllocatedIPCount: &allocated}}
		},
	}
}

func spiderSizeFormat() sizeFormat {
	fillers := sizeFillers(sizeMax)
	gw := sizeGateway
	ipv4 := int64(4)
	return sizeFormat{
		entry: `pod, podUid`,
		pool: func(n int) *spv2.SpiderIPPool {
			total, allocated := int64(sizeMax-1), int64(n)
			return &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "size-spiderpool"},
				Spec:   spv2.IPPoolSpec{IPVersion: &ipv4, Subnet: sizeSubnet, Gateway: &gw, IPs: []string{sizeRange}},
				Status: spv2.IPPoolStatus{AllocatedIPs: spiderAllocatedIPs(fillers[:n], sizeAddrs(n)), TotalIPCount: &total, AllocatedIPCount: &allocated}}
		},
	}
}

var (
	sizeAddrsOnce sync.Once
	sizeAddrsAll  []netip.Addr
)

func sizeAddrs(n int) []netip.Addr {
	sizeAddrsOnce.Do(func() {
		for a := netip.MustParseAddr("172.111.0.1"); len(sizeAddrsAll) < sizeMax; a = a.Next() {
			sizeAddrsAll = append(sizeAddrsAll, a)
		}
	})
	return sizeAddrsAll[:n]
}

// formatSize is what maxEntries found for one format.
type formatSize struct {
	name, entry string
	// perEntry is the bytes one more allocation adds to the object's JSON.
	perEntry float64
	// etcd and apiserver are the most allocations whose encoded object fits each limit.
	etcd, apiserver int
	// real is the most allocations the apiserver accepted in a status write; refused says why it
	// refused one more, and over why it refused an object over its request limit.
	real          int
	refused, over string
	realBytes     int
}

func (s formatSize) String() string {
	return fmt.Sprintf("%s (%s; %.1f bytes per allocation in the object's JSON): %d allocations fit etcd's limit and %d the apiserver's, computed from the encoded object; by real writes: %d accepted (object %d bytes), %d refused (%s); over the apiserver's limit: %s",
		s.name, s.entry, s.perEntry, s.etcd, s.apiserver, s.real, s.realBytes, s.real+1, s.refused, s.over)
}

// maxEntries finds the most allocations a pool of format can hold: from the size of the object as a
// client sends it (its JSON, with the metadata the apiserver returned, managedFields included), against
// each limit, then by writing it to the apiserver.
func maxEntries(b *testing.B, env *controlplane.Env, name string, f sizeFormat) formatSize {
	ctx := context.Background()
	obj := f.pool(0)
	status := obj.Status
	if err := env.Client.Create(ctx, obj); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := env.Client.Delete(ctx, obj); err != nil {
			b.Errorf("delete SpiderIPPool %s: %v", obj.Name, err)
		}
	}()
	obj.Status = status
	encoded := func(n int) int {
		p := f.pool(n)
		c := obj.DeepCopy()
		c.Status = p.Status
		c.APIVersion, c.Kind = spv2.GroupVersion.String(), "SpiderIPPool"
		raw, err := json.Marshal(c)
		if err != nil {
			b.Fatal(err)
		}
		return len(raw)
	}
	// largest is the most n in [0, sizeMax] with ok(n), ok being monotone.
	largest := func(ok func(int) bool) int {
		lo, hi := 0, sizeMax+1 // ok(lo), !ok(hi)
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if ok(mid) {
				lo = mid
			} else {
				hi = mid
			}
		}
		return lo
	}
	s := formatSize{name: name, entry: f.entry}
	s.perEntry = float64(encoded(2000)-encoded(1000)) / 1000
	s.etcd = largest(func(n int) bool { return encoded(n) <= etcdMaxRequest })
	s.apiserver = largest(func(n int) bool { return encoded(n) <= apiserverMaxBody })

	write := func(n int) error {
		var cur spv2.SpiderIPPool
		if err := env.Client.Get(ctx, types.NamespacedName{Name: obj.Name}, &cur); err != nil {
			b.Fatal(err)
		}
		cur.Status = f.pool(n).Status
		return env.Client.Status().Update(ctx, &cur)
	}
	// Search near the computed limit first: the real one is within a few allocations of it.
	lo, hi := s.etcd-200, s.etcd+200
	if lo < 0 {
		lo = 0
	}
	if err := write(lo); err != nil {
		b.Fatalf("%s: a status of %d allocations was refused: %v", name, lo, err)
	}
	hiErr := write(hi)
	if hiErr == nil {
		lo, hi = hi, s.apiserver+1
		hiErr = write(hi)
	}
	if hiErr == nil {
		b.Fatalf("%s: a status of %d allocations (%d bytes) was accepted, over the apiserver's limit", name, hi, encoded(hi))
	}
	lastErr := hiErr
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if err := write(mid); err == nil {
			lo = mid
		} else {
			hi, lastErr = mid, err
		}
	}
	s.real, s.realBytes = lo, encoded(lo)
	s.refused = lastErr.Error()
	// Well over the apiserver's limit, whatever metadata the apiserver adds.
	over := s.apiserver + s.apiserver/20
	if err := write(over); err != nil {
		s.over = fmt.Sprintf("%d allocations (%d bytes): %v", over, encoded(over), err)
	} else {
		s.over = fmt.Sprintf("%d allocations (%d bytes) accepted", over, encoded(over))
	}
	return s
}
