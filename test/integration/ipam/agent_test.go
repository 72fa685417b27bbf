//go:build integration

package ipam

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/ipam/protocol"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// seedChain is the seed's cluster-a NAD chain reduced to macvlan with underlink-ipam (the coordinator
// is tested on its own), with the node's agent socket.
func seedChain(socket string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","plugins":[
	 {"type":"macvlan","master":"ens224","mode":"bridge",
	  "ipam":{"type":"underlink-ipam","socket":%q,"ipv4Pools":["cluster-a"]}}]}`, socket))
}

// TestIPAMSeedPoolThroughMacvlanChain runs the seed's pool through the real chain: kubelet's view
// (libcni) → reference macvlan on the node's ens224 → underlink-ipam binary → underlink-agent in the node
// namespace → apiserver. The pod gets the pool's first address with the seed's off-subnet gateway made
// reachable, pings it, a repeated ADD returns the same address, CHECK passes, DEL releases, and the
// status is Spiderpool's shape.
func TestIPAMSeedPoolThroughMacvlanChain(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	bed.ApplySeed(t, c.Env.Client, "cluster-a-ippool.yaml")
	bed.ApplySeed(t, c.Env.Client, "cluster-a-multusconfig.yaml")
	node := c.AddNode(t, "a-node1", nil)
	c.StartAgent(t, node)
	ctx := context.Background()

	bin := c.Bed.PluginDir("underlink-ipam")
	cni := c.Bed.CNI(node.NS, bin)
	list, err := netbed.ParseConfList(seedChain(node.Socket))
	if err != nil {
		t.Fatal(err)
	}
	type podRun struct {
		pod *corev1.Pod
		ns  *netbed.Netns
		cid string
	}
	// A second pool whose gateway is inside its subnet, chosen by web-3's annotation over the config.
	c.CreatePool(t, "cluster-a-wide", "172.110.0.0/16", "172.110.0.1", []string{"172.110.2.1-172.110.2.10"})
	var pods []podRun
	for i, p := range []struct{ name, anno, want string }{
		{"web-1", "", "172.110.1.1/24"},
		{"web-2", "", "172.110.1.2/24"},
		{"web-3", `{"ipv4":["cluster-a-wide"]}`, "172.110.2.1/16"},
	} {
		var annos map[string]string
		if p.anno != "" {
			annos = map[string]string{"ipam.spidernet.io/ippool": p.anno}
		}
		pod := c.CreatePod(t, "kube-system", p.name, "a-node1", annos)
		pr := podRun{pod: pod, ns: c.Bed.Pod(p.name), cid: fmt.Sprintf("cid-%s-%d", p.name, i)}
		res, err := cni.Add(ctx, list, netbed.Attachment(pr.cid, pr.ns, "eth0", netbed.PodArgs(pod.Namespace, pod.Name, string(pod.UID))...))
		if err != nil {
			t.Fatalf("ADD %s: %v\n%s", p.name, err, node.Agent.Logs())
		}
		r, err := current.NewResultFromResult(res)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.IPs) != 1 || r.IPs[0].Address.String() != p.want || r.IPs[0].Gateway.String() != "172.110.0.1" {
			t.Fatalf("ADD %s result %v, want %s with gateway 172.110.0.1", p.name, r, p.want)
		}
		if got := podAddrs(t, pr.ns, "eth0"); strings.Join(got, ",") != p.want {
			t.Fatalf("pod %s eth0 has %v, want %s", p.name, got, p.want)
		}
		pods = append(pods, pr)
	}
	// The seed's gateway 172.110.0.1 lies outside 172.110.1.0/24, so it is returned as the gateway but no
	// default route is (macvlan could not install it; underlink-coordinator does, with onlink). Inside
	// its subnet, the pool's gateway is the pod's default route.
	for _, c := range []struct {
		pod           int
		want, wantNot string
	}{{0, "172.110.1.0/24 dev eth0", "default"}, {2, "default via 172.110.0.1 dev eth0", ""}} {
		out, err := netbed.Run(pods[c.pod].ns, exec.Command("ip", "route"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pod %s routes:\n%s", pods[c.pod].pod.Name, out)
		if !strings.Contains(string(out), c.want) || (c.wantNot != "" && strings.Contains(string(out), c.wantNot)) {
			t.Errorf("pod %s routes: want %q and no %q", pods[c.pod].pod.Name, c.want, c.wantNot)
		}
	}
	if err := netbed.Ping(pods[2].ns, netip.MustParseAddr("172.110.0.1"), 3, 5*time.Second); err != nil {
		t.Errorf("pod web-3 → pool gateway: %v", err)
	}
	if err := netbed.Ping(pods[0].ns, netip.MustParseAddr("172.110.1.2"), 3, 5*time.Second); err != nil {
		t.Errorf("pod web-1 → pod web-2: %v", err)
	}

	allocs, pool := c.PoolAllocations(t, "cluster-a")
	if len(allocs) != 2 || *pool.Status.AllocatedIPCount != 2 || *pool.Status.TotalIPCount != 200 {
		t.Fatalf("pool status %v %d/%d", allocs, *pool.Status.AllocatedIPCount, *pool.Status.TotalIPCount)
	}
	if a := allocs["172.110.1.1"]; a.NamespacedName != "kube-system/web-1" || a.NIC != "eth0" || a.PodUID != string(pods[0].pod.UID) || a.ContainerID != pods[0].cid {
		t.Errorf("allocation of 172.110.1.1 = %+v", a)
	}

	// A repeated ADD of the same sandbox, in every result version the plugin supports, is the same address.
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		pc := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), Command: "ADD", ContainerID: pods[0].cid, Pod: pods[0].pod, Conf: ipamConf(v, node.Socket, 10, "cluster-a")}
		out, cniErr, err := pc.run(ctx)
		if err != nil || cniErr != nil {
			t.Fatalf("ADD again (%s): %v %v", v, err, cniErr)
		}
		var ver struct {
			CNIVersion string `json:"cniVersion"`
		}
		_ = json.Unmarshal(out, &ver)
		if ver.CNIVersion != v || !strings.Contains(string(out), `"172.110.1.1/24"`) || !strings.Contains(string(out), `"172.110.0.1"`) {
			t.Errorf("ADD again in %s printed %s", v, out)
		}
	}
	// A new sandbox of the same pod keeps the address; the old sandbox's late DEL frees nothing.
	pc := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-web-1-new", Pod: pods[0].pod, Conf: ipamConf("1.1.0", node.Socket, 10, "cluster-a")}
	res, cniErr, err := pc.add(ctx)
	if err != nil || cniErr != nil || res.IPs[0].Address.IP.String() != "172.110.1.1" {
		t.Fatalf("ADD of a new sandbox: %v %v %v", res, cniErr, err)
	}
	old := pc
	old.ContainerID, old.Command = pods[0].cid, "DEL"
	if _, cniErr, err := old.run(ctx); err != nil || cniErr != nil {
		t.Fatalf("late DEL of the old sandbox: %v %v", err, cniErr)
	}
	if allocs, _ := c.PoolAllocations(t, "cluster-a"); allocs["172.110.1.1"].ContainerID != "cid-web-1-new" {
		t.Fatalf("late DEL of a replaced sandbox changed the allocation: %+v", allocs["172.110.1.1"])
	}
	pc.ContainerID = pods[0].cid // back to the sandbox libcni knows, for CHECK and DEL below
	if _, e, err := pc.add(ctx); err != nil || e != nil {
		t.Fatal(err, e)
	}

	if err := cni.Check(ctx, list, netbed.Attachment(pods[1].cid, pods[1].ns, "eth0", netbed.PodArgs("kube-system", "web-2", string(pods[1].pod.UID))...)); err != nil {
		t.Errorf("CHECK web-2: %v", err)
	}
	// An address released behind the runtime's back fails CHECK with code 103.
	web2 := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), Command: "DEL", ContainerID: pods[1].cid, Pod: pods[1].pod, Conf: ipamConf("1.1.0", node.Socket, 10, "cluster-a")}
	if _, e, err := web2.run(ctx); err != nil || e != nil {
		t.Fatal(err, e)
	}
	err = cni.Check(ctx, list, netbed.Attachment(pods[1].cid, pods[1].ns, "eth0", netbed.PodArgs("kube-system", "web-2", string(pods[1].pod.UID))...))
	if err == nil || !strings.Contains(err.Error(), "172.110.1.2 is not allocated to pod kube-system/web-2") {
		t.Errorf("CHECK of a released address: %v", err)
	}
	for _, pr := range pods {
		rt := netbed.Attachment(pr.cid, pr.ns, "eth0", netbed.PodArgs(pr.pod.Namespace, pr.pod.Name, string(pr.pod.UID))...)
		for i := 0; i < 2; i++ { // DEL is idempotent
			if err := cni.Del(ctx, list, rt); err != nil {
				t.Fatalf("DEL %s (#%d): %v", pr.pod.Name, i+1, err)
			}
		}
	}
	for _, name := range []string{"cluster-a", "cluster-a-wide"} {
		if allocs, pool := c.PoolAllocations(t, name); len(allocs) != 0 || *pool.Status.AllocatedIPCount != 0 || pool.Status.AllocatedIPs != nil {
			t.Fatalf("after DEL pool %s still holds %v (count %d)", name, allocs, *pool.Status.AllocatedIPCount)
		}
	}

	// Metrics and health on the node's loopback.
	hc := httpInNetns(node.NS)
	code, body := getBody(t, hc, "http://127.0.0.1:9711/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		`underlink_ipam_allocations_total{result="new"} 3`,
		`underlink_ipam_allocations_total{result="existing"} 6`,
		`underlink_ipam_pool_free_addresses{pool="cluster-a"} 200`,
		`underlink_ipam_pool_free_addresses{pool="cluster-a-wide"} 10`,
		`underlink_ipam_pool_total_addresses{pool="cluster-a"} 200`,
		`underlink_ipam_request_duration_seconds_bucket{op="allocate"`,
		`underlink_ipam_releases_total 3`, // web-2's was freed by the direct DEL, its libcni DEL frees nothing
		`underlink_underlay_link_up{nic="ens224"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := getBody(t, hc, "http://127.0.0.1:9712"+path); code != 200 {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
}

// TestIPAMBadInputIsExplained: every refusal is a CNI error with a code and a message that names the
// pool, field or socket, and nothing is allocated or overwritten.
func TestIPAMBadInputIsExplained(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	node := c.AddNode(t, "a-node1", nil)
	c.StartAgent(t, node)
	ctx := context.Background()
	c.CreatePool(t, "tiny", "172.110.2.0/24", "172.110.0.1", []string{"172.110.2.10-172.110.2.11"})
	mangled := c.CreatePool(t, "mangled", "172.110.3.0/24", "172.110.0.1", []string{"172.110.3.10-172.110.3.20"})
	// Someone else writes the status in another shape.
	bad := "172.110.3.10=default/x"
	mangled.Status.AllocatedIPs = &bad
	if err := c.Env.Client.Status().Update(ctx, mangled); err != nil {
		t.Fatal(err)
	}
	mangledRV := mangled.ResourceVersion

	conf := func(pools ...string) []byte { return ipamConf("1.1.0", node.Socket, 10, pools...) }
	call := func(name string, conf []byte) (*current.Result, *types.Error) {
		t.Helper()
		pod := c.CreatePod(t, "default", name, "a-node1", nil)
		res, cniErr, err := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-" + name, Pod: pod, Conf: conf}.add(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res, cniErr
	}
	for _, name := range []string{"p1", "p2"} {
		if _, e := call(name, conf("tiny")); e != nil {
			t.Fatalf("ADD %s: %v", name, e)
		}
	}
	type refusal struct {
		name string
		conf []byte
		code uint
		msg  string
	}
	for _, r := range []refusal{
		{"p3", conf("tiny"), protocol.CodePoolExhausted, `SpiderIPPool "tiny" is exhausted: 2 of 2 allocatable addresses are allocated (spec.ips less spec.excludeIPs and spec.gateway); add addresses to spec.ips or delete pods that hold them`},
		{"p4", conf("mangled"), protocol.CodePoolRefused, `SpiderIPPool "mangled": refusing to allocate: status.allocatedIPs is not a JSON object`},
		{"p5", conf("tiny", "nope"), protocol.CodeInvalidConfig, `ipam.ipv4Pools[1]: "nope": no SpiderIPPool of that name exists; create it or fix the name`},
		{"p6", conf("tiny", "mangled"), protocol.CodeNoEligiblePool, `no IPv4 SpiderIPPool can serve this pod on eth0 (pools from the network's configuration): "tiny": SpiderIPPool "tiny" is exhausted: 2 of 2 allocatable addresses are allocated (spec.ips less spec.excludeIPs and spec.gateway); add addresses to spec.ips or delete pods that hold them; "mangled": SpiderIPPool "mangled": refusing to allocate`},
		{"p7", conf(), protocol.CodeInvalidConfig, "no SpiderIPPool has spec.default: true"},
	} {
		_, e := call(r.name, r.conf)
		if e == nil || e.Code != r.code || !strings.Contains(e.Msg, r.msg) {
			t.Errorf("%s: got %v, want code %d saying %q", r.name, e, r.code, r.msg)
		} else {
			t.Logf("%s: code %d: %s", r.name, e.Code, e.Msg)
		}
	}
	var after = c.Env.Client
	_, m := c.PoolAllocations(t, "tiny")
	if *m.Status.AllocatedIPCount != 2 {
		t.Errorf("tiny holds %d", *m.Status.AllocatedIPCount)
	}
	var got struct{ rv, st string }
	mp := mangled.DeepCopy()
	if err := after.Get(ctx, k8stypes.NamespacedName{Name: "mangled"}, mp); err != nil {
		t.Fatal(err)
	}
	got.rv, got.st = mp.ResourceVersion, *mp.Status.AllocatedIPs
	if got.rv != mangledRV || got.st != bad {
		t.Errorf("the agent overwrote the mangled status: rv %s→%s, %q", mangledRV, got.rv, got.st)
	}
	// A DEL asks every pool: the refused one holds nothing it could free, and does not stop the DEL
	// from freeing what the sandbox holds in another, nor is it written.
	p1 := &corev1.Pod{}
	if err := after.Get(ctx, k8stypes.NamespacedName{Namespace: "default", Name: "p1"}, p1); err != nil {
		t.Fatal(err)
	}
	if _, e, err := (pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), Command: "DEL", ContainerID: "cid-p1", Pod: p1, Conf: conf("tiny")}).run(ctx); err != nil || e != nil {
		t.Fatalf("DEL of p1 beside a refused pool: %v %v", err, e)
	}
	if _, m := c.PoolAllocations(t, "tiny"); *m.Status.AllocatedIPCount != 1 {
		t.Errorf("after p1's DEL tiny holds %d, want 1", *m.Status.AllocatedIPCount)
	}
	if err := after.Get(ctx, k8stypes.NamespacedName{Name: "mangled"}, mp); err != nil || mp.ResourceVersion != mangledRV {
		t.Errorf("the mangled pool after a DEL: %v, rv %s→%s", err, mangledRV, mp.ResourceVersion)
	}

	// Refused by the plugin itself, before the agent is asked.
	pod := c.CreatePod(t, "default", "local", "a-node1", nil)
	for _, r := range []refusal{
		{"bad JSON", []byte(`{"cniVersion":"1.1.0","name":"n","ipam":`), 6, "unmarshall network config: unexpected end of JSON input"},
		{"misspelt key", []byte(`{"cniVersion":"1.1.0","name":"n","type":"macvlan","ipam":{"type":"underlink-ipam","ipv4Pool":["tiny"]}}`), 7, `underlink-ipam: ipam json: unknown field "ipv4Pool"`},
		{"wrong type", []byte(`{"cniVersion":"1.1.0","name":"n","type":"macvlan","ipam":{"type":"underlink-ipam","ipv4Pools":"tiny"}}`), 6, `field "ipam.ipv4Pools"`},
		{"bad pool name", []byte(`{"cniVersion":"1.1.0","name":"n","type":"macvlan","ipam":{"type":"underlink-ipam","ipv4Pools":["Tiny_Pool"]}}`), 7, `ipam.ipv4Pools[0] "Tiny_Pool" is not a SpiderIPPool name`},
		{"relative socket", []byte(`{"cniVersion":"1.1.0","name":"n","type":"macvlan","ipam":{"type":"underlink-ipam","socket":"agent.sock"}}`), 7, `ipam.socket "agent.sock" is not an absolute path`},
		{"no ipam", []byte(`{"cniVersion":"1.1.0","name":"n","type":"macvlan"}`), 7, "ipam is missing"},
	} {
		_, e, err := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-x", Pod: pod, Conf: r.conf}.add(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e == nil || e.Code != r.code || !strings.Contains(e.Msg+" "+e.Details, r.msg) {
			t.Errorf("%s: got %v, want code %d saying %q", r.name, e, r.code, r.msg)
		}
	}
	if _, e, _ := (pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-x", Conf: conf("tiny")}).add(ctx); e == nil || e.Code != 4 || !strings.Contains(e.Msg, "K8S_POD_NAMESPACE") {
		t.Errorf("no pod in CNI_ARGS: %v", e)
	}
	ghost := &corev1.Pod{}
	ghost.Namespace, ghost.Name = "default", "ghost"
	if _, e, _ := (pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-g", Pod: ghost, Conf: conf("tiny")}).add(ctx); e == nil || e.Code != protocol.CodeContainerUnknown || !strings.Contains(e.Msg, "pod default/ghost") {
		t.Errorf("pod that does not exist: %v", e)
	}

	// Agent not reachable: no socket at all, and a socket whose owner never answers.
	missing := c.Bed.Dir() + "/nobody/agent.sock"
	_, e, err := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-x", Pod: pod, Conf: ipamConf("1.1.0", missing, 2, "tiny")}.add(ctx)
	want := fmt.Sprintf("underlink-agent not reachable at %s: dial unix %s: connect: no such file or directory", missing, missing)
	if err != nil || e == nil || e.Code != types.ErrTryAgainLater || e.Msg != want {
		t.Errorf("missing agent: %v %v, want code 11 %q", err, e, want)
	}
	hung := c.Bed.Dir() + "/hung.sock"
	l, err := net.Listen("unix", hung)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close() // accept, never answer
		}
	}()
	start := time.Now()
	_, e, err = pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-x", Pod: pod, Conf: ipamConf("1.1.0", hung, 1, "tiny")}.add(ctx)
	took := time.Since(start)
	want = fmt.Sprintf("underlink-agent not reachable at %s: no answer within 1s", hung)
	if err != nil || e == nil || e.Code != types.ErrTryAgainLater || !strings.HasPrefix(e.Msg, want) {
		t.Errorf("hung agent: %v %v, want code 11 %q", err, e, want)
	}
	t.Logf("hung agent answered after %s (timeoutSeconds 1)", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("hung agent: the plugin returned after %s, not bounded by its 1s timeout", took)
	}
	// DEL with the agent away still succeeds: garbage collection frees the address once the pod is gone.
	if _, e, err := (pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), Command: "DEL", ContainerID: "cid-p1", Pod: pod, Conf: ipamConf("1.1.0", missing, 1, "tiny")}).run(ctx); err != nil || e != nil {
		t.Errorf("DEL with the agent away: %v %v", err, e)
	}
	// STATUS says whether the agent serves.
	if _, e, err := (pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), Command: "STATUS", Conf: conf("tiny")}).run(ctx); err != nil || e != nil {
		t.Errorf("STATUS with the agent up: %v %v", err, e)
	}
	if _, e, _ := (pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), Command: "STATUS", Conf: ipamConf("1.1.0", missing, 1, "tiny")}).run(ctx); e == nil || e.Code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS with the agent away: %v", e)
	}
}

