package rules

import (
	"fmt"
	"math/big"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/iprange"
	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/pkg/reservedip"
)

// MaxListEntries bounds spec.ips, spec.excludeIPs, spec.routes and hijackCIDR as the CRD does, so an
// absurd list (10^6 ranges) is denied before any parsing.
const MaxListEntries = 512

// HighUsePercent is the allocation level above which a pool gets a warning.
const HighUsePercent = 90

var (
	specPath       = field.NewPath("spec")
	subnetPath     = specPath.Child("subnet")
	ipVersionPath  = specPath.Child("ipVersion")
	ipsPath        = specPath.Child("ips")
	excludeIPsPath = specPath.Child("excludeIPs")
	gatewayPath    = specPath.Child("gateway")
	routesPath     = specPath.Child("routes")
)

// poolFacts is what the checks learned while parsing a pool; zero values mean "did not parse".
type poolFacts struct {
	subnet    netip.Prefix
	family    int
	ips       iprange.Set
	ipsOK     bool
	exclude   iprange.Set
	gateway   netip.Addr
	hasGW     bool
	allocable iprange.Set // ips minus excludeIPs minus the gateway
}

// CheckPool checks a SpiderIPPool being created (old nil) or updated (old is the stored pool): Spiderpool's
// own sanity rules and design rules 1 and 2. The pool itself may be among w.Pools (it is skipped there).
func CheckPool(w *World, pool, old *spiderv2beta1.SpiderIPPool) []Violation {
	if pool == nil {
		return nil
	}
	c := &collector{subject: ObjectRef("SpiderIPPool", "", pool.Name)}
	f := checkPoolSpec(c, &pool.Spec)
	if old != nil {
		checkPoolUpdate(c, pool, old, f)
	}
	checkPoolCapacity(c, pool, old, f)
	if v := pool.Spec.Vlan; v != nil && *v != 0 {
		c.warn(RulePoolFieldsUsed, specPath.Child("vlan"), *v, "kept but not used: a pool's VLAN is deprecated in Spiderpool, and underlink tags nothing by it; pods are on the VLAN of their network",
			"set spec.macvlan.vlanID in the SpiderMultusConfig of the networks that use this pool, and remove spec.vlan")
	}
	checkPoolNetworks(c, w, &pool.Spec)
	checkPoolReservedIPs(c, w, f)
	if f.subnet.IsValid() {
		checkPoolOverlaps(c, w, pool, f)
		checkPoolAlignment(c, w, pool, f)
	}
	return c.vs
}

// checkPoolReservedIPs names, per SpiderReservedIP, the pool's allocatable addresses it reserves: no pod
// is given them (a pod that holds one keeps it until released), and totalIPCount still counts them, as
// Spiderpool's does.
func checkPoolReservedIPs(c *collector, w *World, f poolFacts) {
	if w == nil || !f.ipsOK || f.allocable.Empty() {
		return
	}
	for i := range w.ReservedIPs {
		r := w.ReservedIPs[i]
		sets, _ := reservedip.Sets([]spiderv2beta1.SpiderReservedIP{r})
		set := sets[f.family]
		common := commonRanges(f.allocable, set)
		if common == "" {
			continue
		}
		n := f.allocable.Minus(f.allocable.Minus(set)).Size()
		c.add(Violation{Rule: RulePoolReservedIPs, Field: ipsPath, Value: common, Object: ObjectRef("SpiderReservedIP", "", r.Name), Severity: Warn,
			Message: fmt.Sprintf("%s (%s address(es)) reserved by SpiderReservedIP %s: no pod is given them, and status.totalIPCount still counts them, as Spiderpool's does", common, n, r.Name),
			Fix:     "list them in spec.excludeIPs so the counts match, or delete the SpiderReservedIP to give them out"})
	}
}

