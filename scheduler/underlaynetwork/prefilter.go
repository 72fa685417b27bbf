package underlaynetwork

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/underlink/underlink/scheduler/underlaynetwork/cache"
)

// cycleState is the pod's needs with the availability of its candidate pools as PreFilter saw them. It
// is not changed after PreFilter, so Filter runs on many nodes at once without locks.
type cycleState struct {
	nics      []string
	labelKeys []string // LabelPrefix + nic, per nic
	linkKey   string   // labelKeys joined, naming the NIC set in Links
	reqs      []reqState
	// shared is true when one pool is a candidate of more than one request (two interfaces on one pool).
	shared bool
	// uniform is true when every node that passes Filter gets the same pools, so scores would be equal.
	uniform bool
	// nodeScoped is true when some candidate pool is limited to some nodes; when false, whether the
	// pools can give the pod its addresses is the same on every node.
	nodeScoped bool
}

type reqState struct {
	iface   string
	network string
	family  int
	cands   []candidate
	// master is the NIC of a network with matchMasterSubnet, and addrKey the node annotation with its
	// addresses (api/underlay.AddressesKey); both empty otherwise.
	master, addrKey string
}

type candidate struct {
	cache.Availability
	free int64
	// full describes the pool in a reason when it has no free address; empty otherwise.
	full string
}

// Clone returns the state itself: it is never changed after PreFilter.
func (s *cycleState) Clone() fwk.StateData { return s }

// PreFilter resolves the pod's underlay needs once per cycle: its network annotations, the
// SpiderMultusConfigs or NADs they name, their master NICs and candidate pools with the pools' free
// addresses. Pods without underlay networks are skipped, and so are Filter and Score for them.
//
// When every node fits (the usual case: links up everywhere, pools with room and no node affinity) the
// state is written and Skip returned, so Filter is not called once per node only to pass each: a check
// of a node here is a label lookup, far cheaper than a Filter call. The scan stops at the first node
// that does not fit, and Filter then runs to give each node its reason.
func (p *Plugin) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if !p.mayNeedUnderlay(pod) {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	n, _, st := p.resolve(pod)
	if st != nil {
		p.logger.V(2).Info("Pod cannot be placed on any node", "pod", klogKObj(pod), "reason", st.Message())
		return nil, st
	}
	if len(n.nics) == 0 && len(n.reqs) == 0 {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	cs := p.stateFor(n)
	state.Write(stateKey, cs)
	if p.fitsEvery(cs, nodes) {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	return nil, nil
}

// fitsEvery reports whether Filter would pass every one of nodes. Link labels are read through the
// plugin's Links memo, so only nodes whose object changed since the last cycle are looked at again.
func (p *Plugin) fitsEvery(s *cycleState, nodes []fwk.NodeInfo) bool {
	if len(s.labelKeys) > 0 && !p.links.AllUp(s.linkKey, nodes, s.linksUp) {
		return false
	}
	for _, ni := range nodes {
		node := ni.Node()
		if node == nil {
			continue
		}
		if _, reason := s.choose(node, nil); reason != "" {
			return false
		}
		if !s.nodeScoped {
			return true // the same answer on every other node
		}
	}
	return true
}

// PreFilterExtensions returns nil: what other pods on a node do does not change a pool's capacity in
// the scheduler's simulation (preemption frees an address only when the victim's CNI DEL runs, which
// the pool's status then reports).
func (p *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

func readState(state fwk.CycleState) (*cycleState, error) {
	d, err := state.Read(stateKey)
	if err != nil {
		return nil, err
	}
	s, ok := d.(*cycleState)
	if !ok {
		return nil, fmt.Errorf("%s: cycle state holds %T", Name, d)
	}
	return s, nil
}
