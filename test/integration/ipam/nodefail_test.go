//go:build integration

package ipam

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/underlink/underlink/cni/agent/gc"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/poll"
)

// TestIPAMNodeFailureKeepsAddresses: a node stops (its agent killed, its Ready condition Unknown as the
// node controller writes it) and its pod is force-deleted from the API, as an operator does for a
// partitioned node. The pod's container may still answer on the underlay, so the address is not handed
// out again: the other node's agent, now collecting, keeps it (an Event on the pool says why) and the
// pool's only other address goes to a new pod, after which the pool is full. When the node is back, the
// address is freed. With the operator's --gc-node-lost-timeout, it is freed once the node has been down
// that long, and not before.
func TestIPAMNodeFailureKeepsAddresses(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	ctx := context.Background()
	down, up := c.AddNode(t, "a-node1", nil), c.AddNode(t, "a-node2", nil)
	gcArgs := []string{"--gc-interval", "300ms", "--gc-grace", "500ms", "--lease-duration", "2s", "--lease-renew-deadline", "1500ms", "--lease-retry-period", "250ms"}
	c.StartAgent(t, down, gcArgs...)
	c.StartAgent(t, up, gcArgs...)
	c.CreatePool(t, "two", "172.110.4.0/24", "172.110.0.1", []string{"172.110.4.10-172.110.4.11"})
	add := func(pod *corev1.Pod, n *bed.Node, cid string) (string, *types.Error) {
		t.Helper()
		res, e, err := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: cid, Pod: pod, Conf: ipamConf("1.1.0", n.Socket, 10, "two")}.add(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e != nil {
			return "", e
		}
		return res.IPs[0].Address.IP.String(), nil
	}
	// fail stops a-node1 as a node failure does: its agent and (simulated) kubelet stop, the node
	// controller marks it Unknown, and the operator force-deletes its pod. It returns when the node went
	// down, as its Ready condition's lastTransitionTime says (the API keeps it to the second).
	fail := func(pod *corev1.Pod) time.Time {
		t.Helper()
		if err := down.Agent.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := c.SetNodeReady("a-node1", corev1.ConditionUnknown); err != nil {
			t.Fatal(err)
		}
		var n1 corev1.Node
		if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: "a-node1"}, &n1); err != nil {
			t.Fatal(err)
		}
		if err := c.Env.Client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		return n1.Status.Conditions[0].LastTransitionTime.Time
	}

	old := c.CreatePod(t, "default", "old", "a-node1", nil)
	oldIP, e := add(old, down, "cid-old")
	if e != nil {
		t.Fatal(e)
	}
	fail(old)
	deleted := time.Now()
	// a-node2's agent takes the collector's Lease (2 s) and reports the address it keeps on the pool.
	var kept string
	poll.Until(t, 30*time.Second, "an "+gc.ReasonKeptForDownNode+" Event on SpiderIPPool two", func() (bool, string) {
		var evs corev1.EventList
		if err := c.Env.Client.List(ctx, &evs, client.MatchingFields{"involvedObject.name": "two"}); err != nil {
			return false, err.Error()
		}
		for _, ev := range evs.Items {
			if ev.Reason == gc.ReasonKeptForDownNode {
				kept = ev.Message
				return true, ""
			}
		}
		return false, fmt.Sprint(len(evs.Items), " events")
	})
	t.Logf("Event on the pool %s after the force-delete: %s", time.Since(deleted).Round(time.Millisecond), kept)
	if !strings.Contains(kept, oldIP) || !strings.Contains(kept, "a-node1") {
		t.Errorf("the Event names neither the address %s nor the node: %s", oldIP, kept)
	}
	// Many passes later (300 ms each, grace 500 ms) the address is still held by the gone pod's record.
	time.Sleep(3 * time.Second)
	allocs, _ := c.PoolAllocations(t, "two")
	if a, ok := allocs[oldIP]; !ok || a.PodUID != string(old.UID) || a.Node != "a-node1" {
		t.Fatalf("the down node's address %s was not kept for its pod: %v", oldIP, allocs)
	}
	// New pods get the other address, then nothing: the kept address is never handed out.
	newIP, e := add(c.CreatePod(t, "default", "new", "a-node2", nil), up, "cid-new")
	if e != nil || newIP == oldIP {
		t.Fatalf("a new pod while the node is down: got %q (%v), kept %s", newIP, e, oldIP)
	}
	if ip, e := add(c.CreatePod(t, "default", "third", "a-node2", nil), up, "cid-third"); e == nil {
		t.Fatalf("a third pod got %s from a pool of two with one kept for the down node", ip)
	} else {
		t.Logf("a third pod while the node is down: %s", e.Msg)
	}
	// The node is back: its address is freed.
	if err := c.SetNodeReady("a-node1", corev1.ConditionTrue); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	poll.Until(t, 20*time.Second, "the address "+oldIP+" freed once its node is back", func() (bool, string) {
		allocs, _ := c.PoolAllocations(t, "two")
		_, held := allocs[oldIP]
		return !held, fmt.Sprint(allocs)
	})
	t.Logf("node back: %s freed after %s", oldIP, time.Since(back).Round(time.Millisecond))

	// The agent that served this pool's ADDs and collected its garbage serves every metric the chart's
	// dashboard reads of the agent.
	_, exposition := getBody(t, httpInNetns(up.NS), "http://127.0.0.1:9711/metrics")
	if missing := test.MissingMetrics(test.DashboardMetrics(t, "underlink_ipam_", "underlink_underlay_"), exposition); len(missing) > 0 {
		t.Errorf("the dashboard reads agent metrics that underlink-agent does not serve: %v", missing)
	}

	// The operator's timeout: with --gc-node-lost-timeout 4s, an address of a node down that long is freed.
	c.StartAgent(t, up, append(gcArgs, "--gc-node-lost-timeout", "4s")...)
	c.StartAgent(t, down, append(gcArgs, "--gc-node-lost-timeout", "4s")...)
	lost := c.CreatePod(t, "default", "lost", "a-node1", nil)
	lostIP, e := add(lost, down, "cid-lost")
	if e != nil {
		t.Fatal(e)
	}
	downAt := fail(lost)
	var freedAt time.Time
	poll.Until(t, 30*time.Second, "the address "+lostIP+" freed after the node-lost timeout", func() (bool, string) {
		allocs, _ := c.PoolAllocations(t, "two")
		_, held := allocs[lostIP]
		freedAt = time.Now()
		return !held, fmt.Sprint(allocs)
	})
	took := freedAt.Sub(downAt)
	t.Logf("node-lost timeout 4s: %s freed %s after the node went down (its Ready condition's lastTransitionTime)", lostIP, took.Round(time.Millisecond))
	if took < 4*time.Second {
		t.Errorf("freed %s after the node went down, before the node-lost timeout of 4s", took)
	}
}
