package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/iprange"
	"github.com/underlink/underlink/pkg/podnet"
)

var (
	macvlanPath = specPath.Child("macvlan")
	masterPath  = macvlanPath.Child("master")
	ippoolsPath = macvlanPath.Child("ippools")
	hijackPath  = specPath.Child("coordinator").Child("hijackCIDR")
)

// CheckMultusConfig checks a SpiderMultusConfig: its spec, its pools (rule 1 for the pools it names) and
// its hijack routes against the local pools and the remote clusters (rule 3).
func CheckMultusConfig(w *World, smc *spiderv2beta1.SpiderMultusConfig) []Violation {
	if smc == nil {
		return nil
	}
	c := &collector{subject: ObjectRef("SpiderMultusConfig", smc.Namespace, smc.Name)}
	checkConfigSpec(c, w, smc)
	pools := checkConfigPools(c, w, smc)
	checkPolicyRoutes(c, smc, pools)
	hijack := hijackEntries(c, w, smc.Spec.CoordinatorConfig, hijackPath)
	if own := smc.Spec.CoordinatorConfig; own == nil || len(own.HijackCIDR) == 0 {
		// The config takes the SpiderCoordinator's hijack CIDRs, as its NAD does.
		for _, e := range w.hijackOf(smc) {
			if p, err := iprange.ParsePrefix(e); err == nil {
				hijack = append(hijack, p)
			}
		}
	}
	// A cniType underlink makes no network for is denied above; alignment would only add noise to it.
	if IsUnderlay(smc) && !notGenerated[cniType(smc)] && w.clustersKnown(c) {
		checkConfigPoolsInLocal(c, w, smc, pools)
		checkHijackCoversRemotes(c, w, smc, hijack)
	}
	if w != nil {
		checkHijackAvoidsPools(c, w, smc)
	}
	return c.vs
}

func cniType(smc *spiderv2beta1.SpiderMultusConfig) string {
	if smc.Spec.CniType == nil {
		return "custom" // the CRD's default
	}
	return *smc.Spec.CniType
}

// notGenerated are the cniTypes of Spiderpool's schema for which underlink generates no
// NetworkAttachmentDefinition: a pod of such a network would never start.
var notGenerated = map[string]bool{"ipvlan": true, "vlan": true, "sriov": true, "ovs": true, "ib-sriov": true, "ipoib": true}

// keptNotUsed warns of each field of Spiderpool's schema that underlink keeps but does not act on,
// naming what underlink does instead.
func keptNotUsed(c *collector, smc *spiderv2beta1.SpiderMultusConfig) {
	sp := smc.Spec
	for _, b := range []struct {
		name string
		set  bool
	}{{"ipvlan", sp.IPVlanConfig != nil}, {"vlan", sp.VlanConfig != nil}, {"sriov", sp.SriovConfig != nil},
		{"ovs", sp.OvsConfig != nil}, {"ibsriov", sp.IbSriovConfig != nil}, {"ipoib", sp.IpoibConfig != nil}} {
		if b.set {
			c.warn(RuleConfigSpecValid, specPath.Child(b.name), nil, "kept but not used: underlink generates networks for cniType macvlan and custom only",
				fmt.Sprintf("remove spec.%s, or describe the network with spec.macvlan (cniType macvlan) or spec.customCNI (cniType custom)", b.name))
		}
	}
	if m := sp.MacvlanConfig; m != nil && m.RdmaResourceName != nil && *m.RdmaResourceName != "" {
		c.warn(RuleConfigSpecValid, macvlanPath.Child("rdmaResourceName"), *m.RdmaResourceName, "underlink requests no RDMA device for pods of this network: the field is kept but not used",
			"request the RDMA resource in the pods' containers (resources.limits), or remove the field")
	}
	if co := sp.CoordinatorConfig; co != nil {
		coordinatorFields(c, RuleConfigSpecValid, co, specPath.Child("coordinator"), cniType(smc) == "macvlan")
	}
}

