// Package cache keeps what the UnderlayNetwork plugin knows between scheduling cycles: every
// SpiderIPPool reduced to its capacity and eligibility, every network (SpiderMultusConfig or
// NetworkAttachmentDefinition) reduced to its NICs and pools, and the pods placed on a pool that do not
// yet hold an address in its status (assumed by this scheduler, or bound but not yet started). It has no
// client: the plugin feeds it from informers and from the objects of cluster events, and reads it in
// PreFilter.
package cache

import (
	"fmt"
	"math"
	"net/netip"
	"slices"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/iprange"
	"github.com/underlink/underlink/pkg/poolchoice"
	"github.com/underlink/underlink/pkg/reservedip"
)

// Pool is one SpiderIPPool as placement sees it: its eligibility as pkg/poolchoice reads it, and its
// capacity. It is computed once per version of the object and never changed afterwards, so cycles share
// it without locks.
type Pool struct {
	// Pool is the pool's choice and eligibility (Name, Family, Default, Disabled, OnNode, AdmitsPod).
	*poolchoice.Pool
	// ResourceVersion of the object the pool was computed from.
	ResourceVersion string
	// Total is the number of addresses pods may get: spec.ips less spec.excludeIPs and the gateway.
	Total int64
	// Allocated is the number of addresses held by pods, from status.allocatedIPs.
	Allocated int64
	// HoldersKnown is false when status.allocatedIPs could not be read and Allocated comes from
	// status.allocatedIPCount: then no pod can be matched to its address.
	HoldersKnown bool
	// Uncountable, when not empty, says why the pool's addresses cannot be counted: placement does not
	// use it.
	Uncountable string
	// Notes are fields that could not be read but were worked around, for logs.
	Notes []string

	// ReservedFree is the number of the pool's addresses SpiderReservedIPs reserve that no pod holds:
	// taken, for placement, though no pod holds them (Store.SetReservedIPs).
	ReservedFree int64

	holders map[string]int      // pod UID → addresses it holds in the pool
	named   map[string][]string // "namespace/name" → the pod UID of each of its records
	usable  iprange.Set         // spec.ips less spec.excludeIPs and the gateway
	held    []netip.Addr        // the addresses in status.allocatedIPs
}

// withReserved returns a copy of pl whose ReservedFree counts the addresses of set (of the pool's
// family) that are usable and not held.
func (pl *Pool) withReserved(set iprange.Set) *Pool {
	c := *pl
	_, c.ReservedFree = reservedip.InPool(pl.usable, set, slices.Values(pl.held))
	return &c
}

// NewPool computes the Pool of a SpiderIPPool. It never fails: what cannot be read is recorded in
// Problem (a selector: the pool serves nobody), Uncountable or Notes (a fallback was used).
func NewPool(p *spv2.SpiderIPPool) *Pool {
	pl := &Pool{Pool: poolchoice.NewPool(p), ResourceVersion: p.ResourceVersion}
	pl.countTotal(p)
	pl.countAllocated(p)
	return pl
}

func (pl *Pool) uncountable(format string, args ...any) {
	pl.Uncountable = fmt.Sprintf(format, args...)
}

// countTotal counts spec.ips − spec.excludeIPs − spec.gateway, the same addresses IPAM gives out. When
// the spec cannot be read it falls back to status.totalIPCount as the IPAM side wrote it.
func (pl *Pool) countTotal(p *spv2.SpiderIPPool) {
	ips, err := iprange.ParseSet(p.Spec.IPs, pl.Family)
	var excl iprange.Set
	if err == nil {
		excl, err = iprange.ParseSet(p.Spec.ExcludeIPs, pl.Family)
		if err != nil {
			err = fmt.Errorf("spec.excludeIPs: %w", err)
		}
	} else {
		err = fmt.Errorf("spec.ips: %w", err)
	}
	if err == nil {
		usable := ips.Minus(excl)
		if p.Spec.Gateway != nil {
			if gw, gerr := iprange.Parse(*p.Spec.Gateway); gerr == nil {
				usable = usable.Minus(iprange.NewSet(gw))
			}
		}
		pl.usable = usable
		n := usable.Size()
		if n.IsInt64() {
			pl.Total = n.Int64()
		} else {
			pl.Total = math.MaxInt64 // an IPv6 /64 never runs out
		}
		return
	}
	if p.Status.TotalIPCount != nil {
		pl.Total = *p.Status.TotalIPCount
		pl.Notes = append(pl.Notes, fmt.Sprintf("%v; using status.totalIPCount %d", err, pl.Total))
		return
	}
	pl.uncountable("cannot count its addresses: %v, and status.totalIPCount is not set", err)
}

// countAllocated reads status.allocatedIPs to learn which pods hold addresses. A status that cannot be
// read falls back to status.allocatedIPCount (then no pod can be matched to an address, so every pod
// placed on the pool counts as waiting for one: safe, never an overcommit).
func (pl *Pool) countAllocated(p *spv2.SpiderIPPool) {
	allocs, err := spv2.ParseAllocations(p.Status)
	if err == nil {
		pl.Allocated = int64(len(allocs))
		pl.HoldersKnown = true
		if len(allocs) > 0 {
			pl.holders = make(map[string]int, len(allocs))
			pl.named = make(map[string][]string, len(allocs))
			pl.held = make([]netip.Addr, 0, len(allocs))
			for key, a := range allocs {
				pl.holders[a.PodUID]++
				pl.named[a.NamespacedName] = append(pl.named[a.NamespacedName], a.PodUID)
				if ip, err := netip.ParseAddr(key); err == nil {
					pl.held = append(pl.held, ip)
				}
			}
		}
		return
	}
	if p.Status.AllocatedIPCount != nil {
		pl.Allocated = *p.Status.AllocatedIPCount
		pl.Notes = append(pl.Notes, fmt.Sprintf("%v; using status.allocatedIPCount %d", err, pl.Allocated))
		return
	}
	pl.uncountable("%v, and status.allocatedIPCount is not set", err)
}

// Held returns how many addresses of the pool the pod with uid holds.
func (pl *Pool) Held(uid string) int { return pl.holders[uid] }

// KeptFor returns how many addresses of the pool are recorded for the pod name ("namespace/name")
// under another UID than uid: for a StatefulSet pod, the addresses kept for it while it was recreated,
// which its ADD takes back (cni/IPAM.md, "StatefulSet fixed addresses").
func (pl *Pool) KeptFor(name, uid string) int {
	n := 0
	for _, u := range pl.named[name] {
		if u != uid {
			n++
		}
	}
	return n
}

// Capacity is Total − Allocated − ReservedFree: the addresses no pod holds and no SpiderReservedIP
// reserves, before counting pods still starting.
func (pl *Pool) Capacity() int64 { return pl.Total - pl.Allocated - pl.ReservedFree }

// MayHelp reports whether the change from old to new can make a pod that could not get an address from
// the pool get one: the pool appeared, gained free addresses (ips grew, allocatedIPCount dropped) or
// changed whom it admits. old is nil for a new pool.
func MayHelp(old, new *Pool) bool {
	if new == nil {
		return false
	}
	if old == nil {
		return true
	}
	return new.Capacity() > old.Capacity() || old.Uncountable != new.Uncountable || !old.SameEligibility(new.Pool)
}
