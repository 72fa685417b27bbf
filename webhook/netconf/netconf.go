// Package netconf builds the CNI network configuration list that a SpiderMultusConfig stands for: the
// chain macvlan → underlink-coordinator of api/cniconf, as the controller writes it into the config's
// NetworkAttachmentDefinition. It is pure (no client): the controller and `underlink doctor` call it with
// the objects they read.
package netconf

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"

	cnitypes "github.com/containernetworking/cni/pkg/types"

	"github.com/underlink/underlink/api/cniconf"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/podnet"
)

// Local is what the chain needs to know about the cluster it runs in, from the local Submariner Cluster
// object or the static fallback: the coordinator routes these through the node.
type Local struct {
	ServiceCIDR []string
	ClusterCIDR []string
	// Defaults is the spec of the SpiderCoordinator "default": each coordinator field a config leaves
	// unset takes its value (spv2.CoordinatorSpec.WithDefaults). nil: none.
	Defaults *spv2.CoordinatorSpec
}

// Macvlan is the reference macvlan plugin's configuration (containernetworking/plugins, plugins/main/macvlan).
type Macvlan struct {
	Type   string        `json:"type"`
	Master string        `json:"master"`
	Mode   string        `json:"mode"`
	MTU    int           `json:"mtu,omitempty"`
	IPAM   *cniconf.IPAM `json:"ipam,omitempty"`
}

// List is a CNI network configuration list (a NAD's spec.config).
type List struct {
	CNIVersion string            `json:"cniVersion"`
	Name       string            `json:"name"`
	Plugins    []json.RawMessage `json:"plugins"`
}

// ErrUnsupported marks a SpiderMultusConfig that is valid for Spiderpool but that underlink does not
// drive (another cniType, a coordinator mode other than underlay); the controller reports it in the
// Ready condition instead of writing a NAD that would fail on every node.
var ErrUnsupported = errors.New("not supported by underlink")

// Name is the CNI network name of a config: "<namespace>-<name>", unique in the cluster.
func Name(smc *spv2.SpiderMultusConfig) string { return smc.Namespace + "-" + smc.Name }

// Build returns the NAD spec.config of smc. Errors name the field and the fix; an ErrUnsupported error
// means a valid spec underlink does not drive.
func Build(smc *spv2.SpiderMultusConfig, local Local) (string, error) {
	cniType := "custom"
	if smc.Spec.CniType != nil {
		cniType = *smc.Spec.CniType
	}
	switch cniType {
	case "custom":
		return custom(smc)
	case "macvlan":
	default:
		return "", fmt.Errorf("SpiderMultusConfig %s/%s: spec.cniType %q is %w: use macvlan, or custom with spec.customCNI", smc.Namespace, smc.Name, cniType, ErrUnsupported)
	}
	if local.Defaults != nil {
		merged := *smc
		merged.Spec.CoordinatorConfig = smc.Spec.CoordinatorConfig.WithDefaults(local.Defaults)
		smc = &merged
	}

	mv, err := macvlan(smc)
	if err != nil {
		return "", err
	}
	plugins := []any{mv}
	c, err := coordinator(smc, local)
	if err != nil {
		return "", err
	}
	if c != nil {
		plugins = append(plugins, c) // cniconf.Coordinator.MarshalJSON keeps its own fields either way
		if mv.IPAM != nil {
			// The IPAM returns the default route only on the interface the coordinator keeps it on; the
			// coordinator routes every other interface by a table of its own.
			mv.IPAM.DefaultRouteNIC = cmp.Or(c.PodDefaultRouteNIC, podnet.DefaultInterface)
		}
	}
	list := List{CNIVersion: cniconf.CNIVersion, Name: Name(smc)}
	for _, p := range plugins {
		b, err := json.Marshal(p)
		if err != nil {
			return "", fmt.Errorf("SpiderMultusConfig %s/%s: encode plugin: %w", smc.Namespace, smc.Name, err)
		}
		list.Plugins = append(list.Plugins, b)
	}
	for i, raw := range smc.Spec.ChainCNIJsonData {
		var obj map[string]any
		if err := json.Unmarshal([]byte(raw), &obj); err != nil {
			return "", fmt.Errorf("SpiderMultusConfig %s/%s: spec.chainCNIJsonData[%d] is not a JSON object: %w; write one plugin configuration such as {\"type\":\"tuning\"}", smc.Namespace, smc.Name, i, err)
		}
		if t, _ := obj["type"].(string); t == "" {
			return "", fmt.Errorf("SpiderMultusConfig %s/%s: spec.chainCNIJsonData[%d] has no \"type\"; name the plugin binary, e.g. {\"type\":\"tuning\"}", smc.Namespace, smc.Name, i)
		}
		list.Plugins = append(list.Plugins, json.RawMessage(raw))
	}
	b, err := json.Marshal(list)
	if err != nil {
		return "", fmt.Errorf("SpiderMultusConfig %s/%s: encode configuration list: %w", smc.Namespace, smc.Name, err)
	}
	return string(b), nil
}

