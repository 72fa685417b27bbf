// Package spiderpoolagent runs Spiderpool v1.2.2's agent (`make spiderpool`) in a node namespace of a
// test bed, as its DaemonSet would, for the benches that put Spiderpool beside underlink.
package spiderpoolagent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// Options says how one agent runs.
type Options struct {
	// Kubeconfig reaches the apiserver from the node's namespace.
	Kubeconfig string
	// Socket is where its IPAM listens (its ipamUnixSocketPath), as the machine reaches it.
	Socket string
	// ConfDir is where its conf.yml is written.
	ConfDir string
	// ClusterNetwork is the Multus network of pods that name none (its chart's clusterNetwork), whose
	// pools serve their eth0.
	ClusterNetwork string
}

// Binary is spiderpool-agent in the tool cache; a missing build is named with the command that makes it.
func Binary(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(controlplane.BinDir(), "spiderpool-agent")
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("Spiderpool v1.2.2 is not built: make spiderpool (%v)", err)
	}
	return p
}

// config is the agent's configuration file (its chart's ConfigMap spiderpool-conf, conf.yml) with the
// values of Spiderpool's underlay install: IPv4, StatefulSet fixed IPs on, the rest off.
const config = `ipamUnixSocketPath: %s
enableIPv4: true
enableIPv6: false
enableStatefulSet: true
enableKubevirtStaticIP: false
enableCleanOutdatedEndpoint: false
enableSpiderSubnet: false
enableAutoPoolForApplication: false
enableIPConflictDetection: false
enableGatewayDetection: false
enableValidatingResourcesDeletedWebhook: false
clusterSubnetDefaultFlexibleIPNumber: 0
tuneSysctlConfig: false
podResourceInject:
  enabled: false
agent:
  networkResourcePlugin:
    enabled: false
`

// Start runs spiderpool-agent for node in its namespace (its chart's env, logging at error level where
// the chart's default is info) and waits until its IPAM answers on o.Socket.
func Start(tb testing.TB, bed *netbed.Bed, node *netbed.Node, o Options) *netbed.Process {
	tb.Helper()
	for _, dir := range []string{o.ConfDir, filepath.Dir(o.Socket)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	conf := filepath.Join(o.ConfDir, "spiderpool-conf.yml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, config, o.Socket), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(Binary(tb), "daemon", "--config-path", conf)
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+o.Kubeconfig,
		"SPIDERPOOL_NODE_NAME="+node.Spec.Name,
		"SPIDERPOOL_POD_NAMESPACE=kube-system",
		"SPIDERPOOL_POD_NAME=spiderpool-agent-"+node.Spec.Name,
		"SPIDERPOOL_LOG_LEVEL=error",
		"SPIDERPOOL_ENABLED_METRIC=false",
		"SPIDERPOOL_GOPS_LISTEN_PORT=",
		"MULTUS_CLUSTER_NETWORK="+o.ClusterNetwork,
	)
	p, err := bed.Start(node.NS, "spiderpool-agent-"+node.Spec.Name, cmd)
	if err != nil {
		tb.Fatal(err)
	}
	c := Client(o.Socket)
	poll.UntilEvery(tb, 90*time.Second, 100*time.Millisecond, "spiderpool-agent on "+node.Spec.Name+" serving", func() (bool, string) {
		resp, err := c.Get("http://spiderpool-agent/v1/ipam/healthy")
		if err != nil {
			return false, fmt.Sprintf("%v\n%s", err, p.Logs())
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("HTTP %d\n%s", resp.StatusCode, p.Logs())
	})
	return p
}

// Client talks HTTP to the agent listening on socket.
func Client(socket string) *http.Client {
	return &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
}