// checkPoolSpec applies the rules that read one pool alone and returns what parsed.
func checkPoolSpec(c *collector, s *spiderv2beta1.IPPoolSpec) poolFacts {
	var f poolFacts
	subnet, err := iprange.ParsePrefix(s.Subnet)
	holding := coveringPrefix(s.IPs)
	switch {
	case strings.TrimSpace(s.Subnet) == "":
		c.add(Violation{Rule: RulePoolSubnetValid, Field: subnetPath, Type: field.ErrorTypeRequired, Severity: Deny,
			Message: "a pool needs a subnet", Fix: "set spec.subnet to the underlay segment's CIDR" + holdingIPs(holding)})
	case err != nil:
		msg, fix := prefixProblem(s.Subnet, err)
		if holding.IsValid() && !strings.HasPrefix(msg, "has host bits set") {
			fix = "write the segment's CIDR" + holdingIPs(holding)
		}
		c.deny(RulePoolSubnetValid, subnetPath, s.Subnet, msg, fix)
	case subnet.Bits() == 0:
		c.deny(RulePoolSubnetValid, subnetPath, s.Subnet, "a /0 subnet spans every address of the family, so every destination would be on-link",
			"set spec.subnet to the underlay segment's own CIDR"+holdingIPs(holding))
	default:
		f.subnet = subnet
		f.family = iprange.FamilyOf(subnet.Addr())
	}
	if s.IPVersion != nil {
		v := *s.IPVersion
		switch {
		case v != 4 && v != 6:
			c.add(Violation{Rule: RulePoolSubnetValid, Field: ipVersionPath, Type: field.ErrorTypeNotSupported, Value: v, Severity: Deny,
				Message: "ipVersion must be 4 or 6", Fix: "set it to the family of spec.subnet, or leave it out"})
		case f.family != 0 && int(v) != f.family:
			c.deny(RulePoolSubnetValid, ipVersionPath, v, fmt.Sprintf("spec.subnet %s is IPv%d", f.subnet, f.family),
				fmt.Sprintf("set spec.ipVersion to %d, or leave it out", f.family))
		}
		if f.family == 0 && (v == 4 || v == 6) {
			f.family = int(v) // lets entries be checked for family even when the subnet is broken
		}
	}

	f.ips, f.ipsOK = checkAddressList(c, ipsPath, s.IPs, f)
	f.exclude, _ = checkAddressList(c, excludeIPsPath, s.ExcludeIPs, f)

	if s.Gateway != nil && strings.TrimSpace(*s.Gateway) != "" {
		checkGateway(c, s, &f)
	}
	if f.ipsOK {
		f.allocable = f.ips.Minus(f.exclude)
		if f.hasGW {
			f.allocable = f.allocable.Minus(iprange.NewSet(iprange.Range{First: f.gateway, Last: f.gateway}))
		}
		if f.subnet.IsValid() && f.family == 4 && f.subnet.Bits() <= 30 {
			nb := iprange.FromPrefix(f.subnet)
			var edge []string
			for _, a := range []netip.Addr{nb.First, nb.Last} {
				if f.allocable.Contains(a) {
					edge = append(edge, a.String())
				}
			}
			if len(edge) > 0 {
				c.warn(RulePoolIPsInSubnet, ipsPath, s.IPs,
					fmt.Sprintf("includes %s, the network or broadcast address of %s, which a pod cannot use", strings.Join(edge, " and "), f.subnet),
					"add "+strings.Join(edge, ", ")+" to spec.excludeIPs or narrow spec.ips")
			}
		}
	}
	checkRoutes(c, s, f)
	checkSelectors(c, s)
	return f
}

// checkSelectors: the pool's affinities are valid label selectors, and a podAffinity selects something
// (an empty one would match every pod, which Spiderpool refuses as a likely mistake).
func checkSelectors(c *collector, s *spiderv2beta1.IPPoolSpec) {
	for _, sel := range []struct {
		name string
		ls   *metav1.LabelSelector
	}{{"podAffinity", s.PodAffinity}, {"namespaceAffinity", s.NamespaceAffinity}, {"nodeAffinity", s.NodeAffinity}} {
		if sel.ls == nil {
			continue
		}
		p := specPath.Child(sel.name)
		errs := metav1validation.ValidateLabelSelector(sel.ls, metav1validation.LabelSelectorValidationOptions{}, p)
		for _, e := range errs {
			c.add(Violation{Rule: RulePoolAffinityValid, Field: p, Type: e.Type, Value: e.BadValue, Severity: Deny,
				Message: strings.TrimPrefix(e.Field, p.String()+".") + ": " + e.Detail, Fix: "write a label selector with valid keys, operators and values"})
		}
		if len(errs) == 0 && sel.name == "podAffinity" && len(sel.ls.MatchLabels)+len(sel.ls.MatchExpressions) == 0 {
			c.deny(RulePoolAffinityValid, p, "{}", "an empty podAffinity selects every pod", "give it matchLabels or matchExpressions, or remove it")
		}
	}
}