// custom passes spec.customCNI through after checking it is a CNI configuration a runtime can load.
func custom(smc *spv2.SpiderMultusConfig) (string, error) {
	if smc.Spec.CustomCNIConfig == nil || *smc.Spec.CustomCNIConfig == "" {
		return "", fmt.Errorf("SpiderMultusConfig %s/%s: spec.cniType is custom (the default) but spec.customCNI is empty; set spec.cniType: macvlan with spec.macvlan, or write the CNI configuration in spec.customCNI", smc.Namespace, smc.Name)
	}
	raw := *smc.Spec.CustomCNIConfig
	var conf struct {
		CNIVersion string            `json:"cniVersion"`
		Type       string            `json:"type"`
		Plugins    []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(raw), &conf); err != nil {
		return "", fmt.Errorf("SpiderMultusConfig %s/%s: spec.customCNI is not a JSON CNI configuration: %w", smc.Namespace, smc.Name, err)
	}
	if conf.Type == "" && len(conf.Plugins) == 0 {
		return "", fmt.Errorf("SpiderMultusConfig %s/%s: spec.customCNI has neither \"type\" nor \"plugins\"; write a CNI plugin configuration or a configuration list", smc.Namespace, smc.Name)
	}
	return raw, nil
}

func macvlan(smc *spv2.SpiderMultusConfig) (*Macvlan, error) {
	mc := smc.Spec.MacvlanConfig
	if mc == nil || len(mc.Master) == 0 {
		return nil, fmt.Errorf("SpiderMultusConfig %s/%s: spec.macvlan.master is required for spec.cniType macvlan; name the host's underlay NIC, e.g. [ens224]", smc.Namespace, smc.Name)
	}
	// One computation of the link pods attach to (pkg/podnet.Parent): the agent's link watch and the
	// scheduler place by the same name.
	master, err := podnet.Parent(mc)
	if err != nil {
		return nil, fmt.Errorf("SpiderMultusConfig %s/%s: %w", smc.Namespace, smc.Name, err)
	}
	m := &Macvlan{Type: cniconf.MacvlanType, Master: master, Mode: "bridge"}
	if mc.MTU != nil {
		m.MTU = int(*mc.MTU)
	}
	if smc.Spec.DisableIPAM != nil && *smc.Spec.DisableIPAM {
		return m, nil
	}
	m.IPAM = &cniconf.IPAM{Type: cniconf.IPAMType}
	if cs := smc.Spec.CoordinatorConfig; cs != nil {
		// Spiderpool's coordinator fields; underlink-ipam probes, before macvlan configures the
		// interface and announces the address (docs/DESIGN.md, "Conflict and gateway detection").
		m.IPAM.DetectIPConflict = cs.DetectIPConflict != nil && *cs.DetectIPConflict
		m.IPAM.DetectGateway = cs.DetectGateway != nil && *cs.DetectGateway
	}
	if p := mc.SpiderpoolConfigPools; p != nil {
		m.IPAM.IPv4Pools = append([]string(nil), p.IPv4IPPool...)
		m.IPAM.IPv6Pools = append([]string(nil), p.IPv6IPPool...)
		if p.MatchMasterSubnet != nil && *p.MatchMasterSubnet {
			m.IPAM.MatchMasterSubnet = true
			m.IPAM.Master = master
		}
	}
	return m, nil
}

// coordinator returns nil when the config chains no coordinator.
func coordinator(smc *spv2.SpiderMultusConfig, local Local) (*cniconf.Coordinator, error) {
	if smc.Spec.EnableCoordinator != nil && !*smc.Spec.EnableCoordinator {
		return nil, nil
	}
	cs := smc.Spec.CoordinatorConfig
	if cs == nil {
		cs = &spv2.CoordinatorSpec{}
	}
	mode := "underlay"
	if cs.Mode != nil {
		switch *cs.Mode {
		case "underlay", "auto", "":
			// auto resolves to underlay: underlink's macvlan is the pod's eth0, so it is always the underlay NIC.
		case "disabled":
			return nil, nil
		default:
			return nil, fmt.Errorf("SpiderMultusConfig %s/%s: spec.coordinator.mode %q is %w: underlink's macvlan is the pod's default network, so use underlay (or auto)", smc.Namespace, smc.Name, *cs.Mode, ErrUnsupported)
		}
	}
	c := &cniconf.Coordinator{
		PluginConf:  cnitypes.PluginConf{Type: cniconf.CoordinatorType},
		Mode:        mode,
		HijackCIDR:  append([]string(nil), cs.HijackCIDR...),
		ServiceCIDR: append([]string(nil), local.ServiceCIDR...),
		ClusterCIDR: append([]string(nil), local.ClusterCIDR...),
	}
	rp := 0 // the seed's pods answer traffic arriving over veth0 from the node; strict rp_filter drops it
	if cs.PodRPFilter != nil {
		rp = int(*cs.PodRPFilter)
	}
	if rp >= 0 {
		c.PodRPFilter = &rp
	}
	if cs.PodDefaultRouteNIC != nil {
		c.PodDefaultRouteNIC = *cs.PodDefaultRouteNIC
	}
	if cs.HostRuleTable != nil {
		c.HostRuleTable = int(*cs.HostRuleTable)
	}
	if cs.TxQueueLen != nil {
		c.TxQueueLen = int(*cs.TxQueueLen)
	}
	if cs.VethMTU != nil {
		c.VethMTU = int(*cs.VethMTU)
	}
	if cs.VethLinkAddress != nil {
		c.VethLinkAddress = *cs.VethLinkAddress
	}
	if cs.PodMACPrefix != nil {
		c.PodMACPrefix = *cs.PodMACPrefix
	}
	if cs.TunePodRoutes != nil {
		v := *cs.TunePodRoutes
		c.TunePodRoutes = &v
	}
	for _, r := range cs.PolicyRoutes {
		c.PolicyRoutes = append(c.PolicyRoutes, cniconf.PolicyRoute{Dst: r.Dst, Gw: r.Gw})
	}
	return c, nil
}
