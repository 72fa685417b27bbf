//go:build integration

package cni

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
	"github.com/underlink/underlink/test/spiderpoolagent"
)

// Spiderpool v1.2.2's full chain in BenchmarkCNIAdd: macvlan with Spiderpool's IPAM plugin, then its
// coordinator in underlay mode, with a real spiderpool-agent in the node's namespace on the same apiserver.
const (
	// spiderpoolSocket is where Spiderpool's plugins reach its agent. The coordinator dials this path
	// only (its constant.DefaultIPAMUnixSocketPath; its configuration has no field for it), a path of the
	// machine that Spiderpool and underlink's migration tests use too: the bench runs Spiderpool's plugins
	// in a mount namespace of their own where /var is the bed's var directory (pluginThread), and the
	// agent listens in that directory.
	spiderpoolSocket = "/var/run/spidernet/spiderpool.sock"
	// spiderpoolPool is Spiderpool's pool in the bench.
	spiderpoolPool = "bench-spiderpool"
	// spiderpoolServiceCIDR is cluster-a's service CIDR, the serviceCIDR of underlink's chain.
	spiderpoolServiceCIDR = "10.233.0.0/18"
)

// spiderpoolChainConf is the configuration list Spiderpool's controller writes into the NAD of a
// SpiderMultusConfig like the seed's kube-system/macvlan-conf (cniType macvlan, master ens224, ippools
// ipv4 [the pool], coordinator hijackCIDR as the seed's) with spec.coordinator.mode underlay: its default
// cniVersion 0.3.1, macvlan in bridge mode with ipam spiderpool and its default_ipv4_ippool, then the
// coordinator with what its webhook defaults (tunePodRoutes false, txQueueLen 0). The bench sets only
// where the two plugins log: at error level into the bed's directory (the two %q), where Spiderpool's
// default is debug level into /var/log/spidernet. Both reach the agent on spiderpoolSocket, their default.
const spiderpoolChainConf = `{"cniVersion":"0.3.1","name":"macvlan-conf","plugins":[
 {"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"spiderpool","default_ipv4_ippool":["` + spiderpoolPool + `"],
  "log_level":"error","log_file_path":%q}},
 {"type":"coordinator","mode":"underlay","hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],"tunePodRoutes":false,"txQueueLen":0,
  "logOptions":{"logLevel":"error","logFile":%q}}]}`

// spiderpool runs Spiderpool's phase of BenchmarkCNIAdd.
type spiderpool struct {
	bed *netbed.Bed
	// pluginDir holds macvlan and Spiderpool's plugins under the names its chain gives them (spiderpool,
	// coordinator).
	pluginDir string
	// varDir is what Spiderpool's plugins see as /var; the agent's socket is varDir's spiderpoolSocket.
	varDir string
	execer invoke.Exec
}

// socket is the agent's socket as the machine sees it: spiderpoolSocket in varDir.
func (s *spiderpool) socket() string {
	return filepath.Join(s.varDir, strings.TrimPrefix(spiderpoolSocket, "/var/"))
}

// newSpiderpool checks that Spiderpool v1.2.2 is built (`make spiderpool`) and makes its plugin
// directory, before anything is measured. UNDERLINK_BENCH_SKIP_PEER=1 leaves Spiderpool out (nil), for
// profiling underlink's rows.
func newSpiderpool(b *testing.B, bed *netbed.Bed, execer invoke.Exec) *spiderpool {
	b.Helper()
	if os.Getenv("UNDERLINK_BENCH_SKIP_PEER") == "1" {
		return nil
	}
	bin := controlplane.BinDir()
	s := &spiderpool{bed: bed, pluginDir: filepath.Join(bed.Dir(), "cni-bin-spiderpool"),
		varDir: filepath.Join(bed.Dir(), "var"), execer: execer}
	for _, dir := range []string{s.pluginDir, filepath.Dir(s.socket())} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	macvlan, err := controlplane.Binary("macvlan")
	if err != nil {
		b.Fatal(err)
	}
	// hack/build-peers.sh prefixes Spiderpool's CNI plugins in the cache; a node has them as spiderpool
	// and coordinator in its CNI bin directory.
	for name, src := range map[string]string{"macvlan": macvlan, "spiderpool": filepath.Join(bin, "spiderpool-ipam"), "coordinator": filepath.Join(bin, "spiderpool-coordinator")} {
		if _, err := os.Stat(src); err != nil {
			b.Fatalf("Spiderpool v1.2.2 is not built: make spiderpool (%v)", err)
		}
		if err := os.Symlink(src, filepath.Join(s.pluginDir, name)); err != nil {
			b.Fatal(err)
		}
	}
	spiderpoolagent.Binary(b)
	return s
}

