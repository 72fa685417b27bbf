package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/test"
)

func ptr[T any](v T) *T { return &v }

func pool(name, subnet string, ips []string, mut ...func(*spv2.SpiderIPPool)) *spv2.SpiderIPPool {
	p := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spv2.IPPoolSpec{Subnet: subnet, IPs: ips}}
	for _, m := range mut {
		m(p)
	}
	return p
}

func withGateway(gw string) func(*spv2.SpiderIPPool) {
	return func(p *spv2.SpiderIPPool) { p.Spec.Gateway = &gw }
}

func withExclude(ex ...string) func(*spv2.SpiderIPPool) {
	return func(p *spv2.SpiderIPPool) { p.Spec.ExcludeIPs = ex }
}

func withStatus(s string) func(*spv2.SpiderIPPool) {
	return func(p *spv2.SpiderIPPool) { p.Status.AllocatedIPs = &s }
}

func holder(name string, uid string) Holder {
	return Holder{Namespace: "default", Name: name, UID: uid, NIC: "eth0", ContainerID: "c-" + uid}
}

// seedPool reads a SpiderIPPool of the user's scenario from test/testdata/seed.
func seedPool(t *testing.T, file string) *spv2.SpiderIPPool {
	t.Helper()
	var p spv2.SpiderIPPool
	test.DecodeSeed(t, file, &p)
	return &p
}

func mustLoad(t *testing.T, p *spv2.SpiderIPPool) *Pool {
	t.Helper()
	got, err := Load(p)
	if err != nil {
		t.Fatalf("Load(%s): %v", p.Name, err)
	}
	return got
}

// TestLoadCountsAllocatableAddresses pins what totalIPCount counts: spec.ips less excludeIPs, the gateway,
// addresses outside the subnet and the IPv4 network/broadcast addresses.
func TestLoadCountsAllocatableAddresses(t *testing.T) {
	seed := seedPool(t, "cluster-a-ippool.yaml")
	for _, tc := range []struct {
		name  string
		pool  *spv2.SpiderIPPool
		total int64
	}{
		{"seed cluster-a: 200 addresses, gateway outside the subnet", seed, 200},
		{"empty ips means no address, as in Spiderpool", pool("p", "10.0.0.0/24", nil), 0},
		{"gateway inside ips is not allocatable", pool("p", "10.0.0.0/24", []string{"10.0.0.1-10.0.0.10"}, withGateway("10.0.0.1")), 9},
		{"excludeIPs ranges and singles", pool("p", "10.0.0.0/24", []string{"10.0.0.1-10.0.0.10"}, withExclude("10.0.0.2-10.0.0.4", "10.0.0.9")), 6},
		{"network and broadcast of the subnet are dropped", pool("p", "10.0.0.0/24", []string{"10.0.0.0-10.0.0.255"}), 254},
		{"a /31 keeps both addresses", pool("p", "10.0.0.0/31", []string{"10.0.0.0-10.0.0.1"}), 2},
		{"addresses outside the subnet are not allocatable", pool("p", "10.0.0.0/30", []string{"10.0.0.1-10.0.0.9"}), 2},
		{"ipv6 pool", pool("p", "fd00::/120", []string{"fd00::1-fd00::ff"}, withGateway("fd00::1")), 254},
		{"huge ipv6 pool saturates", pool("p", "fd00::/64", []string{"fd00::-fd00::ffff:ffff:ffff:ffff"}), 1<<63 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustLoad(t, tc.pool)
			if p.Total() != tc.total {
				t.Errorf("Total = %d, want %d", p.Total(), tc.total)
			}
		})
	}
}

