package podnet

import (
	"cmp"
	"encoding/json"
	"fmt"

	"github.com/underlink/underlink/api/cniconf"
	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// Kinds of the objects a Network is read from.
const (
	KindMultusConfig = "SpiderMultusConfig"
	KindNAD          = "NetworkAttachmentDefinition"
)

// spiderpoolIPAMType is Spiderpool's own IPAM plugin; NADs written for Spiderpool name their pools in it.
const spiderpoolIPAMType = "spiderpool"

// Network is what placement needs to know of one network.
type Network struct {
	// Kind is KindMultusConfig or KindNAD: the object the network was read from.
	Kind string
	// Masters are the host links the pod's interface is made on (the macvlan plugin's "master": for a
	// SpiderMultusConfig its Parent, the VLAN sub-interface or bond when it names one); each must be
	// up on the node.
	Masters []string
	// IPAM is true when the network's addresses come from SpiderIPPools.
	IPAM bool
	// Pools are the network's own pool choice (SpiderMultusConfig spec.macvlan.ippools, or the IPAM
	// section of a NAD); empty means the cluster's default pools, unless the pod chooses.
	Pools PoolChoice
	// Problem, when not empty, is why the object cannot be used, naming the field.
	Problem string
}

// Underlay reports whether the network needs anything of a node or a pool.
func (n Network) Underlay() bool { return len(n.Masters) > 0 || n.IPAM }

// FromMultusConfig reads a SpiderMultusConfig. Only macvlan and custom configs carry what underlink can
// check; other CNI types (ipvlan, sriov, ...) need nothing of the scheduler.
func FromMultusConfig(smc *spv2.SpiderMultusConfig) Network {
	n := Network{Kind: KindMultusConfig}
	where := fmt.Sprintf("%s %s/%s", KindMultusConfig, smc.Namespace, smc.Name)
	cniType := "custom" // the CRD's default
	if smc.Spec.CniType != nil {
		cniType = *smc.Spec.CniType
	}
	switch cniType {
	case "macvlan":
		mv := smc.Spec.MacvlanConfig
		if mv == nil || len(mv.Master) == 0 {
			n.Problem = where + " has spec.cniType macvlan but no spec.macvlan.master"
			return n
		}
		parent, err := Parent(mv)
		if err != nil {
			n.Problem = where + " " + err.Error()
			return n
		}
		n.Masters = []string{parent}
		n.IPAM = smc.Spec.DisableIPAM == nil || !*smc.Spec.DisableIPAM
		if mv.SpiderpoolConfigPools != nil {
			src := where + " spec.macvlan.ippools"
			n.Pools = PoolChoice{
				IPv4:   mv.SpiderpoolConfigPools.IPv4IPPool,
				IPv6:   mv.SpiderpoolConfigPools.IPv6IPPool,
				Source: src, IPv4Field: src + ".ipv4", IPv6Field: src + ".ipv6",
			}
			if m := mv.SpiderpoolConfigPools.MatchMasterSubnet; m != nil && *m {
				n.Pools.MatchMaster = parent
			}
		}
	case "custom":
		if smc.Spec.CustomCNIConfig == nil || *smc.Spec.CustomCNIConfig == "" {
			return n
		}
		c, err := fromCNIConfig(*smc.Spec.CustomCNIConfig, where+" spec.customCNI")
		if err != nil {
			n.Problem = fmt.Sprintf("%s spec.customCNI: %v", where, err)
			return n
		}
		c.Kind = KindMultusConfig
		return c
	}
	return n
}

// FromNAD reads a NetworkAttachmentDefinition's CNI configuration: every plugin's "master" is a host NIC;
// an "ipam" of type underlink-ipam or spiderpool takes addresses from SpiderIPPools.
func FromNAD(nad *nadv1.NetworkAttachmentDefinition) Network {
	where := fmt.Sprintf("%s %s/%s", KindNAD, nad.Namespace, nad.Name)
	if nad.Spec.Config == "" {
		return Network{Kind: KindNAD}
	}
	n, err := fromCNIConfig(nad.Spec.Config, where+" spec.config")
	if err != nil {
		return Network{Kind: KindNAD, Problem: fmt.Sprintf("%s spec.config: %v", where, err)}
	}
	n.Kind = KindNAD
	return n
}

// cniPlugin is the part of a CNI plugin configuration placement reads.
type cniPlugin struct {
	Type   string          `json:"type"`
	Master string          `json:"master,omitempty"`
	IPAM   json.RawMessage `json:"ipam,omitempty"`
}

// cniIPAM holds the pool fields of underlink-ipam (cniconf.IPAM) and of Spiderpool's IPAM plugin.
type cniIPAM struct {
	Type       string   `json:"type"`
	IPv4Pools  []string `json:"ipv4Pools,omitempty"`
	IPv6Pools  []string `json:"ipv6Pools,omitempty"`
	SpiderIPv4 []string `json:"default_ipv4_ippool,omitempty"`
	SpiderIPv6 []string `json:"default_ipv6_ippool,omitempty"`
	// MatchMasterSubnet is underlink-ipam's (with Master, the NIC), SpiderMatch Spiderpool's.
	MatchMasterSubnet bool   `json:"matchMasterSubnet,omitempty"`
	Master            string `json:"master,omitempty"`
	SpiderMatch       bool   `json:"match_master_subnet,omitempty"`
}

func fromCNIConfig(config, source string) (Network, error) {
	var list struct {
		cniPlugin
		Plugins []cniPlugin `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(config), &list); err != nil {
		return Network{}, fmt.Errorf("not a CNI configuration (JSON): %w", err)
	}
	plugins := list.Plugins
	if len(plugins) == 0 {
		plugins = []cniPlugin{list.cniPlugin}
	}
	var n Network
	for i, p := range plugins {
		if p.Master != "" {
			n.Masters = append(n.Masters, p.Master)
		}
		if len(p.IPAM) == 0 {
			continue
		}
		var ipam cniIPAM
		if err := json.Unmarshal(p.IPAM, &ipam); err != nil {
			return Network{}, fmt.Errorf("plugin %d (%s): ipam is not an object: %w", i, p.Type, err)
		}
		switch ipam.Type {
		case cniconf.IPAMType:
			n.IPAM = true
			n.Pools = PoolChoice{IPv4: ipam.IPv4Pools, IPv6: ipam.IPv6Pools, Source: source + " ipam",
				IPv4Field: source + " ipam.ipv4Pools", IPv6Field: source + " ipam.ipv6Pools"}
			if ipam.MatchMasterSubnet {
				n.Pools.MatchMaster = cmp.Or(ipam.Master, p.Master)
			}
		case spiderpoolIPAMType:
			n.IPAM = true
			n.Pools = PoolChoice{IPv4: ipam.SpiderIPv4, IPv6: ipam.SpiderIPv6, Source: source + " ipam",
				IPv4Field: source + " ipam.default_ipv4_ippool", IPv6Field: source + " ipam.default_ipv6_ippool"}
			if ipam.SpiderMatch {
				n.Pools.MatchMaster = p.Master
			}
		}
	}
	return n, nil
}