// run is Spiderpool's phase, after underlink's rows: it stops underlink's agent (each system's daemons
// run for its own measurement only: an idle agent still decodes every pod and pool event), creates what
// Spiderpool's chain needs (its pool, the cluster's SpiderCoordinator with the status its controller
// would set, n pods bound to node), starts spiderpool-agent in node's namespace, then times n ADDs of
// Spiderpool's chain interleaved with n of the floor (through floorCNI, underlink's plugin directory), so
// that this phase has a floor of its own. It stops the agent, checks that DEL left no address in the
// pool and no host veth on the node, and returns the two rows.
func (s *spiderpool) run(b *testing.B, env *controlplane.Env, node *netbed.Node, ul *ipamNode, floorCNI *netbed.CNI, n int) []*row {
	b.Helper()
	ctx := context.Background()
	if err := ul.agent.Stop(netbed.StopGrace); err != nil {
		b.Fatalf("stop underlink-agent: %v", err)
	}

	gw, v4 := "172.110.0.1", int64(4)
	pool := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: spiderpoolPool}, Spec: spv2.IPPoolSpec{
		// spec.ipVersion as Spiderpool's webhook (in its controller) sets it: its agent skips a pool
		// without it. The subnet is the segment's, which holds the gateway: Spiderpool's IPAM returns the
		// default route via the gateway and macvlan installs it as is, which the kernel refuses for a
		// gateway outside the subnet (the seed's 172.110.0.1 for 172.110.1.0/24).
		IPVersion: &v4, Subnet: "172.110.0.0/16", Gateway: &gw, IPs: []string{"172.110.96.1-172.110.96.200"}}}
	// The cluster's SpiderCoordinator as Spiderpool installs it (its chart's coordinator values: hijackCIDR
	// 169.254.0.0/16, vethMTU 1500), in underlay mode, podCIDRType none (an underlay-only cluster has no
	// overlay pod CIDR to learn), with the defaults its webhook sets (tunePodRoutes true, hostRuleTable
	// 500, podRPFilter 0, txQueueLen 0), which the agent's coordinator config endpoint dereferences. The
	// chain's own mode and hijackCIDR take precedence over it.
	coord := &spv2.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: spv2.CoordinatorDefaultName}, Spec: spv2.CoordinatorSpec{
		Mode: ptr.To("underlay"), PodCIDRType: ptr.To("none"), HijackCIDR: []string{"169.254.0.0/16"}, TunePodRoutes: ptr.To(true),
		HostRuleTable: ptr.To(int64(500)), PodRPFilter: ptr.To(int32(0)), TxQueueLen: ptr.To(int32(0)), VethMTU: ptr.To(int64(1500))}}
	for _, obj := range []client.Object{pool, coord} {
		if err := env.Client.Create(ctx, obj); err != nil {
			b.Fatalf("create %s: %v", obj.GetName(), err)
		}
	}
	// Spiderpool's controller (not run here) sets the status: for podCIDRType none, phase Synced, no
	// overlay pod CIDR, and the service CIDR it reads from kube-system/kubeadm-config. The agent serves
	// the coordinator's configuration only when the phase is Synced, and takes both CIDRs from here.
	coord.Status = spv2.CoordinatorStatus{Phase: "Synced", OverlayPodCIDR: []string{}, ServiceCIDR: []string{spiderpoolServiceCIDR}}
	if err := env.Client.Status().Update(ctx, coord); err != nil {
		b.Fatalf("SpiderCoordinator status: %v", err)
	}
	// The pods exist before the agent starts, as scheduled pods do; no network annotation: the agent's
	// MULTUS_CLUSTER_NETWORK names their default network.
	pods := ul.pods(b, "bench-spiderpool", node.Spec.Name, n)

	agent := s.startAgent(b, env, node, pods[0])
	defer func() {
		if err := agent.Stop(netbed.StopGrace); err != nil {
			b.Errorf("stop spiderpool-agent: %v", err)
		}
	}()

	list, err := netbed.ParseConfList(fmt.Appendf(nil, spiderpoolChainConf, filepath.Join(s.bed.Dir(), "spiderpool-ipam.log"), filepath.Join(s.bed.Dir(), "spiderpool-coordinator.log")))
	if err != nil {
		b.Fatal(err)
	}
	floorList, err := netbed.ParseConfList(fmt.Appendf(nil, floorConf, s.bed.Dir()+"/host-local-floor-spiderpool"))
	if err != nil {
		b.Fatal(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{s.pluginDir}, filepath.Join(s.bed.Dir(), "cni-cache-spiderpool"), s.execer)
	floor := func(i int) (func() error, func() error, error) {
		id := fmt.Sprintf("bench-floor-spiderpool-%d", i)
		pod, err := s.bed.NewNetns(id)
		if err != nil {
			return nil, nil, err
		}
		rt := netbed.Attachment(id, pod, "eth0", netbed.PodArgs(podNamespace, id, "")...)
		return func() error { _, err := floorCNI.Add(ctx, floorList, rt); return err },
			func() error { return floorCNI.Del(ctx, floorList, rt) }, nil
	}
	chain := func(i int) (func() error, func() error, error) {
		p := pods[i]
		pod, err := s.bed.NewNetns(p.Name)
		if err != nil {
			return nil, nil, err
		}
		// A container ID as runtimes make them (64 hex digits): the coordinator names the host veth
		// "veth" and the ID's first 11 characters.
		sum := sha256.Sum256([]byte(p.Name))
		id := hex.EncodeToString(sum[:])
		rt := netbed.Attachment(id, pod, "eth0", netbed.PodArgs(podNamespace, p.Name, string(p.UID))...)
		// The thread's mount namespace is a copy of the machine's made now, so it holds the pod's
		// namespace just created.
		thread, err := s.pluginThread(node)
		if err != nil {
			return nil, nil, err
		}
		add := func() error {
			return thread.do(func() error { _, err := cni.AddNetworkList(ctx, list, rt); return err })
		}
		del := func() error {
			// The coordinator did its underlay work, as underlink's does: the pod's veth to the node, and
			// the hijacked and service CIDRs through it.
			if _, err := node.NS.Link("veth" + id[:11]); err != nil {
				return fmt.Errorf("after ADD: %w", err)
			}
			if err := routedViaVeth0(pod, "10.243.0.0/18", "172.111.0.0/16", spiderpoolServiceCIDR); err != nil {
				return fmt.Errorf("after ADD: %w", err)
			}
			// As with a kubelet, the pod is terminating when its sandbox's DEL comes: Spiderpool's IPAM
			// keeps the address of a pod that is still alive at DEL (for a restarted sandbox), and the
			// coordinator's DEL asks the agent for its configuration, which needs the pod.
			if err := env.Client.Delete(ctx, p, client.GracePeriodSeconds(30)); err != nil {
				return err
			}
			err := thread.do(func() error { return cni.DelNetworkList(ctx, list, rt) })
			thread.stop()
			if err != nil {
				return err
			}
			if _, err := node.NS.Link("veth" + id[:11]); err == nil {
				return fmt.Errorf("host veth veth%s is still on %s after DEL", id[:11], node.Spec.Name)
			}
			return nil
		}
		return add, del, nil
	}
	rows := []*row{
		{name: "floor, Spiderpool's phase", key: "floor-spiderpool", vs: "floor-spiderpool", prepare: floor},
		{name: "Spiderpool v1.2.2: macvlan+spiderpool+coordinator", key: "spiderpool", vs: "floor-spiderpool", prepare: chain},
	}
	measure(b, rows, n)

	// DEL cleaned up: no address left in Spiderpool's pool, no host veth of a pod on the node (of either
	// system's chain).
	var got spv2.SpiderIPPool
	if err := env.Client.Get(ctx, types.NamespacedName{Name: spiderpoolPool}, &got); err != nil {
		b.Fatal(err)
	}
	allocs, err := spv2.ParseAllocations(got.Status)
	if err != nil {
		b.Fatal(err)
	}
	if len(allocs) > 0 || (got.Status.AllocatedIPCount != nil && *got.Status.AllocatedIPCount > 0) {
		b.Errorf("Spiderpool's pool holds %d addresses after every DEL: %v", len(allocs), allocs)
	}
	if left := podVeths(b, node); len(left) > 0 {
		b.Errorf("host veths left on %s after every DEL: %v", node.Spec.Name, left)
	}
	return rows
}