func TestLoadRejectsUnusableSpec(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pool  *spv2.SpiderIPPool
		field string
	}{
		{"subnet", pool("p", "10.0.0.0/33", nil), "spec.subnet"},
		{"ipVersion against subnet", pool("p", "10.0.0.0/24", nil, func(p *spv2.SpiderIPPool) { p.Spec.IPVersion = ptr(int64(6)) }), "spec.ipVersion"},
		{"ips entry", pool("p", "10.0.0.0/24", []string{"10.0.0.1", "nope"}), "spec.ips[1]"},
		{"ips of the other family", pool("p", "10.0.0.0/24", []string{"fd00::1"}), "spec.ips[0]"},
		{"excludeIPs entry", pool("p", "10.0.0.0/24", []string{"10.0.0.1"}, withExclude("10.0.0.9-10.0.0.1")), "spec.excludeIPs[0]"},
		{"gateway", pool("p", "10.0.0.0/24", []string{"10.0.0.1"}, withGateway("fd00::1")), "spec.gateway"},
		{"gateway with a zone", pool("p", "fd00::/120", []string{"fd00::1-fd00::9"}, withGateway("fd00::fe%eth0")), "spec.gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.pool)
			var se *SpecError
			if !errors.As(err, &se) || se.Field != tc.field {
				t.Fatalf("Load error = %v, want a SpecError on %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), `"p"`) {
				t.Errorf("error %q does not name the pool", err)
			}
		})
	}
}

