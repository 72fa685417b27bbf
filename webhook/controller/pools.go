package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/rules"
)

// PoolFinalizer is the finalizer a SpiderIPPool keeps while pods hold its addresses: Spiderpool's own
// (spiderpool.spidernet.io), so a cluster that switches between the two sees the same object.
const PoolFinalizer = "spiderpool.spidernet.io"

// PoolControllerName is the pool controller's name in logs, metrics and events.
const PoolControllerName = "spiderippool-finalizer"

// Event reasons on pools.
const (
	EventReasonWaitingForPods = "DeletionWaitsForPods"
	EventReasonReleased       = "DeletionReleased"
)

// PoolReconciler keeps the finalizer PoolFinalizer on every SpiderIPPool whose addresses pods hold, and
// removes it once the last one is released, so a pool can never be deleted from under live pods (the
// validating webhook also refuses such a deletion, naming the pods: rules.CheckPoolDelete). It reads
// pools from the cache, which holds them without status.allocatedIPs (app.New's transform), and reads a
// pool from the apiserver only when the finalizer may have to change: status.allocatedIPCount says
// whether there is anything allocated at all, the live status says whether any of it is a pod's.
type PoolReconciler struct {
	// Client reads from the cache and writes to the apiserver.
	Client client.Client
	// Live reads a pool with its whole status.
	Live client.Reader
	// Recorder records why a deleted pool waits.
	Recorder events.EventRecorder
}

// SetupWithManager registers the controller (leader only, as every controller of the manager).
func (r *PoolReconciler) SetupWithManager(mgr manager.Manager) error {
	return ctrl.ControllerManagedBy(mgr).Named(PoolControllerName).For(&spv2.SpiderIPPool{}).Complete(r)
}

// Reconcile adds or removes the pool's finalizer.
func (r *PoolReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := logf.FromContext(ctx)
	pool := &spv2.SpiderIPPool{}
	if err := r.Client.Get(ctx, req.NamespacedName, pool); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	has := controllerutil.ContainsFinalizer(pool, PoolFinalizer)
	deleting := !pool.DeletionTimestamp.IsZero()
	counted := pool.Status.AllocatedIPCount != nil && *pool.Status.AllocatedIPCount > 0
	switch {
	case !counted && !has, counted && has && !deleting:
		return reconcile.Result{}, nil // nothing can change without a read
	case !counted && has:
		// Nothing allocated at all: no read needed.
		return reconcile.Result{}, r.setFinalizer(ctx, pool, false)
	}
	live := &spv2.SpiderIPPool{}
	if err := r.Live.Get(ctx, req.NamespacedName, live); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	held := rules.CheckPoolDelete(live, nil) // every record, a gone pod's too, until it is released
	switch {
	case len(held) > 0 && !has && !deleting:
		return reconcile.Result{}, r.setFinalizer(ctx, live, true)
	case len(held) == 0 && has:
		if deleting {
			r.Recorder.Eventf(live, nil, corev1.EventTypeNormal, EventReasonReleased, "Delete", "the last pod address was released; the pool is deleted")
		}
		return reconcile.Result{}, r.setFinalizer(ctx, live, false)
	case len(held) > 0 && deleting:
		log.Info("deleted pool waits for its pods", "pool", pool.Name, "held", held[0].Message)
		r.Recorder.Eventf(live, nil, corev1.EventTypeWarning, EventReasonWaitingForPods, "Delete", "%s; %s", held[0].Message, held[0].Fix)
	}
	return reconcile.Result{}, nil
}

// setFinalizer adds or removes PoolFinalizer with a patch guarded by the pool's resourceVersion, so it
// never undoes a change it did not see.
func (r *PoolReconciler) setFinalizer(ctx context.Context, pool *spv2.SpiderIPPool, want bool) error {
	patch := client.MergeFromWithOptions(pool.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if want {
		controllerutil.AddFinalizer(pool, PoolFinalizer)
	} else {
		controllerutil.RemoveFinalizer(pool, PoolFinalizer)
	}
	if err := r.Client.Patch(ctx, pool, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("set finalizer %s of SpiderIPPool %s to %v: %w", PoolFinalizer, pool.Name, want, err)
	}
	logf.FromContext(ctx).Info("pool finalizer", "pool", pool.Name, "present", want)
	return nil
}
