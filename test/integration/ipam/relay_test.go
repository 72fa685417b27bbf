//go:build integration

package ipam

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
)

// TestIPAMRelay runs the underlink-ipam relay (cmd/underlink-ipam, C) against the real agent from a
// directory without underlink-ipam-full, so every call it answers is the agent's own (/v1/cni), and
// holds it to the plugin process: for each ADD and DEL, a success and the errors users meet, the relay's
// stdout and exit status are underlink-ipam-full's, byte for byte. A call it must pass on (CHECK) names
// the missing plugin and how to install it.
func TestIPAMRelay(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	c.CreatePool(t, "relay", "172.110.0.0/16", "172.110.0.1", []string{"172.110.3.1-172.110.3.2"})
	node := c.AddNode(t, "r-node1", nil)
	c.StartAgent(t, node)
	ctx := context.Background()

	built := bed.Commands(t, "underlink-ipam")
	full := filepath.Join(built, "underlink-ipam-full")
	alone := filepath.Join(t.TempDir(), "underlink-ipam")
	raw, err := os.ReadFile(filepath.Join(built, "underlink-ipam"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := ipamConf("1.1.0", node.Socket, 10, "relay")
	pods := map[string]*corev1.Pod{}
	for _, name := range []string{"r1", "r2", "r3"} {
		pods[name] = c.CreatePod(t, "default", name, "r-node1", nil)
	}
	ghost := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ghost", UID: k8stypes.UID("no-such-uid")}}
	netns := c.Bed.Pod("r-pod").Path()
	call := func(plugin, command, cid string, pod *corev1.Pod, conf []byte) (string, int) {
		t.Helper()
		out, cniErr, err := pluginCall{Plugin: plugin, Command: command, ContainerID: cid, Netns: netns, Pod: pod, Conf: conf}.run(ctx)
		if err != nil {
			t.Fatalf("%s %s %s: %v", filepath.Base(plugin), command, cid, err)
		}
		if cniErr != nil {
			return string(out), 1
		}
		return string(out), 0
	}
	same := func(what, command, cid string, pod *corev1.Pod, conf []byte, wantExit int) string {
		t.Helper()
		out, exit := call(alone, command, cid, pod, conf)
		fout, fexit := call(full, command, cid, pod, conf)
		if out != fout || exit != fexit {
			t.Errorf("%s: the relay gave (exit %d)\n%s\nunderlink-ipam-full gives (exit %d)\n%s", what, exit, out, fexit, fout)
		}
		if exit != wantExit {
			t.Errorf("%s: exit %d, want %d:\n%s", what, exit, wantExit, out)
		}
		return out
	}

	// An ADD, then the runtime's retry of it through the plugin process: the same result.
	out := same("ADD of r1", "ADD", "cid-r1", pods["r1"], conf, 0)
	if !strings.Contains(out, `"172.110.3.`) || !strings.Contains(out, `"gateway": "172.110.0.1"`) {
		t.Errorf("ADD of r1 gave %s, want an address of pool relay with its gateway", out)
	}
	// The result in the config's older CNI version, as the plugin converts it.
	same("ADD of r1 in cniVersion 0.3.1", "ADD", "cid-r1", pods["r1"], ipamConf("0.3.1", node.Socket, 10, "relay"), 0)
	same("ADD of r2", "ADD", "cid-r2", pods["r2"], conf, 0)
	// The errors users meet: a full pool, a pod that does not exist, a pool that does not exist, a
	// config the agent refuses.
	out = same("ADD of r3 on a full pool", "ADD", "cid-r3", pods["r3"], conf, 1)
	if !strings.Contains(out, "relay") {
		t.Errorf("the full pool's error does not name the pool:\n%s", out)
	}
	same("ADD of a pod that does not exist", "ADD", "cid-ghost", ghost, conf, 1)
	same("ADD from a pool that does not exist", "ADD", "cid-r3", pods["r3"], ipamConf("1.1.0", node.Socket, 10, "no-such-pool"), 1)
	same("ADD with a misspelt ipam key", "ADD", "cid-r3", pods["r3"], []byte(strings.Replace(string(conf), `"ipv4Pools"`, `"ipv4Pool"`, 1)), 1)
	same("ADD in a CNI version the plugin does not speak", "ADD", "cid-r3", pods["r3"], ipamConf("9.9.9", node.Socket, 10, "relay"), 1)
	same("ADD without the pod in CNI_ARGS", "ADD", "cid-r3", nil, conf, 1)

	// DEL through the relay alone frees the address; a second DEL is a no-op, as the plugin's.
	if out, exit := call(alone, "DEL", "cid-r1", pods["r1"], conf); exit != 0 || out != "" {
		t.Fatalf("DEL of r1 through the relay: exit %d %q", exit, out)
	}
	allocs, _ := c.PoolAllocations(t, "relay")
	for ip, a := range allocs {
		if a.NamespacedName == "default/r1" {
			t.Errorf("after DEL pool relay still gives %s to r1", ip)
		}
	}
	same("a second DEL of r1", "DEL", "cid-r1", pods["r1"], conf, 0)

	// CHECK is the plugin process's: without it the relay says what to install.
	out, exit := call(alone, "CHECK", "cid-r2", pods["r2"], conf)
	if exit != 1 || !strings.Contains(out, "underlink-ipam-full") || !strings.Contains(out, "--plugins=underlink-ipam-full,underlink-ipam") {
		t.Errorf("CHECK through the relay without underlink-ipam-full: exit %d\n%s", exit, out)
	}
}