// coordinatorFields checks the coordinator fields of a SpiderMultusConfig (at path spec.coordinator) or
// of the SpiderCoordinator (at spec), under rule: podCIDRType is named as not used, overlay mode is denied
// for macvlan networks, vethMTU must be an MTU.
func coordinatorFields(c *collector, rule string, co *spiderv2beta1.CoordinatorSpec, path *field.Path, macvlan bool) {
	if co.PodCIDRType != nil && *co.PodCIDRType != "" {
		c.warn(rule, path.Child("podCIDRType"), *co.PodCIDRType, "underlink does not read pod CIDRs from the cluster's CNI: it takes the local and remote pod and service CIDRs from Submariner's Cluster objects (or the chart's submariner.staticClusters); the field is kept but not used",
			"remove "+path.Child("podCIDRType").String()+"; list any other destination to route through the node in "+path.Child("hijackCIDR").String())
	}
	if co.Mode != nil && *co.Mode == "overlay" && macvlan {
		c.deny(rule, path.Child("mode"), *co.Mode, "underlink's macvlan network is the pod's default network (eth0), which overlay mode (a macvlan beside an overlay eth0) does not fit: the network would get no NetworkAttachmentDefinition",
			"use mode underlay (or auto)")
	}
	if co.VethMTU != nil && (*co.VethMTU < 576 || *co.VethMTU > 65535) {
		c.deny(rule, path.Child("vethMTU"), *co.VethMTU, "the veth's MTU is 576 to 65535", "set the MTU of the pod's link to its node, e.g. 1500, or remove the field for the kernel's default")
	}
}

// checkConfigSpec: the macvlan part of the config underlink drives.
func checkConfigSpec(c *collector, w *World, smc *spiderv2beta1.SpiderMultusConfig) {
	keptNotUsed(c, smc)
	m := smc.Spec.MacvlanConfig
	if t := cniType(smc); notGenerated[t] {
		c.deny(RuleConfigSpecValid, specPath.Child("cniType"), t, fmt.Sprintf("underlink generates no NetworkAttachmentDefinition for cniType %s, so pods of this network would never start", t),
			"use cniType macvlan with spec.macvlan, or cniType custom with the whole CNI configuration in spec.customCNI")
	}
	if cniType(smc) != "macvlan" {
		if m != nil {
			c.warn(RuleConfigSpecValid, macvlanPath, cniType(smc), fmt.Sprintf("spec.macvlan is ignored when spec.cniType is %s", cniType(smc)),
				"set spec.cniType: macvlan, or remove spec.macvlan")
		}
		return
	}
	if m == nil || len(m.Master) == 0 {
		c.add(Violation{Rule: RuleConfigSpecValid, Field: masterPath, Type: field.ErrorTypeRequired, Severity: Deny,
			Message: "a macvlan network needs the host NIC its interfaces are made on", Fix: "set spec.macvlan.master to that NIC's name" + otherMasters(w, smc)})
		return
	}
	for i, name := range m.Master {
		if msg := podnet.InterfaceNameProblem(name); msg != "" {
			c.deny(RuleConfigSpecValid, masterPath.Index(i), name, msg, "write the host NIC's name as `ip link` shows it"+otherMasters(w, smc))
		}
	}
	if len(m.Master) > 1 && m.Bond == nil {
		c.deny(RuleConfigSpecValid, masterPath, m.Master, "several master NICs need spec.macvlan.bond to join them",
			"set spec.macvlan.bond (name and mode) or keep one master")
	}
	if m.Bond != nil {
		bp := macvlanPath.Child("bond")
		if msg := podnet.InterfaceNameProblem(m.Bond.Name); msg != "" {
			c.deny(RuleConfigSpecValid, bp.Child("name"), m.Bond.Name, msg, "name the bond interface, e.g. bond0")
		}
		if m.Bond.Mode < 0 || m.Bond.Mode > 6 {
			c.deny(RuleConfigSpecValid, bp.Child("mode"), m.Bond.Mode, "Linux bonding modes are 0 to 6", "use a mode from 0 to 6")
		}
	}
	vlanPath := macvlanPath.Child("vlanID")
	if m.VlanID != nil && (*m.VlanID < 0 || *m.VlanID > 4094) {
		c.deny(RuleConfigSpecValid, vlanPath, *m.VlanID, "VLAN IDs are 0 (none) to 4094", "use a VLAN ID from 1 to 4094, or 0 for none")
	} else if parent, err := podnet.Parent(m); err != nil {
		// The other causes (no master, several without a bond, a bad name) are denied above.
		var pe *podnet.ParentError
		if errors.As(err, &pe) && pe.Field == vlanPath.String() {
			c.deny(RuleConfigSpecValid, vlanPath, *m.VlanID, pe.Reason, pe.Fix)
		}
	} else if podnet.HasCreatedParent(m) {
		// Pods attach to the VLAN sub-interface or the bond by its name; underlink does not create it.
		p, v := vlanPath, any(nil)
		if m.VlanID != nil && *m.VlanID != 0 {
			v = *m.VlanID
		} else {
			p, v = macvlanPath.Child("bond", "name"), m.Bond.Name
		}
		c.warn(RuleConfigSpecValid, p, v, fmt.Sprintf("pods of this network attach to %s, which underlink does not create: it must exist and be up on every node that should run them, and they are placed only where it is", parent),
			fmt.Sprintf("create %s on the nodes (ip link, netplan, NetworkManager); `underlink doctor` lists the nodes without it", parent))
	}
	if m.MTU != nil && (*m.MTU < 0 || (*m.MTU > 0 && *m.MTU < 576) || *m.MTU > 65535) {
		c.deny(RuleConfigSpecValid, macvlanPath.Child("mtu"), *m.MTU, "an MTU is 576 to 65535, or 0 to keep the master's", "set the underlay's MTU, e.g. 1500")
	}
}

