package probe

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Timing of detection. Every ADD with conflict detection waits the whole conflict window, since silence
// is the answer "free"; only a failing ADD waits for a gateway that does not answer.
const (
	// ConflictWait is how long an answer to the conflict probes is awaited. A host on the segment
	// answers ARP and neighbour solicitations from its softirq in well under a millisecond, and under
	// heavy load in a few; 30 ms is several times that while keeping detection within the 50 ms that an
	// ADD may spend on it (docs/BENCHMARKS.md). RFC 5227's one to two seconds per probe are for a host
	// configuring itself once at boot, not for every pod start.
	ConflictWait = 30 * time.Millisecond
	// ConflictRetransmit is when the conflict probe is sent a second time, so one lost frame does not
	// hide a holder.
	ConflictRetransmit = 10 * time.Millisecond
	// GatewayWait bounds gateway detection, from the first probe: the gateway is asked at once with a
	// probe (no source address, so it learns nothing before the conflict window closes), then, when
	// the window closes unanswered, with a request from the pod's address, again every
	// GatewayRetransmit. A gateway that answers ends the wait at once.
	GatewayWait = 300 * time.Millisecond
	// GatewayRetransmit is the interval of the gateway requests after the conflict window.
	GatewayRetransmit = 100 * time.Millisecond
)

// Address is an address to probe for, and its gateway.
type Address struct {
	Addr netip.Addr
	// Gateway is the address's gateway; invalid when it has none.
	Gateway netip.Addr
}

// Options say what Detect looks for.
type Options struct {
	// Conflict probes for another holder of each address.
	Conflict bool
	// Gateway asks each address's gateway.
	Gateway bool
}

// ConflictError is an address another host answered for.
type ConflictError struct {
	Addr netip.Addr
	// MAC is the holder's link-layer address.
	MAC net.HardwareAddr
	// Link is the pod interface probed from.
	Link string
	// By names the protocol that found it: "ARP" or "NDP".
	By string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s is already in use on the segment of %s by %s (it answered %s for the address)", e.Addr, e.Link, e.MAC, e.By)
}

// GatewayError is a gateway that did not answer.
type GatewayError struct {
	Gateway, Addr netip.Addr
	Link          string
	Waited        time.Duration
}

func (e *GatewayError) Error() string {
	return fmt.Sprintf("gateway %s of %s did not answer %s on %s within %s", e.Gateway, e.Addr, e.Probe(), e.Link, e.Waited.Round(time.Millisecond))
}

// Probe names what the gateway was asked with.
func (e *GatewayError) Probe() string {
	if e.Gateway.Is6() {
		return "neighbour solicitations"
	}
	return "ARP"
}

// Detect probes the link for addrs, one address per family, both families at once. It returns nil,
// the first *ConflictError, a *GatewayError, or an error of the sockets.
func Detect(l *Link, addrs []Address, o Options) error {
	if !o.Conflict && !o.Gateway {
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(addrs))
	for i, a := range addrs {
		a.Addr, a.Gateway = a.Addr.Unmap(), a.Gateway.Unmap()
		if !o.Gateway {
			a.Gateway = netip.Addr{}
		}
		if !o.Conflict && !a.Gateway.IsValid() {
			continue
		}
		wg.Go(func() {
			if a.Addr.Is4() {
				errs[i] = l.detect4(a, o.Conflict)
			} else {
				errs[i] = l.detect6(a, o.Conflict)
			}
		})
	}
	wg.Wait()
	var ce *ConflictError
	for _, err := range errs {
		if errors.As(err, &ce) {
			return err // a conflict says more than a silent gateway
		}
	}
	return errors.Join(errs...)
}

// schedule is when each kind of frame is sent during a detection.
type schedule struct {
	start, conflictEnd, gatewayEnd time.Time
	conflictSent                   int
	gatewayNext                    time.Time // next request from the pod's address; zero: none yet
}

// exchange runs the detection of one address: send sends what is due, handle classifies one received
// frame (conflict or gateway answered), and it ends when the conflict window closed without a holder
// and the gateway answered (or neither is asked).
type exchange struct {
	l        *Link
	fd       int
	a        Address
	conflict bool
	// probe sends a conflict probe; ask sends a gateway probe (fromAddr false) or request.
	probe    func() error
	ask      func(fromAddr bool) error
	classify func(payload []byte, from net.HardwareAddr) (holder net.HardwareAddr, gatewayAnswered bool)
	by       string
}

