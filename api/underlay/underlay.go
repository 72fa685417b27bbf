// Package underlay is the node-label contract of underlay links: underlink-agent writes one label per
// underlay NIC of its node, and the scheduler's UnderlayNetwork plugin places pods by it:
//
//	underlay.underlink.io/ens224=up
//
// The key is a prefix followed by the NIC's name; the value is LinkUp or LinkDown. The prefix is
// configurable on both sides (underlink-agent --label-prefix, the plugin's pluginConfig labelPrefix), and
// the Helm chart renders both from its one value underlay.labelPrefix, so the writer and the reader cannot
// disagree. The package is pure: constants and validation, imported by both sides and their tests.
package underlay

import (
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
)

// LabelPrefix is the default prefix of the node labels: underlay.underlink.io/<nic>.
const LabelPrefix = "underlay.underlink.io/"

// Values of a NIC's node label.
const (
	// LinkUp: the NIC is administratively and operationally up; the only value the scheduler places on.
	LinkUp = "up"
	// LinkDown: anything else, including a NIC that is missing or was renamed.
	LinkDown = "down"
)

// LabelKey is the node label of nic's link state under prefix.
func LabelKey(prefix, nic string) string { return prefix + nic }

// ValidateLabelPrefix says why prefix cannot start the node labels, or nil: it must be a DNS subdomain
// followed by '/', so that prefix followed by a NIC's name is a label key.
func ValidateLabelPrefix(prefix string) error {
	if !strings.HasSuffix(prefix, "/") {
		return fmt.Errorf("must be a DNS subdomain followed by '/', e.g. %s, so that <prefix><nic> is a label key", LabelPrefix)
	}
	// Any NIC name that is a label name gives the same answer: the prefix is what is checked.
	if msgs := content.IsLabelKey(LabelKey(prefix, "ens224")); len(msgs) > 0 {
		return fmt.Errorf("%s followed by a NIC name is not a label key: %s", prefix, strings.Join(msgs, "; "))
	}
	return nil
}

// ValidateLabelKey says why nic cannot be named in a node label under prefix (a NIC name with a
// character label names do not allow, e.g. "eth@1"), or nil.
func ValidateLabelKey(prefix, nic string) error {
	key := LabelKey(prefix, nic)
	if msgs := content.IsLabelKey(key); len(msgs) > 0 {
		return fmt.Errorf("NIC %q cannot be named in node label %q: %s", nic, key, strings.Join(msgs, "; "))
	}
	return nil
}

// AddressesSuffix ends the node annotation that lists an underlay NIC's addresses:
//
//	underlay.underlink.io/ens224.addresses: 172.110.215.10/24,fd00:172:110::10/64
//
// underlink-agent writes it beside the NIC's label; the scheduler reads it for networks with
// matchMasterSubnet, whose pools must hold an address of the master NIC's subnet on the node.
const AddressesSuffix = ".addresses"

// AddressesKey is the node annotation of nic's addresses under prefix.
func AddressesKey(prefix, nic string) string { return prefix + nic + AddressesSuffix }

// FormatAddresses is the annotation's value: the addresses in CIDR form, comma-separated, in the order
// given.
func FormatAddresses(addrs []netip.Prefix) string {
	parts := make([]string, len(addrs))
	for i, a := range addrs {
		parts[i] = a.String()
	}
	return strings.Join(parts, ",")
}

// ParseAddresses reads an annotation FormatAddresses wrote; "" is a NIC without addresses.
func ParseAddresses(v string) ([]netip.Prefix, error) {
	if strings.TrimSpace(v) == "" {
		return []netip.Prefix{}, nil
	}
	parts := strings.Split(v, ",")
	out := make([]netip.Prefix, 0, len(parts))
	for _, p := range parts {
		a, err := netip.ParsePrefix(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("%q is not an address in CIDR form, e.g. 172.110.215.10/24", p)
		}
		out = append(out, a)
	}
	return out, nil
}