// otherMasters is ", as SpiderMultusConfig ns/name has: [nic]" for another macvlan config of the world
// with a master, else "": an example from the user's own configs.
func otherMasters(w *World, smc *spiderv2beta1.SpiderMultusConfig) string {
	if w == nil {
		return ""
	}
	for i := range w.MultusConfigs {
		o := &w.MultusConfigs[i]
		if o.Namespace == smc.Namespace && o.Name == smc.Name || o.Spec.MacvlanConfig == nil || len(o.Spec.MacvlanConfig.Master) == 0 {
			continue
		}
		if slices.ContainsFunc(o.Spec.MacvlanConfig.Master, func(n string) bool { return podnet.InterfaceNameProblem(n) != "" }) {
			continue
		}
		return fmt.Sprintf(", as SpiderMultusConfig %s/%s has: %v", o.Namespace, o.Name, o.Spec.MacvlanConfig.Master)
	}
	return ""
}

// checkConfigPools: named pools exist (a warning: pools may be created after their config) and match the
// family they are listed under. It returns the pools found, with their field paths.
func checkConfigPools(c *collector, w *World, smc *spiderv2beta1.SpiderMultusConfig) []namedPool {
	m := smc.Spec.MacvlanConfig
	if m == nil || m.SpiderpoolConfigPools == nil {
		return nil
	}
	var found []namedPool
	for _, fam := range []struct {
		key    string
		family int
		names  []string
	}{{"ipv4", 4, m.SpiderpoolConfigPools.IPv4IPPool}, {"ipv6", 6, m.SpiderpoolConfigPools.IPv6IPPool}} {
		seen := map[string]bool{}
		for i, name := range fam.names {
			p := ippoolsPath.Child(fam.key).Index(i)
			if seen[name] {
				c.add(Violation{Rule: RuleConfigPoolsExist, Field: p, Type: field.ErrorTypeDuplicate, Value: name, Severity: Deny,
					Message: "names the same pool twice", Fix: "list each pool once"})
				continue
			}
			seen[name] = true
			pool, ok := w.Pool(name)
			if !ok {
				fix := "create SpiderIPPool " + name
				if near := nearest(name, w.poolNames()); near != "" {
					fix = "did you mean " + near + "? Otherwise create SpiderIPPool " + name
				}
				c.add(Violation{Rule: RuleConfigPoolsExist, Field: p, Type: field.ErrorTypeNotFound, Value: name, Object: ObjectRef("SpiderIPPool", "", name), Severity: Warn,
					Message: "SpiderIPPool " + name + " does not exist yet; pods of this network get no address until it does", Fix: fix})
				continue
			}
			if sub, err := iprange.ParsePrefix(pool.Spec.Subnet); err == nil && iprange.FamilyOf(sub.Addr()) != fam.family {
				c.deny(RuleConfigPoolsExist, p, name, fmt.Sprintf("SpiderIPPool %s is IPv%d (subnet %s) but is listed under %s", name, iprange.FamilyOf(sub.Addr()), sub, fam.key),
					fmt.Sprintf("list it under spec.macvlan.ippools.ipv%d", iprange.FamilyOf(sub.Addr())))
				continue
			}
			found = append(found, namedPool{pool: pool, path: p})
		}
	}
	return found
}

