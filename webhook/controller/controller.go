// Package controller reconciles SpiderMultusConfigs: each owns a NetworkAttachmentDefinition of the same
// namespace and name whose spec.config is the CNI chain webhook/netconf builds, and carries the
// conditions Ready (the NAD is in place) and Aligned (its pools and hijack routes agree with the
// Submariner clusters, pkg/rules). Alignment is re-evaluated whenever a Cluster, pool or config
// changes, because a cluster joining the broker can break a config nobody edited; a flip of Aligned is
// also recorded as an Event on the config.
package controller

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/webhook/netconf"
	"github.com/underlink/underlink/webhook/snapshot"
)

// Condition types and reasons on SpiderMultusConfig status.conditions.
const (
	// ConditionAligned is True when the config's pools and hijack routes agree with the Submariner
	// clusters, False with the broken rule as reason, Unknown when the clusters are unknown.
	ConditionAligned = "Aligned"
	// ConditionReady is True when the config's NetworkAttachmentDefinition holds its current chain.
	ConditionReady = "Ready"

	ReasonNADUpToDate  = "NetworkAttachmentDefinitionUpToDate"
	ReasonUnsupported  = "Unsupported"
	ReasonInvalidSpec  = "InvalidSpec"
	ReasonNADNotOwned  = "NetworkAttachmentDefinitionNotOwned"
	EventReasonAligned = "Aligned"
	EventReasonDrifted = "Misaligned"
)

// maxMessage bounds condition messages (the API allows 32768 bytes).
const maxMessage = 4096

// Name is the controller's name in logs, metrics and events.
const Name = "spidermultusconfig"

// Reconciler reconciles one SpiderMultusConfig.
type Reconciler struct {
	// Client reads from the manager's cache and writes to the apiserver.
	Client client.Client
	// Recorder records Aligned flips as Events on the config.
	Recorder events.EventRecorder
	// Snapshot says which cluster is local and the static clusters.
	Snapshot snapshot.Options
}

// SetupWithManager registers the controller: it owns NADs, and maps every change of a Cluster, a pool
// or the static clusters ConfigMap to all configs (there are few, and alignment is global).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(r.allConfigs)
	b := ctrl.NewControllerManagedBy(mgr).
		Named(Name).
		For(&spv2.SpiderMultusConfig{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&nadv1.NetworkAttachmentDefinition{}).
		Watches(&submarinerv1.Cluster{}, all).
		// The cluster's coordinator defaults are merged into every config's NAD.
		Watches(&spv2.SpiderCoordinator{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Allocation changes only the pool's status; alignment reads its spec.
		Watches(&spv2.SpiderIPPool{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	if key := r.Snapshot.StaticClustersConfigMap; key != nil {
		b = b.Watches(&corev1.ConfigMap{}, all, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetNamespace() == key.Namespace && o.GetName() == key.Name
		})))
	}
	return b.Complete(r)
}

func (r *Reconciler) allConfigs(ctx context.Context, _ client.Object) []reconcile.Request {
	var list spv2.SpiderMultusConfigList
	if err := r.Client.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Error(err, "list SpiderMultusConfigs to re-evaluate alignment")
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}

// Reconcile brings the config's NAD and conditions up to date.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := logf.FromContext(ctx)
	smc := &spv2.SpiderMultusConfig{}
	if err := r.Client.Get(ctx, req.NamespacedName, smc); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !smc.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil // the NAD goes with it through its owner reference
	}
	w, err := snapshot.Read(ctx, r.Client, r.Snapshot, snapshot.Scope{})
	if err != nil {
		return reconcile.Result{}, err
	}

	ready, err := r.syncNAD(ctx, smc, w)
	if err != nil {
		return reconcile.Result{}, err
	}
	aligned := AlignedCondition(rules.Alignment(w, smc), smc.Generation)
	ready.ObservedGeneration = smc.Generation

	before := meta.FindStatusCondition(smc.Status.Conditions, ConditionAligned)
	var was metav1.ConditionStatus
	if before != nil {
		was = before.Status
	}
	patch := client.MergeFrom(smc.DeepCopy())
	changed := meta.SetStatusCondition(&smc.Status.Conditions, aligned)
	changed = meta.SetStatusCondition(&smc.Status.Conditions, ready) || changed
	if changed {
		if err := r.Client.Status().Patch(ctx, smc, patch); err != nil {
			return reconcile.Result{}, fmt.Errorf("update status of SpiderMultusConfig %s: %w", req.NamespacedName, err)
		}
	}
	if was != aligned.Status && (was != "" || aligned.Status != metav1.ConditionTrue) {
		kind, reason := corev1.EventTypeWarning, EventReasonDrifted
		if aligned.Status == metav1.ConditionTrue {
			kind, reason = corev1.EventTypeNormal, EventReasonAligned
		}
		r.Recorder.Eventf(smc, nil, kind, reason, "CheckAlignment", "Aligned %s → %s (%s): %s", orUnset(was), aligned.Status, aligned.Reason, aligned.Message)
		log.Info("alignment changed", "from", orUnset(was), "to", aligned.Status, "reason", aligned.Reason, "message", aligned.Message)
	}
	return reconcile.Result{}, nil
}

