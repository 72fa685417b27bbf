package probe

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"testing"
)

var podMAC = net.HardwareAddr{0x0a, 0x1b, 0xac, 0x6e, 0x01, 0x0a}

// An ARP probe (RFC 5227) has sender 0.0.0.0 and a zero target MAC; parsing gives back what was sent.
func TestARPProbeAndAnnouncement(t *testing.T) {
	target := netip.MustParseAddr("172.110.1.10")
	probe := marshalARP(arpRequest, podMAC, netip.Addr{}, nil, target)
	want := "0001" + "0800" + "06" + "04" + "0001" + "0a1bac6e010a" + "00000000" + "000000000000" + "ac6e010a"
	if got := hex.EncodeToString(probe); got != want {
		t.Fatalf("probe\n got %s\nwant %s", got, want)
	}
	p, err := parseARP(probe)
	if err != nil {
		t.Fatal(err)
	}
	if p.Op != arpRequest || !bytes.Equal(p.SenderMAC, podMAC) || p.SenderIP != netip.IPv4Unspecified() || p.TargetIP != target {
		t.Errorf("parsed %+v", p)
	}
	reply, err := parseARP(marshalARP(arpReply, podMAC, target, podMAC, target))
	if err != nil || reply.Op != arpReply || reply.SenderIP != target || !bytes.Equal(reply.TargetMAC, podMAC) {
		t.Errorf("announcement reply %+v %v", reply, err)
	}
	for _, bad := range [][]byte{probe[:27], append([]byte{0, 6}, probe[2:]...), append(append([]byte{}, probe[:2]...), append([]byte{0x86, 0xdd}, probe[4:]...)...)} {
		if _, err := parseARP(bad); err == nil {
			t.Errorf("parsed %x", bad)
		}
	}
}

// Duplicate address detection's solicitation goes from :: to the target's solicited-node group at
// 33:33:ff:xx:xx:xx, without a link-layer option; an unsolicited advertisement goes to all-nodes with
// the override flag and the target's MAC. Both parse back, and a corrupted checksum or a hop limit other
// than 255 is refused as a receiver must (RFC 4861 7.1).
func TestNeighbourDiscoveryMessages(t *testing.T) {
	target := netip.MustParseAddr("fd00:110::1:a")
	group := solicitedNode(target)
	if group != netip.MustParseAddr("ff02::1:ff01:a") {
		t.Fatalf("solicited-node group %s", group)
	}
	if mac := multicastMAC(group).String(); mac != "33:33:ff:01:00:0a" {
		t.Errorf("group MAC %s", mac)
	}
	ns := marshalND(icmpv6NS, 0, netip.IPv6Unspecified(), group, target, nil)
	p, err := parseND(ns)
	if err != nil {
		t.Fatal(err)
	}
	if p.Type != icmpv6NS || !p.Src.IsUnspecified() || p.Target != target || p.LLAddr != nil {
		t.Errorf("solicitation %+v", p)
	}
	na := marshalND(icmpv6NA, naFlagOverride, target, allNodes, target, podMAC)
	if p, err = parseND(na); err != nil {
		t.Fatal(err)
	}
	if p.Type != icmpv6NA || p.Target != target || !bytes.Equal(p.LLAddr, podMAC) || na[ipv6HeaderLen+4] != naFlagOverride {
		t.Errorf("advertisement %+v", p)
	}
	corrupt := bytes.Clone(na)
	corrupt[len(corrupt)-1] ^= 1
	lowHops := bytes.Clone(na)
	lowHops[7] = 64
	for name, b := range map[string][]byte{"bad checksum": corrupt, "hop limit 64": lowHops, "truncated": na[:50]} {
		if _, err := parseND(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// A message that carries its checksum sums, with its pseudo-header, to all ones: what a receiver checks.
func TestICMPv6ChecksumSumsToAllOnes(t *testing.T) {
	src, dst := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::1")
	msg := marshalND(icmpv6NA, naFlagOverride, src, dst, src, podMAC)[ipv6HeaderLen:]
	// The checksum of a message that carries its own checksum is 0 (the sum is all ones).
	if got := icmpv6Checksum(src, dst, msg); got != 0 {
		t.Errorf("re-summing a checksummed message gives %#04x, want 0", got)
	}
}