type namedPool struct {
	pool *spiderv2beta1.SpiderIPPool
	path *field.Path
}

func (w *World) poolNames() []string {
	if w == nil {
		return nil
	}
	out := make([]string, len(w.Pools))
	for i := range w.Pools {
		out[i] = w.Pools[i].Name
	}
	return out
}

// checkConfigPoolsInLocal is design rule 1 seen from the config: a pool it names lies inside the local
// cluster CIDR.
func checkConfigPoolsInLocal(c *collector, w *World, smc *spiderv2beta1.SpiderMultusConfig, pools []namedPool) {
	local := w.clusters[0]
	if len(local.pods) == 0 {
		return
	}
	// A pool of a family Submariner routes no pod CIDR of is reachable from other clusters through the
	// network's pools of the other family only: a warning when the network has such a pool, a denial
	// when it has none.
	routed := false
	for _, np := range pools {
		if sub, err := iprange.ParsePrefix(np.pool.Spec.Subnet); err == nil && len(ofFamily(local.pods, sub.Addr())) > 0 {
			routed = true
		}
	}
	for _, np := range pools {
		sub, err := iprange.ParsePrefix(np.pool.Spec.Subnet)
		if err != nil {
			continue
		}
		family := ofFamily(local.pods, sub.Addr())
		if len(family) == 0 {
			fam := iprange.FamilyOf(sub.Addr())
			sev, why, fix := Warn, fmt.Sprintf("; they are reachable over IPv%d through this network's other pools", 10-fam), fmt.Sprintf("to reach its pods from other clusters over IPv%d too, join with an IPv%d cluster CIDR covering %s (subctl join --clustercidr)", fam, fam, sub)
			if !routed {
				sev, why, fix = Deny, fmt.Sprintf(", and this network has no IPv%d pool they could be reached through", 10-fam), fmt.Sprintf("add an IPv%d pool inside %s to spec.macvlan.ippools.ipv%d", 10-fam, prefixList(local.pods), 10-fam)
			}
			c.add(Violation{Rule: RulePoolInLocalClusterCIDR, Field: np.path, Value: np.pool.Name, Cluster: local.id,
				Object: ObjectRef("SpiderIPPool", "", np.pool.Name), Severity: sev,
				Message: fmt.Sprintf("SpiderIPPool %s (subnet %s) is IPv%d and Submariner routes no IPv%d pod CIDR of the local cluster %s (%s), so other clusters cannot reach its pods over IPv%d%s",
					np.pool.Name, sub, fam, fam, local.id, prefixList(local.pods), fam, why),
				Fix: fix})
			continue
		}
		if coveredByAny(family, sub) {
			continue
		}
		c.add(Violation{Rule: RulePoolInLocalClusterCIDR, Field: np.path, Value: np.pool.Name, Cluster: local.id,
			Object: ObjectRef("SpiderIPPool", "", np.pool.Name), Severity: Deny,
			Message: fmt.Sprintf("SpiderIPPool %s (subnet %s) lies outside %s, the pod CIDR of the local cluster %s, so remote clusters cannot reach its pods",
				np.pool.Name, sub, prefixList(local.pods), local.id),
			Fix: fmt.Sprintf("use a pool inside %s", prefixList(local.pods))})
	}
}

