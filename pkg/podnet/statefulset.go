package podnet

import (
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StatefulSetOf is the name of the apps/v1 StatefulSet that controls pod, or "": such a pod keeps its
// addresses for its ordinal (Spiderpool's StatefulSet fixed addresses), which the agent gives back and
// the scheduler counts as the pod's own.
func StatefulSetOf(pod *v1.Pod) string {
	if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == "StatefulSet" && ref.APIVersion == "apps/v1" {
		return ref.Name
	}
	return ""
}
