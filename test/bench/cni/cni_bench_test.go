//go:build integration

package cni

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	agentclient "github.com/underlink/underlink/cni/agent/client"
	"github.com/underlink/underlink/cni/coordinator"
	"github.com/underlink/underlink/cni/ipam/protocol"
	cniprobe "github.com/underlink/underlink/cni/probe"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/netbed"
)

// floorConf is macvlan + host-local: no cluster IPAM, no route hijacking (the peer in docs/BENCHMARKS.md).
const floorConf = `{"cniVersion":"1.1.0","name":"floor","plugins":[
 {"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"host-local","dataDir":%q,
  "ranges":[[{"subnet":"172.110.2.0/24","gateway":"172.110.0.1"}]]}}]}`

// coordinatorPlugin is the seed's cluster-a underlink-coordinator, as admission generates it.
const coordinatorPlugin = `{"type":"underlink-coordinator","mode":"underlay","hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],
  "serviceCIDR":["10.233.0.0/18"],"clusterCIDR":["172.110.0.0/16"],"podRPFilter":0}`

// hijackConf is a decomposition of the full chain: host-local in place of underlink-ipam, so it adds only
// the coordinator (and its process start) to the floor.
const hijackConf = `{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","plugins":[
 {"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"host-local","dataDir":%q,
  "ranges":[[{"subnet":"172.110.1.0/24","gateway":"172.110.0.1"}]]}},
 ` + coordinatorPlugin + `]}`

// fullConf is the chain the product writes for the seed's cluster-a: macvlan with underlink-ipam, then
// underlink-coordinator.
const fullConf = `{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","plugins":[
 {"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"underlink-ipam","socket":%q,"ipv4Pools":["cluster-a"]}},
 ` + coordinatorPlugin + `]}`

// detectConf is fullConf on the network with detection (startIPAM's kube-system/macvlan-detect, pool
// bench-detect) with the given ipam detection fields, e.g. `"detectIPConflict":true`.
func detectConf(fields string) string {
	return `{"cniVersion":"1.1.0","name":"kube-system-macvlan-detect","plugins":[
 {"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"underlink-ipam","socket":%q,"ipv4Pools":["` + detectPool + `"],"defaultRouteNIC":"eth0",` + fields + `}},
 ` + coordinatorPlugin + `]}`
}

// net1Conf is a second coordinated interface of a pod: macvlan on ens224 with host-local on its own
// subnet, then the coordinator, which gives the interface a routing table and a rule of its own.
const net1Conf = `{"cniVersion":"1.1.0","name":"kube-system-macvlan-net1","plugins":[
 {"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"host-local","dataDir":%q,
  "ranges":[[{"subnet":"172.110.5.0/24","gateway":"172.110.0.1"}]]}},
 ` + coordinatorPlugin + `]}`

// row is one line of BenchmarkCNIAdd's table: what one pod's ADD runs.
type row struct {
	name, key string
	// prepare makes what pod i's ADD needs (a namespace), untimed, and returns the timed ADD and the
	// untimed DEL that follows it.
	prepare func(i int) (add, del func() error, err error)
	// inProcess rows exec nothing: they have no process CPU.
	inProcess bool
	// vs is the key of the row its ratios are to; empty: the floor.
	vs   string
	took []time.Duration
	cpu  time.Duration
}