// checkPoolNetworks: each spec.multusName entry names a network as Multus does ("namespace/name", or a
// bare name in Multus' namespace). One that names no SpiderMultusConfig or NetworkAttachmentDefinition is
// a warning, not a denial (the network may be created next): until it exists the pool serves no pod on
// it, which is how a typo there would otherwise fail, silently, at the pod's ADD.
func checkPoolNetworks(c *collector, w *World, s *spiderv2beta1.IPPoolSpec) {
	p := specPath.Child("multusName")
	if len(s.MultusName) > MaxListEntries {
		c.add(Violation{Rule: RulePoolAffinityValid, Field: p, Type: field.ErrorTypeTooMany, Value: len(s.MultusName), Severity: Deny,
			Message: fmt.Sprintf("lists %d networks, more than %d", len(s.MultusName), MaxListEntries), Fix: "list the few networks the pool serves"})
		return
	}
	for i, e := range s.MultusName {
		sels, err := podnet.ParseNetworks(e, podnet.MultusNamespace)
		if err != nil || len(sels) != 1 || sels[0].Interface != "" {
			why := "is not one network name"
			if err != nil {
				why = err.Error()
			}
			c.deny(RulePoolAffinityValid, p.Index(i), e, why, "write namespace/name of a SpiderMultusConfig, or its name alone for one in "+podnet.MultusNamespace)
			continue
		}
		n := sels[0]
		if w == nil || w.HasNetwork(n.Namespace, n.Name) {
			continue
		}
		fix := fmt.Sprintf("create SpiderMultusConfig %s, or name an existing network", n)
		if near := nearest(n.String(), w.networkNames()); near != "" {
			fix = "did you mean " + near + "?"
		}
		c.add(Violation{Rule: RulePoolAffinityValid, Field: p.Index(i), Type: field.ErrorTypeNotFound, Value: e, Object: ObjectRef("SpiderMultusConfig", n.Namespace, n.Name),
			Severity: Warn, Message: fmt.Sprintf("network %s does not exist, so the pool serves no pod until it does", n), Fix: fix})
	}
}

// checkAddressList parses spec.ips or spec.excludeIPs, checking family and subnet per entry.
func checkAddressList(c *collector, p *field.Path, entries []string, f poolFacts) (iprange.Set, bool) {
	if len(entries) > MaxListEntries {
		c.add(Violation{Rule: RulePoolIPsInSubnet, Field: p, Type: field.ErrorTypeTooMany, Value: len(entries), Severity: Deny,
			Message: fmt.Sprintf("has %d entries, more than %d", len(entries), MaxListEntries),
			Fix:     "write contiguous addresses as one range, FIRST-LAST"})
		return iprange.Set{}, false
	}
	var rs []iprange.Range
	ok := true
	for i, e := range entries {
		r, err := iprange.Parse(e)
		if err != nil {
			msg, fix := rangeProblem(e, err, f.subnet)
			c.deny(RulePoolIPsInSubnet, p.Index(i), e, msg, fix)
			ok = false
			continue
		}
		if f.family != 0 && iprange.FamilyOf(r.First) != f.family {
			c.deny(RulePoolIPsInSubnet, p.Index(i), e, fmt.Sprintf("is IPv%d in an IPv%d pool", iprange.FamilyOf(r.First), f.family),
				"put IPv"+fmt.Sprint(iprange.FamilyOf(r.First))+" addresses in a pool of their own family")
			ok = false
			continue
		}
		if f.subnet.IsValid() && !r.Within(f.subnet) {
			c.deny(RulePoolIPsInSubnet, p.Index(i), e, "lies outside spec.subnet "+f.subnet.String(),
				"keep every entry inside "+f.subnet.String()+" ("+iprange.FromPrefix(f.subnet).String()+")")
			ok = false
			continue
		}
		rs = append(rs, r)
	}
	if f.family == 0 && len(rs) > 0 {
		// Without a subnet the family is unknown: still refuse a mix, as ParseSet would.
		fam := iprange.FamilyOf(rs[0].First)
		for _, r := range rs {
			if iprange.FamilyOf(r.First) != fam {
				c.deny(RulePoolIPsInSubnet, p, entries, "mixes IPv4 and IPv6", "a pool holds one family; split it into two pools")
				return iprange.Set{}, false
			}
		}
	}
	return iprange.NewSet(rs...), ok
}

