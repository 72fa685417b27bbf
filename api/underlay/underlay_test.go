package underlay

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestValidateLabelPrefix(t *testing.T) {
	for _, tc := range []struct{ prefix, err string }{
		{LabelPrefix, ""},
		{"net.example.com/", ""},
		{"underlay.underlink.io", "must be a DNS subdomain followed by '/'"},
		{"", "must be a DNS subdomain followed by '/'"},
		{"Under_lay/", "Under_lay/ followed by a NIC name is not a label key: prefix part"},
		{"/", "prefix part must be non-empty"},
		{"a/b/", "is not a label key"},
	} {
		err := ValidateLabelPrefix(tc.prefix)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ValidateLabelPrefix(%q) = %v, want %q", tc.prefix, err, tc.err)
		}
	}
}

func TestLabelKey(t *testing.T) {
	for _, tc := range []struct{ prefix, nic, key, err string }{
		{LabelPrefix, "ens224", "underlay.underlink.io/ens224", ""},
		{LabelPrefix, "bond0.100", "underlay.underlink.io/bond0.100", ""},
		{LabelPrefix, "eth_1", "underlay.underlink.io/eth_1", ""},
		{"net.example.com/", "ens224", "net.example.com/ens224", ""},
		{LabelPrefix, "eth@1", "underlay.underlink.io/eth@1", `NIC "eth@1" cannot be named in node label "underlay.underlink.io/eth@1"`},
		{LabelPrefix, "", "underlay.underlink.io/", "cannot be named"},
	} {
		if key := LabelKey(tc.prefix, tc.nic); key != tc.key {
			t.Errorf("LabelKey(%q, %q) = %q, want %q", tc.prefix, tc.nic, key, tc.key)
		}
		err := ValidateLabelKey(tc.prefix, tc.nic)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ValidateLabelKey(%q, %q) = %v, want %q", tc.prefix, tc.nic, err, tc.err)
		}
	}
}

func TestAddresses(t *testing.T) {
	if k := AddressesKey(LabelPrefix, "ens224"); k != "underlay.underlink.io/ens224.addresses" {
		t.Errorf("AddressesKey = %q", k)
	}
	in := []netip.Prefix{netip.MustParsePrefix("172.110.215.10/24"), netip.MustParsePrefix("fd00:172:110::10/64")}
	v := FormatAddresses(in)
	if v != "172.110.215.10/24,fd00:172:110::10/64" {
		t.Fatalf("FormatAddresses = %q", v)
	}
	out, err := ParseAddresses(v)
	if err != nil || !slices.Equal(out, in) {
		t.Errorf("ParseAddresses(%q) = %v, %v; want %v", v, out, err, in)
	}
	if out, err := ParseAddresses(""); err != nil || out == nil || len(out) != 0 {
		t.Errorf(`ParseAddresses("") = %#v, %v; want an empty, non-nil list`, out, err)
	}
	if _, err := ParseAddresses("172.110.215.10"); err == nil || !strings.Contains(err.Error(), "CIDR form") {
		t.Errorf("an address without prefix length: %v", err)
	}
}
