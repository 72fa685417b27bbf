package underlaynetwork

import (
	"context"
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/pkg/poolchoice"
)

// Filter passes a node when every master NIC of the pod's networks is labelled up on it and each address
// the pod needs has a candidate pool eligible on the node (spec.nodeName, spec.nodeAffinity) with a free
// address. Rejections are UnschedulableAndUnresolvable: evicting pods from the node frees neither a link
// nor, until their CNI DEL runs, an address.
func (p *Plugin) Filter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	st, err := readState(state)
	if err != nil {
		return fwk.AsStatus(err)
	}
	node := nodeInfo.Node()
	if reason := st.linkReason(node); reason != "" {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reason)
	}
	if _, reason := st.choose(node, nil); reason != "" {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reason)
	}
	return nil
}

// linkReason says why the node's underlay links do not fit, or "" when every NIC is up. Nodes without
// the label are reported as such: the agent may not run there.
func (s *cycleState) linkReason(node *v1.Node) string {
	for i, key := range s.labelKeys {
		v, ok := node.Labels[key]
		switch {
		case v == underlay.LinkUp:
			continue
		case !ok:
			return "node(s) had no link state for underlay NIC " + s.nics[i] + " (label " + key + " missing)"
		default:
			return "node(s) had underlay link " + s.nics[i] + " " + v
		}
	}
	return ""
}

// linksUp reports whether every NIC is up on node.
func (s *cycleState) linksUp(node *v1.Node) bool { return s.linkReason(node) == "" }

// choose picks, for each address the pod needs, the first candidate pool eligible on node with a free
// address, and returns the smallest headroom among the picks. When picks is not nil it receives the
// chosen pool names. reason, when not empty, is why the node cannot give the pod its addresses.
func (s *cycleState) choose(node *v1.Node, picks []string) (headroom int64, reason string) {
	var used map[string]int64 // addresses taken by earlier requests of this pod, when pools are shared
	if s.shared {
		used = map[string]int64{}
	}
	headroom = -1
	on := nodeOf(node)
	for i := range s.reqs {
		r := &s.reqs[i]
		if r.master != "" {
			on.Addrs = masterAddrs(node, r)
		}
		var full, ineligible, subnet []string
		picked := false
		for j := range r.cands {
			c := &r.cands[j]
			if rj := c.Pool.Serves(on, r.master); rj != nil {
				if rj.Field == "spec.subnet" {
					subnet = append(subnet, c.Pool.Name+" ("+c.Pool.Subnet.String()+")")
				} else {
					ineligible = append(ineligible, c.Pool.Name+" ("+rj.Field+")")
				}
				continue
			}
			free := c.free - used[c.Pool.Name]
			if free <= 0 {
				if c.full != "" {
					full = append(full, c.full)
				} else { // free only for this pod's earlier interfaces
					full = append(full, c.Pool.Name+" (needed by another interface of the pod)")
				}
				continue
			}
			picked = true
			if used != nil {
				used[c.Pool.Name]++
			}
			if picks != nil {
				picks[i] = c.Pool.Name
			}
			if headroom < 0 || free < headroom {
				headroom = free
			}
			break
		}
		if picked {
			continue
		}
		if len(full) > 0 {
			return 0, "node(s) had no free IP in " + plural("pool", len(full)) + " " + strings.Join(full, ", ")
		}
		if len(ineligible) > 0 {
			return 0, "node(s) didn't match the node affinity of " + plural("pool", len(ineligible)) + " " + strings.Join(ineligible, ", ")
		}
		return 0, "node(s) had no address of master NIC " + r.master + " in the subnet of " + plural("pool", len(subnet)) + " " + strings.Join(subnet, ", ") + " (matchMasterSubnet)"
	}
	if headroom < 0 {
		headroom = 0
	}
	return headroom, ""
}

// claimsOn returns the addresses the pod takes from each pool on node, or nil with the reason it cannot.
func (s *cycleState) claimsOn(node *v1.Node) (map[string]int, string) {
	picks := make([]string, len(s.reqs))
	if _, reason := s.choose(node, picks); reason != "" {
		return nil, reason
	}
	claims := make(map[string]int, len(picks))
	for _, name := range picks {
		claims[name]++
	}
	return claims, ""
}

// masterAddrs is the node's addresses of r's master NIC as underlink-agent published them, or nil (not
// known, so not checked) when the annotation is missing or unreadable.
func masterAddrs(node *v1.Node, r *reqState) map[string][]netip.Prefix {
	v, ok := node.Annotations[r.addrKey]
	if !ok {
		return nil
	}
	addrs, err := underlay.ParseAddresses(v)
	if err != nil {
		return nil
	}
	return map[string][]netip.Prefix{r.master: addrs}
}

// nodeOf is the node as pool eligibility reads it.
func nodeOf(node *v1.Node) poolchoice.Node {
	return poolchoice.Node{Name: node.Name, Labels: node.Labels}
}

func plural(word string, n int) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func klogKObj(pod *v1.Pod) klog.ObjectRef { return klog.KObj(pod) }