// BenchmarkCNIAdd times CNI ADD on one node of a netbed, pod by pod, of
//
//   - the floor: macvlan + host-local;
//   - hijack only: macvlan + host-local + underlink-coordinator (the coordinator's share);
//   - full: the chain the product writes, macvlan (ipam underlink-ipam) + underlink-coordinator, with a
//     real underlink-agent in the node's namespace writing the seed's cluster-a SpiderIPPool on a real
//     apiserver, through the bed's loopback relay;
//   - Spiderpool v1.2.2's full chain, macvlan (ipam spiderpool) + its coordinator in underlay mode, with
//     a real spiderpool-agent on the same apiserver, measured after underlink's rows with underlink's
//     agent stopped, interleaved with a floor of its own (spiderpool_test.go);
//
// and, to say where the full chain's time goes, host-local and underlink-ipam alone (each exec'd as
// macvlan execs it) and the agent's Allocate alone (one request on its socket from the benchmark). The
// rows are interleaved pod by pod, in an order that rotates, so all see the same machine load; namespace
// creation and DEL are not timed. It prints a table (n, p50, p99, ratio to the floor, CPU of the
// processes each ADD exec'd) and reports the same as metrics. Run it with a fixed count, e.g.
// -benchtime=200x.
func BenchmarkCNIAdd(b *testing.B) {
	if probe(b) {
		return
	}
	ctx := context.Background()
	env := controlplane.StartEnv(b, controlplane.EnvOptions{})
	bed := netbed.New(b)
	bin := bed.PluginDir("underlink-coordinator", "underlink-ipam")
	node := bed.Node(netbed.NodeSpec{Name: "a-node1", Cluster: bed.Cluster(netbed.ClusterA), IP: netip.MustParsePrefix("10.7.168.73/24")})
	agent := startIPAM(b, env, bed, node)
	// Plugin logs (the coordinator logs each ADD) go to a file, as a runtime captures them, not between
	// the benchmark's lines.
	stderr, err := os.Create(filepath.Join(bed.Dir(), "plugins.stderr"))
	if err != nil {
		b.Fatal(err)
	}
	defer stderr.Close()
	execer := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: stderr}, PluginDecoder: version.PluginDecoder{}}
	cni := &netbed.CNI{Node: node.NS, Config: libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(bed.Dir(), "cni-cache"), execer)}
	sp := newSpiderpool(b, bed, execer)
	scratch := bed.Pod("scratch")

	parse := func(format string, arg string) *libcni.NetworkConfigList {
		l, err := netbed.ParseConfList(fmt.Appendf(nil, format, arg))
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	n := b.N
	// The pods the agent allocates for exist before anything is timed, as scheduled pods do: the full
	// row's with their default network (kube-system/macvlan-conf, as admission injects it), so the agent
	// pre-allocates for them; the allocate-on-ADD rows' without a network annotation, so it does not.
	// The bound-at-ADD row's pod is created just before its ADD. The other rows pass the same CNI_ARGS
	// for pods that do not exist.
	pods := map[string][]*corev1.Pod{}
	for _, key := range []string{"full-on-add", "ipam", "agent"} {
		pods[key] = agent.pods(b, "bench-"+key, node.Spec.Name, n)
	}
	pods["full"] = make([]*corev1.Pod, n)
	for i := range n {
		pods["full"][i] = agent.scheduledPod(b, fmt.Sprintf("bench-full-%d", i), node.Spec.Name)
	}
	// The detection rows' pods are on the network with detection, pre-allocated from its pool.
	for _, key := range []string{"full-conflict", "full-gateway", "full-detect"} {
		pods[key] = make([]*corev1.Pod, n)
		for i := range n {
			pods[key][i] = agent.pod(b, fmt.Sprintf("bench-%s-%d", key, i), node.Spec.Name, map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/" + detectNetwork})
		}
	}
	pods["full-bound-at-add"] = make([]*corev1.Pod, n)
	identity := func(key string, i int) (id string, args [][2]string) {
		if p := pods[key]; p != nil && p[i] != nil {
			return p[i].Name, netbed.PodArgs(podNamespace, p[i].Name, string(p[i].UID))
		}
		id = fmt.Sprintf("bench-%s-%d", key, i)
		return id, netbed.PodArgs(podNamespace, id, "")
	}
	// chain runs a configuration list through libcni for pod i in a new namespace. With bind, the pod
	// is created once its namespace exists, right before the ADD: the agent's pre-allocation gets only
	// the head start of the pod's watch event over the plugins' execs, where a kubelet gives it the
	// tens of milliseconds from binding to the sandbox's ADD.
	chain := func(cni *netbed.CNI, key string, list *libcni.NetworkConfigList, bind bool) func(int) (func() error, func() error, error) {
		return func(i int) (func() error, func() error, error) {
			id := fmt.Sprintf("bench-%s-%d", key, i)
			pod, err := bed.NewNetns(id)
			if err != nil {
				return nil, nil, err
			}
			if bind {
				pods[key][i] = agent.scheduledPod(b, id, node.Spec.Name)
			}
			id, args := identity(key, i)
			rt := netbed.Attachment(id, pod, "eth0", args...)
			add := func() error { _, err := cni.Add(ctx, list, rt); return err }
			return add, func() error { return cni.Del(ctx, list, rt) }, nil
		}
	}
	// alone execs the IPAM plugin of list's first plugin for pod i as macvlan execs it: from the node's
	// namespace, with macvlan's network config on stdin.
	alone := func(key string, list *libcni.NetworkConfigList) func(int) (func() error, func() error, error) {
		stdin := pluginStdin(b, list)
		var ipamType struct {
			IPAM struct{ Type string } `json:"ipam"`
		}
		if err := json.Unmarshal(stdin, &ipamType); err != nil {
			b.Fatal(err)
		}
		plugin := filepath.Join(bin, ipamType.IPAM.Type)
		return func(i int) (func() error, func() error, error) {
			id, args := identity(key, i)
			run := func(cmd string) error {
				a := &invoke.Args{Command: cmd, ContainerID: id, NetNS: scratch.Path(), IfName: "eth0", Path: bin, PluginArgs: args}
				return node.NS.Do(func(ns.NetNS) error {
					if cmd == "ADD" {
						_, err := invoke.ExecPluginWithResult(ctx, plugin, stdin, a, execer)
						return err
					}
					return invoke.ExecPluginWithoutResult(ctx, plugin, stdin, a, execer)
				})
			}
			return func() error { return run("ADD") }, func() error { return run("DEL") }, nil
		}
	}
	// second attaches net1 to a pod whose eth0 the hijack chain attached (untimed): the timed ADD is the
	// second coordinated interface's alone.
	second := func(i int) (func() error, func() error, error) {
		id := fmt.Sprintf("bench-net1-%d", i)
		pod, err := bed.NewNetns(id)
		if err != nil {
			return nil, nil, err
		}
		eth0List, net1List := parse(hijackConf, bed.Dir()+"/host-local-net1-eth0"), parse(net1Conf, bed.Dir()+"/host-local-net1")
		eth0, net1 := netbed.Attachment(id, pod, "eth0"), netbed.Attachment(id, pod, "net1")
		if _, err := cni.Add(ctx, eth0List, eth0); err != nil {
			return nil, nil, err
		}
		add := func() error { _, err := cni.Add(ctx, net1List, net1); return err }
		del := func() error { return errors.Join(cni.Del(ctx, net1List, net1), cni.Del(ctx, eth0List, eth0)) }
		return add, del, nil
	}
	calls := agentclient.New(agent.socket, 20*time.Second)
	busy := busyNode(b, bed, bin, execer)
	floor, full := parse(floorConf, bed.Dir()+"/host-local-floor"), parse(fullConf, agent.socket)
	rows := []*row{
		{name: "floor: macvlan + host-local", key: "floor", prepare: chain(cni, "floor", floor, false)},
		{name: "hijack only: macvlan + host-local + coordinator", key: "hijack", prepare: chain(cni, "hijack", parse(hijackConf, bed.Dir()+"/host-local-hijack"), false)},
		{name: "full: macvlan + underlink-ipam + coordinator", key: "full", prepare: chain(cni, "full", full, false)},
		{name: "  full, pod bound just before its ADD", key: "full-bound-at-add", prepare: chain(cni, "full-bound-at-add", full, true)},
		{name: "  full, allocated on ADD (no pre-allocation)", key: "full-on-add", prepare: chain(cni, "full-on-add", full, false)},
		{name: "  full + detectIPConflict (ARP probe, 30 ms window)", key: "full-conflict", vs: "full", prepare: chain(cni, "full-conflict", parse(detectConf(`"detectIPConflict":true`), agent.socket), false)},
		{name: "  full + detectGateway (the gateway answers)", key: "full-gateway", vs: "full", prepare: chain(cni, "full-gateway", parse(detectConf(`"detectGateway":true`), agent.socket), false)},
		{name: "  full + both detections", key: "full-detect", vs: "full", prepare: chain(cni, "full-detect", parse(detectConf(`"detectIPConflict":true,"detectGateway":true`), agent.socket), false)},
		{name: "  hijack only, a second interface (net1: table, rule)", key: "net1", vs: "hijack", prepare: second},
		{name: "  floor, on a node with 110 pods", key: "floor-busy", prepare: chain(busy, "floor-busy", parse(floorConf, bed.Dir()+"/host-local-floor-busy"), false)},
		{name: "  hijack only, on a node with 110 pods", key: "hijack-busy", vs: "floor-busy", prepare: chain(busy, "hijack-busy", parse(hijackConf, bed.Dir()+"/host-local-hijack-busy"), false)},
		{name: "  host-local alone, exec'd as macvlan does", key: "host-local", prepare: alone("host-local", floor)},
		{name: "  underlink-ipam alone, exec'd as macvlan does", key: "ipam", prepare: alone("ipam", full)},
		{name: "  agent Allocate alone, one request on its socket", key: "agent", inProcess: true, prepare: func(i int) (func() error, func() error, error) {
			p := pods["agent"][i]
			req := protocol.Request{ContainerID: p.Name, IfName: "eth0", Netns: scratch.Path(),
				Pod: protocol.Pod{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID)}, IPv4Pools: []string{"cluster-a"}}
			add := func() error { _, err := calls.Allocate(ctx, req); return err }
			return add, func() error { _, err := calls.Release(ctx, req); return err }, nil
		}},
	}

	b.ResetTimer()
	b.StopTimer()
	measure(b, rows, n)
	// Spiderpool's chain, with its agent and a floor of its own, after underlink's rows and with
	// underlink's agent stopped (spiderpool_test.go).
	if sp != nil {
		rows = append(rows, sp.run(b, env, node, agent, cni, n)...)
	}
	report(b, rows)
	reportSpiderpool(b, rows)
	fullTook, boundTook := agent.answeredFromPreallocation("bench-full-"), agent.answeredFromPreallocation("bench-full-bound-at-add-")
	fmt.Printf("ADDs answered from a pre-allocation (agent log): full %d of %d, bound just before its ADD %d of %d\n", len(fullTook), n, len(boundTook), n)
	if len(fullTook) > 0 && len(boundTook) > 0 {
		fmt.Printf("the agent's answer to those ADDs (its log's took), p50 / p99 ms: full %.2f / %.2f, bound just before its ADD %.2f / %.2f\n",
			percentile(fullTook, 0.5), percentile(fullTook, 0.99), percentile(boundTook, 0.5), percentile(boundTook, 0.99))
	}
}

