// Package probe sends and reads ARP and IPv6 neighbour discovery on a pod's underlay interface, from
// packet sockets opened inside the pod's network namespace: conflict detection (RFC 5227 ARP probes,
// RFC 4862 duplicate address detection), gateway detection, and the announcements (gratuitous ARP,
// unsolicited neighbour advertisements) that make the segment's hosts and switches learn an address's
// new MAC at once. It needs no address on the interface and links nothing but golang.org/x/sys, so the
// CNI binaries that use it (underlink-ipam, underlink-coordinator), exec'd for every CNI call, stay
// small.
package probe

import (
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// Link is a pod interface opened for probing: packet sockets bound to it, and a control socket for its
// flags. The sockets belong to the network namespace Open ran in; once open, a Link is used from any
// thread. Close restores the interface's administrative state.
type Link struct {
	Name  string
	Index int
	MAC   net.HardwareAddr

	arp, ip6 int // packet sockets (ETH_P_ARP, ETH_P_IPV6), -1 when not opened
	ctl      int // AF_INET datagram socket for the interface's flags
	wasDown  bool
}

// Families says which address families a Link is opened for.
type Families struct{ IPv4, IPv6 bool }

// LinkUpWait bounds the wait for an interface brought up here to carry traffic (IFF_RUNNING): a frame
// sent before would be dropped unseen, and a probe that nobody received finds no conflict.
const LinkUpWait = time.Second

// Open opens ifName of the current network namespace (call it with the thread in the pod's namespace,
// e.g. from ns.NetNS.Do) for the families asked, and brings the interface up if it is down, waiting
// until it carries traffic.
func Open(ifName string, fam Families) (l *Link, err error) {
	ifi, err := net.InterfaceByName(ifName)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", ifName, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("%s has no Ethernet address (%v)", ifName, ifi.HardwareAddr)
	}
	l = &Link{Name: ifName, Index: ifi.Index, MAC: ifi.HardwareAddr, arp: -1, ip6: -1, ctl: -1}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if l.ctl, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	flags, err := l.flags()
	if err != nil {
		return nil, err
	}
	if flags&unix.IFF_UP == 0 {
		if err := l.setFlags(flags | unix.IFF_UP); err != nil {
			return nil, fmt.Errorf("set %s up: %w", ifName, err)
		}
		l.wasDown = true
	}
	deadline := time.Now().Add(LinkUpWait)
	for {
		f, err := l.flags()
		if err != nil {
			return nil, err
		}
		if f&unix.IFF_RUNNING != 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s is up but carries no traffic after %s (no carrier on its parent?)", ifName, LinkUpWait)
		}
		time.Sleep(time.Millisecond)
	}
	// Bound only now: a packet socket bound to a link that is down keeps ENETDOWN as its pending error,
	// and its first send would fail with it.
	if fam.IPv4 {
		if l.arp, err = packetSocket(ifi.Index, unix.ETH_P_ARP); err != nil {
			return nil, fmt.Errorf("ARP socket on %s: %w", ifName, err)
		}
	}
	if fam.IPv6 {
		if l.ip6, err = packetSocket(ifi.Index, unix.ETH_P_IPV6); err != nil {
			return nil, fmt.Errorf("IPv6 socket on %s: %w", ifName, err)
		}
		// Advertisements answering an unspecified source go to all-nodes: receive that group even when
		// the interface has not joined it (IPv6 off in the pod, or not configured yet).
		mreq := &unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_MULTICAST, Alen: 6}
		copy(mreq.Address[:], multicastMAC(allNodes))
		if err := unix.SetsockoptPacketMreq(l.ip6, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, mreq); err != nil {
			return nil, fmt.Errorf("join all-nodes on %s: %w", ifName, err)
		}
	}
	return l, nil
}

func packetSocket(index int, proto uint16) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(proto)))
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: index}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (l *Link) flags() (uint16, error) {
	ifr, err := unix.NewIfreq(l.Name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(l.ctl, unix.SIOCGIFFLAGS, ifr); err != nil {
		return 0, fmt.Errorf("read the flags of %s: %w", l.Name, err)
	}
	return ifr.Uint16(), nil
}

func (l *Link) setFlags(f uint16) error {
	ifr, err := unix.NewIfreq(l.Name)
	if err != nil {
		return err
	}
	ifr.SetUint16(f)
	return unix.IoctlIfreq(l.ctl, unix.SIOCSIFFLAGS, ifr)
}

// Close closes the sockets and takes the interface down again if Open brought it up, so the next
// plugin finds it as it was (macvlan's own "up" then announces the address, with arp_notify).
func (l *Link) Close() error {
	var errs []error
	if l.wasDown && l.ctl >= 0 {
		if f, err := l.flags(); err == nil {
			errs = append(errs, l.setFlags(f&^unix.IFF_UP))
		} else {
			errs = append(errs, err)
		}
		l.wasDown = false
	}
	for _, fd := range []*int{&l.arp, &l.ip6, &l.ctl} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	return errors.Join(errs...)
}

// sendTo sends payload on the packet socket fd to the link-layer address dst.
func (l *Link) sendTo(fd int, proto uint16, dst net.HardwareAddr, payload []byte) error {
	sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: l.Index, Halen: 6}
	copy(sa.Addr[:], dst)
	if err := unix.Sendto(fd, payload, 0, sa); err != nil {
		return fmt.Errorf("send on %s: %w", l.Name, err)
	}
	return nil
}

var errTimeout = errors.New("timeout")

// recv reads one frame received on the link from fd until deadline: its payload and the sender's
// link-layer address. Frames the pod itself sent, and frames of other interfaces, are skipped.
func (l *Link) recv(fd int, buf []byte, deadline time.Time) ([]byte, net.HardwareAddr, error) {
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, nil, errTimeout
		}
		ms := int((wait + time.Millisecond - 1) / time.Millisecond)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("poll %s: %w", l.Name, err)
		}
		if n == 0 {
			continue // the loop's deadline check decides
		}
		for {
			m, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				break
			}
			if err != nil {
				return nil, nil, fmt.Errorf("read on %s: %w", l.Name, err)
			}
			sa, ok := from.(*unix.SockaddrLinklayer)
			if !ok || sa.Ifindex != l.Index || sa.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			return buf[:m], net.HardwareAddr(append([]byte(nil), sa.Addr[:sa.Halen]...)), nil
		}
	}
}
