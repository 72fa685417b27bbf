package underlaynetwork

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// PreScore skips scoring when it cannot tell nodes apart: the pod has no underlay needs, or every
// feasible node would get the same pools (no candidate pool is limited to some nodes).
func (p *Plugin) PreScore(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	st, err := readState(state)
	if err != nil || st.uniform || len(st.reqs) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// Score prefers nodes whose pools have the most headroom for the pod: the raw score is the number of free
// addresses left in the pool the node would give the pod (the smallest, when the pod takes several
// addresses). Pools limited to racks or node groups by spec.nodeAffinity are thereby filled evenly,
// and a node whose pool is nearly exhausted is the last choice. NormalizeScore scales to 0-100.
func (p *Plugin) Score(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	st, err := readState(state)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	headroom, reason := st.choose(nodeInfo.Node(), nil)
	if reason != "" {
		// Filter passed this node in the same cycle with the same state; rank it last rather than fail.
		return 0, nil
	}
	return headroom, nil
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