// checkGateway checks spec.gateway: a usable address inside the subnet that no pod is given. A gateway
// outside the subnet gets both fixes: a gateway inside it, or the smallest wider subnet that holds it.
func checkGateway(c *collector, s *spiderv2beta1.IPPoolSpec, f *poolFacts) {
	raw := *s.Gateway
	gw, err := netip.ParseAddr(strings.TrimSpace(raw))
	if err != nil || gw.Zone() != "" {
		fix := "write the segment router's IP address"
		if f.subnet.IsValid() {
			fix = "write the segment router's address inside " + f.subnet.String()
			if sg := suggestGateway(f.subnet, f.ips.Minus(f.exclude)); sg.IsValid() {
				fix += fmt.Sprintf(" (e.g. %s, %s)", sg.addr, sg.note)
			}
		}
		c.deny(RulePoolGatewayInSubnet, gatewayPath, raw, "is not an IP address", fix)
		return
	}
	gw = gw.Unmap()
	if f.family != 0 && iprange.FamilyOf(gw) != f.family {
		c.deny(RulePoolGatewayInSubnet, gatewayPath, raw, fmt.Sprintf("is IPv%d in an IPv%d pool", iprange.FamilyOf(gw), f.family),
			"use the IPv"+fmt.Sprint(f.family)+" address of the segment's router")
		return
	}
	if !f.subnet.IsValid() {
		return
	}
	if !f.subnet.Contains(gw) {
		suggestion := suggestGateway(f.subnet, f.ips.Minus(f.exclude))
		wider := iprange.SmallestCovering(f.subnet, gw)
		fix := fmt.Sprintf("set spec.gateway to the router's address inside %s", f.subnet)
		if suggestion.IsValid() {
			fix += fmt.Sprintf(" (e.g. %s, %s)", suggestion.addr, suggestion.note)
		}
		if wider.IsValid() && wider.Bits() > 0 {
			fix += fmt.Sprintf(", or widen spec.subnet to %s, which contains %s", wider, gw)
		}
		c.deny(RulePoolGatewayInSubnet, gatewayPath, raw,
			fmt.Sprintf("outside spec.subnet %s, so pods cannot reach it on-link and their default route cannot be installed", f.subnet), fix)
		return
	}
	if f.family == 4 && f.subnet.Bits() <= 30 {
		r := iprange.FromPrefix(f.subnet)
		if gw == r.First || gw == r.Last {
			c.deny(RulePoolGatewayInSubnet, gatewayPath, raw, fmt.Sprintf("is the network or broadcast address of %s", f.subnet),
				"set spec.gateway to the segment router's host address")
			return
		}
	}
	f.gateway, f.hasGW = gw, true
	if f.ipsOK && f.ips.Minus(f.exclude).Contains(gw) {
		c.deny(RulePoolGatewayNotAllocatable, gatewayPath, raw, "lies in spec.ips, so a pod could be given the gateway's address",
			fmt.Sprintf("add %s to spec.excludeIPs or take it out of spec.ips", gw))
	}
}

type gatewaySuggestion struct {
	addr netip.Addr
	note string
}

func (g gatewaySuggestion) IsValid() bool { return g.addr.IsValid() }

// suggestGateway proposes a gateway inside subnet, preferring the last then the first host address, and
// an address no pod can be given.
func suggestGateway(subnet netip.Prefix, allocable iprange.Set) gatewaySuggestion {
	r := iprange.FromPrefix(subnet)
	first, last := r.First, r.Last
	if subnet.Addr().Is4() && subnet.Bits() <= 30 {
		first, last = first.Next(), last.Prev()
	} else if subnet.Addr().Is6() && subnet.Bits() <= 126 {
		first = first.Next() // the subnet-router anycast address
	}
	// Walk down from the top, then up from the bottom, a bounded number of steps.
	const steps = 256
	for a, i := last, 0; i < steps && a.IsValid() && !a.Less(first); a, i = a.Prev(), i+1 {
		if !allocable.Contains(a) {
			return gatewaySuggestion{a, "not in spec.ips"}
		}
	}
	for a, i := first, 0; i < steps && a.IsValid() && !last.Less(a); a, i = a.Next(), i+1 {
		if !allocable.Contains(a) {
			return gatewaySuggestion{a, "not in spec.ips"}
		}
	}
	if !last.IsValid() || last.Less(first) {
		return gatewaySuggestion{}
	}
	return gatewaySuggestion{last, "added to spec.excludeIPs"}
}