// startAgent starts spiderpool-agent in node's namespace (the bench's kubeconfig), listening on
// s.socket(), and waits until it answers the coordinator's request for pod: the SpiderCoordinator is in
// its cache. The bench's pods name no network; the chain stands for kube-system/macvlan-conf, the
// agent's cluster network.
func (s *spiderpool) startAgent(b *testing.B, env *controlplane.Env, node *netbed.Node, pod *corev1.Pod) *netbed.Process {
	b.Helper()
	p := spiderpoolagent.Start(b, s.bed, node, spiderpoolagent.Options{Kubeconfig: env.Kubeconfig(b), Socket: s.socket(),
		ConfDir: filepath.Join(s.bed.Dir(), node.Spec.Name), ClusterNetwork: "kube-system/macvlan-conf"})
	c := spiderpoolagent.Client(s.socket())
	body := fmt.Sprintf(`{"podName":%q,"podNamespace":%q}`, pod.Name, pod.Namespace)
	poll.UntilEvery(b, 90*time.Second, 100*time.Millisecond, "spiderpool-agent on "+node.Spec.Name+" serving the coordinator's configuration", func() (bool, string) {
		req, err := http.NewRequest(http.MethodGet, "http://spiderpool-agent/v1/coordinator/config", bytes.NewBufferString(body))
		if err != nil {
			return false, err.Error()
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return false, fmt.Sprintf("%v\n%s", err, p.Logs())
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("HTTP %d: %s\n%s", resp.StatusCode, out.String(), p.Logs())
	})
	return p
}

// pluginThread is a thread Spiderpool's chain runs on, for one pod, as a runtime's would: in node's
// network namespace, and in a mount namespace of its own (private: nothing mounted there reaches the
// machine's) where s.varDir is mounted on /var, so that the plugins it execs find the agent at
// spiderpoolSocket without the machine's /var/run/spidernet. The plugins need nothing else under /var
// (they log into the bed). The mount namespace is a copy of the machine's when the thread starts, and
// the machine's mounts are private, so it sees no namespace mounted at /run/netns later: each pod gets a
// thread, started after its namespace, untimed. Passing an ADD to the thread costs a channel round trip.
type pluginThread struct{ calls chan func() }

func (s *spiderpool) pluginThread(node *netbed.Node) (*pluginThread, error) {
	t := &pluginThread{calls: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and its mount namespace with it.
		runtime.LockOSThread()
		err := node.NS.Set()
		if err == nil {
			err = unix.Unshare(unix.CLONE_NEWNS)
		}
		if err == nil {
			err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
		}
		if err == nil {
			err = unix.Mount(s.varDir, "/var", "", unix.MS_BIND, "")
		}
		ready <- err
		if err != nil {
			return
		}
		for f := range t.calls {
			f()
		}
	}()
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("Spiderpool's plugin thread (node namespace, /var from %s): %w", s.varDir, err)
	}
	return t, nil
}

