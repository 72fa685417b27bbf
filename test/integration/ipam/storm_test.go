//go:build integration

package ipam

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// stormScale reads the storm's size: UNDERLINK_STORM_ADDS (default 2000 ADDs), UNDERLINK_STORM_NODES
// (default 8) and UNDERLINK_STORM_PARALLEL (plugin processes in flight, default 64). CI runs the
// default; a bigger storm is one environment variable away.
func stormScale(t *testing.T) (adds, nodes, parallel int) {
	get := func(key string, def int) int {
		if v := os.Getenv(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				t.Fatalf("%s=%q: want a positive number", key, v)
			}
			return n
		}
		return def
	}
	return get("UNDERLINK_STORM_ADDS", 2000), get("UNDERLINK_STORM_NODES", 8), get("UNDERLINK_STORM_PARALLEL", 64)
}

type stormPod struct {
	pod    *corev1.Pod
	node   *bed.Node
	pool   string
	ns     *netbed.Netns // set for pods whose chain runs for real (macvlan configures the namespace)
	cid    string
	ip     netip.Addr
	tries  int
	errors []string
}

// TestIPAMStorm: 8 agents on 8 node namespaces (real processes, reaching the apiserver over the bed's
// loopback relays) serve 2000 ADDs across 2 pools, issued through the real underlink-ipam binary by up to
// 64 runtimes at once, while agents are SIGKILLed and restarted at random and the apiserver is restarted
// once. Every ADD succeeds or fails with a CNI error (a failed ADD is followed by DEL and retried as a new
// sandbox, as kubelet does, until every pod has an address once the chaos is over); no address is given
// twice, in the pool status or in the pod namespaces;
// after DEL of every pod, deleting the pods and one GC period, no address is left allocated.
func TestIPAMStorm(t *testing.T) {
	adds, nodes, parallel := stormScale(t)
	c := bed.NewCluster(t, controlplane.EnvOptions{Restartable: true})
	ctx := context.Background()
	gcInterval, gcGrace := 2*time.Second, 2*time.Second
	agentArgs := []string{
		"--gc-interval", gcInterval.String(), "--gc-grace", gcGrace.String(),
		"--lease-duration", "3s", "--lease-renew-deadline", "2s", "--lease-retry-period", "500ms",
		"--kube-api-qps", "500", "--kube-api-burst", "1000", "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
	}
	for i := 1; i <= nodes; i++ {
		n := c.AddNode(t, fmt.Sprintf("a-node%d", i), nil)
		c.StartAgent(t, n, agentArgs...)
	}
	// 1279 addresses each: room for every pod of the default storm in its pool.
	pools := map[string][2]string{"storm-a": {"172.110.16.0/20", "172.110.16.1-172.110.20.255"}, "storm-b": {"172.110.32.0/20", "172.110.32.1-172.110.36.255"}}
	if adds > 2400 { // a bigger storm: 16382 addresses per pool
		pools = map[string][2]string{"storm-a": {"172.110.64.0/18", "172.110.64.1-172.110.127.254"}, "storm-b": {"172.110.128.0/18", "172.110.128.1-172.110.191.254"}}
	}
	for name, p := range pools {
		c.CreatePool(t, name, p[0], "172.110.0.1", []string{p[1]})
	}
	bin := c.Bed.PluginDir("underlink-ipam")

	// The pods, spread over the nodes and the two pools; every tenth runs the real macvlan chain.
	start := time.Now()
	pods := make([]*stormPod, adds)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	// Pods are created from goroutines, which report their errors here for the test's goroutine.
	createErrs := make(chan error, adds)
	for i := range pods {
		node := c.Nodes[i%nodes]
		pool := "storm-a"
		if i%2 == 1 {
			pool = "storm-b"
		}
		sp := &stormPod{node: node, pool: pool}
		pods[i] = sp
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			pod, err := c.NewPod(ctx, "storm", fmt.Sprintf("pod-%04d", i), node.Spec.Name, nil)
			if err != nil {
				createErrs <- err
				return
			}
			sp.pod = pod
		}(i)
		if i%10 == 0 {
			sp.ns = c.Bed.Pod(fmt.Sprintf("s%04d", i))
		}
	}
	wg.Wait()
	close(createErrs)
	for err := range createErrs {
		t.Fatal(err)
	}
	t.Logf("created %d pods and %d pod namespaces in %s", adds, adds/10, time.Since(start).Round(time.Millisecond))

	chains := map[string]*netbed.CNI{}
	for _, n := range c.Nodes {
		chains[n.Spec.Name] = c.Bed.CNI(n.NS, bin)
	}
	// The chain of each node and pool, parsed here on the test's goroutine (libcni only reads a list).
	lists := map[[2]string]*libcni.NetworkConfigList{}
	for _, n := range c.Nodes {
		for pool := range pools {
			l, err := netbed.ParseConfList([]byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"storm","plugins":[
		 {"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"underlink-ipam","socket":%q,"timeoutSeconds":15,"ipv4Pools":[%q]}}]}`,
				n.Socket, pool)))
			if err != nil {
				t.Fatal(err)
			}
			lists[[2]string{n.Spec.Name, pool}] = l
		}
	}
	confList := func(sp *stormPod) *libcni.NetworkConfigList { return lists[[2]string{sp.node.Spec.Name, sp.pool}] }
	call := func(sp *stormPod, cmd string) pluginCall {
		return pluginCall{Plugin: c.Plugin, Command: cmd, ContainerID: sp.cid, Netns: c.Scratch.Path(), Pod: sp.pod,
			Conf: ipamConf("1.1.0", sp.node.Socket, 15, sp.pool)}
	}
	// add runs one ADD as the runtime would; a failure must be a CNI error, and is followed by DEL.
	var unclean atomic.Int64
	add := func(sp *stormPod) bool {
		sp.tries++
		sp.cid = fmt.Sprintf("%s-try%d", sp.pod.Name, sp.tries)
		if sp.ns != nil {
			rt := netbed.Attachment(sp.cid, sp.ns, "eth0", netbed.PodArgs(sp.pod.Namespace, sp.pod.Name, string(sp.pod.UID))...)
			res, err := chains[sp.node.Spec.Name].Add(ctx, confList(sp), rt)
			if err == nil {
				r, cerr := current.NewResultFromResult(res)
				if cerr != nil || len(r.IPs) != 1 {
					unclean.Add(1)
					sp.errors = append(sp.errors, fmt.Sprintf("bad result %v %v", res, cerr))
					return false
				}
				sp.ip, _ = netip.AddrFromSlice(r.IPs[0].Address.IP.To4())
				return true
			}
			sp.errors = append(sp.errors, err.Error())
			if !strings.Contains(err.Error(), "underlink") && !strings.Contains(err.Error(), "SpiderIPPool") {
				unclean.Add(1)
			}
			_ = chains[sp.node.Spec.Name].Del(ctx, confList(sp), rt)
			return false
		}
		res, cniErr, err := call(sp, "ADD").add(ctx)
		switch {
		case err != nil:
			unclean.Add(1) // not a CNI error: a crash, garbage on stdout, a hang
			sp.errors = append(sp.errors, "UNCLEAN: "+err.Error())
			return false
		case cniErr != nil:
			sp.errors = append(sp.errors, fmt.Sprintf("code %d: %s", cniErr.Code, cniErr.Msg))
			if _, e, err := call(sp, "DEL").run(ctx); err != nil || e != nil {
				sp.errors = append(sp.errors, fmt.Sprintf("DEL after failed ADD: %v %v", err, e))
			}
			return false
		}
		sp.ip, _ = netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
		return true
	}

	// Chaos while the storm runs: SIGKILL a random agent every 1-2.5s and start it again 0.1-0.6s later;
	// restart the apiserver once, a third of the way in.
	stopChaos := make(chan struct{})
	chaosDone := make(chan struct{})
	var kills atomic.Int64
	var done atomic.Int64
	apiRestarted := make(chan time.Duration, 1)
	stormStart := time.Now()
	go func() {
		defer close(chaosDone)
		restarted := false
		var down []*bed.Node // agents whose restart failed, retried at the next tick
		for {
			select {
			case <-stopChaos:
				return
			case <-time.After(time.Duration(1000+rand.IntN(1500)) * time.Millisecond):
			}
			for i := 0; i < len(down); i++ {
				if err := c.RestartAgent(down[i]); err == nil {
					down = append(down[:i], down[i+1:]...)
					i--
				}
			}
			if !restarted && (done.Load() >= int64(adds/3) || time.Since(stormStart) > 30*time.Second) {
				restarted = true
				t0 := time.Now()
				if err := c.Env.RestartAPIServer(); err != nil {
					t.Errorf("restart apiserver: %v", err)
					return
				}
				apiRestarted <- time.Since(t0)
				continue
			}
			n := c.Nodes[rand.IntN(len(c.Nodes))]
			if slices.Contains(down, n) {
				continue
			}
			if err := n.Agent.Kill(); err != nil {
				t.Errorf("kill agent on %s: %v", n.Spec.Name, err)
				return
			}
			kills.Add(1)
			time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
			if err := c.RestartAgent(n); err != nil {
				t.Logf("agent on %s is slow to come back (retrying): %v", n.Spec.Name, firstLine(err.Error()))
				down = append(down, n)
			}
		}
	}()

	start = time.Now()
	var failedAdds atomic.Int64
	sem = make(chan struct{}, parallel)
	order := rand.Perm(adds)
	for _, i := range order {
		sp := pods[i]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// kubelet retries a failed sandbox; three tries per pod here.
			for try := 0; try < 3; try++ {
				if add(sp) {
					break
				}
				failedAdds.Add(1)
				time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
			}
			done.Add(1)
		}()
	}
	wg.Wait()
	addPhase := time.Since(start)
	close(stopChaos)
	<-chaosDone
	select {
	case d := <-apiRestarted:
		t.Logf("apiserver restarted in %s", d.Round(time.Millisecond))
	default:
		t.Errorf("the apiserver was not restarted during the storm")
	}
	// Every agent serves again before the checks.
	for _, n := range c.Nodes {
		if err := bed.WaitAgent(n, 30*time.Second); err != nil {
			if err := c.RestartAgent(n); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Chaos is over: as kubelet keeps retrying a pod's sandbox, the pods still without an address are
	// tried again until they get one.
	retryStart := time.Now()
	var late atomic.Int64
	sem = make(chan struct{}, parallel)
	for _, sp := range pods {
		if sp.ip.IsValid() {
			continue
		}
		late.Add(1)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Not getting one within 5 minutes is counted below, with every pod that has no address.
			_ = poll.Wait(ctx, 5*time.Minute, 500*time.Millisecond, "an address for "+sp.pod.Name, func() (bool, string, error) {
				return add(sp), "", nil
			})
		}()
	}
	wg.Wait()
	t.Logf("after the chaos, %d pods that had failed 3 ADDs were retried until they got an address (%s)", late.Load(), time.Since(retryStart).Round(time.Millisecond))

	succeeded := 0
	byIP := map[netip.Addr]*stormPod{}
	errorKinds := map[string]int{}
	for _, sp := range pods {
		for _, e := range sp.errors {
			errorKinds[errorKind(e)]++
		}
		if !sp.ip.IsValid() {
			continue
		}
		succeeded++
		if other, dup := byIP[sp.ip]; dup {
			t.Errorf("DUPLICATE: %s given to %s and %s", sp.ip, other.pod.Name, sp.pod.Name)
		}
		byIP[sp.ip] = sp
	}
	t.Logf("storm: %d ADDs on %d nodes, %d in flight, in %s (%.0f ADDs/s): %d pods got an address, %d failed ADDs retried, %d agent kills, %d unclean failures",
		adds, nodes, parallel, addPhase.Round(time.Millisecond), float64(adds)/addPhase.Seconds(), succeeded, failedAdds.Load(), kills.Load(), unclean.Load())
	for k, n := range errorKinds {
		t.Logf("  failed ADD (then DEL, then retried): %4d × %s", n, k)
	}
	if unclean.Load() > 0 {
		for _, sp := range pods {
			for _, e := range sp.errors {
				if strings.HasPrefix(e, "UNCLEAN") {
					t.Errorf("%s: %s", sp.pod.Name, e)
				}
			}
		}
	}
	if succeeded != adds {
		t.Errorf("only %d of %d pods got an address", succeeded, adds)
	}

	// Pool status: every successful ADD's address is held by its pod, and nothing is held twice.
	holders := map[string]netip.Addr{}
	total := 0
	for pool := range pools {
		allocs, _ := c.PoolAllocations(t, pool)
		total += len(allocs)
		for key, a := range allocs {
			ip := netip.MustParseAddr(key)
			k := a.PodUID + "/" + a.NIC
			if prev, dup := holders[k]; dup {
				t.Errorf("pod %s holds %s and %s", a.NamespacedName, prev, ip)
			}
			holders[k] = ip
		}
	}
	for _, sp := range pods {
		if sp.ip.IsValid() && holders[string(sp.pod.UID)+"/eth0"] != sp.ip {
			t.Errorf("%s was given %s, but the pool says %v", sp.pod.Name, sp.ip, holders[string(sp.pod.UID)+"/eth0"])
		}
	}
	t.Logf("pools hold %d addresses for %d pods that got one (the rest: ADDs whose answer was lost with a killed agent, freed by DEL or GC)", total, succeeded)

	// Namespaces: the addresses configured into the pod namespaces are the ones given, each once.
	inNS := map[string]string{}
	checked := 0
	for _, sp := range pods {
		if sp.ns == nil || !sp.ip.IsValid() {
			continue
		}
		got := podAddrs(t, sp.ns, "eth0")
		if len(got) != 1 || strings.Split(got[0], "/")[0] != sp.ip.String() {
			t.Errorf("%s: eth0 has %v, the ADD gave %s", sp.pod.Name, got, sp.ip)
			continue
		}
		if other, dup := inNS[got[0]]; dup {
			t.Errorf("DUPLICATE in namespaces: %s on %s and %s", got[0], other, sp.pod.Name)
		}
		inNS[got[0]] = sp.pod.Name
		checked++
	}
	t.Logf("%d pod namespaces carry their address once each", checked)

	// DEL of every pod (the runtime tears all sandboxes down), then the pods go, then one GC period. A
	// DEL answered "try again later" (the agent's pool write did not complete within the request's time)
	// is repeated, as kubelet repeats a failed teardown; any other failure is an error.
	start = time.Now()
	sem = make(chan struct{}, parallel)
	var delMu sync.Mutex
	var delTook []time.Duration
	var delRetried atomic.Int64
	for _, sp := range pods {
		if sp.tries == 0 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for try := 1; ; try++ {
				t0 := time.Now()
				var err error
				if sp.ns != nil {
					rt := netbed.Attachment(sp.cid, sp.ns, "eth0", netbed.PodArgs(sp.pod.Namespace, sp.pod.Name, string(sp.pod.UID))...)
					err = chains[sp.node.Spec.Name].Del(ctx, confList(sp), rt)
				} else if _, e, rerr := call(sp, "DEL").run(ctx); rerr != nil {
					err = rerr
				} else if e != nil {
					err = e
				}
				delMu.Lock()
				delTook = append(delTook, time.Since(t0))
				delMu.Unlock()
				var ce *types.Error
				if err != nil && errors.As(err, &ce) && ce.Code == types.ErrTryAgainLater && try < 5 {
					delRetried.Add(1)
					continue
				}
				if err != nil {
					t.Errorf("DEL %s (try %d): %v", sp.pod.Name, try, err)
				}
				return
			}
		}()
	}
	wg.Wait()
	slices.Sort(delTook)
	q := func(f float64) time.Duration { return delTook[int(f*float64(len(delTook)-1))].Round(time.Millisecond) }
	t.Logf("DEL of %d pods in %s: each took p50 %s, p99 %s, max %s; %d answered \"try again later\" and were repeated",
		adds, time.Since(start).Round(time.Millisecond), q(0.5), q(0.99), q(1), delRetried.Load())
	left := 0
	for pool := range pools {
		allocs, _ := c.PoolAllocations(t, pool)
		left += len(allocs)
	}
	t.Logf("%d addresses still allocated after every DEL (their sandbox's ADD answer was lost with a killed agent)", left)
	if err := c.Env.Client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace("storm"), client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	poll.Until(t, gcInterval+gcGrace+gcInterval+10*time.Second, "one GC period to free every address", func() (bool, string) {
		n := 0
		for pool := range pools {
			allocs, _ := c.PoolAllocations(t, pool)
			n += len(allocs)
		}
		return n == 0, fmt.Sprintf("%d addresses allocated", n)
	})
	t.Logf("after DEL of all and the pods' deletion, GC left 0 addresses allocated after %s", time.Since(start).Round(time.Millisecond))
}

// errorKind shortens an error to its kind for the storm's summary.
func errorKind(e string) string {
	switch {
	case strings.Contains(e, "no answer within"):
		return "agent did not answer within the plugin's 15s (overloaded, or killed mid-request)"
	case strings.Contains(e, "not reachable"):
		return "agent not reachable (killed or restarting)"
	case strings.Contains(e, "timed out"):
		return "request timed out in the agent (apiserver away)"
	case strings.Contains(e, "from the apiserver failed"):
		return "apiserver read failed (restarting)"
	}
	if len(e) > 100 {
		e = e[:100]
	}
	return e
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