// measure runs the ADD of each row for pods 0 to n-1, interleaved pod by pod in an order that rotates, so
// all rows see the same machine load, and times the ADD alone: preparing the pod and the DEL that follows
// are untimed. A failed ADD or DEL fails the benchmark.
func measure(b *testing.B, rows []*row, n int) {
	for i := range n {
		for k := range rows {
			r := rows[(i+k)%len(rows)]
			add, del, err := r.prepare(i)
			if err != nil {
				b.Fatal(err)
			}
			cpu := childrenCPU()
			b.StartTimer()
			start := time.Now()
			err = add()
			took := time.Since(start)
			b.StopTimer()
			r.cpu += childrenCPU() - cpu
			if err != nil {
				b.Fatalf("%s: ADD #%d: %v", r.key, i, err)
			}
			r.took = append(r.took, took)
			if err := del(); err != nil {
				b.Fatalf("%s: DEL #%d: %v", r.key, i, err)
			}
		}
	}
}

// report prints the table and reports each row's figures as metrics.
func report(b *testing.B, rows []*row) {
	p := percentile
	floor := rows[0]
	var t strings.Builder
	fmt.Fprintf(&t, "\nCNI ADD on one node, %d pods per row, interleaved pod by pod (namespace creation and DEL untimed)\n", len(floor.took))
	fmt.Fprintf(&t, "%-50s %5s %9s %9s %9s %9s %12s\n", "chain", "n", "p50 ms", "p99 ms", "p50/floor", "p99/floor", "CPU/ADD ms")
	for _, r := range rows {
		p50, p99 := p(r.took, 0.50), p(r.took, 0.99)
		cpu := "-"
		if !r.inProcess {
			perADD := float64(r.cpu.Microseconds()) / 1000 / float64(len(r.took))
			cpu = fmt.Sprintf("%.2f", perADD)
			b.ReportMetric(perADD, r.key+"-cpu-ms")
		}
		vs := floor
		if r.vs != "" {
			vs = rows[slices.IndexFunc(rows, func(o *row) bool { return o.key == r.vs })]
		}
		r50, r99 := p50/p(vs.took, 0.50), p99/p(vs.took, 0.99)
		fmt.Fprintf(&t, "%-50s %5d %9.2f %9.2f %8.2f× %8.2f× %12s\n", r.name, len(r.took), p50, p99, r50, r99, cpu)
		b.ReportMetric(p50, r.key+"-p50-ms")
		b.ReportMetric(p99, r.key+"-p99-ms")
		if r != vs {
			b.ReportMetric(r50, r.key+"-p50-ratio")
			b.ReportMetric(r99, r.key+"-p99-ratio")
		}
	}
	full := rows[slices.IndexFunc(rows, func(r *row) bool { return r.key == "full" })]
	r50, r99 := p(full.took, 0.50)/p(floor.took, 0.50), p(full.took, 0.99)/p(floor.took, 0.99)
	verdict := "met"
	if worst := max(r50, r99); worst > 1.5 {
		verdict = fmt.Sprintf("missed, %.0f%% over", (worst/1.5-1)*100)
	}
	fmt.Fprintf(&t, "goal full/floor ≤ 1.5× (p50 %.2f×, p99 %.2f×): %s\n", r50, r99, verdict)
	for _, key := range []string{"full-conflict", "full-gateway", "full-detect"} {
		if i := slices.IndexFunc(rows, func(r *row) bool { return r.key == key }); i >= 0 {
			d := rows[i]
			fmt.Fprintf(&t, "%s adds to full: p50 %+.2f ms, p99 %+.2f ms (goal: detection ≤ 50 ms at p99)\n", key, p(d.took, 0.50)-p(full.took, 0.50), p(d.took, 0.99)-p(full.took, 0.99))
		}
	}
	fmt.Fprintf(&t, "CPU/ADD: user+system time of the plugin processes the ADD exec'd (macvlan execs its IPAM plugin)\n")
	fmt.Fprintf(&t, "on a node with 110 pods: ratios to the floor on that node, whose host veths, addresses and routes every coordinator ADD reads past\n")
	fmt.Print(t.String())
}