// checkPolicyRoutes: each spec.coordinator.policyRoutes entry is a CIDR (or an address) via a next hop of
// its family inside the subnet of the network's pool of that family, which the coordinator adds on the
// pod interface; a next hop the interface cannot reach on-link would fail every ADD of the network.
func checkPolicyRoutes(c *collector, smc *spiderv2beta1.SpiderMultusConfig, pools []namedPool) {
	co := smc.Spec.CoordinatorConfig
	if co == nil {
		return
	}
	for i, r := range co.PolicyRoutes {
		p := specPath.Child("coordinator", "policyRoutes").Index(i)
		dst, ok := iprange.ParseDestination(r.Dst)
		if !ok {
			c.deny(RuleConfigSpecValid, p.Child("dst"), r.Dst, "is not a CIDR or an IP address", "write the destination like 192.168.9.0/24")
			continue
		}
		gw, err := netip.ParseAddr(strings.TrimSpace(r.Gw))
		if err != nil || gw.Is4() != dst.Addr().Is4() {
			c.deny(RuleConfigSpecValid, p.Child("gw"), r.Gw, fmt.Sprintf("is not an IPv%d address like dst %s", iprange.FamilyOf(dst.Addr()), r.Dst), "write the next hop's address, inside the subnet of the network's pool of that family")
			continue
		}
		var subnets []string
		reachable := false
		for _, np := range pools {
			sub, err := iprange.ParsePrefix(np.pool.Spec.Subnet)
			if err != nil || sub.Addr().Is4() != gw.Is4() {
				continue
			}
			subnets = append(subnets, sub.String())
			reachable = reachable || sub.Contains(gw)
		}
		if len(subnets) > 0 && !reachable {
			c.deny(RuleConfigSpecValid, p.Child("gw"), r.Gw, fmt.Sprintf("lies outside %s, the subnet of this network's pools, so the pod interface cannot reach it on-link and every ADD of the network would fail", strings.Join(subnets, ", ")),
				"use a router of the pools' subnet as the next hop")
		}
	}
}

// hijackEntries checks co's hijackCIDR (a config's spec.coordinator, or the SpiderCoordinator's spec), at
// path, and returns the entries that parse.
func hijackEntries(c *collector, w *World, co *spiderv2beta1.CoordinatorSpec, at *field.Path) []netip.Prefix {
	if co == nil {
		return nil
	}
	if len(co.HijackCIDR) > MaxListEntries {
		c.add(Violation{Rule: RuleHijackCIDRValid, Field: at, Type: field.ErrorTypeTooMany, Value: len(co.HijackCIDR), Severity: Deny,
			Message: fmt.Sprintf("has %d entries, more than %d", len(co.HijackCIDR), MaxListEntries), Fix: "aggregate them into wider CIDRs"})
		return nil
	}
	var out []netip.Prefix
	for i, s := range co.HijackCIDR {
		p, err := iprange.ParsePrefix(s)
		if err != nil {
			msg, fix := prefixProblem(s, err)
			if remotes := w.remoteCIDRs(); remotes != "" && !strings.HasPrefix(msg, "has host bits set") {
				fix = "list the remote clusters' pod and service CIDRs: " + remotes
			}
			c.deny(RuleHijackCIDRValid, at.Index(i), s, msg, fix)
			continue
		}
		if p.Bits() == 0 {
			fix := "list the remote clusters' pod and service CIDRs instead"
			if remotes := w.remoteCIDRs(); remotes != "" {
				fix += ": " + remotes
			}
			c.deny(RuleHijackCIDRValid, at.Index(i), s, "a /0 hijack route sends all traffic, the underlay segment's included, through the node", fix)
			continue
		}
		out = append(out, p)
	}
	return out
}

// remoteCIDRs lists the remote clusters' pod and service CIDRs, "" when no remote cluster is known.
func (w *World) remoteCIDRs() string {
	if w == nil || w.Local == nil || len(w.clusters) < 2 {
		return ""
	}
	var out []netip.Prefix
	for _, r := range w.clusters[1:] {
		out = append(append(out, r.pods...), r.services...)
	}
	return prefixList(out)
}