func checkRoutes(c *collector, s *spiderv2beta1.IPPoolSpec, f poolFacts) {
	if len(s.Routes) > MaxListEntries {
		c.add(Violation{Rule: RulePoolRoutesValid, Field: routesPath, Type: field.ErrorTypeTooMany, Value: len(s.Routes), Severity: Deny,
			Message: fmt.Sprintf("has %d routes, more than %d", len(s.Routes), MaxListEntries), Fix: "aggregate routes into wider destinations"})
		return
	}
	seen := map[netip.Prefix]int{}
	for i, r := range s.Routes {
		p := routesPath.Index(i)
		dst, err := iprange.ParsePrefix(r.Dst)
		if err != nil {
			msg, fix := prefixProblem(r.Dst, err)
			c.deny(RulePoolRoutesValid, p.Child("dst"), r.Dst, msg, fix)
		} else {
			switch {
			case f.family != 0 && iprange.FamilyOf(dst.Addr()) != f.family:
				c.deny(RulePoolRoutesValid, p.Child("dst"), r.Dst, fmt.Sprintf("is IPv%d in an IPv%d pool", iprange.FamilyOf(dst.Addr()), f.family), "route only the pool's family")
			case dst.Bits() == 0:
				c.deny(RulePoolRoutesValid, p.Child("dst"), r.Dst, "is the default route, which only spec.gateway sets", "remove this route and set spec.gateway to its next hop")
			default:
				if j, dup := seen[dst]; dup {
					c.add(Violation{Rule: RulePoolRoutesValid, Field: p.Child("dst"), Type: field.ErrorTypeDuplicate, Value: r.Dst, Severity: Deny,
						Message: fmt.Sprintf("repeats spec.routes[%d].dst", j), Fix: "keep one route per destination"})
				}
				seen[dst] = i
			}
		}
		gw, err := netip.ParseAddr(strings.TrimSpace(r.Gw))
		if err != nil || gw.Zone() != "" {
			c.deny(RulePoolRoutesValid, p.Child("gw"), r.Gw, "is not an IP address", "write the next hop's address inside spec.subnet")
			continue
		}
		gw = gw.Unmap()
		if f.subnet.IsValid() && !f.subnet.Contains(gw) {
			c.deny(RulePoolRoutesValid, p.Child("gw"), r.Gw, "next hop outside spec.subnet "+f.subnet.String()+", so it is not on-link",
				"use a router address inside "+f.subnet.String())
		}
	}
}

// checkPoolUpdate: subnet and ipVersion are immutable, and no address a pod holds may disappear.
func checkPoolUpdate(c *collector, pool, old *spiderv2beta1.SpiderIPPool, f poolFacts) {
	if strings.TrimSpace(pool.Spec.Subnet) != strings.TrimSpace(old.Spec.Subnet) {
		c.add(Violation{Rule: RulePoolImmutable, Field: subnetPath, Type: field.ErrorTypeForbidden, Value: pool.Spec.Subnet, Severity: Deny,
			Message: fmt.Sprintf("spec.subnet cannot change (it is %s); pods hold addresses of the old subnet", old.Spec.Subnet),
			Fix:     "create a new pool with the new subnet and move pods to it"})
	}
	if old.Spec.IPVersion != nil && (pool.Spec.IPVersion == nil || *pool.Spec.IPVersion != *old.Spec.IPVersion) {
		c.add(Violation{Rule: RulePoolImmutable, Field: ipVersionPath, Type: field.ErrorTypeForbidden, Value: pool.Spec.IPVersion, Severity: Deny,
			Message: fmt.Sprintf("spec.ipVersion cannot change (it is %d)", *old.Spec.IPVersion), Fix: "keep spec.ipVersion as it was"})
	}
	if !f.ipsOK {
		return
	}
	allocs, err := spiderv2beta1.ParseAllocations(old.Status)
	if err != nil || len(allocs) == 0 {
		return
	}
	var lost []string
	for ipStr, a := range allocs {
		ip, err := netip.ParseAddr(ipStr)
		if err != nil {
			continue
		}
		if !f.allocable.Contains(ip.Unmap()) {
			lost = append(lost, fmt.Sprintf("%s (pod %s)", ip, a.NamespacedName))
		}
	}
	if len(lost) == 0 {
		return
	}
	sort.Strings(lost)
	more := ""
	if len(lost) > 5 {
		more = fmt.Sprintf(" and %d more", len(lost)-5)
		lost = lost[:5]
	}
	c.add(Violation{Rule: RulePoolKeepsAllocated, Field: ipsPath, Type: field.ErrorTypeForbidden, Value: pool.Spec.IPs, Severity: Deny,
		Message: "would remove addresses pods hold: " + strings.Join(lost, ", ") + more,
		Fix:     "keep them in spec.ips (and out of spec.excludeIPs and spec.gateway) until those pods are deleted"})
}

// checkPoolCapacity warns about an empty pool and one over HighUsePercent allocated.
func checkPoolCapacity(c *collector, pool, old *spiderv2beta1.SpiderIPPool, f poolFacts) {
	if !f.ipsOK || !f.subnet.IsValid() {
		return
	}
	total := f.allocable.Size()
	if total.Sign() == 0 {
		c.warn(RulePoolCapacity, ipsPath, pool.Spec.IPs, "the pool has no address to give (spec.ips less spec.excludeIPs and the gateway is empty)",
			"add addresses to spec.ips")
		return
	}
	status := pool.Status
	if old != nil {
		status = old.Status // an update of the spec does not carry status; the stored one is the truth
	}
	used := int64(0)
	if allocs, err := spiderv2beta1.ParseAllocations(status); err == nil && len(allocs) > 0 {
		used = int64(len(allocs))
	} else if status.AllocatedIPCount != nil {
		used = *status.AllocatedIPCount
	}
	if used == 0 {
		return
	}
	u := big.NewInt(used)
	if new(big.Int).Mul(u, big.NewInt(100)).Cmp(new(big.Int).Mul(total, big.NewInt(HighUsePercent))) > 0 {
		c.warn(RulePoolCapacity, ipsPath, pool.Spec.IPs, fmt.Sprintf("%d of %s addresses allocated (over %d%%)", used, total, HighUsePercent),
			"add addresses to spec.ips or another pool to the network before new pods fail to start")
	}
}

