//go:build integration

package ipam

import (
	"context"
	"strings"
	"testing"
	"time"

	"net"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/linkwatch"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/netbed"
)

// nodeLabels follows a node's labels through a watch, so the test sees a label change when the
// apiserver has it, not at its next poll.
type nodeLabels struct {
	w watch.Interface
	// last is the node as last seen.
	last *corev1.Node
}

func watchNode(t *testing.T, c *bed.Cluster, name string) *nodeLabels {
	t.Helper()
	wc, err := client.NewWithWatch(c.Env.Config, client.Options{Scheme: c.Env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(context.Background(), &corev1.NodeList{}, &client.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return &nodeLabels{w: w}
}

// await returns when the label has value, and when that was seen.
func (n *nodeLabels) await(t *testing.T, key, value string, timeout time.Duration) (map[string]string, time.Time) {
	t.Helper()
	node, at := n.awaitNode(t, "label "+key+"="+value, func(node *corev1.Node) bool { return node.Labels[key] == value }, timeout)
	return node.Labels, at
}

// awaitAnnotation returns when the annotation has value, and when that was seen.
func (n *nodeLabels) awaitAnnotation(t *testing.T, key, value string, timeout time.Duration) time.Time {
	t.Helper()
	_, at := n.awaitNode(t, "annotation "+key+"="+value, func(node *corev1.Node) bool {
		v, ok := node.Annotations[key]
		return ok && v == value
	}, timeout)
	return at
}

func (n *nodeLabels) awaitNode(t *testing.T, what string, ok func(*corev1.Node) bool, timeout time.Duration) (*corev1.Node, time.Time) {
	t.Helper()
	if n.last != nil && ok(n.last) {
		return n.last, time.Now()
	}
	deadline := time.After(timeout)
	for {
		select {
		case ev, open := <-n.w.ResultChan():
			if !open {
				t.Fatal("node watch closed")
			}
			if node, isNode := ev.Object.(*corev1.Node); isNode {
				n.last = node
				if ok(node) {
					return node, time.Now()
				}
			}
		case <-deadline:
			var labels, annotations map[string]string
			if n.last != nil {
				labels, annotations = n.last.Labels, n.last.Annotations
			}
			t.Fatalf("%s not seen within %s; labels %v, annotations %v", what, timeout, labels, annotations)
		}
	}
}

// TestLinkWatcherLabelsNode: the agent, in the node namespace, keeps underlay.underlink.io/ens224 true
// within a second when ens224 goes down, comes up, is deleted and is created again, follows the NICs the
// SpiderMultusConfigs name, and touches no other label.
func TestLinkWatcherLabelsNode(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	node := c.AddNode(t, "a-node1", map[string]string{"keep": "me"})
	labels := watchNode(t, c, "a-node1")
	c.StartAgent(t, node)
	const key = "underlay.underlink.io/ens224"
	labels.await(t, key, "up", 10*time.Second)

	h, err := node.NS.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ens224 := func() netlink.Link {
		l, err := h.LinkByName(netbed.UnderlayNIC)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	// Beside the label, the NIC's addresses (for matchMasterSubnet): none in the bed, then each change
	// within a second. The NIC's IPv6 link-local address is not published.
	const addrKey = "underlay.underlink.io/ens224.addresses"
	labels.awaitAnnotation(t, addrKey, "", 5*time.Second)
	for _, step := range []struct {
		add  bool
		addr string
		want string
	}{
		{true, "172.110.2.5/24", "172.110.2.5/24"},
		{true, "fd00:172:110::5/64", "172.110.2.5/24,fd00:172:110::5/64"},
		{false, "172.110.2.5/24", "fd00:172:110::5/64"},
		{false, "fd00:172:110::5/64", ""},
	} {
		a, err := netlink.ParseAddr(step.addr)
		if err != nil {
			t.Fatal(err)
		}
		if step.add {
			a.Flags = unix.IFA_F_NODAD
			err = h.AddrAdd(ens224(), a)
		} else {
			err = h.AddrDel(ens224(), a)
		}
		if err != nil {
			t.Fatalf("address %s (add %v): %v", step.addr, step.add, err)
		}
		start := time.Now()
		seen := labels.awaitAnnotation(t, addrKey, step.want, 5*time.Second)
		t.Logf("address %s (add %v) → %s=%q after %s", step.addr, step.add, addrKey, step.want, seen.Sub(start).Round(100*time.Microsecond))
		if seen.Sub(start) > time.Second {
			t.Errorf("the annotation followed the address after %s, more than a second", seen.Sub(start))
		}
	}
	steps := []struct {
		name, want string
		do         func() error
	}{
		{"ip link set ens224 down", "down", func() error { return h.LinkSetDown(ens224()) }},
		{"ip link set ens224 up", "up", func() error { return h.LinkSetUp(ens224()) }},
		{"ip link del ens224", "down", func() error { return h.LinkDel(ens224()) }},
		{"ip link add ens224 (veth) and up", "up", func() error {
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: netbed.UnderlayNIC}, PeerName: "ens224-peer"}
			if err := h.LinkAdd(v); err != nil {
				return err
			}
			for _, n := range []string{"ens224-peer", netbed.UnderlayNIC} {
				l, err := h.LinkByName(n)
				if err != nil {
					return err
				}
				if err := h.LinkSetUp(l); err != nil {
					return err
				}
			}
			return nil
		}},
		{"peer of ens224 down (no carrier)", "down", func() error {
			l, err := h.LinkByName("ens224-peer")
			if err != nil {
				return err
			}
			return h.LinkSetDown(l)
		}},
	}
	// The test hears the kernel too, to tell the kernel's own delay (it reports a carrier coming up up to
	// a second late: linkwatch) from the agent's.
	kernel := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	defer close(done)
	nsh := vnetns.NsHandle(int(node.NS.Fd()))
	if err := netlink.LinkSubscribeWithOptions(kernel, done, netlink.LinkSubscribeOptions{Namespace: &nsh}); err != nil {
		t.Fatal(err)
	}
	kernelSays := func(want string, deadline time.Duration) time.Time {
		timeout := time.After(deadline)
		for {
			select {
			case u := <-kernel:
				a := u.Attrs()
				if a == nil || a.Name != netbed.UnderlayNIC {
					continue
				}
				up := u.Header.Type != unix.RTM_DELLINK && linkwatch.LinkUp(a.Flags&net.FlagUp != 0, uint8(a.OperState))
				if (want == "up") == up {
					return time.Now()
				}
			case <-timeout:
				t.Fatalf("the kernel did not report ens224 %s within %s", want, deadline)
			}
		}
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		reported := kernelSays(s.want, 5*time.Second)
		got, seen := labels.await(t, key, s.want, 5*time.Second)
		latency := seen.Sub(reported)
		if latency < 0 {
			latency = 0
		}
		t.Logf("%-34s → kernel reports %-4s after %8s, label %s=%s %8s later", s.name, s.want,
			reported.Sub(start).Round(100*time.Microsecond), key, s.want, latency.Round(100*time.Microsecond))
		if latency > time.Second {
			t.Errorf("%s: the label followed the kernel's report after %s, more than a second", s.name, latency)
		}
		if got["keep"] != "me" {
			t.Errorf("the agent touched another label: %v", got)
		}
	}

	_, metrics := getBody(t, httpInNetns(node.NS), "http://127.0.0.1:9711/metrics")
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "underlink_underlay_label_patch_seconds_sum") || strings.HasPrefix(line, "underlink_underlay_label_patch_seconds_count") {
			t.Logf("agent: %s (netlink event → label patched)", line)
		}
	}

	// The watched links follow the SpiderMultusConfigs' parents (pkg/podnet.Parent): a config on ens256
	// (missing here) makes it down, and one with a VLAN on ens224 watches ens224.100, which pods of that
	// network attach to (this kernel cannot create it: down), not ens224.
	vlan := int32(100)
	var got map[string]string
	for _, tc := range []struct {
		name, label string
		spec        spv2.SpiderMacvlanCniConfig
	}{
		{"second-nic", "underlay.underlink.io/ens256", spv2.SpiderMacvlanCniConfig{Master: []string{"ens256"}}},
		{"on-a-vlan", "underlay.underlink.io/ens224.100", spv2.SpiderMacvlanCniConfig{Master: []string{"ens224"}, VlanID: &vlan}},
	} {
		smc := &spv2.SpiderMultusConfig{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: tc.name},
			Spec:       spv2.MultusCNIConfigSpec{MacvlanConfig: &tc.spec},
		}
		if err := c.Env.Client.Create(context.Background(), smc); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var seen time.Time
		got, seen = labels.await(t, tc.label, "down", 5*time.Second)
		t.Logf("SpiderMultusConfig %s → %s=down after %s", tc.name, tc.label, seen.Sub(start).Round(100*time.Microsecond))
	}
	if got["keep"] != "me" {
		t.Errorf("labels after the configs: %v", got)
	}

	// Someone removes a label: the agent puts it back.
	const ens256 = "underlay.underlink.io/ens256"
	node2 := &corev1.Node{}
	if err := c.Env.Client.Get(context.Background(), client.ObjectKey{Name: "a-node1"}, node2); err != nil {
		t.Fatal(err)
	}
	delete(node2.Labels, ens256)
	if err := c.Env.Client.Update(context.Background(), node2); err != nil {
		t.Fatal(err)
	}
	labels.await(t, ens256, "down", 5*time.Second)
}
