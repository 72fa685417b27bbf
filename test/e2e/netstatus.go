package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// NetworkStatusAnnotation is where Multus writes, after a pod's ADD, what each of its networks gave the
// pod (k8s.v1.cni.cncf.io/network-status of the network plumbing working group's specification).
const NetworkStatusAnnotation = "k8s.v1.cni.cncf.io/network-status"

// NetworkStatus is one entry of that annotation: one interface of one network.
type NetworkStatus struct {
	Name      string   `json:"name"`
	Interface string   `json:"interface"`
	IPs       []string `json:"ips"`
	Mac       string   `json:"mac"`
	Default   bool     `json:"default"`
}

// ParseNetworkStatus reads the annotation's value (a JSON list).
func ParseNetworkStatus(v string) ([]NetworkStatus, error) {
	if strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("no %s annotation", NetworkStatusAnnotation)
	}
	var out []NetworkStatus
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		return nil, fmt.Errorf("%s is not a JSON list of network statuses: %w", NetworkStatusAnnotation, err)
	}
	return out, nil
}

// Attachment is an interface a pod should have: the network (namespace/name) that gives it, its name in
// the pod, and whether it is the pod's default network.
type Attachment struct {
	Network, Interface string
	Default            bool
}

// NetworkStatusProblems checks what Multus wrote for pod ("namespace/name") against what it should have:
// each wanted attachment has exactly one IPv4 address, which pool holds for that pod on that interface
// and which lies in the pool's ips range; the default network's addresses are the pod IPs that
// `kubectl get pod -o wide` shows; and no other entry carries an address. nil means it all holds.
func NetworkStatusProblems(statuses []NetworkStatus, want []Attachment, pod string, podIPs []string, allocs spv2.PoolIPAllocations, poolRange string) []string {
	var problems []string
	byIf := map[string]NetworkStatus{}
	for _, s := range statuses {
		if _, dup := byIf[s.Interface]; dup && s.Interface != "" {
			problems = append(problems, fmt.Sprintf("interface %s is listed twice", s.Interface))
		}
		byIf[s.Interface] = s
	}
	for _, w := range want {
		s, ok := byIf[w.Interface]
		if !ok {
			problems = append(problems, fmt.Sprintf("no entry for %s (network %s)", w.Interface, w.Network))
			continue
		}
		delete(byIf, w.Interface)
		if s.Name != w.Network {
			problems = append(problems, fmt.Sprintf("%s is from network %q, want %s", w.Interface, s.Name, w.Network))
		}
		if s.Default != w.Default {
			problems = append(problems, fmt.Sprintf("%s has default=%v, want %v", w.Interface, s.Default, w.Default))
		}
		if len(s.IPs) != 1 {
			problems = append(problems, fmt.Sprintf("%s has addresses %v, want one", w.Interface, s.IPs))
			continue
		}
		ip := s.IPs[0]
		if a, err := netip.ParseAddr(ip); err != nil || !a.Is4() {
			problems = append(problems, fmt.Sprintf("%s has %q, not an IPv4 address", w.Interface, ip))
			continue
		}
		if !InRange(ip, poolRange) {
			problems = append(problems, fmt.Sprintf("%s has %s, outside the pool's %s", w.Interface, ip, poolRange))
		}
		switch a, ok := allocs[ip]; {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s has %s, which the pool does not hold", w.Interface, ip))
		case a.NamespacedName != pod || a.NIC != w.Interface:
			problems = append(problems, fmt.Sprintf("%s has %s, which the pool holds for %s %s", w.Interface, ip, a.NamespacedName, a.NIC))
		}
		if w.Default && !slices.Equal(s.IPs, podIPs) {
			problems = append(problems, fmt.Sprintf("%s has %v, but the pod's IPs (kubectl get pod -o wide) are %v", w.Interface, s.IPs, podIPs))
		}
	}
	var extra []string
	for name, s := range byIf {
		if len(s.IPs) > 0 {
			extra = append(extra, fmt.Sprintf("unexpected interface %q (network %s) with %v", name, s.Name, s.IPs))
		}
	}
	slices.Sort(extra)
	return append(problems, extra...)
}

// WideIPs reads `kubectl get pods -o wide` output: pod name → the IP column.
func WideIPs(out string) map[string]string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	ips := map[string]string{}
	if len(lines) < 2 {
		return ips
	}
	header := lines[0]
	col := strings.Index(header, " IP ")
	if col < 0 {
		return ips
	}
	col++
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == 0 || len(l) <= col {
			continue
		}
		ipf := strings.Fields(l[col:])
		if len(ipf) > 0 {
			ips[f[0]] = ipf[0]
		}
	}
	return ips
}

// InterfaceAddrs reads the connected routes of `ip route` output inside a pod: interface → the source
// address the kernel gave its subnet's route (the interface's address).
func InterfaceAddrs(out string) map[string]string {
	addrs := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if !slices.Contains(f, "kernel") {
			continue
		}
		dev, src := "", ""
		for i := 0; i+1 < len(f); i++ {
			switch f[i] {
			case "dev":
				dev = f[i+1]
			case "src":
				src = f[i+1]
			}
		}
		if dev != "" && src != "" {
			addrs[dev] = src
		}
	}
	return addrs
}