// checkHijackCoversRemotes is design rule 3, first half: every remote pod and service CIDR (the global
// CIDR under globalnet) is routed via the node.
func checkHijackCoversRemotes(c *collector, w *World, smc *spiderv2beta1.SpiderMultusConfig, hijack []netip.Prefix) {
	local := w.clusters[0]
	list := w.hijackOf(smc)
	coordinatorOff := (smc.Spec.EnableCoordinator != nil && !*smc.Spec.EnableCoordinator)
	have := prefixSet(hijack)
	for _, r := range w.clusters[1:] {
		wants := []struct {
			what     string
			prefixes []netip.Prefix
		}{{"pod CIDR", r.pods}, {"service CIDR", r.services}}
		if local.globalnet() || r.globalnet() {
			wants = wants[:0]
			wants = append(wants, struct {
				what     string
				prefixes []netip.Prefix
			}{"global CIDR", r.globals})
		}
		for _, want := range wants {
			for _, rp := range want.prefixes {
				missing := iprange.NewSet(iprange.FromPrefix(rp)).Minus(have[iprange.FamilyOf(rp.Addr())])
				if missing.Empty() {
					continue
				}
				reach := map[string]string{"pod CIDR": "pods", "service CIDR": "services", "global CIDR": "global addresses"}[want.what]
				if coordinatorOff {
					c.warn(RuleHijackCoversRemotes, specPath.Child("enableCoordinator"), false,
						fmt.Sprintf("the coordinator is disabled, so %s (%s of cluster %s) is not routed via the node", rp, want.what, r.id),
						"enable the coordinator so pods reach "+r.id+"'s "+reach)
					continue
				}
				msg := fmt.Sprintf("missing %s (%s of cluster %s)", rp, want.what, r.id)
				if missing.Size().Cmp(iprange.FromPrefix(rp).Size()) != 0 {
					msg = fmt.Sprintf("covers only part of %s (%s of cluster %s)", rp, want.what, r.id)
				}
				v := Violation{Rule: RuleHijackCoversRemotes, Field: hijackPath, Value: list, Cluster: r.id, Severity: Deny,
					Message: msg, Fix: fmt.Sprintf("add %s so pods reach %s's %s via the node", rp, r.id, reach)}
				if len(list) == 0 {
					v.Type, v.Value = field.ErrorTypeRequired, nil
				}
				c.add(v)
			}
		}
	}
}

func prefixSet(ps []netip.Prefix) map[int]iprange.Set {
	byFam := map[int][]iprange.Range{}
	for _, p := range ps {
		f := iprange.FamilyOf(p.Addr())
		byFam[f] = append(byFam[f], iprange.FromPrefix(p))
	}
	out := map[int]iprange.Set{}
	for f, rs := range byFam {
		out[f] = iprange.NewSet(rs...)
	}
	return out
}

// checkHijackAvoidsPools is design rule 3, second half: a hijack route covering a local pool would send
// traffic to local pods via the node instead of on the underlay.
func checkHijackAvoidsPools(c *collector, w *World, smc *spiderv2beta1.SpiderMultusConfig) {
	co := smc.Spec.CoordinatorConfig
	if co == nil {
		return
	}
	for i, s := range co.HijackCIDR {
		p, err := iprange.ParsePrefix(s)
		if err != nil || p.Bits() == 0 {
			continue
		}
		for j := range w.Pools {
			pool := &w.Pools[j]
			sub, err := iprange.ParsePrefix(pool.Spec.Subnet)
			if err != nil || !sub.Overlaps(p) {
				continue
			}
			ref := ObjectRef("SpiderIPPool", "", pool.Name)
			c.add(Violation{Rule: RuleHijackAvoidsLocalPools, Field: hijackPath.Index(i), Value: s, Object: ref, Severity: Deny,
				Message: fmt.Sprintf("covers %s (subnet %s), a local pool, so traffic to local pods would leave via the node instead of the underlay", ref, sub),
				Fix:     fmt.Sprintf("remove %s; hijackCIDR lists only remote clusters' pod and service CIDRs", s)})
		}
	}
}
