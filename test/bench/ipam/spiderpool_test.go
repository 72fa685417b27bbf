//go:build integration

package ipam

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/spiderpoolagent"
)

// Spiderpool v1.2.2's pool in the bench: as many addresses as the others', in a range of its own.
const (
	spiderSubnet = "172.110.96.0/20"
	spiderRange  = "172.110.96.1-172.110.99.255"
	spiderPool   = "bench-spiderpool"
)

// spiderpoolPlugin is Spiderpool's IPAM plugin, built by `make spiderpool` (hack/build-peers.sh) into
// the tool cache beside its agent (spiderpoolagent.Binary).
func spiderpoolPlugin(b *testing.B) string {
	spiderpoolagent.Binary(b)
	plugin := filepath.Join(controlplane.BinDir(), "spiderpool-ipam")
	if _, err := os.Stat(plugin); err != nil {
		b.Fatalf("Spiderpool v1.2.2 is not built: make spiderpool (%v)", err)
	}
	return plugin
}

// startSpiderpoolAgent runs spiderpool-agent for node in its namespace, listening on socket, with the
// bench's kubeconfig. The bench's pods name no network, as the seed's pods before injection: the
// agent's cluster network is the bench's.
func startSpiderpoolAgent(b *testing.B, bed *netbed.Bed, n *netbed.Node, kubeconfig, socket string) *netbed.Process {
	return spiderpoolagent.Start(b, bed, n, spiderpoolagent.Options{Kubeconfig: kubeconfig, Socket: socket,
		ConfDir: filepath.Dir(socket), ClusterNetwork: "kube-system/bench"})
}

// spiderpoolConf is the network configuration of Spiderpool's IPAM plugin for the bench.
func spiderpoolConf(socket, logFile string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"0.3.1","name":"bench","type":"macvlan","master":"ens224",
	 "ipam":{"type":"spiderpool","log_level":"error","log_file_path":%q,"ipam_unix_socket_path":%q,"default_ipv4_ippool":[%q]}}`,
		logFile, socket, spiderPool))
}
