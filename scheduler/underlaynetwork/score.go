package underlaynetwork

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// PreScore skips scoring when it cannot tell nodes apart: the pod has no underlay, or, with start pacing
// off, the pod has no pool needs or every feasible node would get the same pools (no candidate pool is
// limited to some nodes).
func (p *Plugin) PreScore(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	st, err := readState(state)
	if err != nil || p.starts == nil && (st.uniform || len(st.reqs) == 0) {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// Score prefers nodes whose pools have the most headroom for the pod: the raw score is the number of free
// addresses left in the pool the node would give the pod (the smallest, when the pod takes several
// addresses). Pools limited to racks or node groups by spec.nodeAffinity are thereby filled evenly,
// and a node whose pool is nearly exhausted is the last choice. With start pacing on, a node whose start
// slots are taken scores less the more pods would start there before this one (pacedScore), so a burst
// is spread over the nodes where it starts soonest. NormalizeScore scales to 0-100.
func (p *Plugin) Score(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	st, err := readState(state)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	headroom := int64(1) // every node gives the same pools
	if !st.uniform && len(st.reqs) > 0 {
		var reason string
		if headroom, reason = st.choose(nodeInfo.Node(), nil); reason != "" {
			// Filter passed this node in the same cycle with the same state; rank it last rather than fail.
			return 0, nil
		}
	}
	if p.starts == nil {
		return headroom, nil
	}
	starting, waiting := p.starts.Counts(nodeInfo.Node().Name)
	return pacedScore(headroom, int(*p.args.MaxStartingPodsPerNode), starting+waiting), nil
}

// pacedScore scales a node's headroom by how soon a pod would start there: in full while fewer than limit
// pods are starting or waiting on the node, and by limit/(queued+1) once they are, so a node with twice
// as many pods ahead scores about half. Headroom is clamped first (to 2^30, an IPv6 pool's) so the
// result stays within NormalizeScore's clamp and the product cannot overflow (limit is at most 10000).
func pacedScore(headroom int64, limit, queued int) int64 {
	const clamp = int64(1) << 30
	headroom = min(headroom, clamp) << 10 // keeps the fractions of a small headroom
	if queued < limit {
		return headroom
	}
	return headroom * int64(limit) / int64(queued+1)
}

// ScoreExtensions returns the plugin, which normalizes its scores.
func (p *Plugin) ScoreExtensions() fwk.ScoreExtensions { return p }

// NormalizeScore maps the raw headroom to [0, MaxScore] linearly, the node with the most headroom
// scoring MaxScore. Headroom of an IPv6 /64 is clamped before scaling so the product cannot overflow.
func (p *Plugin) NormalizeScore(ctx context.Context, state fwk.CycleState, pod *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	const clamp = int64(1) << 40
	var highest int64
	for i := range scores {
		if scores[i].Score < 0 {
			return fwk.AsStatus(fmt.Errorf("%s: negative raw score %d for node %s", Name, scores[i].Score, scores[i].Name))
		}
		if scores[i].Score > clamp {
			scores[i].Score = clamp
		}
		if scores[i].Score > highest {
			highest = scores[i].Score
		}
	}
	for i := range scores {
		if highest == 0 {
			scores[i].Score = fwk.MinScore
			continue
		}
		scores[i].Score = scores[i].Score * fwk.MaxScore / highest
	}
	return nil
}
