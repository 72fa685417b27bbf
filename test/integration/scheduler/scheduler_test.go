//go:build integration

package scheduler

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/scheduler/schedulertest"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/poll"
)

const schedName = "underlink-scheduler"

// TestSchedulerUnderlayLinks runs underlink-scheduler as a second scheduler (deploy/scheduler/
// underlink-scheduler.yaml) on the seed's pool and network with three nodes, ens224 up on two:
// underlay pods land only on those two, plain pods anywhere; pods pending for the third node are placed
// as soon as its link comes up (queueing hint, latency logged); a pod naming a config that does not
// exist (the seed deployment's typo) is Pending with that reason until the config appears.
func TestSchedulerUnderlayLinks(t *testing.T) {
	c := newSchedCluster(t)
	bed.ApplySeed(t, c.env.Client, "cluster-a-ippool.yaml")
	bed.ApplySeed(t, c.env.Client, "cluster-a-multusconfig.yaml")
	c.node("node-1", schedulertest.NodeUp("ens224"))
	c.node("node-2", schedulertest.NodeUp("ens224"))
	c.node("node-3", map[string]string{"underlay.underlink.io/ens224": "down"})
	schedulertest.Start(t, schedulertest.Config(t, "underlink-scheduler.yaml", c.env.Kubeconfig(t), schedulertest.NoPacing))

	var pods []*v1.Pod
	for i := 0; i < 20; i++ {
		pods = append(pods, schedulertest.Pod("default", fmt.Sprintf("underlay-%d", i), schedName, "kube-system/macvlan-conf"))
	}
	for i := 0; i < 10; i++ {
		pods = append(pods, schedulertest.Pod("default", fmt.Sprintf("plain-%d", i), schedName, ""))
	}
	c.create(pods...)
	placed := c.waitBound(30, time.Minute)
	perNode := map[string][]string{}
	for name, node := range placed {
		perNode[node] = append(perNode[node], name)
		if strings.HasPrefix(name, "underlay-") && node == "node-3" {
			t.Errorf("underlay pod %s was placed on node-3, whose ens224 is down", name)
		}
	}
	plainOn3 := 0
	for _, n := range perNode["node-3"] {
		if strings.HasPrefix(n, "plain-") {
			plainOn3++
		}
	}
	if plainOn3 == 0 {
		t.Errorf("no plain pod on node-3: the plugin must not restrict pods of the primary network (placement %v)", perNode)
	}
	t.Logf("placement: node-1 %d pods, node-2 %d, node-3 %d (all plain)", len(perNode["node-1"]), len(perNode["node-2"]), len(perNode["node-3"]))

	// Pods that can only go to node-3 wait for its link.
	var pinned []*v1.Pod
	for i := 0; i < 3; i++ {
		p := schedulertest.Pod("default", fmt.Sprintf("pinned-%d", i), schedName, "kube-system/macvlan-conf")
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": "node-3"}
		pinned = append(pinned, p)
	}
	c.create(pinned...)
	for _, p := range pinned {
		msg := c.waitFailedScheduling(p.Name, "node(s) had underlay link ens224 down")
		t.Logf("%s: %s", p.Name, msg)
	}
	start := time.Now()
	c.label("node-3", "underlay.underlink.io/ens224", "up")
	got := c.waitBound(33, 30*time.Second)
	elapsed := time.Since(start)
	for _, p := range pinned {
		if got[p.Name] != "node-3" {
			t.Errorf("%s placed on %q, want node-3", p.Name, got[p.Name])
		}
	}
	t.Logf("MEASURED: 3 pending underlay pods placed on node-3 %s after its ens224 label turned up (goal < 2s)", elapsed.Round(time.Millisecond))

	// The seed deployment's annotation names kube-system/macvlan-confg, a config that does not exist.
	typo := schedulertest.Pod("default", "seed-typo", schedName, "kube-system/macvlan-confg")
	c.create(typo)
	msg := c.waitFailedScheduling(typo.Name, "network kube-system/macvlan-confg (v1.multus-cni.io/default-network) not found")
	t.Logf("%s: %s", typo.Name, msg)
	seed, err := test.SeedManifest("cluster-a-multusconfig.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bed.ApplyYAML(t, c.env.Client, strings.Replace(string(seed), "name: macvlan-conf", "name: macvlan-confg", 1))
	if c.waitBoundNames(30*time.Second, typo.Name)[typo.Name] == "" {
		t.Errorf("pod naming the now existing config was not placed")
	}
}

// TestSchedulerPoolCapacity creates five pods at once for a pool with three free addresses: exactly
// three are bound and two stay Pending with the pool's reason; when one bound pod is deleted and the
// agent releases its address, one more is bound. It runs with underlink-scheduler as a second scheduler
// and as an extra profile of the cluster's scheduler (deploy/scheduler/extra-profile.yaml), where the
// default-scheduler profile keeps placing ordinary pods.
func TestSchedulerPoolCapacity(t *testing.T) {
	for _, cfg := range []string{"underlink-scheduler.yaml", "extra-profile.yaml"} {
		t.Run(strings.TrimSuffix(cfg, ".yaml"), func(t *testing.T) {
			c := newSchedCluster(t)
			bed.ApplyYAML(t, c.env.Client, `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: burst
spec:
  subnet: 172.110.2.0/24
  ips: ["172.110.2.1-172.110.2.5"]
  gateway: 172.110.2.254
`)
			bed.ApplyYAML(t, c.env.Client, `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: burst-net
  namespace: kube-system
spec:
  cniType: macvlan
  macvlan:
    master: [ens224]
    ippools:
      ipv4: [burst]
`)
			// Two addresses are held by pods of earlier days, as the agent recorded them.
			c.allocate("burst", 5, map[string]types.UID{"172.110.2.1": "earlier-1", "172.110.2.2": "earlier-2"})
			c.node("node-1", schedulertest.NodeUp("ens224"))
			c.node("node-2", schedulertest.NodeUp("ens224"))
			sched := schedulertest.Start(t, schedulertest.Config(t, cfg, c.env.Kubeconfig(t), schedulertest.NoPacing))

			var pods []*v1.Pod
			for i := 0; i < 5; i++ {
				pods = append(pods, schedulertest.Pod("default", fmt.Sprintf("burst-%d", i), schedName, "kube-system/burst-net"))
			}
			c.createConcurrently(pods...)
			c.waitBound(3, time.Minute)
			var pending []string
			for _, p := range pods {
				if c.nodeOf(p.Name) == "" {
					pending = append(pending, p.Name)
				}
			}
			if len(pending) != 2 {
				t.Fatalf("pending %v, want 2 pods", pending)
			}
			for _, name := range pending {
				t.Logf("%s: %s", name, c.waitFailedScheduling(name, "node(s) had no free IP in pool burst (5/5"))
			}
			// Nothing else may be bound while no address is free: once the scheduler has tried every pod it
			// holds and parked the two as unschedulable, only an event could bind one.
			c.waitSettled(sched, 0, len(pending))
			if n := len(c.bound()); n != 3 {
				t.Fatalf("%d pods bound with 3 free addresses", n)
			}

			// The agent allocates for the three bound pods (CNI ADD on their nodes).
			allocs := map[string]types.UID{"172.110.2.1": "earlier-1", "172.110.2.2": "earlier-2"}
			var boundPods []*v1.Pod
			ip := 3
			for _, p := range pods {
				got, err := c.cs.CoreV1().Pods("default").Get(c.ctx, p.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if got.Spec.NodeName != "" {
					allocs[fmt.Sprintf("172.110.2.%d", ip)] = got.UID
					ip++
					boundPods = append(boundPods, got)
				}
			}
			updates := poolUpdates(c.metrics(sched))
			c.allocate("burst", 5, allocs)
			c.waitSettled(sched, updates+1, len(pending))
			if n := len(c.bound()); n != 3 {
				t.Fatalf("%d pods bound after allocation, want still 3", n)
			}

			// One bound pod is deleted; the agent's CNI DEL releases its address.
			gone := boundPods[0]
			if err := c.cs.CoreV1().Pods("default").Delete(c.ctx, gone.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
				t.Fatal(err)
			}
			for addr, uid := range allocs {
				if uid == gone.UID {
					delete(allocs, addr)
				}
			}
			freed := time.Now()
			c.allocate("burst", 5, allocs)
			c.waitBound(3, 30*time.Second) // the two survivors and one of the pending pods
			t.Logf("MEASURED: a pending pod bound %s after a bound pod was deleted and its address released", time.Since(freed).Round(time.Millisecond))
			still := 0
			for _, name := range pending {
				if c.nodeOf(name) == "" {
					still++
				}
			}
			if still != 1 {
				t.Errorf("%d of the pending pods still pending after one address was freed, want 1", still)
			}

			if cfg == "extra-profile.yaml" {
				plain := schedulertest.Pod("default", "stock", "default-scheduler", "")
				c.create(plain)
				if c.waitBoundNames(30*time.Second, plain.Name)[plain.Name] == "" {
					t.Error("the default-scheduler profile did not place an ordinary pod")
				}
			}
		})
	}
}

// TestSchedulerPacesPodStarts runs underlink-scheduler with maxStartingPodsPerNode 2 on two nodes: of
// eight underlay pods created at once, two per node are bound and the others wait in Permit, while plain
// pods are bound at once. The test plays kubelet: a pod whose sandbox is ready
// (PodReadyToStartContainers) and a pod deleted before it started each let one waiting pod onto their
// node, and pods that never start give up their slots after startingTimeout.
func TestSchedulerPacesPodStarts(t *testing.T) {
	c := newSchedCluster(t)
	bed.ApplySeed(t, c.env.Client, "cluster-a-ippool.yaml")
	bed.ApplySeed(t, c.env.Client, "cluster-a-multusconfig.yaml")
	c.node("node-1", schedulertest.NodeUp("ens224"))
	c.node("node-2", schedulertest.NodeUp("ens224"))
	const timeout = 30 * time.Second
	schedulertest.Start(t, schedulertest.Config(t, "underlink-scheduler.yaml", c.env.Kubeconfig(t), func(cfg map[string]any) {
		schedulertest.SetPluginArgs(cfg, map[string]any{"maxStartingPodsPerNode": 2, "startingTimeout": timeout.String()})
	}))

	var pods []*v1.Pod
	for i := 0; i < 8; i++ {
		pods = append(pods, schedulertest.Pod("default", fmt.Sprintf("underlay-%d", i), schedName, "kube-system/macvlan-conf"))
	}
	pods = append(pods, schedulertest.Pod("default", "plain-0", schedName, ""), schedulertest.Pod("default", "plain-1", schedName, ""))
	c.createConcurrently(pods...)
	started := time.Now()
	b := c.waitBound(6, 30*time.Second)
	// Give the scheduler time to bind more if it were not pacing.
	time.Sleep(2 * time.Second)
	b = c.bound()
	perNode := map[string][]string{}
	for name, node := range b {
		if strings.HasPrefix(name, "underlay-") {
			perNode[node] = append(perNode[node], name)
		}
	}
	if b["plain-0"] == "" || b["plain-1"] == "" || len(perNode["node-1"]) != 2 || len(perNode["node-2"]) != 2 {
		t.Fatalf("bound %v, want both plain pods and two underlay pods on each node", b)
	}

	// kubelet reports one pod's sandbox ready: one waiting pod goes to its node.
	first := perNode["node-1"][0]
	pod, err := c.cs.CoreV1().Pods("default").Get(c.ctx, first, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = v1.PodPending
	pod.Status.Conditions = append(pod.Status.Conditions, v1.PodCondition{Type: v1.PodReadyToStartContainers, Status: v1.ConditionTrue, LastTransitionTime: metav1.Now()})
	if _, err := c.cs.CoreV1().Pods("default").UpdateStatus(c.ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := time.Now()
	b = c.waitBound(7, 10*time.Second)
	t.Logf("MEASURED: a waiting pod bound %s after a starting pod's sandbox was reported ready", time.Since(ready).Round(time.Millisecond))
	if got := newlyBound(b, perNode, "node-1"); len(got) != 1 {
		t.Fatalf("after a pod on node-1 started: newly bound on node-1 %v, want one pod; bound %v", got, b)
	}

	// A pod deleted before it started frees its slot on its node.
	gone := perNode["node-2"][0]
	if err := c.cs.CoreV1().Pods("default").Delete(c.ctx, gone, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	b = c.waitBound(7, 10*time.Second) // 7 again: one gone, one more bound
	if got := newlyBound(b, perNode, "node-2"); len(got) != 1 {
		t.Fatalf("after a pod on node-2 was deleted: newly bound on node-2 %v, want one pod; bound %v", got, b)
	}
	if time.Since(started) > timeout {
		t.Fatalf("the steps took %s, longer than startingTimeout %s: the slots may have expired on their own", time.Since(started), timeout)
	}

	// The pods bound so far never start: after startingTimeout their slots go to the remaining pods.
	b = c.waitBound(9, timeout+30*time.Second)
	t.Logf("all pods bound %s after the first bind (startingTimeout %s)", time.Since(started).Round(time.Second), timeout)
}

// newlyBound returns the underlay pods bound on node that were not there before.
func newlyBound(now map[string]string, before map[string][]string, node string) []string {
	var out []string
	for name, n := range now {
		if n == node && strings.HasPrefix(name, "underlay-") && !slices.Contains(before[node], name) {
			out = append(out, name)
		}
	}
	return out
}

// schedCluster is a control plane with helpers to drive the scheduler tests.
type schedCluster struct {
	t   *testing.T
	env *controlplane.Env
	cs  kubernetes.Interface
	ctx context.Context
}

func newSchedCluster(t *testing.T) *schedCluster {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{})
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 1000, 1000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &schedCluster{t: t, env: env, cs: cs, ctx: ctx}
}

// allocate writes the pool's status as the IPAM agent does: allocatedIPs and its count.
func (c *schedCluster) allocate(pool string, total int64, addrs map[string]types.UID) {
	c.t.Helper()
	var p spv2.SpiderIPPool
	if err := c.env.Client.Get(c.ctx, types.NamespacedName{Name: pool}, &p); err != nil {
		c.t.Fatal(err)
	}
	a := spv2.PoolIPAllocations{}
	for addr, uid := range addrs {
		a[addr] = spv2.PoolIPAllocation{NIC: "eth0", NamespacedName: "default/" + string(uid), PodUID: string(uid)}
	}
	enc, err := a.Encode()
	if err != nil {
		c.t.Fatal(err)
	}
	n := int64(len(addrs))
	p.Status = spv2.IPPoolStatus{AllocatedIPs: enc, AllocatedIPCount: &n, TotalIPCount: &total}
	if err := c.env.Client.Status().Update(c.ctx, &p); err != nil {
		c.t.Fatalf("write status of pool %s: %v", pool, err)
	}
}

func (c *schedCluster) node(name string, labels map[string]string) {
	c.t.Helper()
	if _, err := schedulertest.CreateNode(c.ctx, c.cs, name, labels); err != nil {
		c.t.Fatal(err)
	}
}

func (c *schedCluster) label(node, key, value string) {
	c.t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, key, value)
	if _, err := c.cs.CoreV1().Nodes().Patch(c.ctx, node, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *schedCluster) create(pods ...*v1.Pod) {
	c.t.Helper()
	for _, p := range pods {
		if _, err := c.cs.CoreV1().Pods(p.Namespace).Create(c.ctx, p, metav1.CreateOptions{}); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *schedCluster) createConcurrently(pods ...*v1.Pod) {
	c.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(pods))
	for _, p := range pods {
		wg.Add(1)
		go func(p *v1.Pod) {
			defer wg.Done()
			if _, err := c.cs.CoreV1().Pods(p.Namespace).Create(c.ctx, p, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		}(p)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		c.t.Fatal(err)
	}
}

// bound returns pod name → node of the bound pods in default.
func (c *schedCluster) bound() map[string]string {
	c.t.Helper()
	list, err := c.cs.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range list.Items {
		if p.Spec.NodeName != "" {
			out[p.Name] = p.Spec.NodeName
		}
	}
	return out
}

func (c *schedCluster) nodeOf(name string) string { return c.bound()[name] }

// waitBound waits until n pods of default are bound and returns where they are.
func (c *schedCluster) waitBound(n int, timeout time.Duration) map[string]string {
	c.t.Helper()
	var b map[string]string
	poll.UntilEvery(c.t, timeout, 50*time.Millisecond, fmt.Sprintf("%d pods of default bound", n), func() (bool, string) {
		b = c.bound()
		return len(b) >= n, fmt.Sprintf("%d bound: %v", len(b), sortedKeys(b))
	})
	return b
}

// waitBoundNames waits until the named pods are bound, or timeout passes, and returns where the bound
// pods of default are; the caller judges.
func (c *schedCluster) waitBoundNames(timeout time.Duration, names ...string) map[string]string {
	c.t.Helper()
	var b map[string]string
	_ = poll.Wait(c.ctx, timeout, 50*time.Millisecond, fmt.Sprintf("pods %v bound", names), func() (bool, string, error) {
		b = c.bound()
		all := true
		for _, n := range names {
			all = all && b[n] != ""
		}
		return all, "", nil
	})
	return b
}

// waitFailedScheduling waits for a FailedScheduling event of the pod whose message contains want, and
// returns the message as `kubectl describe pod` shows it.
func (c *schedCluster) waitFailedScheduling(pod, want string) string {
	c.t.Helper()
	var msg string
	poll.Until(c.t, 30*time.Second, fmt.Sprintf("a FailedScheduling event of %s containing %q", pod, want), func() (bool, string) {
		list, err := c.cs.CoreV1().Events("default").List(c.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.Reason != "FailedScheduling" {
				continue
			}
			seen = append(seen, e.Message)
			if strings.Contains(e.Message, want) {
				msg = e.Message
				return true, ""
			}
		}
		return false, fmt.Sprintf("events: %q", seen)
	})
	return msg
}

// waitSettled waits until the scheduler has handled at least handledUpdates SpiderIPPool updates (their
// queueing hints have run) and then, in a later scrape of its metrics, has tried every pod it holds: none
// in its active or backoff queue and unschedulable pods parked as unschedulable, none in flight. A pod
// not bound by then stays unbound until another event requeues it.
func (c *schedCluster) waitSettled(sched *schedulertest.Process, handledUpdates float64, unschedulable int) {
	c.t.Helper()
	handled := false
	poll.Until(c.t, 30*time.Second, fmt.Sprintf("the scheduler settled with %d unschedulable pods after %v pool updates", unschedulable, handledUpdates), func() (bool, string) {
		m := c.metrics(sched)
		updates := poolUpdates(m)
		active := sample(m, "scheduler_pending_pods", `queue="active"`)
		backoff := sample(m, "scheduler_pending_pods", `queue="backoff"`)
		parked := sample(m, "scheduler_pending_pods", `queue="unschedulable"`)
		state := fmt.Sprintf("%v pool updates handled; pending pods: %v active, %v backoff, %v unschedulable", updates, active, backoff, parked)
		if !handled {
			handled = updates >= handledUpdates
			return false, state
		}
		return active == 0 && backoff == 0 && parked == float64(unschedulable), state
	})
}

// metrics scrapes the scheduler's /metrics.
func (c *schedCluster) metrics(sched *schedulertest.Process) string {
	c.t.Helper()
	m, err := sched.Metrics(c.ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// poolUpdates counts the SpiderIPPool updates the scheduler has handled (every queueing hint run).
func poolUpdates(metrics string) float64 {
	return sample(metrics, "scheduler_event_handling_duration_seconds_count", `event="spiderippools.`, `Update"`)
}

// sample sums the samples of the metric name, in Prometheus' text format, whose labels contain every one
// of labels (e.g. `queue="active"`).
func sample(metrics, name string, labels ...string) float64 {
	sum := 0.0
	for _, line := range strings.Split(metrics, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		ls, v, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(ls, l)
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); match && err == nil {
			sum += f
		}
	}
	return sum
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
