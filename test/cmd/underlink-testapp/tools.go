package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// The image also installs this binary as ip, ping and curl, so the seed's checks run inside the pod
// exactly as the user types them: `kubectl exec POD -- ip route`, `ping -c2 IP`, `curl -I IP`. Each does
// only what those checks need.
var tools = map[string]func(args []string, out io.Writer) error{
	"ip":   ipTool,
	"ping": pingTool,
	"curl": curlTool,
}

// runTool runs the tool named by argv[0], if it is one; ok is false for the HTTP server itself.
func runTool() (code int, ok bool) {
	tool, found := tools[filepath.Base(os.Args[0])]
	if !found {
		return 0, false
	}
	if err := tool(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		return 1, true
	}
	return 0, true
}

// ipTool supports `ip route` and `ip -6 route` (alias `ip r`, `ip route show`): the main table,
// iproute2's format.
func ipTool(args []string, out io.Writer) error {
	family := netlink.FAMILY_V4
	if len(args) > 0 && (args[0] == "-6" || args[0] == "-4") {
		if args[0] == "-6" {
			family = netlink.FAMILY_V6
		}
		args = args[1:]
	}
	if len(args) == 0 || !strings.HasPrefix("route", args[0]) || (len(args) > 1 && args[1] != "show" && args[1] != "list") {
		return fmt.Errorf("only `ip [-6] route` is supported, got %q", strings.Join(args, " "))
	}
	routes, err := netlink.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	names := map[int]string{}
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	lines := make([]routeLine, 0, len(routes))
	for _, r := range routes {
		if r.Type != unix.RTN_UNICAST {
			continue // IPv6's multicast and anycast entries, which `ip -6 route` does not show
		}
		lines = append(lines, routeLine{dst: r.Dst, gw: r.Gw, dev: names[r.LinkIndex], src: r.Src, scopeLink: r.Scope == netlink.SCOPE_LINK, kernel: r.Protocol == unix.RTPROT_KERNEL})
	}
	_, err = io.WriteString(out, formatRoutes(lines))
	return err
}

// routeLine is one route as `ip route` prints it.
type routeLine struct {
	dst       *net.IPNet
	gw, src   net.IP
	dev       string
	scopeLink bool
	kernel    bool
}

// formatRoutes prints routes like iproute2: default first, then by destination.
func formatRoutes(rs []routeLine) string {
	key := func(r routeLine) string {
		if r.dst == nil {
			return ""
		}
		ip := r.dst.IP
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		ones, _ := r.dst.Mask.Size()
		return fmt.Sprintf("%x/%03d", []byte(ip), ones)
	}
	sort.SliceStable(rs, func(i, j int) bool { return key(rs[i]) < key(rs[j]) })
	var b strings.Builder
	for _, r := range rs {
		dst := "default"
		if ones, _ := maskSize(r.dst); r.dst != nil && (ones > 0 || !r.dst.IP.IsUnspecified()) {
			dst = r.dst.String()
			if ones, bits := r.dst.Mask.Size(); ones == bits {
				dst = r.dst.IP.String()
			}
		}
		b.WriteString(dst)
		if r.gw != nil {
			b.WriteString(" via " + r.gw.String())
		}
		if r.dev != "" {
			b.WriteString(" dev " + r.dev)
		}
		if r.kernel {
			b.WriteString(" proto kernel")
		}
		if r.scopeLink {
			b.WriteString(" scope link")
		}
		if r.src != nil {
			b.WriteString(" src " + r.src.String())
		}
		b.WriteString("\n")
	}
	return b.String()
}

func maskSize(n *net.IPNet) (int, int) {
	if n == nil {
		return 0, 0
	}
	return n.Mask.Size()
}

