//go:build integration

package ipam

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/service"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/poll"
)

// TestIPAMStatefulSetKeepsAddresses: a StatefulSet pod keeps its address through a rollout (DEL, pod
// deleted, recreated on another node), a force delete without DEL, and many GC passes; no other pod is
// ever given a kept address; the late DEL of a replaced sandbox frees nothing; the addresses are freed
// when the StatefulSet is scaled below their ordinals or deleted, and their SpiderEndpoints go with
// them. A kept address the pool may no longer give (pool edited) is not given: the pod gets a new one
// and an Event that says why. The test plays the kubelet and the StatefulSet controller (no
// kube-controller-manager runs here); the real ones run in the e2e scenario.
func TestIPAMStatefulSetKeepsAddresses(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	gcArgs := []string{"--gc-interval", "300ms", "--gc-grace", "1s", "--lease-duration", "2s", "--lease-renew-deadline", "1500ms", "--lease-retry-period", "250ms"}
	n1, n2 := c.AddNode(t, "a-node1", nil), c.AddNode(t, "a-node2", nil)
	c.StartAgent(t, n1, gcArgs...)
	c.StartAgent(t, n2, gcArgs...)
	nodes := map[string]*bed.Node{"a-node1": n1, "a-node2": n2}
	ctx := context.Background()
	cl := c.Env.Client
	c.CreatePool(t, "sts", "172.110.5.0/24", "172.110.5.1", []string{"172.110.5.10-172.110.5.20"})
	conf := func(n *bed.Node) []byte { return ipamConf("1.1.0", n.Socket, 10, "sts") }

	set := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "web"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
	if err := bed.EnsureNamespace(ctx, cl, "db", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := cl.Create(ctx, set); err != nil {
		t.Fatal(err)
	}
	// newPod creates the StatefulSet's pod name on node, as its controller and the scheduler would.
	newPod := func(name, node string) *corev1.Pod {
		t.Helper()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: name, Labels: map[string]string{"app": "web"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web", UID: set.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
		}
		if err := cl.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		return pod
	}
	addOn := func(pod *corev1.Pod, cid, ifName string) string {
		t.Helper()
		res, e, err := pluginCall{Plugin: c.Plugin, Netns: c.Scratch.Path(), ContainerID: cid, IfName: ifName, Pod: pod, Conf: conf(nodes[pod.Spec.NodeName])}.add(ctx)
		if err != nil || e != nil {
			t.Fatalf("ADD %s: %v %v", pod.Name, err, e)
		}
		return res.IPs[0].Address.IP.String()
	}
	add := func(pod *corev1.Pod, cid string) string { t.Helper(); return addOn(pod, cid, "eth0") }
	delOn := func(pod *corev1.Pod, node *bed.Node, cid, ifName string) {
		t.Helper()
		if _, e, err := (pluginCall{Plugin: c.Plugin, Command: "DEL", Netns: c.Scratch.Path(), ContainerID: cid, IfName: ifName, Pod: pod, Conf: conf(node)}).run(ctx); err != nil || e != nil {
			t.Fatalf("DEL %s %s: %v %v", pod.Name, ifName, err, e)
		}
	}
	del := func(pod *corev1.Pod, node *bed.Node, cid string) { t.Helper(); delOn(pod, node, cid, "eth0") }
	gone := func(pod *corev1.Pod) {
		t.Helper()
		if err := cl.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
	}
	endpointSays := func(name string) (string, string) {
		t.Helper()
		var ep spv2.SpiderEndpoint
		if err := cl.Get(ctx, types.NamespacedName{Namespace: "db", Name: name}, &ep); err != nil {
			t.Fatalf("SpiderEndpoint db/%s: %v", name, err)
		}
		if ep.Status.OwnerControllerType != "StatefulSet" || ep.Status.OwnerControllerName != "web" || len(ep.Status.Current.IPs) == 0 ||
			ep.Status.Current.IPs[0].IPv4 == nil || ep.Status.Current.IPs[0].IPv4Pool == nil || *ep.Status.Current.IPs[0].IPv4Pool != "sts" {
			t.Fatalf("SpiderEndpoint db/%s = %+v", name, ep.Status)
		}
		return *ep.Status.Current.IPs[0].IPv4, ep.Status.Current.Node
	}
	holder := func(ip string) spv2.PoolIPAllocation {
		allocs, _ := c.PoolAllocations(t, "sts")
		return allocs[ip]
	}

	pods, ips := map[string]*corev1.Pod{}, map[string]string{}
	for _, name := range []string{"web-0", "web-1", "web-2"} {
		pods[name] = newPod(name, "a-node1")
		ips[name] = add(pods[name], "cid-"+name)
		if got, node := endpointSays(name); got != ips[name]+"/24" || node != "a-node1" {
			t.Fatalf("SpiderEndpoint db/%s records %s on %s; want %s/24 on a-node1", name, got, node, ips[name])
		}
	}
	// web-1 has a second interface, net1, set up after eth0 as Multus does.
	net1 := addOn(pods["web-1"], "cid-web-1", "net1")
	t.Logf("web-0..2 got %s %s %s; web-1's net1 %s", ips["web-0"], ips["web-1"], ips["web-2"], net1)

	// A rollout of web-1: its sandbox torn down (DEL), the pod deleted, GC passes, then the new web-1 on
	// a-node2 gets the same address; the old sandbox's late DEL frees nothing.
	old1 := pods["web-1"]
	del(old1, n1, "cid-web-1")
	delOn(old1, n1, "cid-web-1", "net1")
	gone(old1)
	other := c.CreatePod(t, "db", "other", "a-node1", nil)
	otherIP := add(other, "cid-other")
	time.Sleep(2500 * time.Millisecond) // GC grace 1 s, passes every 300 ms
	if h := holder(ips["web-1"]); h.NamespacedName != "db/web-1" || h.PodUID != string(old1.UID) {
		t.Fatalf("after the DEL and the pod's deletion web-1's address is %+v; want it kept for db/web-1", h)
	}
	for _, ip := range append([]string{net1}, ips["web-0"], ips["web-1"], ips["web-2"]) {
		if ip == otherIP {
			t.Fatalf("a pod of no StatefulSet got %s, kept for the StatefulSet: %v", otherIP, ips)
		}
	}
	pods["web-1"] = newPod("web-1", "a-node2")
	if got := add(pods["web-1"], "cid-web-1b"); got != ips["web-1"] {
		t.Fatalf("web-1 recreated on a-node2 got %s; want its kept %s", got, ips["web-1"])
	}
	if got := addOn(pods["web-1"], "cid-web-1b", "net1"); got != net1 {
		t.Fatalf("web-1 recreated on a-node2 got %s on net1; want its kept %s", got, net1)
	}
	if h := holder(ips["web-1"]); h.PodUID != string(pods["web-1"].UID) || h.Node != "a-node2" || h.ContainerID != "cid-web-1b" {
		t.Fatalf("the kept record after the new pod's ADD = %+v", h)
	}
	if _, node := endpointSays("web-1"); node != "a-node2" {
		t.Fatalf("SpiderEndpoint db/web-1 says node %s; want a-node2", node)
	}
	del(old1, n1, "cid-web-1") // the old sandbox's late DEL
	if h := holder(ips["web-1"]); h.PodUID != string(pods["web-1"].UID) {
		t.Fatalf("the old sandbox's late DEL changed web-1's address: %+v", h)
	}

	// web-2 force-deleted from its node (no DEL), recreated: the same address.
	gone(pods["web-2"])
	time.Sleep(2500 * time.Millisecond)
	pods["web-2"] = newPod("web-2", "a-node1")
	if got := add(pods["web-2"], "cid-web-2b"); got != ips["web-2"] {
		t.Fatalf("web-2 recreated after a force delete got %s; want its kept %s", got, ips["web-2"])
	}

	// The pool edited: web-0's kept address excluded. The new web-0 gets another address, an Event says
	// why, and the excluded one is freed.
	var pool spv2.SpiderIPPool
	if err := cl.Get(ctx, types.NamespacedName{Name: "sts"}, &pool); err != nil {
		t.Fatal(err)
	}
	pool.Spec.ExcludeIPs = []string{ips["web-0"]}
	if err := cl.Update(ctx, &pool); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the agents' pool view
	del(pods["web-0"], n1, "cid-web-0")
	gone(pods["web-0"])
	pods["web-0"] = newPod("web-0", "a-node1")
	moved := add(pods["web-0"], "cid-web-0b")
	if moved == ips["web-0"] || moved == ips["web-1"] || moved == ips["web-2"] || moved == otherIP {
		t.Fatalf("web-0 with its kept %s excluded got %s (others %v, other %s)", ips["web-0"], moved, ips, otherIP)
	}
	if got, _ := endpointSays("web-0"); got != moved+"/24" {
		t.Fatalf("SpiderEndpoint db/web-0 records %s; want the new %s/24", got, moved)
	}
	poll.Until(t, 10*time.Second, "an Event on web-0 that names its kept address and why it changed", func() (bool, string) {
		var evs corev1.EventList
		_ = cl.List(ctx, &evs, client.InNamespace("db"))
		for _, e := range evs.Items {
			if e.Reason == service.ReasonFixedAddressChanged && e.InvolvedObject.Name == "web-0" && strings.Contains(e.Message, ips["web-0"]) &&
				strings.Contains(e.Message, "no longer among the pool's allocatable addresses") {
				t.Logf("Event: %s", e.Message)
				return true, ""
			}
		}
		return false, fmt.Sprint(len(evs.Items), " events")
	})
	poll.Until(t, 10*time.Second, "GC to free web-0's excluded old address", func() (bool, string) {
		h := holder(ips["web-0"])
		return h.NamespacedName == "", fmt.Sprint(h)
	})
	ips["web-0"] = moved

	// Scaled to 1: the kubelet tears web-1 and web-2 down; their DELs free the addresses and their
	// endpoints go.
	set.Spec.Replicas = ptr.To[int32](1)
	if err := cl.Update(ctx, set); err != nil {
		t.Fatal(err)
	}
	del(pods["web-2"], n1, "cid-web-2b")
	del(pods["web-1"], n2, "cid-web-1b")
	delOn(pods["web-1"], n2, "cid-web-1b", "net1")
	gone(pods["web-2"])
	gone(pods["web-1"])
	if h := holder(net1); h.NamespacedName != "" {
		t.Fatalf("scaled to 1, web-1's net1 address %s is still %+v", net1, h)
	}
	for _, name := range []string{"web-1", "web-2"} {
		if h := holder(ips[name]); h.NamespacedName != "" {
			t.Fatalf("scaled to 1, %s's address %s is still %+v", name, ips[name], h)
		}
		poll.Until(t, 10*time.Second, "SpiderEndpoint db/"+name+" deleted", func() (bool, string) {
			err := cl.Get(ctx, types.NamespacedName{Namespace: "db", Name: name}, &spv2.SpiderEndpoint{})
			return client.IgnoreNotFound(err) == nil && err != nil, fmt.Sprint(err)
		})
	}
	if h := holder(ips["web-0"]); h.PodUID != string(pods["web-0"].UID) {
		t.Fatalf("scaled to 1, web-0's address is %+v", h)
	}

	// The StatefulSet deleted, its last pod gone without a DEL (a node that never came back): GC frees
	// the address and deletes the endpoint.
	if err := cl.Delete(ctx, set); err != nil {
		t.Fatal(err)
	}
	gone(pods["web-0"])
	gone(other)
	poll.Until(t, 15*time.Second, "every address freed and every endpoint deleted", func() (bool, string) {
		allocs, _ := c.PoolAllocations(t, "sts")
		var eps spv2.SpiderEndpointList
		_ = cl.List(ctx, &eps, client.InNamespace("db"))
		return len(allocs) == 0 && len(eps.Items) == 0, fmt.Sprintf("allocations %v, %d endpoints", allocs, len(eps.Items))
	})
}
