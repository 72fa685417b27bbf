package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/underlink/underlink/api/scheme"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// poolWith is the seed's pool holding allocs, with PoolFinalizer when finalized and a deletionTimestamp
// when deleting; status.allocatedIPCount counts allocs, as the agent writes it.
func poolWith(t *testing.T, allocs spv2.PoolIPAllocations, finalized, deleting bool) *spv2.SpiderIPPool {
	t.Helper()
	pool, _ := seed()
	if finalized {
		pool.Finalizers = []string{PoolFinalizer}
	}
	if deleting {
		pool.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	}
	if len(allocs) > 0 {
		enc, err := allocs.Encode()
		if err != nil {
			t.Fatal(err)
		}
		pool.Status.AllocatedIPs = enc
	}
	pool.Status.AllocatedIPCount = ptr(int64(len(allocs)))
	return pool
}

// TestPoolFinalizerFollowsThePodsThatHoldAddresses drives the pool reconciler over a cache that holds
// pools without status.allocatedIPs, as the webhook's does: the finalizer is added while pods hold
// addresses and removed once none does (an address conflict holds no pod's address), a deleted pool waits
// for its pods with a Warning that names them, and a pool with nothing counted is never read live.
func TestPoolFinalizerFollowsThePodsThatHoldAddresses(t *testing.T) {
	podAddr := spv2.PoolIPAllocations{"172.110.1.5": {NIC: "net1", NamespacedName: "team/web-0", PodUID: "u1"}}
	conflictOnly := spv2.PoolIPAllocations{"172.110.1.9": {NIC: "eth0", NamespacedName: "team/gone", IPConflict: spv2.IPConflict{MAC: "02:00:00:00:00:01"}}}
	for _, tc := range []struct {
		name                string
		pool                *spv2.SpiderIPPool
		wantFinalizer, gone bool
		wantEvent           string
		wantLiveReads       int
	}{
		{name: "pods hold addresses: the finalizer is added", pool: poolWith(t, podAddr, false, false), wantFinalizer: true, wantLiveReads: 1},
		{name: "finalized and held: nothing to read or change", pool: poolWith(t, podAddr, true, false), wantFinalizer: true},
		{name: "nothing allocated: nothing to read or change", pool: poolWith(t, nil, false, false)},
		{name: "nothing allocated any more: the finalizer goes without a read", pool: poolWith(t, nil, true, false)},
		{name: "only an address conflict: no pod holds the pool", pool: poolWith(t, conflictOnly, false, false), wantLiveReads: 1},
		// The finalizer is settled when the pool is deleted (the last case), so a pool whose status changes
		// all the time costs no live read per change.
		{name: "finalized with something counted: left to the deletion", pool: poolWith(t, conflictOnly, true, false), wantFinalizer: true},
		{name: "deleted while held: waits and names the pod", pool: poolWith(t, podAddr, true, true), wantFinalizer: true, wantLiveReads: 1,
			wantEvent: "Warning " + EventReasonWaitingForPods + " SpiderIPPool cluster-a still gives addresses to 1 pod(s): team/web-0 (172.110.1.5 net1)"},
		{name: "deleted and released: the pool goes", pool: poolWith(t, conflictOnly, true, true), gone: true, wantLiveReads: 1,
			wantEvent: "Normal " + EventReasonReleased},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(tc.pool).Build()
			cached := interceptor.NewClient(fc, interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				err := c.Get(ctx, key, obj, opts...)
				if p, ok := obj.(*spv2.SpiderIPPool); ok {
					p.Status.AllocatedIPs = nil // the webhook's cache transform
				}
				return err
			}})
			liveReads := 0
			live := interceptor.NewClient(fc, interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				liveReads++
				return c.Get(ctx, key, obj, opts...)
			}})
			rec := events.NewFakeRecorder(4)
			r := &PoolReconciler{Client: cached, Live: live, Recorder: rec}
			if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: tc.pool.Name}}); err != nil {
				t.Fatal(err)
			}
			if liveReads != tc.wantLiveReads {
				t.Errorf("%d live reads, want %d", liveReads, tc.wantLiveReads)
			}
			var got spv2.SpiderIPPool
			err := fc.Get(context.Background(), client.ObjectKeyFromObject(tc.pool), &got)
			switch {
			case tc.gone:
				if !apierrors.IsNotFound(err) {
					t.Errorf("the released pool is still there (finalizers %v): %v", got.Finalizers, err)
				}
			case err != nil:
				t.Fatal(err)
			case controllerutil.ContainsFinalizer(&got, PoolFinalizer) != tc.wantFinalizer:
				t.Errorf("finalizers %v, want %s present: %v", got.Finalizers, PoolFinalizer, tc.wantFinalizer)
			}
			select {
			case e := <-rec.Events:
				if tc.wantEvent == "" || !strings.HasPrefix(e, tc.wantEvent) {
					t.Errorf("event %q, want %q", e, tc.wantEvent)
				}
			default:
				if tc.wantEvent != "" {
					t.Errorf("no event, want %q", tc.wantEvent)
				}
			}
		})
	}
}
