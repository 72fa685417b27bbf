// Package routes decides what underlink-coordinator puts into a pod and its node for underlay mode: the
// pod's routes (hijack CIDRs, the service CIDR and the node's own addresses via the node over veth0, the
// pool subnet and default route on eth0), the node's route (and rule) to the pod, static neighbours
// on both ends of the veth pair and the pod's sysctls. It is pure: no netlink, no files; the
// coordinator discovers the node's addresses, asks for a Plan and applies it.
package routes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/underlink/underlink/api/cniconf"
	"github.com/underlink/underlink/pkg/iprange"
)

// Mode is the coordinator's mode.
type Mode string

const (
	// ModeUnderlay adds veth0 and the hijack routes (the default).
	ModeUnderlay Mode = "underlay"
	// ModeDisabled passes the previous result through and touches nothing.
	ModeDisabled Mode = "disabled"
)

// Default names and values of the underlay datapath.
const (
	// DefaultPodNIC is the pod interface that keeps the default route.
	DefaultPodNIC = "eth0"
	// PodVeth is the pod side of the veth pair of DefaultPodNIC's attachment; PodVethName names the
	// others.
	PodVeth = "veth0"
	// podVethPrefix starts the pod side of the veth pair of every other attachment.
	podVethPrefix = "veth-"
	// HostRulePriority is the priority of "to <pod IP> lookup <hostRuleTable>" rules: before the main
	// table (32766), after the local table (0).
	HostRulePriority = 1000
	// PodRulePriority is the priority of the pod's "from <address> lookup <table>" rule of an interface
	// other than the default-route NIC: before the main table.
	PodRulePriority = 1000
	// FirstPodTable is the lowest routing table given to such an interface in the pod; each gets the
	// lowest one no rule of the pod uses yet (Spiderpool's coordinator numbers them from 100 too).
	FirstPodTable = 100
)

// PodVethName is the pod side of the veth pair of the attachment on pod interface ifName: veth0 for
// eth0, as before pods had several coordinated interfaces; "veth-<ifName>" for the others, or
// "veth-" and ten hex digits of the name's sha256 when that is longer than the kernel's 15 characters.
// It depends only on CNI_IFNAME, so DEL and CHECK find it without a cache.
func PodVethName(ifName string) string {
	if ifName == DefaultPodNIC {
		return PodVeth
	}
	if n := podVethPrefix + ifName; len(n) <= 15 {
		return n
	}
	sum := sha256.Sum256([]byte(ifName))
	return podVethPrefix + hex.EncodeToString(sum[:])[:10]
}

// isCoordinatorVeth reports whether name is a pod-side veth name the coordinator uses.
func isCoordinatorVeth(name string) bool {
	return name == PodVeth || strings.HasPrefix(name, podVethPrefix)
}

// Config is a validated underlink-coordinator configuration.
type Config struct {
	// Raw is the configuration as decoded, including the CNI fields and prevResult.
	Raw cniconf.Coordinator
	// Mode is ModeUnderlay or ModeDisabled.
	Mode Mode
	// HijackCIDRs, ServiceCIDRs and ClusterCIDRs are the parsed hijackCIDR, serviceCIDR and clusterCIDR.
	HijackCIDRs, ServiceCIDRs, ClusterCIDRs []netip.Prefix
	// PodNIC is podDefaultRouteNIC, default DefaultPodNIC.
	PodNIC string
	// HostRuleTable is the host table of the route to the pod; 0 is the main table.
	HostRuleTable int
	// PodRPFilter, when set, is the pod's rp_filter for all, PodNIC and PodVeth.
	PodRPFilter *int
	// TxQueueLen of both veth ends; 0 keeps the kernel's default.
	TxQueueLen int
	// VethMTU of both veth ends; 0 keeps the kernel's default (1500).
	VethMTU int
	// VethLinkAddress, when valid, is put on the host veth.
	VethLinkAddress netip.Addr
	// PodMACPrefix, when set, gives the attached interface the MAC prefix + the pod IPv4's four bytes.
	PodMACPrefix net.HardwareAddr
	// TunePodRoutes (tunePodRoutes, default true) routes an attached interface other than PodNIC by a
	// table of its own, selected by its source addresses.
	TunePodRoutes bool
	// PolicyRoutes are the parsed policyRoutes: Dst via Via.
	PolicyRoutes []PolicyRoute
}

