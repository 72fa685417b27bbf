package underlaynetwork

import (
	"context"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// signKey is the plugin's signature fragment.
const signKey = "underlink.io/UnderlayNetwork"

// SignPod lets kube-scheduler batch pods of the cluster's primary network (all such pods look the same
// to this plugin) and refuses to sign underlay pods: their feasibility depends on pool capacity that every
// placement changes, so a result cached for one must not be reused for the next. A profile with a plugin
// that does not sign at all loses batching for every pod.
func (p *Plugin) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	if p.mayNeedUnderlay(pod) {
		return nil, fwk.NewStatus(fwk.Unschedulable, "underlay pods are not batched: each placement changes pool capacity")
	}
	return []fwk.SignFragment{{Key: signKey, Value: false}}, nil
}
