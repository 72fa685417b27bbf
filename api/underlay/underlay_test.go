package underlay

import (
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