// do runs f on the thread.
func (t *pluginThread) do(f func() error) error {
	done := make(chan error, 1)
	t.calls <- func() { done <- f() }
	return <-done
}

// stop ends the thread.
func (t *pluginThread) stop() { close(t.calls) }

// routedViaVeth0 checks that pod's main table routes each of cidrs over veth0.
func routedViaVeth0(pod *netbed.Netns, cidrs ...string) error {
	h, err := pod.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	veth0, err := h.LinkByName("veth0")
	if err != nil {
		return fmt.Errorf("pod %s: veth0: %w", pod.Name, err)
	}
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, cidr := range cidrs {
		if !slices.ContainsFunc(routes, func(r netlink.Route) bool {
			return r.Dst != nil && r.Dst.String() == cidr && r.LinkIndex == veth0.Attrs().Index
		}) {
			return fmt.Errorf("pod %s has no route to %s over veth0: %v", pod.Name, cidr, routes)
		}
	}
	return nil
}

// podVeths are the veths in node's namespace other than the node's own NICs: host sides of pod veths.
func podVeths(b *testing.B, node *netbed.Node) []string {
	b.Helper()
	h, err := node.NS.Netlink()
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		b.Fatal(err)
	}
	var left []string
	for _, l := range links {
		if name := l.Attrs().Name; l.Type() == "veth" && !slices.Contains([]string{netbed.NodeNIC, netbed.UnderlayNIC, netbed.InterDCNIC}, name) {
			left = append(left, name)
		}
	}
	return left
}