// PolicyRoute is a static route the configuration asks for on the pod interface.
type PolicyRoute struct {
	Dst netip.Prefix
	Via netip.Addr
}

// ConfigError is an invalid field of the coordinator's configuration.
type ConfigError struct {
	// Field is the JSON path, e.g. "hijackCIDR[1]".
	Field string
	// Value is the offending value as written.
	Value string
	// Reason says what is wrong; Fix says what to write instead.
	Reason, Fix string
}

func (e *ConfigError) Error() string {
	msg := fmt.Sprintf("underlink-coordinator config: %s %q: %s", e.Field, e.Value, e.Reason)
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

// DecodeError is configuration that is not valid JSON for the coordinator's schema.
type DecodeError struct{ Err error }

func (e *DecodeError) Error() string {
	return fmt.Sprintf("underlink-coordinator config: not valid JSON for its schema: %v", e.Err)
}
func (e *DecodeError) Unwrap() error { return e.Err }

// ParseConfig decodes and validates the coordinator's stdin configuration. It returns a *DecodeError
// for malformed JSON and a *ConfigError naming the first invalid field.
func ParseConfig(stdin []byte) (*Config, error) {
	var raw cniconf.Coordinator
	if err := json.Unmarshal(stdin, &raw); err != nil {
		return nil, &DecodeError{Err: err}
	}
	return Validate(raw)
}

// Validate checks a decoded configuration.
func Validate(raw cniconf.Coordinator) (*Config, error) {
	c := &Config{Raw: raw, PodNIC: raw.PodDefaultRouteNIC, HostRuleTable: raw.HostRuleTable, PodRPFilter: raw.PodRPFilter, TxQueueLen: raw.TxQueueLen, VethMTU: raw.VethMTU,
		TunePodRoutes: raw.TunePodRoutes == nil || *raw.TunePodRoutes}
	switch Mode(raw.Mode) {
	case "", ModeUnderlay:
		c.Mode = ModeUnderlay
	case ModeDisabled:
		c.Mode = ModeDisabled
	default:
		return nil, &ConfigError{Field: "mode", Value: raw.Mode, Reason: "unknown mode", Fix: `use "underlay" or "disabled"`}
	}
	var err error
	if c.HijackCIDRs, err = parseCIDRs("hijackCIDR", raw.HijackCIDR); err != nil {
		return nil, err
	}
	if c.ServiceCIDRs, err = parseCIDRs("serviceCIDR", raw.ServiceCIDR); err != nil {
		return nil, err
	}
	if c.ClusterCIDRs, err = parseCIDRs("clusterCIDR", raw.ClusterCIDR); err != nil {
		return nil, err
	}
	if c.PodNIC == "" {
		c.PodNIC = DefaultPodNIC
	}
	if err := validIfName(c.PodNIC); err != nil {
		return nil, &ConfigError{Field: "podDefaultRouteNIC", Value: c.PodNIC, Reason: err.Error(), Fix: "name the pod interface of the underlay NIC, e.g. eth0"}
	}
	if isCoordinatorVeth(c.PodNIC) {
		return nil, &ConfigError{Field: "podDefaultRouteNIC", Value: c.PodNIC, Reason: "is the coordinator's own veth to the node", Fix: "name the underlay interface, e.g. eth0"}
	}
	switch t := raw.HostRuleTable; {
	case t < 0 || int64(t) > 0xffffffff:
		return nil, &ConfigError{Field: "hostRuleTable", Value: fmt.Sprint(t), Reason: "is not a routing table id (0..4294967295)", Fix: "use 0 (main table) or an unused table such as 500"}
	case t == 253 || t == 255:
		return nil, &ConfigError{Field: "hostRuleTable", Value: fmt.Sprint(t), Reason: "is the kernel's default/local table", Fix: "use 0 (main table) or an unused table such as 500"}
	case t == 254:
		c.HostRuleTable = 0 // "main" spelled as a number
	}
	if p := raw.PodRPFilter; p != nil && (*p < 0 || *p > 2) {
		return nil, &ConfigError{Field: "podRPFilter", Value: fmt.Sprint(*p), Reason: "rp_filter is 0 (off), 1 (strict) or 2 (loose)", Fix: "use 0, or omit it to leave the pod's value"}
	}
	if raw.VethMTU != 0 && (raw.VethMTU < 576 || raw.VethMTU > 65535) {
		return nil, &ConfigError{Field: "vethMTU", Value: fmt.Sprint(raw.VethMTU), Reason: "is outside 576 to 65535", Fix: "set the veth's MTU from 576 to 65535, or 0 for the kernel default"}
	}
	if raw.TxQueueLen < 0 {
		return nil, &ConfigError{Field: "txQueueLen", Value: fmt.Sprint(raw.TxQueueLen), Reason: "is negative", Fix: "use 0 for the kernel default"}
	}
	if raw.VethLinkAddress != "" {
		a, err := netip.ParseAddr(strings.TrimSpace(raw.VethLinkAddress))
		if err != nil || !a.IsLinkLocalUnicast() {
			return nil, &ConfigError{Field: "vethLinkAddress", Value: raw.VethLinkAddress, Reason: "is not a link-local unicast address", Fix: "use an address such as 169.254.100.1, or omit it"}
		}
		c.VethLinkAddress = a
	}
	for i, r := range raw.PolicyRoutes {
		field := fmt.Sprintf("policyRoutes[%d]", i)
		dst, ok := iprange.ParseDestination(r.Dst)
		if !ok {
			return nil, &ConfigError{Field: field + ".dst", Value: r.Dst, Reason: "is not a CIDR or an IP address", Fix: "write it like 10.20.0.0/16"}
		}
		gw, err := netip.ParseAddr(strings.TrimSpace(r.Gw))
		if err != nil || gw.Zone() != "" {
			return nil, &ConfigError{Field: field + ".gw", Value: r.Gw, Reason: "is not an IP address", Fix: "write the next hop's address, inside the pod interface's subnet"}
		}
		if gw.Is4() != dst.Addr().Is4() {
			return nil, &ConfigError{Field: field + ".gw", Value: r.Gw, Reason: fmt.Sprintf("is not of the family of dst %s", r.Dst), Fix: "use a next hop of the destination's family"}
		}
		c.PolicyRoutes = append(c.PolicyRoutes, PolicyRoute{Dst: dst.Masked(), Via: gw})
	}
	if raw.PodMACPrefix != "" {
		hw, err := net.ParseMAC(raw.PodMACPrefix + ":00:00:00:00")
		if err != nil || len(hw) != 6 {
			return nil, &ConfigError{Field: "podMACPrefix", Value: raw.PodMACPrefix, Reason: "is not two hex bytes", Fix: `write it like "0a:1b"`}
		}
		if hw[0]&1 == 1 {
			return nil, &ConfigError{Field: "podMACPrefix", Value: raw.PodMACPrefix, Reason: "makes multicast MACs (lowest bit of the first byte set)", Fix: `use an even first byte, e.g. "0a:1b"`}
		}
		c.PodMACPrefix = hw[:2]
	}
	return c, nil
}

func parseCIDRs(field string, in []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for i, s := range in {
		p, err := iprange.ParsePrefix(s)
		if err != nil {
			return nil, &ConfigError{Field: fmt.Sprintf("%s[%d]", field, i), Value: s, Reason: "is not a CIDR (" + err.Error() + ")", Fix: "write a network such as 172.111.0.0/16"}
		}
		out = append(out, p)
	}
	return out, nil
}

// validIfName applies the kernel's rules for interface names.
func validIfName(s string) error {
	switch {
	case s == "" || len(s) > 15:
		return fmt.Errorf("must be 1 to 15 characters")
	case s == "." || s == "..":
		return fmt.Errorf("is not a valid interface name")
	case strings.ContainsAny(s, "/: \t\n"):
		return fmt.Errorf("must not contain '/', ':' or whitespace")
	}
	return nil
}
