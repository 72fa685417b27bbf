// Package cniconf holds the CNI network configuration that underlink's controller writes into a
// NetworkAttachmentDefinition for each SpiderMultusConfig, and that underlink-ipam and
// underlink-coordinator read from stdin. It is the contract between admission (writer) and the node
// datapath (reader), so it lives beside the API types and imports nothing of either side.
//
// A generated chain for an underlay (macvlan) config is:
//
//	{"cniVersion":"1.0.0","name":"<ns>-<name>","plugins":[
//	  {"type":"underlink-macvlan","master":"ens224","mode":"bridge","ipam":{"type":"underlink-ipam",...}},
//	  {"type":"underlink-coordinator","mode":"underlay","hijackCIDR":[...],"serviceCIDR":[...],...}]}
package cniconf

import (
	"encoding/json"

	"github.com/containernetworking/cni/pkg/types"
)

const (
	// CNIVersion is the version of the generated configuration lists. Multus (v4.3.0 too) hands the
	// runtime the delegated chain's result as the chain printed it, unconverted, so this must be a
	// version the node's runtime reads: containerd 1.6's CNI library refuses a 1.1.0 result ("unsupported
	// CNI result version"), and 1.0.0 is read by every runtime since containerd 1.6 and by Multus v4.0 on.
	// The plugins themselves speak 1.1.0 and older.
	CNIVersion = "1.0.0"
	// IPAMType is the binary name of underlink's IPAM plugin.
	IPAMType = "underlink-ipam"
	// CoordinatorType is the binary name of underlink's chained route-hijacking plugin.
	CoordinatorType = "underlink-coordinator"
	// MacvlanType is the binary name of the reference macvlan plugin as underlink-agent installs it:
	// under underlink's own name, so it never replaces a macvlan another package installed on the node.
	MacvlanType = "underlink-macvlan"
	// DefaultAgentSocket is where underlink-agent serves IPAM.
	DefaultAgentSocket = "/run/underlink/agent.sock"
	// DefaultIPAMTimeoutSeconds bounds one IPAM call from the plugin to the agent.
	DefaultIPAMTimeoutSeconds = 20
)

// IPAM is the "ipam" object of the macvlan plugin when underlink allocates.
type IPAM struct {
	Type string `json:"type"`
	// Socket is the agent's unix socket; empty means DefaultAgentSocket.
	Socket string `json:"socket,omitempty"`
	// TimeoutSeconds bounds the call to the agent; 0 means DefaultIPAMTimeoutSeconds.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// IPv4Pools and IPv6Pools are the config's spec.macvlan.ippools, tried in order when the pod does not
	// name pools itself (annotations ipam.spidernet.io/ippool(s)).
	IPv4Pools []string `json:"ipv4Pools,omitempty"`
	IPv6Pools []string `json:"ipv6Pools,omitempty"`
	// MatchMasterSubnet restricts pools to those whose subnet contains an address of the master NIC.
	MatchMasterSubnet bool `json:"matchMasterSubnet,omitempty"`
	// Master is the underlay NIC, for MatchMasterSubnet.
	Master string `json:"master,omitempty"`
	// DefaultRouteNIC, when set, is the pod interface that gets the default route via the pool's
	// gateway in the result (the coordinator's podDefaultRouteNIC); on any other interface the result
	// carries the gateway without the route, and underlink-coordinator puts that interface's default
	// route in its own routing table. Empty: every interface gets it, as before multi-NIC support.
	DefaultRouteNIC string `json:"defaultRouteNIC,omitempty"`
	// DetectIPConflict probes the segment for each address (ARP probe for IPv4, NDP duplicate address
	// detection for IPv6) from the pod's interface before the result is returned; a host that answers
	// fails the ADD and the agent sets the address aside (SpiderMultusConfig
	// spec.coordinator.detectIPConflict).
	DetectIPConflict bool `json:"detectIPConflict,omitempty"`
	// DetectGateway asks each address's gateway (ARP, NDP) from the pod's interface before the result
	// is returned; no answer fails the ADD (spec.coordinator.detectGateway).
	DetectGateway bool `json:"detectGateway,omitempty"`
}