// reportSpiderpool prints underlink's full chain beside Spiderpool's, each with the floor of its phase,
// and the ratios underlink ÷ Spiderpool, and reports the ratios as metrics.
func reportSpiderpool(b *testing.B, rows []*row) {
	get := func(key string) *row {
		if i := slices.IndexFunc(rows, func(r *row) bool { return r.key == key }); i >= 0 {
			return rows[i]
		}
		return nil
	}
	floor, full, onAdd, spFloor, sp := get("floor"), get("full"), get("full-on-add"), get("floor-spiderpool"), get("spiderpool")
	if sp == nil || spFloor == nil || floor == nil || full == nil {
		return
	}
	p := percentile
	var t strings.Builder
	fmt.Fprintf(&t, "\nfull chain, underlink vs Spiderpool v1.2.2: one node, one apiserver, %d ADDs each, each system's agent running in its own phase only\n", len(sp.took))
	fmt.Fprintf(&t, "%-60s %9s %9s %9s %9s\n", "chain", "p50 ms", "p99 ms", "p50/floor", "p99/floor")
	line := func(name string, r, f *row) {
		fmt.Fprintf(&t, "%-60s %9.2f %9.2f %8.2f× %8.2f×\n", name, p(r.took, 0.5), p(r.took, 0.99), p(r.took, 0.5)/p(f.took, 0.5), p(r.took, 0.99)/p(f.took, 0.99))
	}
	line("floor: macvlan + host-local (underlink's phase)", floor, floor)
	line("underlink: macvlan + underlink-ipam + underlink-coordinator", full, floor)
	if onAdd != nil {
		line("  underlink, allocated on ADD (no pre-allocation)", onAdd, floor)
	}
	line("floor: macvlan + host-local (Spiderpool's phase)", spFloor, spFloor)
	line("Spiderpool v1.2.2: macvlan + spiderpool + coordinator", sp, spFloor)
	ratio := func(name, key string, r *row) {
		r50, r99 := p(r.took, 0.5)/p(sp.took, 0.5), p(r.took, 0.99)/p(sp.took, 0.99)
		n50 := (p(r.took, 0.5) / p(floor.took, 0.5)) / (p(sp.took, 0.5) / p(spFloor.took, 0.5))
		n99 := (p(r.took, 0.99) / p(floor.took, 0.99)) / (p(sp.took, 0.99) / p(spFloor.took, 0.99))
		fmt.Fprintf(&t, "%-60s %8.2f× %8.2f× %8.2f× %8.2f×\n", name, r50, r99, n50, n99)
		b.ReportMetric(r50, key+"-vs-spiderpool-p50-ratio")
		b.ReportMetric(r99, key+"-vs-spiderpool-p99-ratio")
	}
	ratio("underlink ÷ Spiderpool (ms; to each phase's floor)", "full", full)
	if onAdd != nil {
		ratio("  allocated on ADD ÷ Spiderpool", "full-on-add", onAdd)
	}
	fmt.Fprintf(&t, "below 1×: underlink's ADD is the faster; the floor columns of the ratio rows divide each chain by its own phase's floor first\n")
	fmt.Fprintf(&t, "in the table above, Spiderpool's row is to the floor of its own phase, measured with it\n")
	fmt.Print(t.String())
}
