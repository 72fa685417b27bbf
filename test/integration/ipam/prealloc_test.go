//go:build integration

package ipam

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/poll"
)

// TestIPAMPreallocation: the agent gives a pod bound to its node the address of its default network as
// soon as it sees the pod, and the runtime's ADD then gets that address; only pods whose default network
// is an underlink SpiderMultusConfig get one, each pod once; a DEL frees it for good; an address the ADD
// did not use (the config's pools changed) is freed; a pod deleted before any ADD is collected; a
// restarted agent pre-allocates for pods bound while it was down.
func TestIPAMPreallocation(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	node := c.AddNode(t, "a-node1", nil)
	c.StartAgent(t, node, "--gc-interval", "500ms", "--gc-grace", "1s", "--lease-duration", "2s", "--lease-renew-deadline", "1500ms", "--lease-retry-period", "250ms")
	ctx := context.Background()
	c.CreatePool(t, "pre", "172.110.5.0/24", "172.110.5.254", []string{"172.110.5.10-172.110.5.50"})
	c.CreatePool(t, "other", "172.110.6.0/24", "172.110.6.254", []string{"172.110.6.10-172.110.6.50"})
	smc := &spv2.SpiderMultusConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "macvlan-conf"},
		Spec: spv2.MultusCNIConfigSpec{CniType: new("macvlan"), MacvlanConfig: &spv2.SpiderMacvlanCniConfig{
			Master: []string{"ens224"}, SpiderpoolConfigPools: &spv2.SpiderpoolPools{IPv4IPPool: []string{"pre"}},
		}},
	}
	if err := c.Env.Client.Create(ctx, smc); err != nil {
		t.Fatal(err)
	}
	onNetwork := map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"}
	// held returns the address pool holds for pod's eth0, and the sandbox recorded on it.
	held := func(pool string, pod *corev1.Pod) (ip, containerID string, ok bool) {
		allocs, _ := c.PoolAllocations(t, pool)
		for k, a := range allocs {
			if a.PodUID == string(pod.UID) && a.NIC == "eth0" {
				return k, a.ContainerID, true
			}
		}
		return "", "", false
	}
	waitHeld := func(pool string, pod *corev1.Pod) string {
		t.Helper()
		var ip string
		poll.Until(t, 10*time.Second, fmt.Sprintf("pre-allocation of %s in %s", pod.Name, pool), func() (bool, string) {
			var cid string
			var ok bool
			ip, cid, ok = held(pool, pod)
			return ok && cid == "", fmt.Sprintf("held %q by sandbox %q", ip, cid)
		})
		return ip
	}
	add := func(pod *corev1.Pod, cid string, pools ...string) string {
		t.Helper()
		res, e, err := pluginCall{Plugin: c.Plugin, Command: "ADD", Netns: c.Scratch.Path(), ContainerID: cid, Pod: pod, Conf: ipamConf("1.1.0", node.Socket, 10, pools...)}.add(ctx)
		if err != nil || e != nil {
			t.Fatalf("ADD %s: %v %v", pod.Name, err, e)
		}
		return res.IPs[0].Address.IP.String()
	}

	// caughtUp waits until the agent has taken up every pod event so far: its informer hands it the events
	// in order and its queue is first in, first out, so once a pod created now is pre-allocated, the
	// events before it have been handled.
	marks := 0
	caughtUp := func() {
		t.Helper()
		marks++
		waitHeld("pre", c.CreatePod(t, "default", fmt.Sprintf("mark-%d", marks), "a-node1", onNetwork))
	}

	web := c.CreatePod(t, "default", "web", "a-node1", onNetwork)
	plain := c.CreatePod(t, "default", "plain", "a-node1", nil)
	ip := waitHeld("pre", web)
	t.Logf("web pre-allocated %s before any ADD", ip)
	if got := add(web, "cid-web", "pre"); got != ip {
		t.Fatalf("ADD gave %s, want the pre-allocated %s", got, ip)
	}
	poll.Until(t, 10*time.Second, "the ADD's sandbox recorded on the pre-allocated address", func() (bool, string) {
		got, cid, ok := held("pre", web)
		return ok && got == ip && cid == "cid-web", fmt.Sprintf("held %q by sandbox %q", got, cid)
	})
	if got := add(web, "cid-web", "pre"); got != ip {
		t.Fatalf("repeated ADD gave %s, want %s", got, ip)
	}
	if _, _, ok := held("pre", plain); ok {
		t.Error("a pod without a network annotation (the cluster's primary CNI) got an address before any ADD")
	}

	// DEL frees it, and the still pending pod is not given another one.
	if _, e, err := (pluginCall{Plugin: c.Plugin, Command: "DEL", Netns: c.Scratch.Path(), ContainerID: "cid-web", Pod: web, Conf: ipamConf("1.1.0", node.Socket, 10, "pre")}).run(ctx); err != nil || e != nil {
		t.Fatal(err, e)
	}
	// Touch the pod so the agent sees an update of it, as a kubelet's status write would cause.
	web.Labels["touched"] = "yes"
	if err := c.Env.Client.Update(ctx, web); err != nil {
		t.Fatal(err)
	}
	caughtUp()
	if got, _, ok := held("pre", web); ok {
		t.Errorf("after DEL the pod holds %s again: pre-allocation must happen once per pod", got)
	}

	// An ADD right after the pod is bound gets one address, whichever of the two comes first.
	race := c.CreatePod(t, "default", "race", "a-node1", onNetwork)
	raced := add(race, "cid-race", "pre")
	// Both have answered once the ADD's sandbox is recorded (an ADD answered from a pre-allocation records
	// it a moment later) and the agent has taken up the pod's events.
	poll.Until(t, 10*time.Second, "the race ADD's sandbox recorded", func() (bool, string) {
		allocs, _ := c.PoolAllocations(t, "pre")
		for _, a := range allocs {
			if a.PodUID == string(race.UID) && a.ContainerID == "cid-race" {
				return true, ""
			}
		}
		return false, fmt.Sprint(allocs)
	})
	caughtUp()
	allocs, _ := c.PoolAllocations(t, "pre")
	n := 0
	for k, a := range allocs {
		if a.PodUID == string(race.UID) {
			n++
			if k != raced || a.ContainerID != "cid-race" {
				t.Errorf("race pod: pool holds %s for sandbox %q, the ADD got %s", k, a.ContainerID, raced)
			}
		}
	}
	if n != 1 {
		t.Errorf("race pod holds %d addresses, want 1: %v", n, allocs)
	}

	// The config's pools change between the pre-allocation and the ADD: the unused address is freed.
	moved := c.CreatePod(t, "default", "moved", "a-node1", onNetwork)
	stray := waitHeld("pre", moved)
	got := add(moved, "cid-moved", "other")
	poll.Until(t, 10*time.Second, "the unused pre-allocation freed", func() (bool, string) {
		_, _, ok := held("pre", moved)
		return !ok, "pre still holds " + stray
	})
	if ip, _, ok := held("other", moved); !ok || ip != got {
		t.Errorf("moved: other holds %q, the ADD got %s", ip, got)
	}

	// A sandbox that failed before its ADD reached the IPAM (Multus gave up reading the pod) is torn down
	// with a DEL. If no ADD was answered from the pod's pre-allocation yet, that DEL frees it: a pod whose
	// sandboxes keep failing holds nothing. If another sandbox's ADD was answered from it, the DEL, and
	// the same DEL again later (the kubelet's cleanup), free nothing, before the adoption is written and
	// after: the address runs in the other sandbox, and freed, it would go to another pod.
	retry := c.CreatePod(t, "default", "retry", "a-node1", onNetwork)
	retryIP := waitHeld("pre", retry)
	delRetry := func(cid string) {
		t.Helper()
		if _, e, err := (pluginCall{Plugin: c.Plugin, Command: "DEL", Netns: c.Scratch.Path(), ContainerID: cid, Pod: retry, Conf: ipamConf("1.1.0", node.Socket, 10, "pre")}).run(ctx); err != nil || e != nil {
			t.Fatal(err, e)
		}
	}
	if got := add(retry, "cid-retry", "pre"); got != retryIP {
		t.Fatalf("the ADD gave %s, want the pre-allocated %s", got, retryIP)
	}
	delRetry("cid-failed") // most often before the adoption is written (AdoptDelay), else after
	if ip, _, ok := held("pre", retry); !ok || ip != retryIP {
		t.Fatalf("after the DEL of a sandbox that never reached the IPAM: held %q (%v), want %s kept for cid-retry", ip, ok, retryIP)
	}
	poll.Until(t, 10*time.Second, "the answered sandbox recorded on the pre-allocation", func() (bool, string) {
		ip, cid, ok := held("pre", retry)
		return ok && ip == retryIP && cid == "cid-retry", fmt.Sprintf("held %q by sandbox %q (%v)", ip, cid, ok)
	})
	delRetry("cid-failed")
	if ip, cid, ok := held("pre", retry); !ok || ip != retryIP || cid != "cid-retry" {
		t.Errorf("after a late DEL of the failed sandbox: held %q by sandbox %q (%v), want %s by cid-retry", ip, cid, ok, retryIP)
	}
	failing := c.CreatePod(t, "default", "failing", "a-node1", onNetwork)
	waitHeld("pre", failing)
	if _, e, err := (pluginCall{Plugin: c.Plugin, Command: "DEL", Netns: c.Scratch.Path(), ContainerID: "cid-never", Pod: failing, Conf: ipamConf("1.1.0", node.Socket, 10, "pre")}).run(ctx); err != nil || e != nil {
		t.Fatal(err, e)
	}
	if ip, _, ok := held("pre", failing); ok {
		t.Errorf("a pod whose only sandbox failed before its ADD still holds %s after that sandbox's DEL", ip)
	}

	// A pod deleted before its sandbox ever asked (a workload scaled down while ContainerCreating): the
	// agent sees the deletion and frees the address no ADD took, without waiting for garbage collection.
	never := c.CreatePod(t, "default", "never", "a-node1", onNetwork)
	waitHeld("pre", never)
	if err := c.Env.Client.Delete(ctx, never, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the agent to free the pre-allocation of a deleted pod", func() (bool, string) {
		_, _, ok := held("pre", never)
		return !ok, "still held"
	})
	// The agent logs the release after its write: the log line may trail the status the test read.
	freedOnDelete := func(logs string) bool {
		return strings.Contains(logs, `"freed a pre-allocation"`) && strings.Contains(logs, "its pod was deleted before any ADD took it")
	}
	if err := poll.Wait(ctx, 5*time.Second, 50*time.Millisecond, "the agent's log of the release", func() (bool, string, error) {
		return freedOnDelete(node.Agent.Logs()), "", nil
	}); err != nil {
		t.Errorf("the deleted pod's pre-allocation was not freed by the agent on the pod's deletion (garbage collection?); agent log:\n%s", node.Agent.Logs())
	}

	// A pod bound while the agent is down is pre-allocated by the restarted agent.
	if err := node.Agent.Kill(); err != nil {
		t.Fatal(err)
	}
	late := c.CreatePod(t, "default", "late", "a-node1", onNetwork)
	if err := c.RestartAgent(node); err != nil {
		t.Fatal(err)
	}
	lateIP := waitHeld("pre", late)
	if got := add(late, "cid-late", "pre"); got != lateIP {
		t.Fatalf("ADD after restart gave %s, want the pre-allocated %s", got, lateIP)
	}
}
