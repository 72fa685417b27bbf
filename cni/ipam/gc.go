package ipam

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// LivePods maps "namespace/name" of every pod that exists to its UID.
type LivePods map[string]string

// Orphan is an allocation whose pod is gone or is now another pod under the same name.
type Orphan struct {
	Pool       string
	IP         netip.Addr
	Allocation spv2.PoolIPAllocation
	Reason     string
}

// Orphans lists the allocations of a pool that garbage collection may free: those whose pod does not
// exist, or exists with another UID. An allocation whose pod exists with its UID is never listed, nor
// one without a UID whose pod name exists (it cannot be told apart from the live pod).
//
// The caller must read the pool before listing the pods: an address is given only to a pod that exists,
// so a pod missing from a later list has been deleted, not "not created yet".
func Orphans(pool string, allocs spv2.PoolIPAllocations, live LivePods) []Orphan {
	var out []Orphan
	for key, a := range allocs {
		ip, err := netip.ParseAddr(key)
		if err != nil {
			continue // Load refuses such a status; never act on what cannot be read
		}
		uid, exists := live[a.NamespacedName]
		switch {
		case !exists:
			out = append(out, Orphan{Pool: pool, IP: ip, Allocation: a, Reason: fmt.Sprintf("pod %s no longer exists", a.NamespacedName)})
		case a.PodUID != "" && uid != a.PodUID:
			out = append(out, Orphan{Pool: pool, IP: ip, Allocation: a, Reason: fmt.Sprintf("pod %s is now UID %s; the address was given to UID %s", a.NamespacedName, uid, a.PodUID)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
	return out
}

type orphanKey struct {
	pool string
	ip   netip.Addr
	a    spv2.PoolIPAllocation
}

// Grace remembers since when each orphan has been seen, so an address is freed only after it was an
// orphan in every pass for at least Period. It starts empty after a restart, which only delays frees.
type Grace struct {
	Period time.Duration
	first  map[orphanKey]time.Time
}

// Due records this pass's orphans (all pools at once) and returns those seen continuously for at least
// Period. Orphans not in this pass are forgotten: their allocation changed or their pod came back.
func (g *Grace) Due(now time.Time, orphans []Orphan) []Orphan {
	next := make(map[orphanKey]time.Time, len(orphans))
	var due []Orphan
	for _, o := range orphans {
		k := orphanKey{o.Pool, o.IP, o.Allocation}
		first, ok := g.first[k]
		if !ok {
			first = now
		}
		next[k] = first
		if now.Sub(first) >= g.Period {
			due = append(due, o)
		}
	}
	g.first = next
	return due
}

// Pending is the number of orphans waiting out their grace period.
func (g *Grace) Pending() int { return len(g.first) }