// Coordinator is the config of the underlink-coordinator plugin, chained after macvlan.
type Coordinator struct {
	types.PluginConf
	// Mode is "underlay" (veth to the host plus hijack routes) or "disabled".
	Mode string `json:"mode,omitempty"`
	// HijackCIDR are the destinations routed via the node over veth0: the remote clusters' pod and
	// service CIDRs (SpiderMultusConfig spec.coordinator.hijackCIDR).
	HijackCIDR []string `json:"hijackCIDR,omitempty"`
	// ServiceCIDR is the local cluster's service CIDR (Submariner Cluster service_cidr or a fallback).
	ServiceCIDR []string `json:"serviceCIDR,omitempty"`
	// ClusterCIDR is the local cluster's pod CIDR; informational, routed via the node like ServiceCIDR
	// only when it does not contain the pod's own subnet.
	ClusterCIDR []string `json:"clusterCIDR,omitempty"`
	// PodDefaultRouteNIC is the pod interface whose default route is in the main table; default "eth0".
	// Every other interface the coordinator attaches gets a routing table of its own and a rule for its
	// source addresses (see TunePodRoutes).
	PodDefaultRouteNIC string `json:"podDefaultRouteNIC,omitempty"`
	// HostRuleTable is the host routing table for pod routes; 0 means the main table.
	HostRuleTable int `json:"hostRuleTable,omitempty"`
	// PodRPFilter is the pod's net.ipv4.conf.*.rp_filter; nil leaves it, default 0 in generated configs.
	PodRPFilter *int `json:"podRPFilter,omitempty"`
	// TxQueueLen of the veth pair; 0 leaves the kernel default.
	TxQueueLen int `json:"txQueueLen,omitempty"`
	// VethMTU is the MTU of both ends of the veth pair (Spiderpool's vethMTU); 0 leaves the kernel's
	// default, 1500.
	VethMTU int `json:"vethMTU,omitempty"`
	// VethLinkAddress is an optional link-local address for the host veth (Spiderpool's vethLinkAddress).
	VethLinkAddress string `json:"vethLinkAddress,omitempty"`
	// PodMACPrefix, when set, rewrites the pod's eth0 MAC to this prefix plus the IP's low bytes.
	PodMACPrefix string `json:"podMACPrefix,omitempty"`
	// TunePodRoutes (default true, as Spiderpool's) gives each attached interface other than
	// PodDefaultRouteNIC a routing table with its subnet, its default route via its gateway and the
	// hijack routes over its own veth, selected by a rule for its source addresses, so replies leave by
	// the interface the request came in on. False leaves the pod's routing tables to the previous
	// plugins for such an interface: it gets its veth and the node's route to it only.
	TunePodRoutes *bool `json:"tunePodRoutes,omitempty"`
	// PolicyRoutes are static routes "dst via gw" the coordinator adds on the pod interface, in the
	// table that interface's routes live in (the main table for PodDefaultRouteNIC), for the family of
	// each of its addresses: Spiderpool's coordinator policyRoutes.
	PolicyRoutes []PolicyRoute `json:"policyRoutes,omitempty"`
}

// PolicyRoute is one of Coordinator.PolicyRoutes: a CIDR (or an address) and a next hop of its family.
type PolicyRoute struct {
	Dst string `json:"dst"`
	Gw  string `json:"gw"`
}

// pluginConfKeys are the JSON keys types.PluginConf owns.
var pluginConfKeys = []string{"cniVersion", "name", "type", "capabilities", "ipam", "dns", "prevResult", "cni.dev/valid-attachments"}

// MarshalJSON writes the plugin's common fields and the coordinator's own. Without it,
// (*types.PluginConf).MarshalJSON is promoted through the embedding and silently drops every coordinator
// field whenever a *Coordinator (or an addressable Coordinator) is marshalled.
func (c Coordinator) MarshalJSON() ([]byte, error) {
	base, err := c.PluginConf.MarshalJSON()
	if err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	if err := json.Unmarshal(base, &out); err != nil {
		return nil, err
	}
	// A defined type without Coordinator's methods; marshalled as a non-addressable value, the embedded
	// PluginConf's pointer-receiver MarshalJSON is not used, so every field is written.
	type ownFields Coordinator
	all, err := json.Marshal(ownFields(c))
	if err != nil {
		return nil, err
	}
	own := map[string]json.RawMessage{}
	if err := json.Unmarshal(all, &own); err != nil {
		return nil, err
	}
	for _, k := range pluginConfKeys {
		delete(own, k)
	}
	for k, v := range own {
		out[k] = v
	}
	return json.Marshal(out)
}
