//go:build integration

package ipam

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

// Spiderpool v1.2.2's pool in the bench: as many addresses as the others', in a range of its own.
const (
	spiderSubnet = "172.110.96.0/20"
	spiderRange  = "172.110.96.1-172.110.99.255"
	spiderPool   = "bench-spiderpool"
)

// spiderpoolBinaries are Spiderpool's agent and IPAM plugin, built by `make spiderpool`
// (hack/build-peers.sh) into the tool cache.
func spiderpoolBinaries(b *testing.B) (agent, plugin string) {
	bin := controlplane.BinDir()
	agent, plugin = filepath.Join(bin, "spiderpool-agent"), filepath.Join(bin, "spiderpool-ipam")
	for _, f := range []string{agent, plugin} {
		if _, err := os.Stat(f); err != nil {
			b.Fatalf("Spiderpool v1.2.2 is not built: make spiderpool (%v)", err)
		}
	}
	return agent, plugin
}

// spiderpoolAgentConfig is the agent's configuration file (its chart's ConfigMap spiderpool-conf, conf.yml)
// with the values of Spiderpool's underlay install: IPv4, StatefulSet fixed IPs on, the rest off.
func spiderpoolAgentConfig(socket string) string {
	return fmt.Sprintf(`ipamUnixSocketPath: %s
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
`, socket)
}

// startSpiderpoolAgent runs spiderpool-agent for node in its namespace, as its DaemonSet would (env of
// its chart; the apiserver through the node's relay, with the bench's kubeconfig), and waits until its
// IPAM answers on socket.
func startSpiderpoolAgent(b *testing.B, bed *netbed.Bed, n *netbed.Node, agent, kubeconfig, socket string) *netbed.Process {
	dir := filepath.Dir(socket)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	conf := filepath.Join(dir, "spiderpool-conf.yml")
	if err := os.WriteFile(conf, []byte(spiderpoolAgentConfig(socket)), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(agent, "daemon", "--config-path", conf)
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+kubeconfig,
		"SPIDERPOOL_NODE_NAME="+n.Spec.Name,
		"SPIDERPOOL_POD_NAMESPACE=kube-system",
		"SPIDERPOOL_POD_NAME=spiderpool-agent-"+n.Spec.Name,
		"SPIDERPOOL_LOG_LEVEL=error",
		"SPIDERPOOL_ENABLED_METRIC=false",
		"SPIDERPOOL_GOPS_LISTEN_PORT=",
		// The chart passes its ConfigMap's clusterNetwork: the Multus network of pods that name none, whose
		// pools serve their eth0. The bench's pods name none, as the seed's pods before injection.
		"MULTUS_CLUSTER_NETWORK=kube-system/bench",
	)
	p, err := bed.Start(n.NS, "spiderpool-agent-"+n.Spec.Name, cmd)
	if err != nil {
		b.Fatal(err)
	}
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	poll.UntilEvery(b, 90*time.Second, 100*time.Millisecond, "spiderpool-agent on "+n.Spec.Name+" serving", func() (bool, string) {
		resp, err := c.Get("http://spiderpool-agent/v1/ipam/healthy")
		if err != nil {
			return false, fmt.Sprintf("%v\n%s", err, p.Logs())
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("HTTP %d\n%s", resp.StatusCode, p.Logs())
	})
	return p
}

// spiderpoolConf is the network configuration of Spiderpool's IPAM plugin for the bench.
func spiderpoolConf(socket, logFile string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"0.3.1","name":"bench","type":"macvlan","master":"ens224",
	 "ipam":{"type":"spiderpool","log_level":"error","log_file_path":%q,"ipam_unix_socket_path":%q,"default_ipv4_ippool":[%q]}}`,
		logFile, socket, spiderPool))
}