// TestLoadRefusesMalformedStatus: a status someone else wrote in another shape is refused, never parsed
// leniently (a rewrite would lose their data).
func TestLoadRefusesMalformedStatus(t *testing.T) {
	for _, tc := range []struct {
		name, status, want string
	}{
		{"not JSON", "172.110.1.5", "not a JSON object"},
		{"a JSON list", `["172.110.1.5"]`, "not a JSON object"},
		{"value of the wrong type", `{"172.110.1.5":"default/a"}`, "not a JSON object"},
		{"key not an address", `{"pod-a":{"interface":"eth0","pod":"default/a","podUid":"u"}}`, "is not an IP address"},
		{"key with a prefix length", `{"172.110.1.5/24":{"interface":"eth0","pod":"default/a","podUid":"u"}}`, "is not an IP address"},
		{"key not canonical", `{"fd00::0001":{"interface":"eth0","pod":"default/a","podUid":"u"}}`, "canonical"},
		{"key of the other family", `{"fd00::1":{"interface":"eth0","pod":"default/a","podUid":"u"}}`, "not IPv4"},
		{"pod not namespace/name", `{"172.110.1.5":{"interface":"eth0","pod":"a","podUid":"u"}}`, "not namespace/name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(pool("cluster-a", "172.110.1.0/24", []string{"172.110.1.1-172.110.1.200"}, withStatus(tc.status)))
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("Load error = %v, want a StatusError", err)
			}
			for _, want := range []string{tc.want, `"cluster-a"`, "refusing to allocate", "never overwrites"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestLoadAcceptsSpiderpoolStatus(t *testing.T) {
	st := `{"172.110.1.7":{"interface":"eth0","pod":"kube-system/a","podUid":"u1"},"172.110.1.9":{"interface":"net1","pod":"default/b","podUid":"u2","containerID":"c2"}}`
	p := mustLoad(t, pool("cluster-a", "172.110.1.0/24", []string{"172.110.1.1-172.110.1.200"}, withStatus(st)))
	if p.Allocated() != 2 || p.Free() != 198 {
		t.Fatalf("Allocated %d Free %d, want 2 and 198", p.Allocated(), p.Free())
	}
	for _, empty := range []string{"", "{}"} {
		p := mustLoad(t, pool("cluster-a", "172.110.1.0/24", []string{"172.110.1.1-172.110.1.200"}, withStatus(empty)))
		if p.Allocated() != 0 {
			t.Errorf("status %q: Allocated %d, want 0", empty, p.Allocated())
		}
	}
}

// TestLoadHoldsSpiderpoolV122Records: Spiderpool v1.2.2 writes {"pod","podUid"} without an interface.
// Such a record is held (never given to another pod), no DEL frees it, garbage collection frees it once
// its pod is gone, and a StatefulSet pod of that name takes it back.
func TestLoadHoldsSpiderpoolV122Records(t *testing.T) {
	st := `{"172.110.1.1":{"pod":"db/web-0","podUid":"old"},"172.110.1.2":{"pod":"default/a","podUid":"ua"}}`
	p := mustLoad(t, pool("sp", "172.110.1.0/24", []string{"172.110.1.1-172.110.1.3"}, withStatus(st)))
	if p.Allocated() != 2 || p.Free() != 1 {
		t.Fatalf("Allocated %d Free %d, want 2 and 1", p.Allocated(), p.Free())
	}
	if a, _, err := p.Allocate(holder("new", "un")); err != nil || a.String() != "172.110.1.3" {
		t.Fatalf("a new pod got %v %v; want the one address Spiderpool's records leave", a, err)
	}
	if freed := p.Release(Holder{Namespace: "default", Name: "a", UID: "ua", NIC: "eth0", ContainerID: "c"}); len(freed) != 0 {
		t.Fatalf("a DEL freed Spiderpool's record: %v", freed)
	}
	orphans, _ := Collectable("sp", p.Allocations(), Cluster{Pods: LivePods{"db/web-0": "old", "default/new": "un"}})
	if len(orphans) != 1 || orphans[0].IP.String() != "172.110.1.2" {
		t.Fatalf("orphans %v; want default/a's record, whose pod is gone", orphans)
	}
	if changed, err := p.Reclaim(Holder{Namespace: "db", Name: "web-0", UID: "new0", NIC: "eth0"}, netip.MustParseAddr("172.110.1.1")); err != nil || !changed {
		t.Fatalf("the StatefulSet pod taking back its Spiderpool record: %v %v", changed, err)
	}
}

func TestAllocateNeverGivesGatewayExcludedOrOutsideAddresses(t *testing.T) {
	p := mustLoad(t, pool("p", "10.0.0.0/24", []string{"10.0.0.0-10.0.0.8", "10.0.1.1"}, withGateway("10.0.0.1"), withExclude("10.0.0.3", "10.0.0.5-10.0.0.6")))
	want := []string{"10.0.0.2", "10.0.0.4", "10.0.0.7", "10.0.0.8"}
	var got []string
	for i := 0; ; i++ {
		a, changed, err := p.Allocate(holder("pod", string(rune('a'+i))))
		if err != nil {
			if !IsExhausted(err) {
				t.Fatal(err)
			}
			break
		}
		if !changed {
			t.Errorf("new allocation %s reported unchanged", a)
		}
		got = append(got, a.String())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("allocated %v, want %v", got, want)
	}
}

func TestAllocateIsIdempotentPerPodUIDAndInterface(t *testing.T) {
	p := mustLoad(t, pool("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.20"}))
	h := holder("a", "uid-a")
	first, _, err := p.Allocate(h)
	if err != nil {
		t.Fatal(err)
	}
	again, changed, err := p.Allocate(h)
	if err != nil || again != first || changed {
		t.Fatalf("repeat = %s changed=%v err=%v, want %s unchanged", again, changed, err, first)
	}
	// A new sandbox of the same pod keeps the address and the record follows the sandbox.
	h2 := h
	h2.ContainerID = "c-new"
	again, changed, err = p.Allocate(h2)
	if err != nil || again != first || !changed {
		t.Fatalf("new sandbox = %s changed=%v err=%v, want %s changed", again, changed, err, first)
	}
	if got := p.Allocations()[first.String()].ContainerID; got != "c-new" {
		t.Errorf("container ID = %q, want c-new", got)
	}
	// Another interface of the same pod gets another address.
	net1 := h
	net1.NIC = "net1"
	other, _, err := p.Allocate(net1)
	if err != nil || other == first {
		t.Fatalf("net1 got %s (%v), want an address other than %s", other, err, first)
	}
	// A pod recreated under the same name (new UID) gets another address.
	re := holder("a", "uid-a2")
	other2, _, err := p.Allocate(re)
	if err != nil || other2 == first || other2 == other {
		t.Fatalf("recreated pod got %s (%v)", other2, err)
	}
	if p.Allocated() != 3 {
		t.Errorf("Allocated = %d, want 3", p.Allocated())
	}
}

func TestAllocateNeedsAFullHolder(t *testing.T) {
	p := mustLoad(t, pool("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.20"}))
	for _, h := range []Holder{{Namespace: "d", Name: "a", NIC: "eth0"}, {Namespace: "d", Name: "a", UID: "u"}, {Name: "a", UID: "u", NIC: "eth0"}} {
		if _, _, err := p.Allocate(h); err == nil {
			t.Errorf("Allocate(%+v) succeeded", h)
		}
	}
}

func TestExhaustedErrorNamesPoolAndCounts(t *testing.T) {
	p := mustLoad(t, pool("cluster-a", "172.110.1.0/24", []string{"172.110.1.1-172.110.1.2"}))
	for _, uid := range []string{"u1", "u2"} {
		if _, _, err := p.Allocate(holder(uid, uid)); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := p.Allocate(holder("u3", "u3"))
	var ee *ExhaustedError
	if !errors.As(err, &ee) || ee.Total != 2 || ee.Allocated != 2 {
		t.Fatalf("err = %v, want ExhaustedError 2 of 2", err)
	}
	if want := `SpiderIPPool "cluster-a" is exhausted: 2 of 2 allocatable addresses are allocated`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestReleaseMatchesSandboxThenUID(t *testing.T) {
	st := `{"10.0.0.2":{"interface":"eth0","pod":"d/a","podUid":"ua","containerID":"c1"},` +
		`"10.0.0.3":{"interface":"eth0","pod":"d/b","podUid":"ub"},` +
		`"10.0.0.4":{"interface":"net1","pod":"d/a","podUid":"ua","containerID":"c1"}}`
	for _, tc := range []struct {
		name string
		h    Holder
		want []string
	}{
		{"same sandbox and interface", Holder{Namespace: "d", Name: "a", UID: "ua", NIC: "eth0", ContainerID: "c1"}, []string{"10.0.0.2"}},
		{"late DEL of a replaced sandbox frees nothing", Holder{Namespace: "d", Name: "a", UID: "ua", NIC: "eth0", ContainerID: "c0"}, nil},
		{"DEL without container ID matches the UID", Holder{Namespace: "d", Name: "a", UID: "ua", NIC: "eth0"}, []string{"10.0.0.2"}},
		{"record without container ID matches the UID", Holder{Namespace: "d", Name: "b", UID: "ub", NIC: "eth0", ContainerID: "cx"}, []string{"10.0.0.3"}},
		{"other UID frees nothing", Holder{Namespace: "d", Name: "b", UID: "other", NIC: "eth0", ContainerID: "cx"}, nil},
		{"other interface frees nothing", Holder{Namespace: "d", Name: "a", UID: "ua", NIC: "eth1", ContainerID: "c1"}, nil},
		{"no UID and no container ID frees nothing", Holder{Namespace: "d", Name: "b", NIC: "eth0"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustLoad(t, pool("p", "10.0.0.0/24", []string{"10.0.0.2-10.0.0.9"}, withStatus(st)))
			if would := p.WouldRelease(tc.h, false); would != (len(tc.want) > 0) || p.Allocated() != 3 {
				t.Errorf("WouldRelease = %v (then %d allocated), want %v and nothing changed", would, p.Allocated(), len(tc.want) > 0)
			}
			var got []string
			for _, a := range p.Release(tc.h) {
				got = append(got, a.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("Release freed %v, want %v", got, tc.want)
			}
			if p.Allocated() != int64(3-len(tc.want)) || p.Free() != int64(8-3+len(tc.want)) {
				t.Errorf("after release Allocated %d Free %d", p.Allocated(), p.Free())
			}
		})
	}
}

func TestReleaseSandboxKeepsRecordsWithoutOne(t *testing.T) {
	st := `{"10.0.0.2":{"interface":"eth0","pod":"d/a","podUid":"ua","containerID":"c1"},` +
		`"10.0.0.3":{"interface":"eth0","pod":"d/b","podUid":"ub","node":"n1"},` +
		`"10.0.0.4":{"interface":"eth0","pod":"d/c","podUid":"uc","containerID":"c3","node":"n2"}}`
	for _, tc := range []struct {
		name string
		h    Holder
		want []string
	}{
		{"the record's own sandbox", Holder{Namespace: "d", Name: "a", UID: "ua", NIC: "eth0", ContainerID: "c1"}, []string{"10.0.0.2"}},
		{"another sandbox of the pod", Holder{Namespace: "d", Name: "a", UID: "ua", NIC: "eth0", ContainerID: "c0"}, nil},
		{"a pre-allocation no ADD used is kept", Holder{Namespace: "d", Name: "b", UID: "ub", NIC: "eth0", ContainerID: "failed", Node: "n1"}, nil},
		{"no container ID frees nothing", Holder{Namespace: "d", Name: "a", UID: "ua", NIC: "eth0"}, nil},
		{"another node's sandbox is not this DEL's", Holder{Namespace: "d", Name: "c", UID: "uc", NIC: "eth0", ContainerID: "c3", Node: "n1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustLoad(t, pool("p", "10.0.0.0/24", []string{"10.0.0.2-10.0.0.9"}, withStatus(st)))
			if would := p.WouldRelease(tc.h, true); would != (len(tc.want) > 0) || p.Allocated() != 3 {
				t.Errorf("WouldRelease(sandbox) = %v (then %d allocated), want %v and nothing changed", would, p.Allocated(), len(tc.want) > 0)
			}
			var got []string
			for _, a := range p.ReleaseSandbox(tc.h) {
				got = append(got, a.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") || p.Allocated() != int64(3-len(tc.want)) {
				t.Fatalf("ReleaseSandbox freed %v (%d left), want %v", got, p.Allocated(), tc.want)
			}
		})
	}
}

func TestReleasedAddressIsReused(t *testing.T) {
	p := mustLoad(t, pool("p", "10.0.0.0/24", []string{"10.0.0.2-10.0.0.3"}))
	a, _, _ := p.Allocate(holder("a", "ua"))
	if _, _, err := p.Allocate(holder("b", "ub")); err != nil {
		t.Fatal(err)
	}
	p.Release(holder("a", "ua"))
	c, _, err := p.Allocate(holder("c", "uc"))
	if err != nil || c != a {
		t.Fatalf("after release got %s (%v), want %s", c, err, a)
	}
}

func TestReleaseIfHeldOnlyFreesTheSameRecord(t *testing.T) {
	p := mustLoad(t, pool("p", "10.0.0.0/24", []string{"10.0.0.2-10.0.0.9"}))
	a, _, _ := p.Allocate(holder("a", "ua"))
	stale := holder("a", "old").allocation()
	if p.ReleaseIfHeld(a, stale) {
		t.Fatal("freed an address that changed hands")
	}
	if !p.ReleaseIfHeld(a, holder("a", "ua").allocation()) || p.Allocated() != 0 {
		t.Fatal("did not free the address it holds")
	}
	if p.ReleaseIfHeld(a, holder("a", "ua").allocation()) {
		t.Fatal("freed twice")
	}
}

func TestStatusIsSpiderpoolShape(t *testing.T) {
	p := mustLoad(t, pool("cluster-a", "172.110.1.0/24", []string{"172.110.1.1-172.110.1.200"}, withGateway("172.110.0.1")))
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.AllocatedIPs != nil || *st.AllocatedIPCount != 0 || *st.TotalIPCount != 200 {
		t.Fatalf("empty pool status = %+v", st)
	}
	h := Holder{Namespace: "kube-system", Name: "a", UID: "u1", NIC: "eth0"}
	if _, _, err := p.Allocate(h); err != nil {
		t.Fatal(err)
	}
	st, _ = p.Status()
	want := `{"172.110.1.1":{"interface":"eth0","pod":"kube-system/a","podUid":"u1"}}`
	if st.AllocatedIPs == nil || *st.AllocatedIPs != want || *st.AllocatedIPCount != 1 || *st.TotalIPCount != 200 {
		t.Fatalf("status = %v %v %v, want %s 1 200", *st.AllocatedIPs, *st.AllocatedIPCount, *st.TotalIPCount, want)
	}
	if !p.StatusCurrent(st) {
		t.Error("StatusCurrent of its own status is false")
	}
	// Round trip: the written status loads back to the same allocations.
	back := mustLoad(t, pool("cluster-a", "172.110.1.0/24", []string{"172.110.1.1-172.110.1.200"}, withStatus(*st.AllocatedIPs)))
	if a, ok := back.Find(h); !ok || a != netip.MustParseAddr("172.110.1.1") {
		t.Errorf("round trip lost the allocation: %v %v", a, ok)
	}
}

// TestShrunkPoolKeepsOutsideAllocations: an allocation outside spec.ips after a shrink stays until released
// and does not count against the remaining addresses.
func TestShrunkPoolKeepsOutsideAllocations(t *testing.T) {
	st := `{"10.0.0.50":{"interface":"eth0","pod":"d/a","podUid":"ua"}}`
	p := mustLoad(t, pool("p", "10.0.0.0/24", []string{"10.0.0.2"}, withStatus(st)))
	if p.Allocated() != 1 || p.Free() != 1 {
		t.Fatalf("Allocated %d Free %d, want 1 and 1", p.Allocated(), p.Free())
	}
	if a, _, err := p.Allocate(holder("b", "ub")); err != nil || a.String() != "10.0.0.2" {
		t.Fatalf("got %s %v", a, err)
	}
	if a, ok := p.Find(Holder{UID: "ua", NIC: "eth0"}); !ok || a.String() != "10.0.0.50" {
		t.Fatalf("lost outside allocation")
	}
}

// A pre-allocation is a record without a container ID; the first sandbox adopts it, and adoption never
// gives an address.
func TestAdoptOnlyRecordsTheSandboxOnAPreallocation(t *testing.T) {
	p := mustLoad(t, pool("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.20"}))
	pre := holder("a", "uid-a")
	pre.ContainerID = ""
	a, changed, err := p.Allocate(pre)
	if err != nil || !changed {
		t.Fatalf("pre-allocation: %s changed=%v err=%v", a, changed, err)
	}
	if got, ok := p.Preallocated(pre); !ok || got != a {
		t.Fatalf("Preallocated = %s %v, want %s", got, ok, a)
	}
	sandbox := pre
	sandbox.ContainerID = "c1"
	if got, ok := p.Preallocated(sandbox); !ok || got != a {
		t.Fatalf("the sandbox does not see its pod's pre-allocation: %s %v", got, ok)
	}
	if !p.Adopt(sandbox) {
		t.Fatal("Adopt did not record the sandbox")
	}
	if rec := p.Allocations()[a.String()]; rec.ContainerID != "c1" || rec.PodUID != "uid-a" || rec.NIC != "eth0" {
		t.Errorf("record after Adopt = %+v", rec)
	}
	if _, ok := p.Preallocated(sandbox); ok {
		t.Error("an adopted address is still reported as a pre-allocation")
	}
	// A second sandbox does not take the record over by adoption (that is Allocate's move).
	other := sandbox
	other.ContainerID = "c2"
	if p.Adopt(other) {
		t.Error("Adopt moved an address that belongs to a sandbox")
	}
	// Once a DEL freed the pre-allocation, a late adoption gives nothing.
	p2 := mustLoad(t, pool("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.20"}))
	if _, _, err := p2.Allocate(pre); err != nil {
		t.Fatal(err)
	}
	if freed := p2.Release(sandbox); len(freed) != 1 {
		t.Fatalf("DEL of the sandbox freed %v, want the pre-allocation (matched by UID)", freed)
	}
	if p2.Adopt(sandbox) || p2.Allocated() != 0 {
		t.Errorf("a late Adopt changed the pool: %d allocated", p2.Allocated())
	}
	if p.Adopt(Holder{Namespace: "d", Name: "a", UID: "uid-a", NIC: "eth0"}) {
		t.Error("Adopt without a container ID changed something")
	}
}

// Clone stands in for Load of the status the pool would write, so a writer can keep changing the pool it
// last wrote without parsing its status again: after any sequence of changes, the clone equals that
// reload, and changing the clone leaves the original alone.
func TestCloneIsTheReloadedPool(t *testing.T) {
	spec := pool("p", "10.0.0.0/24", []string{"10.0.0.2-10.0.0.60"}, withGateway("10.0.0.1"), withExclude("10.0.0.7"),
		withStatus(`{"10.0.0.200":{"interface":"eth0","pod":"d/outside","podUid":"uo"}}`)) // shrunk pool
	p := mustLoad(t, spec)
	for i := range 40 {
		h := holder(fmt.Sprintf("p%d", i), fmt.Sprintf("u%d", i))
		if i%7 == 3 {
			h.ContainerID = "" // a pre-allocation
		}
		if _, _, err := p.Allocate(h); err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			p.Release(holder(fmt.Sprintf("p%d", i-2), fmt.Sprintf("u%d", i-2)))
		}
		if i%7 == 3 {
			p.Adopt(holder(fmt.Sprintf("p%d", i), fmt.Sprintf("u%d", i)))
		}
		st, err := p.Status()
		if err != nil {
			t.Fatal(err)
		}
		written := spec.DeepCopy()
		written.Status = st
		if got, want := p.Clone(), mustLoad(t, written); !reflect.DeepEqual(got, want) {
			t.Fatalf("after change %d: clone\n%+v\nreload\n%+v", i, got, want)
		}
	}
	c := p.Clone()
	before := p.Allocations()
	if _, _, err := c.Allocate(holder("late", "ul")); err != nil {
		t.Fatal(err)
	}
	c.Release(holder("p0", "u0"))
	if !reflect.DeepEqual(p.Allocations(), before) {
		t.Error("changing the clone changed the original")
	}
}

// BenchmarkReleaseThatMatchesNothing: what a pool's writer pays for a DEL that holds nothing in the pool
// (every DEL asks every pool), on a pool of 4000 allocations: the scan of its shared parse
// (WouldRelease), against the copy (Clone) a change would need first.
func BenchmarkReleaseThatMatchesNothing(b *testing.B) {
	p, err := Load(pool("p", "10.0.0.0/16", []string{"10.0.0.1-10.0.255.254"}))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 4000 {
		if _, _, err := p.Allocate(Holder{Namespace: "d", Name: fmt.Sprint("p", i), UID: fmt.Sprint("u", i), NIC: "eth0", ContainerID: fmt.Sprint("c", i), Node: "n1"}); err != nil {
			b.Fatal(err)
		}
	}
	stranger := Holder{Namespace: "d", Name: "x", UID: "ux", NIC: "eth0", ContainerID: "cx", Node: "n1"}
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if p.WouldRelease(stranger, false) {
				b.Fatal("a stranger's release matched")
			}
		}
	})
	b.Run("copy", func(b *testing.B) {
		for b.Loop() {
			if p.Clone().Allocated() != 4000 {
				b.Fatal("the copy lost allocations")
			}
		}
	})
}
