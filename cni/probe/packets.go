package probe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
)

// ARP operations (RFC 826).
const (
	arpRequest = 1
	arpReply   = 2
)

// arpLen is an Ethernet/IPv4 ARP packet without its link header (SOCK_DGRAM).
const arpLen = 28

// arpPacket is an Ethernet/IPv4 ARP packet.
type arpPacket struct {
	Op        uint16
	SenderMAC net.HardwareAddr
	SenderIP  netip.Addr
	TargetMAC net.HardwareAddr
	TargetIP  netip.Addr
}

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// marshalARP encodes an Ethernet/IPv4 ARP packet. An invalid sender IP is 0.0.0.0: an ARP probe
// (RFC 5227), which asks for an address without claiming one.
func marshalARP(op uint16, senderMAC net.HardwareAddr, senderIP netip.Addr, targetMAC net.HardwareAddr, targetIP netip.Addr) []byte {
	b := make([]byte, arpLen)
	binary.BigEndian.PutUint16(b[0:], 1)      // hardware type: Ethernet
	binary.BigEndian.PutUint16(b[2:], 0x0800) // protocol type: IPv4
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], op)
	copy(b[8:14], senderMAC)
	if senderIP.IsValid() {
		a := senderIP.As4()
		copy(b[14:18], a[:])
	}
	if targetMAC == nil {
		targetMAC = zeroMAC
	}
	copy(b[18:24], targetMAC)
	a := targetIP.As4()
	copy(b[24:28], a[:])
	return b
}

var errNotARP = errors.New("not an Ethernet/IPv4 ARP packet")

// parseARP decodes an Ethernet/IPv4 ARP packet.
func parseARP(b []byte) (arpPacket, error) {
	if len(b) < arpLen || binary.BigEndian.Uint16(b[0:]) != 1 || binary.BigEndian.Uint16(b[2:]) != 0x0800 || b[4] != 6 || b[5] != 4 {
		return arpPacket{}, errNotARP
	}
	return arpPacket{
		Op:        binary.BigEndian.Uint16(b[6:]),
		SenderMAC: net.HardwareAddr(bytes.Clone(b[8:14])),
		SenderIP:  netip.AddrFrom4([4]byte(b[14:18])),
		TargetMAC: net.HardwareAddr(bytes.Clone(b[18:24])),
		TargetIP:  netip.AddrFrom4([4]byte(b[24:28])),
	}, nil
}

// ICMPv6 neighbour discovery (RFC 4861).
const (
	icmpv6NS         = 135
	icmpv6NA         = 136
	optSourceLLAddr  = 1
	optTargetLLAddr  = 2
	naFlagOverride   = 0x20
	protoICMPv6      = 58
	ipv6HeaderLen    = 40
	ndHopLimit       = 255
	ndMessageLen     = 24 // type, code, checksum, flags/reserved, target
	llAddrOptionLen  = 8
	ipv6VersionFirst = 0x60
)

var allNodes = netip.MustParseAddr("ff02::1")

// solicitedNode is the solicited-node multicast address of a.
func solicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// multicastMAC is the Ethernet address of IPv6 multicast group g: 33:33 and its last four bytes.
func multicastMAC(g netip.Addr) net.HardwareAddr {
	b := g.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// marshalND encodes an IPv6 packet holding a neighbour solicitation or advertisement for target, from
// src (the unspecified address for duplicate address detection) to dst. With mac, a link-layer address
// option (source for a solicitation, target for an advertisement) carries it.
func marshalND(typ uint8, flags uint8, src, dst, target netip.Addr, mac net.HardwareAddr) []byte {
	icmp := make([]byte, ndMessageLen, ndMessageLen+llAddrOptionLen)
	icmp[0] = typ
	icmp[4] = flags
	t := target.As16()
	copy(icmp[8:24], t[:])
	if mac != nil {
		opt := byte(optSourceLLAddr)
		if typ == icmpv6NA {
			opt = optTargetLLAddr
		}
		icmp = append(icmp, opt, 1)
		icmp = append(icmp, mac[:6]...)
	}
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(src, dst, icmp))
	pkt := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(icmp))
	pkt[0] = ipv6VersionFirst
	binary.BigEndian.PutUint16(pkt[4:], uint16(len(icmp)))
	pkt[6] = protoICMPv6
	pkt[7] = ndHopLimit
	s, d := src.As16(), dst.As16()
	copy(pkt[8:24], s[:])
	copy(pkt[24:40], d[:])
	return append(pkt, icmp...)
}

// icmpv6Checksum is the ICMPv6 checksum of msg (its checksum field zero) with the IPv6 pseudo-header.
func icmpv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[:4], uint32(len(msg)))
	l[7] = protoICMPv6
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ndPacket is a neighbour solicitation or advertisement as received.
type ndPacket struct {
	Type   uint8
	Src    netip.Addr
	Target netip.Addr
	// LLAddr is the link-layer address option's (source or target), nil when there is none.
	LLAddr net.HardwareAddr
}

var errNotND = errors.New("not a neighbour solicitation or advertisement")

// parseND decodes an IPv6 packet holding a neighbour solicitation or advertisement. It checks what a
// receiver must (RFC 4861 7.1.1-7.1.2): hop limit 255, code 0, a valid checksum, the length.
func parseND(b []byte) (ndPacket, error) {
	if len(b) < ipv6HeaderLen+ndMessageLen || b[0]>>4 != 6 || b[6] != protoICMPv6 || b[7] != ndHopLimit {
		return ndPacket{}, errNotND
	}
	plen := int(binary.BigEndian.Uint16(b[4:]))
	if plen < ndMessageLen || ipv6HeaderLen+plen > len(b) {
		return ndPacket{}, errNotND
	}
	icmp := b[ipv6HeaderLen : ipv6HeaderLen+plen]
	if (icmp[0] != icmpv6NS && icmp[0] != icmpv6NA) || icmp[1] != 0 {
		return ndPacket{}, errNotND
	}
	src := netip.AddrFrom16([16]byte(b[8:24]))
	dst := netip.AddrFrom16([16]byte(b[24:40]))
	check := bytes.Clone(icmp)
	check[2], check[3] = 0, 0
	if icmpv6Checksum(src, dst, check) != binary.BigEndian.Uint16(icmp[2:]) {
		return ndPacket{}, errNotND
	}
	p := ndPacket{Type: icmp[0], Src: src, Target: netip.AddrFrom16([16]byte(icmp[8:24]))}
	for opts := icmp[ndMessageLen:]; len(opts) >= 2; {
		n := int(opts[1]) * 8
		if n == 0 || n > len(opts) {
			break
		}
		if (opts[0] == optSourceLLAddr || opts[0] == optTargetLLAddr) && n >= llAddrOptionLen {
			p.LLAddr = net.HardwareAddr(bytes.Clone(opts[2:8]))
		}
		opts = opts[n:]
	}
	return p, nil
}
