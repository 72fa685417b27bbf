//go:build integration

package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/metrics"
	"github.com/underlink/underlink/cni/agent/pools"
	"github.com/underlink/underlink/cni/agent/store"
	"github.com/underlink/underlink/cni/ipam"
	"github.com/underlink/underlink/test/controlplane"
)

// TestStoresOfManyAgentsNeverGiveAnAddressTwice: six stores (six agents' writers) hammer one pool of a
// real apiserver at once. Their group commits conflict on resourceVersion and retry; every holder gets
// one address, no address goes to two holders, repeated requests are answered from the pool, releases
// and conditional releases apply exactly, and the final status counts what it holds.
func TestStoresOfManyAgentsNeverGiveAnAddressTwice(t *testing.T) {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gw := "10.9.0.1"
	pool := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "shared"}, Spec: spv2.IPPoolSpec{
		Subnet: "10.9.0.0/22", Gateway: &gw, IPs: []string{"10.9.0.1-10.9.1.200"}, ExcludeIPs: []string{"10.9.0.100-10.9.0.109"},
	}}
	if err := env.Client.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	const agents, perAgent = 6, 60
	ms := make([]*metrics.Metrics, agents)
	stores := make([]*store.Store, agents)
	for i := range stores {
		c, err := client.New(env.Config, client.Options{Scheme: env.Client.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		ms[i] = metrics.New(nil)
		opts := store.Options{BackoffBase: time.Millisecond, BackoffMax: 50 * time.Millisecond}
		if i%2 == 0 { // the agent's writer, beside the client's (an agent of an older release)
			if opts.StatusWriter, err = store.NewMetadataWriter(env.Config); err != nil {
				t.Fatal(err)
			}
		}
		// The view reads metadata live here: the stores must be right however fresh their view is.
		stores[i] = store.New(ctx, c, pools.New(c, c), ms[i], logr.Discard(), opts)
	}
	holder := func(agent, i int) ipam.Holder {
		return ipam.Holder{Namespace: "ns", Name: fmt.Sprintf("p-%d-%d", agent, i), UID: fmt.Sprintf("uid-%d-%d", agent, i), NIC: "eth0", ContainerID: fmt.Sprintf("c-%d-%d", agent, i)}
	}
	got := make([][]netip.Addr, agents)
	var wg sync.WaitGroup
	for a := range stores {
		got[a] = make([]netip.Addr, perAgent)
		for i := 0; i < perAgent; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				defer cancel()
				r := stores[a].Do(rctx, "shared", store.Op{Kind: store.Allocate, Holder: holder(a, i)})
				if r.Err != nil {
					t.Errorf("agent %d holder %d: %v", a, i, r.Err)
					return
				}
				if !r.New || r.Pool.Gateway.String() != gw || r.Pool.Subnet.String() != "10.9.0.0/22" {
					t.Errorf("result %+v", r)
				}
				got[a][i] = r.IP
			}()
		}
	}
	wg.Wait()
	seen := map[netip.Addr]string{}
	for a := range got {
		for i, ip := range got[a] {
			if other, dup := seen[ip]; dup {
				t.Fatalf("DUPLICATE %s: %s and %d/%d", ip, other, a, i)
			}
			seen[ip] = fmt.Sprintf("%d/%d", a, i)
			if ip.String() == gw || (ip.Compare(netip.MustParseAddr("10.9.0.100")) >= 0 && ip.Compare(netip.MustParseAddr("10.9.0.109")) <= 0) {
				t.Errorf("gave %s (gateway or excluded)", ip)
			}
		}
	}
	var conflicts, batches, ops float64
	for _, m := range ms {
		conflicts += testutilCounter(m, "shared")
		b, o := batchStats(m)
		batches, ops = batches+b, ops+o
	}
	t.Logf("%d agents × %d allocations: %.0f writes carried them (%.1f per write), %.0f conflicts retried", agents, perAgent, batches, ops/batches, conflicts)

	// Repeats come back the same from any agent's store; releases free exactly.
	r := stores[3].Do(ctx, "shared", store.Op{Kind: store.Allocate, Holder: holder(0, 0)})
	if r.Err != nil || r.IP != got[0][0] || r.New {
		t.Fatalf("repeat from another store: %+v", r)
	}
	r = stores[1].Do(ctx, "shared", store.Op{Kind: store.Release, Holder: holder(0, 1)})
	if r.Err != nil || len(r.Freed) != 1 || r.Freed[0] != got[0][1] {
		t.Fatalf("release: %+v", r)
	}
	stale := spv2.PoolIPAllocation{NIC: "eth0", NamespacedName: "ns/p-0-2", PodUID: "someone-else"}
	if r := stores[2].Do(ctx, "shared", store.Op{Kind: store.ReleaseIfHeld, IP: got[0][2], Record: stale}); r.Err != nil || len(r.Freed) != 0 {
		t.Fatalf("conditional release of a changed record: %+v", r)
	}
	// A release that matches nothing (a DEL asks every pool) is answered without a write.
	var before spv2.SpiderIPPool
	if err := env.Client.Get(ctx, types.NamespacedName{Name: "shared"}, &before); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []store.Kind{store.Release, store.ReleaseSandbox} {
		if r := stores[5].Do(ctx, "shared", store.Op{Kind: kind, Holder: holder(9, 9)}); r.Err != nil || len(r.Freed) != 0 || r.Pool.Name != "shared" {
			t.Fatalf("release of a holder the pool does not know: %+v", r)
		}
	}
	var final spv2.SpiderIPPool
	if err := env.Client.Get(ctx, types.NamespacedName{Name: "shared"}, &final); err != nil {
		t.Fatal(err)
	}
	if final.ResourceVersion != before.ResourceVersion {
		t.Errorf("releases that freed nothing wrote the pool: resourceVersion %s → %s", before.ResourceVersion, final.ResourceVersion)
	}
	p, err := ipam.Load(&final)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(agents*perAgent - 1); p.Allocated() != want || *final.Status.AllocatedIPCount != want || *final.Status.TotalIPCount != 456-10-1 {
		t.Fatalf("final status: allocated %d (%d), total %d", p.Allocated(), *final.Status.AllocatedIPCount, *final.Status.TotalIPCount)
	}

	// A status someone else mangles is refused by every store, and left as it is.
	bad := "{broken"
	final.Status.AllocatedIPs = &bad
	if err := env.Client.Status().Update(ctx, &final); err != nil {
		t.Fatal(err)
	}
	r = stores[4].Do(ctx, "shared", store.Op{Kind: store.Allocate, Holder: holder(9, 9)})
	var se *ipam.StatusError
	if r.Err == nil || !asStatus(r.Err, &se) {
		t.Fatalf("allocation from a mangled pool: %+v", r)
	}
	var after spv2.SpiderIPPool
	if err := env.Client.Get(ctx, types.NamespacedName{Name: "shared"}, &after); err != nil {
		t.Fatal(err)
	}
	if *after.Status.AllocatedIPs != bad || after.ResourceVersion != final.ResourceVersion {
		t.Fatalf("the store overwrote a status it could not read")
	}
}

