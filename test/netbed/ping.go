package netbed

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Ping sends count ICMP echo requests from inside n to dst, one after another, and returns an error
// unless every one is answered by dst within timeout. It uses a raw ICMP socket (root) opened inside n,
// because the machine has no ping binary and unprivileged ICMP sockets are off in a fresh namespace
// (net.ipv4.ping_group_range defaults to "1 0"). An echo not answered within resendEvery is sent again
// until timeout: a link the kernel has not yet activated drops what it is given (linkwatch attaches the
// queue under the rtnl lock, which a namespace teardown elsewhere can hold for a while), and a test
// checks reachability, not that the first packet on a new link survives.
func Ping(n *Netns, dst netip.Addr, count int, timeout time.Duration) error {
	network, proto, reqType, replyType := "ip4:icmp", 1, icmp.Type(ipv4.ICMPTypeEcho), icmp.Type(ipv4.ICMPTypeEchoReply)
	if dst.Is6() && !dst.Is4In6() {
		network, proto, reqType, replyType = "ip6:ipv6-icmp", 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var c *icmp.PacketConn
	err := n.Do(func(ns.NetNS) error {
		var err error
		c, err = icmp.ListenPacket(network, "")
		return err
	})
	if err != nil {
		return fmt.Errorf("ping %s from netns %s: open ICMP socket: %w", dst, n.Name, err)
	}
	defer c.Close()

	id := rand.IntN(0xffff) + 1
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("underlink-netbed")}}
		wb, err := msg.Marshal(nil)
		if err != nil {
			return err
		}
		deadline := time.Now().Add(timeout)
		var resend time.Time
		for {
			if now := time.Now(); !now.Before(resend) {
				if _, err := c.WriteTo(wb, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
					return fmt.Errorf("ping %s from netns %s: send echo %d: %w", dst, n.Name, seq, err)
				}
				resend = now.Add(resendEvery)
			}
			if err := c.SetReadDeadline(earliest(resend, deadline)); err != nil {
				return err
			}
			nr, peer, err := c.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					return fmt.Errorf("ping %s from netns %s: %w", dst, n.Name, err)
				}
				if !time.Now().Before(deadline) {
					return fmt.Errorf("ping %s from netns %s: echo %d of %d not answered within %s", dst, n.Name, seq, count, timeout)
				}
				continue
			}
			from, ok := netip.AddrFromSlice(peer.(*net.IPAddr).IP)
			if !ok || from.Unmap() != dst.Unmap() {
				continue
			}
			rm, err := icmp.ParseMessage(proto, buf[:nr])
			if err != nil || rm.Type != replyType {
				continue
			}
			if e, ok := rm.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
				break
			}
		}
	}
	return nil
}

// resendEvery is how long Ping waits for an answer before it sends the same echo again.
const resendEvery = 250 * time.Millisecond

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