// checkPoolOverlaps: Spiderpool's rule that pools either share a subnet exactly with disjoint addresses,
// or have disjoint subnets.
func checkPoolOverlaps(c *collector, w *World, pool *spiderv2beta1.SpiderIPPool, f poolFacts) {
	if w == nil {
		return
	}
	for i := range w.Pools {
		o := &w.Pools[i]
		if o.Name == pool.Name {
			continue
		}
		os, err := iprange.ParsePrefix(o.Spec.Subnet)
		if err != nil || !os.Overlaps(f.subnet) {
			continue
		}
		ref := ObjectRef("SpiderIPPool", "", o.Name)
		if os != f.subnet {
			c.add(Violation{Rule: RulePoolNoOverlap, Field: subnetPath, Value: pool.Spec.Subnet, Object: ref, Severity: Deny,
				Message: fmt.Sprintf("overlaps %s, the subnet of %s", os, ref),
				Fix:     fmt.Sprintf("use a subnet disjoint from %s, or the same subnet %s with addresses disjoint from %s's", os, os, o.Name)})
			continue
		}
		if !f.ipsOK {
			continue
		}
		// As Spiderpool: what counts is each pool's addresses less its excludeIPs.
		oips, err := iprange.ParseSet(o.Spec.IPs, f.family)
		if err != nil {
			continue
		}
		if oex, err := iprange.ParseSet(o.Spec.ExcludeIPs, f.family); err == nil {
			oips = oips.Minus(oex)
		}
		if common := commonRanges(f.ips.Minus(f.exclude), oips); common != "" {
			c.add(Violation{Rule: RulePoolNoOverlap, Field: ipsPath, Value: pool.Spec.IPs, Object: ref, Severity: Deny,
				Message: fmt.Sprintf("shares %s with %s (same subnet %s)", common, ref, os),
				Fix:     "give each pool of a subnet its own addresses"})
		}
	}
}

// commonRanges describes the addresses two sets share ("" when none), at most three ranges.
func commonRanges(a, b iprange.Set) string {
	if !a.Overlaps(b) {
		return ""
	}
	common := a.Minus(a.Minus(b)).Ranges()
	var parts []string
	for i, r := range common {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more ranges", len(common)-3))
			break
		}
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ", ")
}