func (x *exchange) run() error {
	now := time.Now()
	s := schedule{start: now, conflictEnd: now, gatewayEnd: now.Add(GatewayWait)}
	if x.conflict {
		s.conflictEnd = now.Add(ConflictWait)
	}
	gatewayPending := x.a.Gateway.IsValid()
	if x.conflict {
		if err := x.probe(); err != nil {
			return err
		}
		s.conflictSent = 1
	}
	if gatewayPending && x.conflict {
		// While the window is open, only a probe: the gateway learns nothing of an address that may
		// turn out to be someone else's. Without conflict detection the loop asks from the address.
		if err := x.ask(false); err != nil {
			return err
		}
	}
	buf := make([]byte, 1600)
	for {
		now = time.Now()
		conflictOpen := x.conflict && now.Before(s.conflictEnd)
		if !conflictOpen && !gatewayPending {
			return nil
		}
		if conflictOpen && s.conflictSent == 1 && !now.Before(s.start.Add(ConflictRetransmit)) {
			if err := x.probe(); err != nil {
				return err
			}
			s.conflictSent++
		}
		if !conflictOpen && gatewayPending {
			if !now.Before(s.gatewayEnd) {
				return &GatewayError{Gateway: x.a.Gateway, Addr: x.a.Addr, Link: x.l.Name, Waited: now.Sub(s.start)}
			}
			if s.gatewayNext.IsZero() || !now.Before(s.gatewayNext) {
				if err := x.ask(true); err != nil {
					return err
				}
				s.gatewayNext = now.Add(GatewayRetransmit)
			}
		}
		wake := s.gatewayEnd
		if conflictOpen {
			wake = s.conflictEnd
			if s.conflictSent == 1 {
				wake = s.start.Add(ConflictRetransmit)
			}
		} else if gatewayPending && s.gatewayNext.Before(wake) {
			wake = s.gatewayNext
		}
		payload, from, err := x.l.recv(x.fd, buf, wake)
		if errors.Is(err, errTimeout) {
			continue
		}
		if err != nil {
			return err
		}
		holder, answered := x.classify(payload, from)
		if holder != nil && x.conflict {
			return &ConflictError{Addr: x.a.Addr, MAC: holder, Link: x.l.Name, By: x.by}
		}
		if answered {
			gatewayPending = false
		}
	}
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// detect4: ARP probes (sender 0.0.0.0) for the address and its gateway; any ARP packet whose sender is
// the address, from another MAC, is its holder; any whose sender is the gateway is the gateway.
func (l *Link) detect4(a Address, conflict bool) error {
	if l.arp < 0 {
		return fmt.Errorf("%s was not opened for IPv4", l.Name)
	}
	send := func(senderIP, target netip.Addr) error {
		return l.sendTo(l.arp, 0x0806, broadcast, marshalARP(arpRequest, l.MAC, senderIP, nil, target))
	}
	x := &exchange{l: l, fd: l.arp, a: a, conflict: conflict, by: "ARP",
		probe: func() error { return send(netip.Addr{}, a.Addr) },
		ask: func(fromAddr bool) error {
			if fromAddr {
				return send(a.Addr, a.Gateway)
			}
			return send(netip.Addr{}, a.Gateway)
		},
		classify: func(b []byte, _ net.HardwareAddr) (net.HardwareAddr, bool) {
			p, err := parseARP(b)
			if err != nil || bytes.Equal(p.SenderMAC, l.MAC) {
				return nil, false
			}
			if p.SenderIP == a.Addr {
				return p.SenderMAC, false
			}
			return nil, a.Gateway.IsValid() && p.SenderIP == a.Gateway
		},
	}
	return x.run()
}

// detect6: duplicate address detection (a solicitation from the unspecified address to the
// address's solicited-node group) for the address and its gateway; an advertisement for the address
// from another MAC, or another host's solicitation for it from the unspecified address (it is claiming
// it too), is a holder; an advertisement for the gateway is the gateway.
func (l *Link) detect6(a Address, conflict bool) error {
	if l.ip6 < 0 {
		return fmt.Errorf("%s was not opened for IPv6", l.Name)
	}
	solicit := func(src, target netip.Addr, withMAC bool) error {
		var mac net.HardwareAddr
		if withMAC {
			mac = l.MAC
		}
		dst := solicitedNode(target)
		return l.sendTo(l.ip6, 0x86dd, multicastMAC(dst), marshalND(icmpv6NS, 0, src, dst, target, mac))
	}
	x := &exchange{l: l, fd: l.ip6, a: a, conflict: conflict, by: "NDP",
		probe: func() error { return solicit(netip.IPv6Unspecified(), a.Addr, false) },
		ask: func(fromAddr bool) error {
			if fromAddr {
				return solicit(a.Addr, a.Gateway, true)
			}
			return solicit(netip.IPv6Unspecified(), a.Gateway, false)
		},
		classify: func(b []byte, from net.HardwareAddr) (net.HardwareAddr, bool) {
			p, err := parseND(b)
			if err != nil {
				return nil, false
			}
			mac := p.LLAddr
			if mac == nil {
				mac = from
			}
			if bytes.Equal(mac, l.MAC) {
				return nil, false
			}
			switch {
			case p.Type == icmpv6NA && p.Target == a.Addr:
				return mac, false
			case p.Type == icmpv6NS && p.Target == a.Addr && p.Src.IsUnspecified():
				return mac, false
			case p.Type == icmpv6NA && a.Gateway.IsValid() && p.Target == a.Gateway:
				return nil, true
			}
			return nil, false
		},
	}
	return x.run()
}

// Announce tells the segment that addrs are at the link's MAC: a gratuitous ARP request and reply for
// each IPv4 address, an unsolicited neighbour advertisement (override set) to all-nodes for each IPv6
// one. Neighbours that hold an entry for the address update it to this MAC (RFC 826, RFC 4861 7.2.6),
// switches learn the MAC's port; nobody needs to send anything first.
func Announce(l *Link, addrs []netip.Addr) error {
	var errs []error
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			if l.arp < 0 {
				return fmt.Errorf("%s was not opened for IPv4", l.Name)
			}
			errs = append(errs,
				l.sendTo(l.arp, 0x0806, broadcast, marshalARP(arpRequest, l.MAC, a, nil, a)),
				l.sendTo(l.arp, 0x0806, broadcast, marshalARP(arpReply, l.MAC, a, l.MAC, a)))
			continue
		}
		if l.ip6 < 0 {
			return fmt.Errorf("%s was not opened for IPv6", l.Name)
		}
		errs = append(errs, l.sendTo(l.ip6, 0x86dd, multicastMAC(allNodes), marshalND(icmpv6NA, naFlagOverride, a, allNodes, a, l.MAC)))
	}
	return errors.Join(errs...)
}