// TestIPAMGarbageCollection: addresses of pods that are gone, or replaced by a pod of the same name, are
// freed after the grace period; a live pod's address never is. A restarted agent collects too.
func TestIPAMGarbageCollection(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	node := c.AddNode(t, "a-node1", nil)
	gcArgs := []string{"--gc-interval", "500ms", "--gc-grace", "1s", "--lease-duration", "2s", "--lease-renew-deadline", "1500ms", "--lease-retry-period", "250ms"}
	c.StartAgent(t, node, gcArgs...)
	ctx := context.Background()
	c.CreatePool(t, "gc", "172.110.4.0/24", "172.110.0.1", []string{"172.110.4.10-172.110.4.50"})
	ips := map[string]string{}
	pods := map[string]*corev1.Pod{}
	for _, name := range []string{"live", "gone", "replaced"} {
		pod := c.CreatePod(t, "default", name, "a-node1", nil)
		res, e, err := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-" + name, Pod: pod, Conf: ipamConf("1.1.0", node.Socket, 10, "gc")}.add(ctx)
		if err != nil || e != nil {
			t.Fatal(err, e)
		}
		ips[name] = res.IPs[0].Address.IP.String()
		pods[name] = pod
	}
	// Grace 0: no kubelet runs here to finish a graceful deletion.
	if err := c.Env.Client.Delete(ctx, pods["gone"], client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	if err := c.Env.Client.Delete(ctx, pods["replaced"], client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	newer := c.CreatePod(t, "default", "replaced", "a-node1", nil)
	start := time.Now()
	poll.Until(t, 20*time.Second, "GC to free the gone and replaced pods' addresses", func() (bool, string) {
		allocs, _ := c.PoolAllocations(t, "gc")
		_, g := allocs[ips["gone"]]
		_, r := allocs[ips["replaced"]]
		return !g && !r, fmt.Sprint(allocs)
	})
	t.Logf("GC freed 2 addresses %s after the pods went (interval 500ms, grace 1s)", time.Since(start).Round(time.Millisecond))
	// The live pod keeps its address through many passes, and across an agent crash.
	if err := node.Agent.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartAgent(node); err != nil {
		t.Fatal(err)
	}
	// The restarted agent's passes are seen to run: a decoy pod's address, freed once its pod is gone and
	// the grace has passed, is freed by a pass that came after the restart (two passes at the least).
	decoy := c.CreatePod(t, "default", "decoy", "a-node1", nil)
	res, e, err := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-decoy", Pod: decoy, Conf: ipamConf("1.1.0", node.Socket, 10, "gc")}.add(ctx)
	if err != nil || e != nil {
		t.Fatal(err, e)
	}
	decoyIP := res.IPs[0].Address.IP.String()
	if err := c.Env.Client.Delete(ctx, decoy, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the restarted agent's GC to free the decoy's address "+decoyIP, func() (bool, string) {
		allocs, _ := c.PoolAllocations(t, "gc")
		_, held := allocs[decoyIP]
		return !held, fmt.Sprint(allocs)
	})
	allocs, _ := c.PoolAllocations(t, "gc")
	if a, ok := allocs[ips["live"]]; !ok || a.PodUID != string(pods["live"].UID) {
		t.Fatalf("GC touched the live pod's address: %v", allocs)
	}
	if len(allocs) != 1 {
		t.Fatalf("pool holds %v, want only the live pod", allocs)
	}
	// The replacement pod is a new holder: a new address, and the old record is gone.
	res, e, err = pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-replaced-2", Pod: newer, Conf: ipamConf("1.1.0", node.Socket, 10, "gc")}.add(ctx)
	if err != nil || e != nil {
		t.Fatal(err, e)
	}
	t.Logf("replacement pod got %s", res.IPs[0].Address.IP)
	// A pod deleted while the agent is down is collected by the restarted agent.
	if err := node.Agent.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Env.Client.Delete(ctx, newer, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartAgent(node); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the restarted agent to free the deleted pod's address", func() (bool, string) {
		allocs, _ := c.PoolAllocations(t, "gc")
		return len(allocs) == 1, fmt.Sprint(allocs)
	})
}