// checkPoolAlignment applies design rules 1 and 2 and the local service CIDR rule.
func checkPoolAlignment(c *collector, w *World, pool *spiderv2beta1.SpiderIPPool, f poolFacts) {
	if !w.clustersKnown(c) {
		return
	}
	local := w.clusters[0]
	used, by := w.poolUsedByUnderlay(pool)
	family := ofFamily(local.pods, f.subnet.Addr())
	if len(local.pods) > 0 && len(family) == 0 {
		// Submariner routes pod CIDRs of the other family only (it carries one family): the pool's pods
		// are reachable from other clusters only through an address of that family, as a dual-stack
		// network gives them.
		fam := iprange.FamilyOf(f.subnet.Addr())
		c.add(Violation{Rule: RulePoolInLocalClusterCIDR, Field: subnetPath, Value: pool.Spec.Subnet, Cluster: local.id, Severity: Warn,
			Message: fmt.Sprintf("Submariner routes no IPv%d pod CIDR of the local cluster %s (its cluster_cidr is %s), so other clusters cannot reach these pods over IPv%d; within the cluster they can",
				fam, local.id, prefixList(local.pods), fam),
			Fix: fmt.Sprintf("pair the pool with an IPv%d pool inside %s in each network that uses it (dual stack), so other clusters reach its pods over IPv%d", 10-fam, prefixList(local.pods), 10-fam)})
	} else if len(local.pods) > 0 && !coveredByAny(family, f.subnet) {
		sev, why := Warn, "; no underlay SpiderMultusConfig uses the pool yet"
		if used {
			sev, why = Deny, "; "+by+" uses it"
		}
		c.add(Violation{Rule: RulePoolInLocalClusterCIDR, Field: subnetPath, Value: pool.Spec.Subnet, Cluster: local.id, Severity: sev,
			Message: fmt.Sprintf("outside %s, the pod CIDR (cluster_cidr) of the local cluster %s, the only pod CIDR Submariner routes here, so remote clusters cannot reach these pods%s",
				prefixList(local.pods), local.id, why),
			Fix: fmt.Sprintf("choose a subnet inside %s, or join with subctl join --clustercidr covering %s", prefixList(local.pods), f.subnet)})
	}
	for _, svc := range local.services {
		if svc.Overlaps(f.subnet) {
			c.add(Violation{Rule: RulePoolClearOfLocalServiceCIDR, Field: subnetPath, Value: pool.Spec.Subnet, Cluster: local.id, Severity: Deny,
				Message: fmt.Sprintf("overlaps %s, the service CIDR of the local cluster %s, so service traffic and pod addresses collide", svc, local.id),
				Fix:     "choose a subnet outside " + svc.String() + insideHint(local)})
		}
	}
	for _, r := range w.clusters[1:] {
		if local.globalnet() || r.globalnet() {
			continue // globalnet translates addresses, so overlapping CIDRs are its normal case
		}
		for _, kind := range []struct {
			what     string
			prefixes []netip.Prefix
		}{{"pod CIDR", r.pods}, {"service CIDR", r.services}} {
			for _, rp := range kind.prefixes {
				if !rp.Overlaps(f.subnet) {
					continue
				}
				c.add(Violation{Rule: RulePoolClearOfRemoteCIDRs, Field: subnetPath, Value: pool.Spec.Subnet, Cluster: r.id, Severity: Deny,
					Message: fmt.Sprintf("overlaps %s (%s of cluster %s); Submariner routes those addresses to %s, so pods here would be unreachable or shadow %s's",
						rp, kind.what, r.id, r.id, r.id),
					Fix: "choose a subnet outside " + rp.String() + insideHint(local) + ", or enable Submariner globalnet"})
			}
		}
	}
}

// prefixProblem says what is wrong with a CIDR that iprange.ParsePrefix refused (err), and the fix, in
// the terms of what the user wrote: its network when only host bits are set (the likely intent), its
// address with a prefix length in range, never an example of ours.
func prefixProblem(s string, err error) (msg, fix string) {
	t := strings.TrimSpace(s)
	addrPart, bitsPart, hasLength := strings.Cut(t, "/")
	addr, aerr := netip.ParseAddr(addrPart)
	switch {
	case t == "":
		return "is empty", "write a network address and a prefix length, ADDRESS/LENGTH"
	case aerr != nil:
		return fmt.Sprintf("%q is not an IP address", addrPart), "write a network address and a prefix length, ADDRESS/LENGTH"
	case addr.Zone() != "":
		return "zoned addresses are not allowed", fmt.Sprintf("write %s without %%%s", addr.WithZone(""), addr.Zone())
	case !hasLength:
		return "has no prefix length", fmt.Sprintf("write %s/LENGTH, with the segment's prefix length (at most %d)", addr, addr.BitLen())
	}
	bits, berr := strconv.Atoi(bitsPart)
	switch {
	case berr != nil || bits < 0 || bits > addr.BitLen():
		return fmt.Sprintf("prefix length %q is not a number from 0 to %d, the bits of an IPv%d address", bitsPart, addr.BitLen(), iprange.FamilyOf(addr)),
			fmt.Sprintf("write %s/LENGTH with LENGTH at most %d", addr, addr.BitLen())
	}
	if p := netip.PrefixFrom(addr, bits); p.Masked() != p {
		return fmt.Sprintf("has host bits set; the network is %s", p.Masked()), "write " + p.Masked().String() + " if that network is meant"
	}
	return strings.TrimPrefix(err.Error(), strconv.Quote(s)+": "), "write a network address and a prefix length, ADDRESS/LENGTH"
}

// rangeProblem says what is wrong with a spec.ips or spec.excludeIPs entry that iprange.Parse refused
// (err), and the fix, from the entry itself and the pool's subnet when it parsed.
func rangeProblem(e string, err error, subnet netip.Prefix) (msg, fix string) {
	first, last, isRange := strings.Cut(strings.TrimSpace(e), "-")
	a, aerr := netip.ParseAddr(strings.TrimSpace(first))
	b, berr := netip.ParseAddr(strings.TrimSpace(last))
	switch {
	case isRange && aerr == nil && berr == nil && a.Is4() == b.Is4() && b.Less(a):
		return fmt.Sprintf("range start %s is after its end %s", a, b), fmt.Sprintf("write %s-%s", b, a)
	case aerr != nil:
		msg = "is not an IP address or a range FIRST-LAST"
	default:
		msg = strings.TrimPrefix(err.Error(), strconv.Quote(e)+": ")
	}
	fix = "write an address, or a range FIRST-LAST"
	if subnet.IsValid() {
		fix = fmt.Sprintf("write an address or a range inside %s, such as %s", subnet, hostRange(subnet))
	}
	return msg, fix
}

