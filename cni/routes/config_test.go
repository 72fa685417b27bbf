package routes

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseConfigSeed(t *testing.T) {
	c, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","type":"underlink-coordinator",` + clusterAConf[1:]))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeUnderlay || c.PodNIC != "eth0" || c.HostRuleTable != 0 || c.PodRPFilter == nil || *c.PodRPFilter != 0 {
		t.Errorf("defaults: %+v", c)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.243.0.0/18"), netip.MustParsePrefix("172.111.0.0/16")}
	if !slices.Equal(c.HijackCIDRs, want) {
		t.Errorf("hijack %v, want %v", c.HijackCIDRs, want)
	}
	if c.Raw.Name != "kube-system-macvlan-conf" {
		t.Errorf("the CNI fields are kept: %+v", c.Raw.PluginConf)
	}
	if c, _ := ParseConfig([]byte(`{"hostRuleTable":254,"podMACPrefix":"0a:1b","vethLinkAddress":"169.254.100.1"}`)); c == nil || c.HostRuleTable != 0 || c.PodMACPrefix.String() != "0a:1b" || c.VethLinkAddress.String() != "169.254.100.1" {
		t.Errorf("table 254 is main, the MAC prefix and link address parse: %+v", c)
	}
}

func TestParseConfigNamesTheField(t *testing.T) {
	cases := []struct {
		conf, field, value, fix string
	}{
		{`{"mode":"overlay"}`, "mode", "overlay", `use "underlay" or "disabled"`},
		{`{"hijackCIDR":["10.243.0.0/18","172.111.0.0"]}`, "hijackCIDR[1]", "172.111.0.0", "172.111.0.0/16"},
		{`{"hijackCIDR":["172.111.1.5/16"]}`, "hijackCIDR[0]", "172.111.1.5/16", "the network is 172.111.0.0/16"},
		{`{"serviceCIDR":["ten.233.0.0/18"]}`, "serviceCIDR[0]", "ten.233.0.0/18", "write a network"},
		{`{"clusterCIDR":[""]}`, "clusterCIDR[0]", "", "write a network"},
		{`{"podDefaultRouteNIC":"a-very-long-interface"}`, "podDefaultRouteNIC", "a-very-long-interface", "1 to 15 characters"},
		{`{"podDefaultRouteNIC":"veth0"}`, "podDefaultRouteNIC", "veth0", "the coordinator's own veth"},
		{`{"hostRuleTable":255}`, "hostRuleTable", "255", "local table"},
		{`{"hostRuleTable":-1}`, "hostRuleTable", "-1", "not a routing table id"},
		{`{"podRPFilter":3}`, "podRPFilter", "3", "0 (off), 1 (strict) or 2 (loose)"},
		{`{"txQueueLen":-5}`, "txQueueLen", "-5", "negative"},
		{`{"vethMTU":100}`, "vethMTU", "100", "outside 576 to 65535"},
		{`{"vethLinkAddress":"10.0.0.1"}`, "vethLinkAddress", "10.0.0.1", "169.254.100.1"},
		{`{"podMACPrefix":"0a"}`, "podMACPrefix", "0a", "two hex bytes"},
		{`{"podMACPrefix":"0b:1b"}`, "podMACPrefix", "0b:1b", "multicast"},
	}
	for _, tc := range cases {
		t.Run(tc.field+"="+tc.value, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.conf))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a ConfigError", err)
			}
			if ce.Field != tc.field || ce.Value != tc.value || !strings.Contains(err.Error(), tc.fix) {
				t.Errorf("got %q (field %q value %q), want field %q value %q mentioning %q", err, ce.Field, ce.Value, tc.field, tc.value, tc.fix)
			}
		})
	}
}

func TestParseConfigBadJSON(t *testing.T) {
	for _, in := range []string{`{"hijackCIDR":"172.111.0.0/16"}`, `{"mode":`, `[]`} {
		_, err := ParseConfig([]byte(in))
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: got %v, want a DecodeError", in, err)
		}
	}
}
