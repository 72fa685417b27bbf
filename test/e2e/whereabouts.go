package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/nodes"
)

// whereabouts v0.9.2 is the third system of PodStartAtScale: macvlan with whereabouts IPAM as a plain
// NetworkAttachmentDefinition, the shape Spiderpool's published comparison uses. No image of it is built
// here, so the bed does its DaemonSet's part (install-cni) on each node: the binary is among the nodes'
// plugins (UpOptions.ExtraPlugins), and the bed writes whereabouts.d/whereabouts.kubeconfig, a token of
// its ServiceAccount beside the server and CA that Multus' own kubeconfig on the node names, and the flat
// whereabouts.conf. Its CRDs come from its release (hack/build-tools.sh whereabouts). Its reconciler
// (the DaemonSet's other job) is not run, so addresses its DEL does not free (those of ADDs that
// failed) stay allocated: PodStartAtScale reports them.
const (
	wbNet = "wb-macvlan"
	wbSA  = "whereabouts"
	// wbConfDir is whereabouts' directory in a node's /etc/cni/net.d, where it looks for its flat file.
	wbConfDir = "whereabouts.d"
)

// wbKubeconfig is whereabouts' kubeconfig as the node's processes see it.
var wbKubeconfig = filepath.Join(nodes.CNIConfDir, wbConfDir, "whereabouts.kubeconfig")

// wbRBAC is what whereabouts' plugin does through its kubeconfig: its pools and reservations, the
// leader lease it takes around each change, and the pods and nodes it reads.
const wbRBAC = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: whereabouts
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: whereabouts-cni
rules:
- apiGroups: [whereabouts.cni.cncf.io]
  resources: [ippools, overlappingrangeipreservations, nodeslicepools]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [pods, nodes]
  verbs: [get, list, watch]
- apiGroups: [k8s.cni.cncf.io]
  resources: [network-attachment-definitions]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: whereabouts
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: whereabouts-cni
subjects:
- kind: ServiceAccount
  name: whereabouts
  namespace: kube-system
`

// installWhereabouts applies whereabouts' CRDs and RBAC on cluster-a, writes its kubeconfig and flat
// configuration into each node's /etc/cni/net.d, and creates the NAD of a macvlan network on ens224
// whose addresses whereabouts gives from ipRange (first-last) of the underlay's subnet.
func (m *migration) installWhereabouts(ipRange string) error {
	c := m.a
	for _, f := range controlplane.WhereaboutsCRDs() {
		if out, err := m.kubectl(c, nil, "apply", "--server-side", "-f", f); err != nil {
			return m.check(false, "whereabouts CRDs installed", out+" (hack/build-tools.sh whereabouts installs them next to its binary)")
		}
	}
	if out, err := m.showManifest(c, "apply", []byte(wbRBAC)); err != nil {
		return m.check(false, "whereabouts' ServiceAccount and ClusterRole", out)
	}
	token, err := m.kubectlQuiet(c, nil, "create", "token", wbSA, "-n", "kube-system", "--duration=2h")
	if err != nil {
		return m.check(false, "a token of whereabouts' ServiceAccount", token)
	}
	for _, n := range c.Nodes {
		if err := writeWhereaboutsConf(n, strings.TrimSpace(token)); err != nil {
			return m.check(false, "whereabouts' kubeconfig on "+n.Name, err.Error())
		}
	}
	fmt.Fprintf(m.out, "   (the bed wrote %s/{whereabouts.kubeconfig,whereabouts.conf} into each node's %s, as whereabouts' install-cni does)\n", wbConfDir, nodes.CNIConfDir)
	first, last, _ := strings.Cut(ipRange, "-")
	nad := macvlanNAD(wbNet, fmt.Sprintf(`{"type":"whereabouts","range":"172.110.0.0/16","range_start":"%s","range_end":"%s",
    "gateway":"172.110.0.1","kubernetes":{"kubeconfig":"%s"}}`, first, last, wbKubeconfig))
	out, err := m.showManifest(c, "apply", nad)
	return m.check(err == nil, "whereabouts on every node, and its network "+migNetNS+"/"+wbNet, firstLine(out, "networkattachmentdefinition"))
}

// macvlanNAD is a NetworkAttachmentDefinition in migNetNS of macvlan on the underlay (ens224) with the
// IPAM configuration ipam (JSON, lines after the first indented by 4).
func macvlanNAD(name, ipam string) []byte {
	return fmt.Appendf(nil, `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: %s
  namespace: %s
spec:
  config: '{"cniVersion":"0.3.1","name":"%[1]s","type":"macvlan","master":"ens224","mode":"bridge",
    "ipam":%[3]s}'
`, name, migNetNS, ipam)
}

// writeWhereaboutsConf writes whereabouts' kubeconfig (Multus' on the node, with whereabouts' token
// in place of Multus') and its flat configuration file into the node's whereabouts.d.
func writeWhereaboutsConf(n TargetNode, token string) error {
	if n.CNIConfDir == "" {
		return fmt.Errorf("the bed does not reach node %s's %s", n.Name, nodes.CNIConfDir)
	}
	multusKC := filepath.Join(n.CNIConfDir, "multus.d", "multus.kubeconfig")
	cfg, err := clientcmd.LoadFromFile(multusKC)
	if err != nil {
		return fmt.Errorf("Multus' kubeconfig, whose server and CA whereabouts shares: %w", err)
	}
	for _, a := range cfg.AuthInfos {
		a.Token, a.TokenFile = token, ""
	}
	dir := filepath.Join(n.CNIConfDir, wbConfDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := clientcmd.WriteToFile(*cfg, filepath.Join(dir, filepath.Base(wbKubeconfig))); err != nil {
		return err
	}
	flat, err := json.Marshal(map[string]any{
		"datastore":  "kubernetes",
		"kubernetes": map[string]string{"kubeconfig": wbKubeconfig},
		"log_level":  "error",
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "whereabouts.conf"), flat, 0o600)
}

// wbAllocations counts the addresses whereabouts' IPPools hold for pods of the app's namespace.
func (m *migration) wbAllocations() (int, error) {
	out, err := m.kubectlQuiet(m.a, nil, "get", "ippools.whereabouts.cni.cncf.io", "-A", "-o", "json")
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	var l struct {
		Items []struct {
			Spec struct {
				Allocations map[string]struct {
					PodRef string `json:"podref"`
				} `json:"allocations"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return 0, err
	}
	n := 0
	for _, p := range l.Items {
		for _, a := range p.Spec.Allocations {
			if strings.HasPrefix(a.PodRef, appNamespace+"/") {
				n++
			}
		}
	}
	return n, nil
}

// clearWhereabouts deletes whereabouts' IPPools: the addresses they still hold belong to no pod.
func (m *migration) clearWhereabouts() error {
	out, err := m.kubectl(m.a, nil, "delete", "ippools.whereabouts.cni.cncf.io", "--all", "-A")
	return m.check(err == nil, "whereabouts' pools deleted, for the next system", out)
}
