package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/underlink/underlink/pkg/iprange"
)

// TestReservedAddressesAreNeverGiven: a SpiderReservedIP's addresses are skipped by every new
// allocation and do not count as free; an allocation already on one stays its holder's; the pool is
// exhausted when only reserved addresses are left, and says so.
func TestReservedAddressesAreNeverGiven(t *testing.T) {
	p := mustLoad(t, pool("r", "172.110.1.0/24", []string{"172.110.1.10-172.110.1.15"},
		withStatus(`{"172.110.1.11":{"interface":"eth0","pod":"default/early","podUid":"e"}}`)))
	reserved, _ := iprange.ParseSet([]string{"172.110.1.10-172.110.1.12", "172.110.9.1"}, 4)
	p.SetReserved(reserved)
	if p.Total() != 6 || p.Free() != 3 {
		t.Fatalf("Total %d Free %d; want 6 and 3 (.13-.15: .10 and .12 reserved, .11 held)", p.Total(), p.Free())
	}
	var got []string
	for i := range 3 {
		a, _, err := p.Allocate(holder("p", string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != "172.110.1.13 172.110.1.14 172.110.1.15" {
		t.Fatalf("allocated %v; want the three unreserved addresses", got)
	}
	_, _, err := p.Allocate(holder("p", "z"))
	var ee *ExhaustedError
	if !errors.As(err, &ee) || ee.Reserved != 2 || !strings.Contains(err.Error(), "2 reserved by SpiderReservedIPs") {
		t.Fatalf("with only reserved addresses left: %v", err)
	}
	// The early pod keeps .11; released, it is reserved, not free.
	if a, _, err := p.Allocate(Holder{Namespace: "default", Name: "early", UID: "e", NIC: "eth0"}); err != nil || a != netip.MustParseAddr("172.110.1.11") {
		t.Fatalf("the early pod's ADD again: %v %v", a, err)
	}
	p.Release(Holder{Namespace: "default", Name: "early", UID: "e", NIC: "eth0"})
	if p.Free() != 0 {
		t.Fatalf("Free after releasing a reserved address = %d, want 0", p.Free())
	}
	// A StatefulSet pod's kept address that is now reserved is not given back.
	if _, err := p.Reclaim(Holder{Namespace: "default", Name: "early", UID: "e2", NIC: "eth0"}, netip.MustParseAddr("172.110.1.11")); err == nil || !strings.Contains(err.Error(), "SpiderReservedIP reserves it") {
		t.Fatalf("Reclaim of a reserved address: %v", err)
	}
	// Unreserved again: free.
	p.SetReserved(iprange.Set{})
	if p.Free() != 3 {
		t.Fatalf("Free without reservations = %d, want 3", p.Free())
	}
}