func orUnset(s metav1.ConditionStatus) string {
	if s == "" {
		return "unset"
	}
	return string(s)
}

// AlignedCondition is the Aligned condition for an alignment status.
func AlignedCondition(st rules.AlignmentStatus, generation int64) metav1.Condition {
	status := st.Status
	if status == "" {
		status = metav1.ConditionUnknown
	}
	reason := st.Reason
	if reason == "" {
		reason = "Unknown"
	}
	return metav1.Condition{Type: ConditionAligned, Status: status, Reason: reason, Message: truncate(st.Message), ObservedGeneration: generation}
}

// syncNAD creates or updates the owned NAD and returns the Ready condition. Spec problems are reported
// in the condition rather than retried: they change only when someone edits the config.
func (r *Reconciler) syncNAD(ctx context.Context, smc *spv2.SpiderMultusConfig, w *rules.World) (metav1.Condition, error) {
	cc, sc := snapshot.LocalCIDRs(w)
	config, err := netconf.Build(smc, netconf.Local{ClusterCIDR: cc, ServiceCIDR: sc, Defaults: w.CoordinatorDefaults})
	if err != nil {
		reason := ReasonInvalidSpec
		if errors.Is(err, netconf.ErrUnsupported) {
			reason = ReasonUnsupported
		}
		return metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: truncate(err.Error())}, nil
	}
	nad := &nadv1.NetworkAttachmentDefinition{}
	key := client.ObjectKeyFromObject(smc)
	err = r.Client.Get(ctx, key, nad)
	switch {
	case apierrors.IsNotFound(err):
		nad = &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: smc.Namespace, Name: smc.Name}}
		nad.Spec.Config = config
		if err := controllerutil.SetControllerReference(smc, nad, r.Client.Scheme()); err != nil {
			return metav1.Condition{}, err
		}
		if err := r.Client.Create(ctx, nad); err != nil {
			return metav1.Condition{}, fmt.Errorf("create NetworkAttachmentDefinition %s: %w", key, err)
		}
	case err != nil:
		return metav1.Condition{}, fmt.Errorf("read NetworkAttachmentDefinition %s: %w", key, err)
	default:
		if !metav1.IsControlledBy(nad, smc) {
			return metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonNADNotOwned,
				Message: fmt.Sprintf("NetworkAttachmentDefinition %s exists and is not owned by this SpiderMultusConfig; underlink leaves it alone: delete it to let underlink generate it, or rename the config", key)}, nil
		}
		if nad.Spec.Config != config {
			patch := client.MergeFrom(nad.DeepCopy())
			nad.Spec.Config = config
			if err := r.Client.Patch(ctx, nad, patch); err != nil {
				return metav1.Condition{}, fmt.Errorf("update NetworkAttachmentDefinition %s: %w", key, err)
			}
		}
	}
	return metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonNADUpToDate,
		Message: fmt.Sprintf("NetworkAttachmentDefinition %s holds the %s chain", key, chainSummary(smc))}, nil
}

func chainSummary(smc *spv2.SpiderMultusConfig) string {
	if smc.Spec.CniType == nil || *smc.Spec.CniType == "custom" {
		return "custom"
	}
	return *smc.Spec.CniType
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return s[:maxMessage-3] + "..."
}
