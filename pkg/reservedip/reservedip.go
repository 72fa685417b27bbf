// Package reservedip reads SpiderReservedIPs: the addresses no SpiderIPPool gives to a pod. The agent's
// allocations, the scheduler's capacity count and admission's warnings read them the same way.
package reservedip

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"net/netip"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/iprange"
)

// Sets are the unions of the addresses the SpiderReservedIPs items reserve, by family (4 and 6), for
// Pool.SetReserved. A SpiderReservedIP's family is spec.ipVersion, else its first entry's. One that
// cannot be read (an entry that is not an address or range, or of the other family) reserves nothing
// and is returned in errs: the CRD's validation and admission refuse such objects, so one can only
// exist from before them.
func Sets(items []spv2.SpiderReservedIP) (sets map[int]iprange.Set, errs []error) {
	rs := map[int][]iprange.Range{}
	for i := range items {
		r := &items[i]
		if r.DeletionTimestamp != nil || len(r.Spec.IPs) == 0 {
			continue
		}
		fam := 0
		if r.Spec.IPVersion != nil {
			fam = int(*r.Spec.IPVersion)
		}
		s, err := iprange.ParseSet(r.Spec.IPs, fam)
		if err != nil {
			errs = append(errs, fmt.Errorf("SpiderReservedIP %s: %s: %w", r.Name, field(err), err))
			continue
		}
		if ranges := s.Ranges(); len(ranges) > 0 {
			f := iprange.FamilyOf(ranges[0].First)
			rs[f] = append(rs[f], ranges...)
		}
	}
	return map[int]iprange.Set{4: iprange.NewSet(rs[4]...), 6: iprange.NewSet(rs[6]...)}, errs
}

// InPool returns the addresses of reserved that the pool may give out (usable), and how many of them no
// allocation holds (held yields the pool's allocated addresses): what the pool's free count loses to
// reservations.
func InPool(usable, reserved iprange.Set, held iter.Seq[netip.Addr]) (inPool iprange.Set, unheld int64) {
	inPool = usable.Minus(usable.Minus(reserved))
	if inPool.Empty() {
		return inPool, 0
	}
	n := inPool.Size()
	if !n.IsInt64() {
		n.SetInt64(math.MaxInt64)
	}
	unheld = n.Int64()
	for a := range held {
		if inPool.Contains(a) {
			unheld--
		}
	}
	return inPool, unheld
}

func field(err error) string {
	var ee *iprange.EntryError
	if errors.As(err, &ee) {
		return fmt.Sprintf("spec.ips[%d]", ee.Index)
	}
	return "spec.ips"
}