// TestIPAMPoolsByNetwork: two networks with default pools of their own, told apart by spec.multusName
// (one entry with a namespace, one bare, which is in Multus' namespace). Each pod gets an address from
// its network's pool through the real plugin and agent, and a pod of a third network is refused with
// the reason for each pool. The scheduler and the webhook read spec.multusName the same way.
func TestIPAMPoolsByNetwork(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	node := c.AddNode(t, "a-node1", nil)
	c.StartAgent(t, node)
	ctx := context.Background()
	isDefault := func(multusName string) func(*spv2.SpiderIPPool) {
		return func(p *spv2.SpiderIPPool) {
			yes := true
			p.Spec.Default, p.Spec.MultusName = &yes, []string{multusName}
		}
	}
	c.CreatePool(t, "ens224-pool", "172.110.1.0/24", "172.110.0.1", []string{"172.110.1.10-172.110.1.20"}, isDefault("kube-system/macvlan-conf"))
	c.CreatePool(t, "ens256-pool", "172.110.2.0/24", "172.110.0.1", []string{"172.110.2.10-172.110.2.20"}, isDefault("macvlan-ens256"))
	conf := ipamConf("1.1.0", node.Socket, 10) // no pools named: the default pools
	add := func(name, network string) (*current.Result, *types.Error) {
		t.Helper()
		pod := c.CreatePod(t, "team-a", name, "a-node1", map[string]string{"v1.multus-cni.io/default-network": network})
		res, cniErr, err := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-" + name, Pod: pod, Conf: conf}.add(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res, cniErr
	}
	for _, tc := range []struct{ pod, network, subnet string }{
		{"on-ens224", "kube-system/macvlan-conf", "172.110.1.0/24"},
		{"on-ens256", "macvlan-ens256", "172.110.2.0/24"}, // Multus reads it in kube-system, not team-a
	} {
		res, e := add(tc.pod, tc.network)
		if e != nil {
			t.Fatalf("ADD %s: %v", tc.pod, e)
		}
		if len(res.IPs) != 1 || !netip.MustParsePrefix(tc.subnet).Contains(netip.MustParseAddr(res.IPs[0].Address.IP.String())) {
			t.Errorf("%s on %s got %v, want an address of %s", tc.pod, tc.network, res.IPs, tc.subnet)
		}
	}
	_, e := add("elsewhere", "team-a/macvlan-ens256")
	for _, want := range []string{
		`"ens224-pool": spec.multusName [kube-system/macvlan-conf] does not include network team-a/macvlan-ens256 of interface eth0`,
		`"ens256-pool": spec.multusName [macvlan-ens256] does not include network team-a/macvlan-ens256 of interface eth0`,
	} {
		if e == nil || e.Code != protocol.CodeNoEligiblePool || !strings.Contains(e.Msg, want) {
			t.Errorf("pod of a third network: got %v, want code %d saying %q", e, protocol.CodeNoEligiblePool, want)
		}
	}
	for pool, want := range map[string]int64{"ens224-pool": 1, "ens256-pool": 1} {
		if _, p := c.PoolAllocations(t, pool); *p.Status.AllocatedIPCount != want {
			t.Errorf("%s holds %d addresses, want %d", pool, *p.Status.AllocatedIPCount, want)
		}
	}
}