// pingTool supports `ping [-c N] [-W SECONDS] HOST` with busybox ping's output; it fails unless every
// echo is answered.
func pingTool(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	count := fs.Int("c", 4, "echo requests to send")
	wait := fs.Int("W", 2, "seconds to wait for each reply")
	if err := fs.Parse(normalizeCount(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: ping [-c N] [-W SECONDS] HOST")
	}
	dst := net.ParseIP(fs.Arg(0))
	if dst == nil {
		return fmt.Errorf("%q is not an IP address", fs.Arg(0))
	}
	// One echo loop for both families: the socket, the message types and the protocol number differ.
	network, listen, proto := "ip4:icmp", "0.0.0.0", 1
	var echo, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.To4() == nil {
		network, listen, proto = "ip6:ipv6-icmp", "::", 58
		echo, reply = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	} else {
		dst = dst.To4()
	}
	c, err := icmp.ListenPacket(network, listen)
	if err != nil {
		return fmt.Errorf("open an ICMP socket (needs CAP_NET_RAW): %w", err)
	}
	defer c.Close()
	// The reply's TTL (hop limit), as busybox prints it.
	hops := func() int { return 0 }
	var read func([]byte) (int, net.Addr, error)
	if proto == 1 {
		pc := c.IPv4PacketConn()
		if err := pc.SetControlMessage(ipv4.FlagTTL, true); err != nil {
			return err
		}
		var last *ipv4.ControlMessage
		read = func(b []byte) (int, net.Addr, error) {
			n, cm, peer, err := pc.ReadFrom(b)
			last = cm
			return n, peer, err
		}
		hops = func() int {
			if last == nil {
				return 0
			}
			return last.TTL
		}
	} else {
		pc := c.IPv6PacketConn()
		if err := pc.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
			return err
		}
		var last *ipv6.ControlMessage
		read = func(b []byte) (int, net.Addr, error) {
			n, cm, peer, err := pc.ReadFrom(b)
			last = cm
			return n, peer, err
		}
		hops = func() int {
			if last == nil {
				return 0
			}
			return last.HopLimit
		}
	}
	fmt.Fprintf(out, "PING %s (%s): 56 data bytes\n", dst, dst)
	id := os.Getpid() & 0xffff
	payload := make([]byte, 56)
	var rtts []time.Duration
	buf := make([]byte, 1500)
	for seq := 0; seq < *count; seq++ {
		if seq > 0 {
			time.Sleep(time.Second)
		}
		msg := icmp.Message{Type: echo, Body: &icmp.Echo{ID: id, Seq: seq, Data: payload}}
		wb, err := msg.Marshal(nil)
		if err != nil {
			return err
		}
		start := time.Now()
		if _, err := c.WriteTo(wb, &net.IPAddr{IP: dst}); err != nil {
			return fmt.Errorf("send echo %d: %w", seq, err)
		}
		if err := c.SetReadDeadline(start.Add(time.Duration(*wait) * time.Second)); err != nil {
			return err
		}
		for {
			n, peer, err := read(buf)
			if err != nil {
				break // timed out: this echo is lost
			}
			ip, ok := peer.(*net.IPAddr)
			if !ok || !ip.IP.Equal(dst) {
				continue
			}
			rm, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || rm.Type != reply {
				continue
			}
			if e, ok := rm.Body.(*icmp.Echo); !ok || e.ID != id || e.Seq != seq {
				continue
			}
			rtt := time.Since(start)
			rtts = append(rtts, rtt)
			fmt.Fprintf(out, "64 bytes from %s: seq=%d ttl=%d time=%.3f ms\n", dst, seq, hops(), ms(rtt))
			break
		}
	}
	fmt.Fprint(out, pingSummary(dst.String(), *count, rtts))
	if len(rtts) != *count {
		return fmt.Errorf("%d of %d echo requests to %s unanswered", *count-len(rtts), *count, dst)
	}
	return nil
}

// normalizeCount turns busybox's `-c2` into `-c 2` for the flag package.
func normalizeCount(args []string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if len(a) > 2 && (strings.HasPrefix(a, "-c") || strings.HasPrefix(a, "-W")) && a[2] != '=' {
			out = append(out, a[:2], a[2:])
			continue
		}
		out = append(out, a)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pingSummary is busybox ping's closing statistics.
func pingSummary(dst string, sent int, rtts []time.Duration) string {
	loss := 0
	if sent > 0 {
		loss = (sent - len(rtts)) * 100 / sent
	}
	s := fmt.Sprintf("\n--- %s ping statistics ---\n%d packets transmitted, %d packets received, %d%% packet loss\n", dst, sent, len(rtts), loss)
	if len(rtts) > 0 {
		lo, hi, sum := time.Duration(math.MaxInt64), time.Duration(0), time.Duration(0)
		for _, r := range rtts {
			lo, hi, sum = min(lo, r), max(hi, r), sum+r
		}
		s += fmt.Sprintf("round-trip min/avg/max = %.3f/%.3f/%.3f ms\n", ms(lo), ms(sum/time.Duration(len(rtts))), ms(hi))
	}
	return s
}

// curlTool supports `curl [-I] [-s] [-m SECONDS] URL`: -I prints the status line and headers of a HEAD
// request, otherwise the body of a GET. A URL without a scheme is http://.
func curlTool(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("curl", flag.ContinueOnError)
	head := fs.Bool("I", false, "HEAD request, print the headers")
	_ = fs.Bool("s", false, "silent (always)")
	maxTime := fs.Int("m", 5, "seconds the whole request may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: curl [-I] [-s] [-m SECONDS] URL")
	}
	url := fs.Arg(0)
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	method := http.MethodGet
	if *head {
		method = http.MethodHead
	}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "curl/underlink-testapp")
	resp, err := (&http.Client{Timeout: time.Duration(*maxTime) * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if *head {
		fmt.Fprintf(out, "%s %s\r\n", resp.Proto, resp.Status)
		keys := make([]string, 0, len(resp.Header))
		for k := range resp.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, v := range resp.Header[k] {
				fmt.Fprintf(out, "%s: %s\r\n", k, v)
			}
		}
		fmt.Fprint(out, "\r\n")
	} else if _, err := io.Copy(out, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return nil
}
