package cache

import (
	"fmt"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/underlink/underlink/pkg/podnet"
)

func TestStorePoolVersions(t *testing.T) {
	s := NewStore()
	p := seedPool(t)
	p.ResourceVersion = "5"
	if _, _, applied := s.SetPool(p); !applied {
		t.Fatal("first version not applied")
	}
	older := p.DeepCopy()
	older.ResourceVersion = "4"
	older.Spec.IPs = []string{"172.110.1.1"}
	if _, cur, applied := s.SetPool(older); applied || cur.Total != 200 {
		t.Errorf("an older copy (from the other informer) replaced a newer one: applied %v total %d", applied, cur.Total)
	}
	same := p.DeepCopy()
	if _, _, applied := s.SetPool(same); applied {
		t.Error("the same version was applied twice")
	}
	s.DeletePool(p.Name, "6")
	if _, ok := s.Pool(p.Name); ok {
		t.Fatal("deleted pool still there")
	}
	if _, _, applied := s.SetPool(p); applied {
		t.Error("a late copy of a deleted pool resurrected it")
	}
	recreated := p.DeepCopy()
	recreated.ResourceVersion = "7"
	if _, _, applied := s.SetPool(recreated); !applied {
		t.Error("a recreated pool was not applied")
	}
}

func TestStoreReservations(t *testing.T) {
	s := NewStore()
	p := seedPool(t)
	p.Spec.IPs = []string{"172.110.1.1-172.110.1.5"} // 5 addresses
	p.Status.AllocatedIPs = allocated(t, "old-1", "old-2")
	s.SetPool(p)
	free := func() int64 {
		a, ok := s.Availability(p.Name)
		if !ok {
			t.Fatal("pool missing")
		}
		return a.Free()
	}
	if got := free(); got != 3 {
		t.Fatalf("free = %d, want 3 (5 total, 2 allocated)", got)
	}
	for _, uid := range []types.UID{"a", "b", "c"} {
		s.Place(uid, "default/"+string(uid), map[string]int{p.Name: 1})
	}
	if got := free(); got != 0 {
		t.Fatalf("free = %d after placing 3 pods, want 0", got)
	}
	// The agent allocates for a and b: allocated grows, reservations shrink, free stays 0.
	p2 := p.DeepCopy()
	p2.ResourceVersion = "11"
	p2.Status.AllocatedIPs = allocated(t, "old-1", "old-2", "a", "b")
	s.SetPool(p2)
	if a, _ := s.Availability(p.Name); a.Reserved != 1 || a.Free() != 0 {
		t.Errorf("after allocation: reserved %d free %d, want 1 and 0", a.Reserved, a.Free())
	}
	// Pod a is deleted and the agent releases its address.
	if !s.Release("a") {
		t.Error("Release(a) found no claims")
	}
	p3 := p2.DeepCopy()
	p3.ResourceVersion = "12"
	p3.Status.AllocatedIPs = allocated(t, "old-1", "old-2", "b")
	s.SetPool(p3)
	if got := free(); got != 1 {
		t.Errorf("free = %d after a pod and its address went, want 1", got)
	}
	// Unreserve of c (binding failed) frees its reservation.
	s.Release("c")
	if got := free(); got != 2 {
		t.Errorf("free = %d after unreserve, want 2", got)
	}
	if s.Release("c") {
		t.Error("Release is not idempotent")
	}
	// Placing again replaces earlier claims instead of adding.
	s.Place("d", "default/d", map[string]int{p.Name: 2})
	s.Place("d", "default/d", map[string]int{p.Name: 1})
	if got := free(); got != 1 {
		t.Errorf("free = %d after re-placing d, want 1", got)
	}
	if c := s.Claims("d"); c[p.Name] != 1 || !s.Placed("d") {
		t.Errorf("claims of d = %v", c)
	}
}