// hostRange is the range of subnet's host addresses: without the network and broadcast addresses of
// an IPv4 subnet of /30 or wider.
func hostRange(subnet netip.Prefix) iprange.Range {
	r := iprange.FromPrefix(subnet)
	if subnet.Addr().Is4() && subnet.Bits() <= 30 {
		r.First, r.Last = r.First.Next(), r.Last.Prev()
	}
	return r
}

// coveringPrefix is the smallest CIDR holding every entry of spec.ips that parses (all of one family),
// or the zero prefix.
func coveringPrefix(entries []string) netip.Prefix {
	var lo, hi netip.Addr
	for _, e := range entries {
		r, err := iprange.Parse(e)
		if err != nil || (lo.IsValid() && lo.Is4() != r.First.Is4()) {
			continue
		}
		if !lo.IsValid() || r.First.Less(lo) {
			lo = r.First
		}
		if !hi.IsValid() || hi.Less(r.Last) {
			hi = r.Last
		}
	}
	if !lo.IsValid() {
		return netip.Prefix{}
	}
	return iprange.SmallestCovering(netip.PrefixFrom(lo, lo.BitLen()), hi)
}

// holdingIPs is ", e.g. P, the smallest CIDR that holds spec.ips" for a valid P, else "".
func holdingIPs(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return fmt.Sprintf(", e.g. %s, the smallest CIDR that holds spec.ips", p)
}

func insideHint(local clusterNet) string {
	if len(local.pods) == 0 {
		return ""
	}
	return " and inside the local cluster CIDR " + prefixList(local.pods)
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// clustersKnown reports whether the alignment rules can run; when they cannot it adds the one warning
// that says alignment is unchecked and why.
func (w *World) clustersKnown(c *collector) bool {
	if w != nil && w.Local != nil && len(w.clusters) > 0 {
		return true
	}
	msg, fix := "no Submariner Cluster objects found, alignment unchecked", "join the cluster to Submariner (subctl join) so its Cluster objects exist, or validate with the Cluster objects"
	switch {
	case w != nil && w.noInference && w.noClusters:
		fix = "add the Submariner Cluster objects to the input, describe the clusters with --static-cluster, or read them from the cluster with --kubeconfig"
	case w != nil && w.noInference:
		msg, fix = w.LocalReason+", alignment unchecked", "name the local cluster with --local-cluster, or read it from the cluster with --kubeconfig"
	case w != nil && !w.noClusters:
		msg, fix = w.LocalReason+", alignment unchecked", "name the local cluster (--local-cluster) or check the Submariner Cluster objects"
	}
	c.add(Violation{Rule: RuleClustersKnown, Severity: Warn, Message: msg, Fix: fix})
	return false
}

// poolUsedByUnderlay reports whether an underlay config uses the pool: by name, or as a default pool of
// a config that names none. by names the config.
func (w *World) poolUsedByUnderlay(pool *spiderv2beta1.SpiderIPPool) (bool, string) {
	isDefault := pool.Spec.Default != nil && *pool.Spec.Default
	for i := range w.MultusConfigs {
		smc := &w.MultusConfigs[i]
		if !IsUnderlay(smc) {
			continue
		}
		names := configPoolNames(smc)
		ref := ObjectRef("SpiderMultusConfig", smc.Namespace, smc.Name)
		if len(names) == 0 && isDefault {
			return true, ref + " (default pool)"
		}
		for _, n := range names {
			if n == pool.Name {
				return true, ref
			}
		}
	}
	return false, ""
}

// IsUnderlay reports whether pods of the config sit on an underlay segment (cniType macvlan, ipvlan,
// vlan, sriov, ovs, ib-sriov or ipoib, coordinator not in overlay or disabled mode), where Submariner's single
// pod CIDR and the hijack routes matter. Only such configs are subject to the alignment rules.
func IsUnderlay(smc *spiderv2beta1.SpiderMultusConfig) bool {
	t := ""
	if smc.Spec.CniType != nil {
		t = *smc.Spec.CniType
	}
	switch t {
	case "macvlan", "ipvlan", "vlan", "sriov", "ovs", "ib-sriov", "ipoib":
	default:
		return false
	}
	if co := smc.Spec.CoordinatorConfig; co != nil && co.Mode != nil && (*co.Mode == "overlay" || *co.Mode == "disabled") {
		return false
	}
	return true
}
