package service

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ReasonAllocationFailed is the reason of the Event an ADD that got no address leaves on its pod.
const ReasonAllocationFailed = "IPAllocationFailed"

// Event creates a core/v1 Event on the object ref names (a pod, or a cluster-scoped pool, whose Events
// live in the default namespace), as underlink-agent on node Host. A failure is not the caller's: the
// Event is advice.
func (e *EventWriter) Event(ctx context.Context, ref corev1.ObjectReference, eventType, reason, message string) {
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: ref.Name + ".", Namespace: ns},
		InvolvedObject: ref,
		Reason:         reason, Message: message, Type: eventType,
		Source:         corev1.EventSource{Component: "underlink-agent", Host: e.Host},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "underlink.io/agent", ReportingInstance: e.Host,
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = e.Client.Create(ctx, ev)
}

// podRef is the reference of pod for an Event.
func podRef(pod *corev1.Pod) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion}
}

// podEvent leaves a Warning Event on the pod namespace/name (of uid) outlasting the request's context;
// nothing without Events.
func (s *Service) podEvent(ctx context.Context, namespace, name, uid, reason, message string) {
	if s.Events == nil {
		return
	}
	ref := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: namespace, Name: name, UID: types.UID(uid)}
	s.Events.Event(context.WithoutCancel(ctx), ref, corev1.EventTypeWarning, reason, message)
}