// TestMetadataWriter: the agent's status writer stores the status it sends, takes the new version's
// metadata from the apiserver's metadata-only answer, and reports a stale resourceVersion as a conflict
// (which the store retries after a re-read).
func TestMetadataWriter(t *testing.T) {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{})
	ctx := context.Background()
	pool := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "meta"}, Spec: spv2.IPPoolSpec{Subnet: "10.8.0.0/24", IPs: []string{"10.8.0.10-10.8.0.20"}}}
	if err := env.Client.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	w, err := store.NewMetadataWriter(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ipam.Load(pool)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Allocate(ipam.Holder{Namespace: "ns", Name: "a", UID: "uid-a", NIC: "eth0", ContainerID: "c-a"}); err != nil {
		t.Fatal(err)
	}
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	obj := pool.DeepCopy()
	obj.Status = st
	sent := obj.Status.DeepCopy()
	stale := obj.DeepCopy()
	if err := w.UpdateStatus(ctx, obj); err != nil {
		t.Fatal(err)
	}
	var stored spv2.SpiderIPPool
	if err := env.Client.Get(ctx, types.NamespacedName{Name: "meta"}, &stored); err != nil {
		t.Fatal(err)
	}
	if obj.ResourceVersion != stored.ResourceVersion || obj.ResourceVersion == pool.ResourceVersion || obj.UID != stored.UID {
		t.Errorf("metadata after the write: resourceVersion %q uid %q; stored %q %q; before %q", obj.ResourceVersion, obj.UID, stored.ResourceVersion, stored.UID, pool.ResourceVersion)
	}
	if !apiequality.Semantic.DeepEqual(stored.Status, *sent) || !apiequality.Semantic.DeepEqual(obj.Status, *sent) {
		t.Errorf("status: stored %+v, held %+v, sent %+v", stored.Status, obj.Status, *sent)
	}
	if err := w.UpdateStatus(ctx, stale); !apierrors.IsConflict(err) {
		t.Errorf("a write on a stale resourceVersion: %v, want a conflict", err)
	}
	gone := obj.DeepCopy()
	gone.Name = "no-such-pool"
	if err := w.UpdateStatus(ctx, gone); !apierrors.IsNotFound(err) {
		t.Errorf("a write to a missing pool: %v, want not found", err)
	}
}
