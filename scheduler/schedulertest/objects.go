package schedulertest

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/api/underlay"
)

// NodeUp returns the labels underlink-agent writes, with the default prefix, for a node whose underlay
// NICs are up (api/underlay).
func NodeUp(nics ...string) map[string]string {
	l := map[string]string{}
	for _, n := range nics {
		l[underlay.LabelKey(underlay.LabelPrefix, n)] = underlay.LinkUp
	}
	return l
}

// CreateNode creates a Node object with room for 110 pods, as a kubelet would register it (no kubelet
// runs: the scheduler only needs the object).
func CreateNode(ctx context.Context, cs kubernetes.Interface, name string, labels map[string]string) (*v1.Node, error) {
	l := map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
	for k, v := range labels {
		l[k] = v
	}
	n, err := cs.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create node %s: %w", name, err)
	}
	capacity := v1.ResourceList{
		v1.ResourceCPU:    resource.MustParse("32"),
		v1.ResourceMemory: resource.MustParse("128Gi"),
		v1.ResourcePods:   resource.MustParse("110"),
	}
	n.Status = v1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       v1.NodeRunning,
		Conditions:  []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
	}
	n, err = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("set status of node %s: %w", name, err)
	}
	// The apiserver taints new nodes not-ready (TaintNodesByCondition); without a node lifecycle
	// controller to lift it once the node is Ready, do it here.
	if len(n.Spec.Taints) > 0 {
		n.Spec.Taints = nil
		if n, err = cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("untaint node %s: %w", name, err)
		}
	}
	return n, nil
}

// Pod returns a pod for schedulerName; network, when not empty, is its v1.multus-cni.io/default-network.
// It requests a little CPU and memory like a real workload, so the default scoring spreads pods.
func Pod(namespace, name, schedulerName, network string) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": "underlink-test"}},
		Spec: v1.PodSpec{
			SchedulerName: schedulerName,
			Containers: []v1.Container{{
				Name:  "pause",
				Image: "registry.k8s.io/pause:3.10",
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
					v1.ResourceCPU:    resource.MustParse("100m"),
					v1.ResourceMemory: resource.MustParse("64Mi"),
				}},
			}},
		},
	}
	if network != "" {
		p.Annotations = map[string]string{nadv1.DefaultNetworkAnnotation: network}
	}
	return p
}
