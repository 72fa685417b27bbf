package main

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestFormatRoutesLikeIPRoute(t *testing.T) {
	cidr := func(s string) *net.IPNet { _, n, _ := net.ParseCIDR(s); return n }
	src := net.ParseIP("172.110.1.5")
	got := formatRoutes([]routeLine{
		{dst: cidr("172.111.0.0/16"), gw: net.ParseIP("10.7.168.75"), dev: "veth0", src: src},
		{dst: cidr("172.110.1.0/24"), dev: "eth0", src: src, scopeLink: true, kernel: true},
		{dst: cidr("0.0.0.0/0"), gw: net.ParseIP("172.110.0.1"), dev: "eth0"},
		{dst: cidr("10.7.168.75/32"), dev: "veth0", src: src, scopeLink: true},
		{dst: cidr("10.243.0.0/18"), gw: net.ParseIP("10.7.168.75"), dev: "veth0", src: src},
	})
	want := `default via 172.110.0.1 dev eth0
10.7.168.75 dev veth0 scope link src 172.110.1.5
10.243.0.0/18 via 10.7.168.75 dev veth0 src 172.110.1.5
172.110.1.0/24 dev eth0 proto kernel scope link src 172.110.1.5
172.111.0.0/16 via 10.7.168.75 dev veth0 src 172.110.1.5
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestFormatRoutesIPv6 prints `ip -6 route` as iproute2 does: default first, host routes without /128.
func TestFormatRoutesIPv6(t *testing.T) {
	cidr := func(s string) *net.IPNet { _, n, _ := net.ParseCIDR(s); return n }
	src := net.ParseIP("fd00:172:110::10")
	got := formatRoutes([]routeLine{
		{dst: cidr("fd00:10:96::/112"), gw: net.ParseIP("fd00:7:168::11"), dev: "veth0", src: src},
		{dst: cidr("fd00:172:110::/64"), dev: "eth0", kernel: true},
		{dst: cidr("fd00:7:168::11/128"), dev: "veth0", src: src, scopeLink: true},
		{dst: cidr("::/0"), gw: net.ParseIP("fd00:172:110::1"), dev: "eth0"},
	})
	want := `default via fd00:172:110::1 dev eth0
fd00:7:168::11 dev veth0 scope link src fd00:172:110::10
fd00:10:96::/112 via fd00:7:168::11 dev veth0 src fd00:172:110::10
fd00:172:110::/64 dev eth0 proto kernel
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestPingSummaryAndArgs(t *testing.T) {
	s := pingSummary("172.111.1.3", 2, []time.Duration{900 * time.Microsecond, 796 * time.Microsecond})
	for _, want := range []string{"--- 172.111.1.3 ping statistics ---", "2 packets transmitted, 2 packets received, 0% packet loss", "round-trip min/avg/max = 0.796/0.848/0.900 ms"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if s := pingSummary("x", 2, nil); !strings.Contains(s, "100% packet loss") || strings.Contains(s, "round-trip") {
		t.Errorf("all lost:\n%s", s)
	}
	if got := strings.Join(normalizeCount([]string{"-c2", "-W1", "10.0.0.1"}), " "); got != "-c 2 -W 1 10.0.0.1" {
		t.Errorf("normalizeCount: %q", got)
	}
}

func TestToolsRejectWhatTheyDoNotDo(t *testing.T) {
	if err := ipTool([]string{"addr"}, nil); err == nil || !strings.Contains(err.Error(), "only `ip [-6] route`") {
		t.Errorf("ip addr: %v", err)
	}
	if err := pingTool([]string{"-c", "1", "not-an-ip"}, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "not an IP address") {
		t.Errorf("ping name: %v", err)
	}
	if err := curlTool(nil, nil); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("curl without URL: %v", err)
	}
}
