package e2e

import (
	"fmt"
	"net/netip"
	"strings"
)

// A correction of one of the seed's manifests: the lines it changes and why, printed as a diff before
// the corrected manifest is applied.
type Correction struct {
	Old, New, Why string
}

// Correct applies corrections to a manifest, failing if a line to change is not there (the seed changed).
func Correct(manifest []byte, cs ...Correction) ([]byte, error) {
	s := string(manifest)
	for _, c := range cs {
		if !strings.Contains(s, c.Old) {
			return nil, fmt.Errorf("the seed manifest has no %q to correct", c.Old)
		}
		s = strings.Replace(s, c.Old, c.New, 1)
	}
	return []byte(s), nil
}

// Diff prints corrections as a unified-diff-like block.
func Diff(cs ...Correction) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "-%s\n+%s\n", strings.TrimRight(c.Old, "\n"), strings.TrimRight(c.New, "\n"))
		if c.Why != "" {
			fmt.Fprintf(&b, "   # %s\n", c.Why)
		}
	}
	return b.String()
}

// PoolCorrection widens a seed pool's subnet to its underlay segment, which holds the gateway: the fix
// the seed's network needs (its gateway 172.110.0.1 sits on 172.110.0.0/16, not on the /24).
func PoolCorrection(oldSubnet, newSubnet string) Correction {
	return Correction{Old: "subnet: " + oldSubnet, New: "subnet: " + newSubnet,
		Why: "the gateway must be inside the subnet: widen it to the underlay segment " + newSubnet}
}

// DeploymentCorrections fix the seed's Deployment: the network name, and the image (no registry here:
// the test app answers like the seed's nginx).
func DeploymentCorrections(testApp string) []Correction {
	return []Correction{
		{Old: "kube-system/macvlan-confg", New: "kube-system/macvlan-conf", Why: "the SpiderMultusConfig is macvlan-conf"},
		{Old: "image: nginx", New: "image: " + testApp, Why: "no registry in the test bed: underlink's test app answers like nginx (HTTP/1.1 200 OK)"},
	}
}

// Route is one line of `ip route` as the checks read it.
type Route struct {
	Dst string // "default" or a CIDR/address
	Via string
	Dev string
}

// ParseRoutes reads `ip route` output (iproute2 or busybox format).
func ParseRoutes(out string) []Route {
	var rs []Route
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		r := Route{Dst: f[0]}
		if r.Dst == "0.0.0.0/0" {
			r.Dst = "default"
		}
		for i := 1; i+1 < len(f); i++ {
			switch f[i] {
			case "via":
				r.Via = f[i+1]
			case "dev":
				r.Dev = f[i+1]
			}
		}
		rs = append(rs, r)
	}
	return rs
}

// HijackProblems checks a pod's routes against the seed's shape: each hijacked CIDR (the remote
// clusters' pod and service CIDRs, and the local service CIDR) via a node address over veth0, and the
// pool's default route on eth0. It returns what is wrong; nil means the shape holds.
func HijackProblems(routes []Route, hijacked []string) []string {
	var problems []string
	byDst := map[string]Route{}
	for _, r := range routes {
		byDst[r.Dst] = r
	}
	for _, cidr := range hijacked {
		r, ok := byDst[cidr]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("no route to %s", cidr))
		case r.Dev != "veth0":
			problems = append(problems, fmt.Sprintf("%s goes out %s, not veth0", cidr, r.Dev))
		case r.Via == "":
			problems = append(problems, fmt.Sprintf("%s has no next hop (want the node)", cidr))
		default:
			if _, err := netip.ParseAddr(r.Via); err != nil {
				problems = append(problems, fmt.Sprintf("%s via %q is not an address", cidr, r.Via))
			}
		}
	}
	if d, ok := byDst["default"]; !ok || d.Dev != "eth0" {
		problems = append(problems, "no default route on eth0 (the pool's gateway)")
	}
	return problems
}

// HTTPStatus is the status line of `curl -I` output, e.g. "HTTP/1.1 200 OK".
func HTTPStatus(out string) string {
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "HTTP/") {
			return l
		}
	}
	return ""
}

// InRange says whether ip is in the inclusive range "first-last" (a pool's ips entry) or equal to it.
func InRange(ip, r string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	first, last, found := strings.Cut(r, "-")
	if !found {
		last = first
	}
	lo, err1 := netip.ParseAddr(strings.TrimSpace(first))
	hi, err2 := netip.ParseAddr(strings.TrimSpace(last))
	return err1 == nil && err2 == nil && a.Compare(lo) >= 0 && a.Compare(hi) <= 0
}