// busyPods is how many pods busyNode holds: the kubelet's default --max-pods.
const busyPods = 110

// busyNode makes a second node of bed, a-node2, with busyPods pods attached through the hijack chain
// (macvlan + host-local + underlink-coordinator, addresses from 172.110.3.0/24), which stay until the
// bed goes: each leaves a host veth, its IPv6 link-local address and route, and a host route on the node.
func busyNode(b *testing.B, bed *netbed.Bed, bin string, execer invoke.Exec) *netbed.CNI {
	b.Helper()
	node := bed.Node(netbed.NodeSpec{Name: "a-node2", Cluster: bed.Cluster(netbed.ClusterA), IP: netip.MustParsePrefix("10.7.168.74/24")})
	cni := &netbed.CNI{Node: node.NS, Config: libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(bed.Dir(), "cni-cache-busy"), execer)}
	resident, err := netbed.ParseConfList(fmt.Appendf(nil, strings.Replace(hijackConf, "172.110.1.0/24", "172.110.3.0/24", 1), bed.Dir()+"/host-local-resident"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range busyPods {
		id := fmt.Sprintf("resident-%d", i)
		pod, err := bed.NewNetns(id)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cni.Add(context.Background(), resident, netbed.Attachment(id, pod, "eth0")); err != nil {
			b.Fatalf("resident pod %d on a-node2: %v", i, err)
		}
	}
	return cni
}

// BenchmarkCoordinatorAddInProcess times underlink-coordinator's own ADD work (netlink and sysctl calls,
// no process start) on a pod that macvlan + host-local attached beforehand, untimed. Next to
// BenchmarkCNIAdd it tells the coordinator's work from the cost of starting one more plugin process.
func BenchmarkCoordinatorAddInProcess(b *testing.B) {
	if probe(b) {
		return
	}
	bed := netbed.New(b)
	bin := bed.PluginDir()
	node := bed.Node(netbed.NodeSpec{Name: "a-node1", Cluster: bed.Cluster(netbed.ClusterA), IP: netip.MustParsePrefix("10.7.168.73/24")})
	cni := bed.CNI(node.NS, bin)
	ctx := context.Background()
	floor, err := netbed.ParseConfList(fmt.Appendf(nil, floorConf, bed.Dir()+"/host-local-floor"))
	if err != nil {
		b.Fatal(err)
	}
	// The hook runs after each step: the announcement, the last one, took the time since the one before.
	var prevStep time.Time
	var announce []time.Duration
	plugin := &coordinator.Plugin{HostNS: node.NS, Hook: func(step string) error {
		now := time.Now()
		if strings.HasPrefix(step, "pod-announce ") {
			announce = append(announce, now.Sub(prevStep))
		}
		prevStep = now
		return nil
	}}
	var took []time.Duration
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		pod, err := bed.NewNetns(fmt.Sprintf("inproc-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		rt := netbed.Attachment(fmt.Sprintf("inproc-%d", i), pod, "eth0")
		prev, err := cni.Add(ctx, floor, rt)
		if err != nil {
			b.Fatal(err)
		}
		prevJSON, err := json.Marshal(prev)
		if err != nil {
			b.Fatal(err)
		}
		args := &skel.CmdArgs{ContainerID: rt.ContainerID, Netns: pod.Path(), IfName: "eth0", StdinData: fmt.Appendf(nil,
			`{"cniVersion":"1.1.0","name":"floor","type":"underlink-coordinator","hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],
			  "serviceCIDR":["10.233.0.0/18"],"clusterCIDR":["172.110.0.0/16"],"podRPFilter":0,"prevResult":%s}`, prevJSON)}
		b.StartTimer()
		start := time.Now()
		_, err = plugin.Add(args)
		took = append(took, time.Since(start))
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if err := plugin.Del(args); err != nil {
			b.Fatal(err)
		}
		if err := cni.Del(ctx, floor, rt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(percentile(took, 0.50), "p50-ms")
	b.ReportMetric(percentile(took, 0.99), "p99-ms")
	b.ReportMetric(percentile(announce, 0.50), "announce-p50-ms")
	b.ReportMetric(percentile(announce, 0.99), "announce-p99-ms")
	fmt.Printf("coordinator ADD in process, %d pods: p50 %.2f ms, p99 %.2f ms; of which the announcement (gratuitous ARP): p50 %.3f ms, p99 %.3f ms\n",
		len(took), percentile(took, 0.5), percentile(took, 0.99), percentile(announce, 0.5), percentile(announce, 0.99))
}

// BenchmarkProbeInProcess times underlink-ipam's detection alone (cni/probe: open the pod interface, bring
// it up, probe, take it down), as the IPAM runs it on the interface macvlan made, down and without an
// address: conflict detection (ARP probes, no holder: the whole window), gateway detection (the
// segment's gateway answers), and both.
func BenchmarkProbeInProcess(b *testing.B) {
	if probe(b) {
		return
	}
	bed := netbed.New(b)
	a := bed.Cluster(netbed.ClusterA)
	node := bed.Node(netbed.NodeSpec{Name: "a-node1", Cluster: a, IP: netip.MustParsePrefix("10.7.168.73/24")})
	nh, err := node.NS.Netlink()
	if err != nil {
		b.Fatal(err)
	}
	defer nh.Close()
	parent, err := nh.LinkByName(netbed.UnderlayNIC)
	if err != nil {
		b.Fatal(err)
	}
	addr := cniprobe.Address{Addr: netip.MustParseAddr("172.110.1.10"), Gateway: a.Spec.Gateway.Addr()}
	took := map[string][]time.Duration{}
	kinds := []struct {
		key  string
		opts cniprobe.Options
	}{{"conflict", cniprobe.Options{Conflict: true}}, {"gateway", cniprobe.Options{Gateway: true}}, {"both", cniprobe.Options{Conflict: true, Gateway: true}}}
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		pod, err := bed.NewNetns(fmt.Sprintf("probe-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "eth0", ParentIndex: parent.Attrs().Index, Namespace: netlink.NsFd(int(pod.Fd()))}, Mode: netlink.MACVLAN_MODE_BRIDGE}
		if err := nh.LinkAdd(mv); err != nil {
			b.Fatal(err)
		}
		for k := range kinds {
			kind := kinds[(i+k)%len(kinds)]
			b.StartTimer()
			start := time.Now()
			var l *cniprobe.Link
			err := pod.Do(func(ns.NetNS) error {
				var err error
				l, err = cniprobe.Open("eth0", cniprobe.Families{IPv4: true})
				return err
			})
			if err == nil {
				err = errors.Join(cniprobe.Detect(l, []cniprobe.Address{addr}, kind.opts), l.Close())
			}
			took[kind.key] = append(took[kind.key], time.Since(start))
			b.StopTimer()
			if err != nil {
				b.Fatalf("%s: %v", kind.key, err)
			}
		}
	}
	for _, kind := range kinds {
		d := took[kind.key]
		b.ReportMetric(percentile(d, 0.50), kind.key+"-p50-ms")
		b.ReportMetric(percentile(d, 0.99), kind.key+"-p99-ms")
		fmt.Printf("detection alone in process (open, up, probe, down), %-8s %d ADDs: p50 %.2f ms, p99 %.2f ms\n", kind.key+":", len(d), percentile(d, 0.5), percentile(d, 0.99))
	}
}

// probe says this call is the testing package's first one, with b.N = 1, made before the run proper when
// -benchtime asks for a fixed count above 1 (200x): setting up for one pod would only double the run's
// time and print a table of one.
func probe(b *testing.B) bool {
	f := flag.Lookup("test.benchtime")
	if b.N != 1 || f == nil {
		return false
	}
	count, ok := strings.CutSuffix(f.Value.String(), "x")
	n, err := strconv.Atoi(count)
	return ok && err == nil && n > 1
}

// childrenCPU is the user and system time of this process's children that have been waited for: the
// plugin processes libcni ran, and those they ran in turn and waited for (macvlan's IPAM plugin).
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pluginStdin is what the runtime gives the first plugin of list on stdin, and that plugin (macvlan) gives
// its IPAM plugin: the plugin's object with the list's name and cniVersion.
func pluginStdin(b *testing.B, list *libcni.NetworkConfigList) []byte {
	var conf map[string]any
	if err := json.Unmarshal(list.Plugins[0].Bytes, &conf); err != nil {
		b.Fatal(err)
	}
	conf["name"], conf["cniVersion"] = list.Name, list.CNIVersion
	out, err := json.Marshal(conf)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// percentile of durations, in milliseconds (nearest rank).
func percentile(d []time.Duration, q float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	idx := max(0, min(int(q*float64(len(s))+0.5)-1, len(s)-1))
	return float64(s[idx].Microseconds()) / 1000
}