// TestIPAMMatchMasterSubnet: with ipam.matchMasterSubnet, the agent gives an address only from a listed
// pool whose subnet holds an address of the master NIC in the node's namespace, read when the ADD runs;
// a NIC without such an address, or one that does not exist, is an error that says so.
func TestIPAMMatchMasterSubnet(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	node := c.AddNode(t, "a-node1", nil)
	c.StartAgent(t, node)
	ctx := context.Background()
	c.CreatePool(t, "dc1", "172.110.1.0/24", "172.110.1.1", []string{"172.110.1.10-172.110.1.20"})
	c.CreatePool(t, "dc2", "172.110.2.0/24", "172.110.2.1", []string{"172.110.2.10-172.110.2.20"})
	conf := func(master string) []byte {
		return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","type":"macvlan","master":%q,"mode":"bridge",
		 "ipam":{"type":"underlink-ipam","socket":%q,"timeoutSeconds":10,"ipv4Pools":["dc1","dc2"],"matchMasterSubnet":true,"master":%q}}`, master, node.Socket, master))
	}
	add := func(name, master string) (*current.Result, *types.Error) {
		t.Helper()
		pod := c.CreatePod(t, "team-a", name, "a-node1", nil)
		res, cniErr, err := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: "cid-" + name, Pod: pod, Conf: conf(master)}.add(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res, cniErr
	}

	// The bed's ens224 has no address: no pool matches, and the error names each and the NIC.
	_, e := add("bare", netbed.UnderlayNIC)
	if e == nil || e.Code != protocol.CodeNoEligiblePool || !strings.Contains(e.Msg, `"dc1": spec.subnet 172.110.1.0/24 holds no address of master NIC ens224 on node "a-node1" (ens224 has no address)`) {
		t.Errorf("ens224 without an address: got %v, want code %d naming dc1 and the NIC", e, protocol.CodeNoEligiblePool)
	}

	h, err := node.NS.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ens224, err := h.LinkByName(netbed.UnderlayNIC)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("172.110.2.5/24")
	if err := h.AddrAdd(ens224, addr); err != nil {
		t.Fatal(err)
	}
	// dc1 is listed first; the node's ens224 is on dc2's subnet, so dc2 gives the address.
	res, e := add("in-dc2", netbed.UnderlayNIC)
	if e != nil {
		t.Fatalf("ADD with ens224 on 172.110.2.0/24: %v", e)
	}
	if len(res.IPs) != 1 || !netip.MustParsePrefix("172.110.2.0/24").Contains(netip.MustParseAddr(res.IPs[0].Address.IP.String())) {
		t.Errorf("got %v, want an address of dc2 (172.110.2.0/24)", res.IPs)
	}

	_, e = add("no-nic", "ens999")
	if e == nil || e.Code != protocol.CodeInvalidConfig || !strings.Contains(e.Msg, "host NIC ens999 does not exist on node a-node1") {
		t.Errorf("a master that does not exist: got %v, want code %d naming it", e, protocol.CodeInvalidConfig)
	}
	for pool, want := range map[string]int64{"dc1": 0, "dc2": 1} {
		if _, p := c.PoolAllocations(t, pool); p.Status.AllocatedIPCount != nil && *p.Status.AllocatedIPCount != want || p.Status.AllocatedIPCount == nil && want != 0 {
			t.Errorf("%s holds %v addresses, want %d: failed ADDs must leave nothing allocated", pool, p.Status.AllocatedIPCount, want)
		}
	}
}