func TestStoreReservationsWithUnreadableStatus(t *testing.T) {
	s := NewStore()
	p := seedPool(t)
	p.Status.AllocatedIPs = ptr("garbage")
	p.Status.AllocatedIPCount = ptr(int64(10))
	s.SetPool(p)
	s.Place("a", "default/a", map[string]int{p.Name: 1})
	a, _ := s.Availability(p.Name)
	if a.Reserved != 1 || a.Free() != 189 {
		t.Errorf("reserved %d free %d; a pod that cannot be matched to an address must stay counted (want 1, 189)", a.Reserved, a.Free())
	}
}

func TestStoreClaimsOnUnknownPool(t *testing.T) {
	s := NewStore()
	s.Place("a", "default/a", map[string]int{"later": 1})
	p := seedPool(t)
	p.Name = "later"
	s.SetPool(p)
	if a, _ := s.Availability("later"); a.Reserved != 1 {
		t.Errorf("a claim made before the pool was seen is lost: reserved %d", a.Reserved)
	}
	s.DeletePool("later", "20")
	s.Release("a")
	if _, ok := s.Availability("later"); ok {
		t.Error("deleted pool has availability")
	}
}

func TestStoreNetworks(t *testing.T) {
	s := NewStore()
	nad := podnet.Network{Kind: podnet.KindNAD, Masters: []string{"ens256"}}
	smc := podnet.Network{Kind: podnet.KindMultusConfig, Masters: []string{"ens224"}, IPAM: true}
	s.SetNetwork("kube-system", "macvlan-conf", "3", nad)
	if n, ok := s.Network("kube-system", "macvlan-conf"); !ok || n.Masters[0] != "ens256" {
		t.Fatalf("NAD alone: %+v %v", n, ok)
	}
	s.SetNetwork("kube-system", "macvlan-conf", "4", smc)
	if n, _ := s.Network("kube-system", "macvlan-conf"); n.Kind != podnet.KindMultusConfig {
		t.Errorf("the SpiderMultusConfig must win over its generated NAD, got %+v", n)
	}
	if _, existed, applied := s.SetNetwork("kube-system", "macvlan-conf", "2", smc); !existed || applied {
		t.Error("an older config was applied")
	}
	s.DeleteNetwork(podnet.KindMultusConfig, "kube-system", "macvlan-conf", "5")
	if n, _ := s.Network("kube-system", "macvlan-conf"); n.Kind != podnet.KindNAD {
		t.Errorf("after the config is deleted the NAD is left: %+v", n)
	}
	if _, _, applied := s.SetNetwork("kube-system", "macvlan-conf", "4", smc); applied {
		t.Error("a late copy resurrected a deleted config")
	}
	if _, ok := s.Network("kube-system", "nothing"); ok {
		t.Error("found a network that does not exist")
	}
}

func TestStoreDefaultPools(t *testing.T) {
	s := NewStore()
	for i, name := range []string{"b", "a", "c"} {
		p := seedPool(t)
		p.Name = name
		p.ResourceVersion = fmt.Sprint(i + 1)
		p.Spec.Default = ptr(name != "c")
		s.SetPool(p)
	}
	got := s.DefaultPools(4)
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Errorf("default pools = %v, want a, b", got)
	}
	if len(s.DefaultPools(6)) != 0 {
		t.Error("IPv4 pools returned as IPv6 defaults")
	}
}

// TestStoreConcurrentUse runs informer-like writers against cycle-like readers; run with -race.
func TestStoreConcurrentUse(t *testing.T) {
	s := NewStore()
	base := seedPool(t)
	s.SetPool(base)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				uid := types.UID(fmt.Sprintf("%d-%d", w, i))
				s.Place(uid, "ns/p", map[string]int{base.Name: 1})
				if _, ok := s.Availability(base.Name); !ok {
					t.Error("pool vanished")
				}
				s.Release(uid)
				if w == 0 {
					p := base.DeepCopy()
					p.ResourceVersion = fmt.Sprint(100 + i)
					s.SetPool(p)
				}
			}
		}(w)
	}
	wg.Wait()
	if a, _ := s.Availability(base.Name); a.Reserved != 0 {
		t.Errorf("reserved %d after every pod was released", a.Reserved)
	}
}
