package ipam

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/iprange"
	"github.com/underlink/underlink/pkg/reservedip"
)

// Holder is a pod interface that asks for, holds or gives back an address.
type Holder struct {
	// Namespace and Name are the pod's.
	Namespace, Name string
	// UID is the pod's UID: a pod recreated under the same name is another holder.
	UID string
	// NIC is the interface in the pod, e.g. eth0.
	NIC string
	// ContainerID is the sandbox asking (CNI_CONTAINERID); optional on release.
	ContainerID string
	// Node is the node of the agent asking: recorded with the allocation, and on release an allocation
	// recorded on another node is not this holder's.
	Node string
}

// NamespacedName is "namespace/name", the pod key Spiderpool writes in allocations.
func (h Holder) NamespacedName() string { return h.Namespace + "/" + h.Name }

func (h Holder) allocation() spv2.PoolIPAllocation {
	return spv2.PoolIPAllocation{NIC: h.NIC, NamespacedName: h.NamespacedName(), PodUID: h.UID, ContainerID: h.ContainerID, Node: h.Node}
}

// Pool is one SpiderIPPool parsed for allocation: its allocatable addresses and its current allocations.
// Allocate and Release change the in-memory allocations; Status renders them for the apiserver. A Pool
// is not safe for concurrent use.
type Pool struct {
	Name    string
	Family  int
	Subnet  netip.Prefix
	Gateway netip.Addr // invalid when the pool has no gateway
	Routes  []spv2.Route

	usable iprange.Set
	// avail is usable less the addresses a SpiderReservedIP reserves: what a new holder may get.
	avail iprange.Set
	// reserved are the usable addresses a SpiderReservedIP reserves (SetReserved), and reservedFree
	// how many of them no allocation holds.
	reserved     iprange.Set
	reservedFree int64
	total        int64
	allocs       spv2.PoolIPAllocations
	// held counts allocations of allocatable addresses, so Free is O(1).
	held int64
	// cursor is where the search for a free address resumes, so a batch of allocations scans the
	// pool once instead of once per allocation.
	cursor netip.Addr
}

// Load parses a SpiderIPPool. A spec that cannot be used is a *SpecError; a status that is not what
// Spiderpool writes is a *StatusError, and the caller must then leave the pool alone.
func Load(p *spv2.SpiderIPPool) (*Pool, error) {
	pool := &Pool{Name: p.Name, Routes: p.Spec.Routes}
	subnet, err := netip.ParsePrefix(strings.TrimSpace(p.Spec.Subnet))
	if err != nil {
		return nil, &SpecError{Pool: p.Name, Field: "spec.subnet", Err: fmt.Errorf("%q is not a CIDR such as 172.110.1.0/24", p.Spec.Subnet)}
	}
	pool.Subnet = subnet.Masked()
	pool.Family = iprange.FamilyOf(pool.Subnet.Addr())
	if v := p.Spec.IPVersion; v != nil && int(*v) != pool.Family {
		return nil, &SpecError{Pool: p.Name, Field: "spec.ipVersion", Err: fmt.Errorf("%d does not match spec.subnet %s, which is IPv%d", *v, p.Spec.Subnet, pool.Family)}
	}
	ips, err := iprange.ParseSet(p.Spec.IPs, pool.Family)
	if err != nil {
		return nil, &SpecError{Pool: p.Name, Field: entryField("spec.ips", err), Err: err}
	}
	excluded, err := iprange.ParseSet(p.Spec.ExcludeIPs, pool.Family)
	if err != nil {
		return nil, &SpecError{Pool: p.Name, Field: entryField("spec.excludeIPs", err), Err: err}
	}
	usable := ips.Minus(excluded)
	if p.Spec.Gateway != nil && *p.Spec.Gateway != "" {
		gw, err := netip.ParseAddr(strings.TrimSpace(*p.Spec.Gateway))
		if err != nil || iprange.FamilyOf(gw.Unmap()) != pool.Family {
			return nil, &SpecError{Pool: p.Name, Field: "spec.gateway", Err: fmt.Errorf("%q is not an IPv%d address", *p.Spec.Gateway, pool.Family)}
		}
		if gw.Zone() != "" {
			// A zone would travel into the set arithmetic below (the neighbours of fe80::1%eth0 are
			// zoned too) and into the addresses given out, as the webhook and Spiderpool refuse it.
			return nil, &SpecError{Pool: p.Name, Field: "spec.gateway", Err: fmt.Errorf("%q has an IPv6 zone; write the address without %%%s", *p.Spec.Gateway, gw.Zone())}
		}
		pool.Gateway = gw.Unmap()
		usable = usable.Minus(iprange.NewSet(iprange.Range{First: pool.Gateway, Last: pool.Gateway}))
	}
	// Only addresses inside the subnet can be used on the segment.
	usable = usable.Minus(usable.Minus(iprange.NewSet(iprange.FromPrefix(pool.Subnet))))
	if pool.Family == 4 && pool.Subnet.Bits() <= 30 {
		sub := iprange.FromPrefix(pool.Subnet)
		usable = usable.Minus(iprange.NewSet(iprange.Range{First: sub.First, Last: sub.First}, iprange.Range{First: sub.Last, Last: sub.Last}))
	}
	pool.usable, pool.avail = usable, usable
	if n := usable.Size(); n.IsInt64() {
		pool.total = n.Int64()
	} else {
		pool.total = math.MaxInt64
	}
	if pool.allocs, err = parseStatus(p, pool.Family); err != nil {
		return nil, &StatusError{Pool: p.Name, Err: err}
	}
	for key := range pool.allocs {
		if pool.usable.Contains(netip.MustParseAddr(key)) {
			pool.held++
		}
	}
	return pool, nil
}

func entryField(field string, err error) string {
	var ee *iprange.EntryError
	if errors.As(err, &ee) {
		return fmt.Sprintf("%s[%d]", field, ee.Index)
	}
	return field
}

// parseStatus decodes and checks status.allocatedIPs: every key a canonical address of the pool's family,
// every value naming a pod as namespace/name. A record without an interface is Spiderpool's (v1.2.2 writes
// pod and podUid only): it is held like any other, no DEL matches it (none names an interface it could
// be), and garbage collection frees it once its pod is gone.
func parseStatus(p *spv2.SpiderIPPool, family int) (spv2.PoolIPAllocations, error) {
	allocs, err := spv2.ParseAllocations(p.Status)
	if err != nil {
		return nil, err
	}
	for key, a := range allocs {
		addr, err := netip.ParseAddr(key)
		if err != nil || addr.Zone() != "" {
			return nil, fmt.Errorf("status.allocatedIPs: key %q is not an IP address", key)
		}
		if addr.String() != key {
			return nil, fmt.Errorf("status.allocatedIPs: key %q is not in canonical form (%s)", key, addr)
		}
		if iprange.FamilyOf(addr) != family {
			return nil, fmt.Errorf("status.allocatedIPs: key %q is not IPv%d like the pool", key, family)
		}
		ns, name, ok := strings.Cut(a.NamespacedName, "/")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("status.allocatedIPs[%q].pod: %q is not namespace/name", key, a.NamespacedName)
		}
	}
	return allocs, nil
}

// Total is the number of allocatable addresses (status.totalIPCount).
func (p *Pool) Total() int64 { return p.total }

// Clone returns a copy of p that can be changed without changing p: what Load of p's pool with
// p.Status() would return, without parsing anything again. The search for a free address starts over
// from the lowest, as after Load.
func (p *Pool) Clone() *Pool {
	c := *p
	c.allocs = p.Allocations()
	c.cursor = netip.Addr{}
	return &c
}

// Allocated is the number of allocations (status.allocatedIPCount), including any that lie outside the
// allocatable addresses after the pool was shrunk.
func (p *Pool) Allocated() int64 { return int64(len(p.allocs)) }

// Free is the number of allocatable addresses nobody holds and no SpiderReservedIP reserves.
func (p *Pool) Free() int64 { return p.total - p.held - p.reservedFree }

// SetReserved sets the addresses SpiderReservedIPs reserve (of any pool, any family: only the pool's
// own allocatable ones count). No new holder gets one; an allocation already on one stays its holder's
// until released. totalIPCount still counts them, as Spiderpool's does; Free does not.
func (p *Pool) SetReserved(r iprange.Set) {
	p.reserved, p.reservedFree = reservedip.InPool(p.usable, r, func(yield func(netip.Addr) bool) {
		for key := range p.allocs {
			if !yield(netip.MustParseAddr(key)) {
				return
			}
		}
	})
	p.avail = p.usable.Minus(p.reserved)
}

func (p *Pool) put(a netip.Addr, v spv2.PoolIPAllocation) {
	key := a.String()
	if _, ok := p.allocs[key]; !ok && p.usable.Contains(a) {
		p.held++
		if p.reserved.Contains(a) {
			p.reservedFree--
		}
	}
	p.allocs[key] = v
}

func (p *Pool) drop(a netip.Addr) {
	key := a.String()
	if _, ok := p.allocs[key]; ok && p.usable.Contains(a) {
		p.held--
		if p.reserved.Contains(a) {
			p.reservedFree++
		}
	}
	delete(p.allocs, key)
}

// Allocatable reports whether a is an address the pool may give out.
func (p *Pool) Allocatable(a netip.Addr) bool { return p.usable.Contains(a) }

// Allocations returns a copy of the pool's allocations.
func (p *Pool) Allocations() spv2.PoolIPAllocations {
	out := make(spv2.PoolIPAllocations, len(p.allocs))
	for k, v := range p.allocs {
		out[k] = v
	}
	return out
}

// Any reports whether some allocation satisfies match, without copying the allocations.
func (p *Pool) Any(match func(spv2.PoolIPAllocation) bool) bool {
	for _, a := range p.allocs {
		if match(a) {
			return true
		}
	}
	return false
}

// Find returns the address h's pod interface (UID and NIC) holds in this pool.
func (p *Pool) Find(h Holder) (netip.Addr, bool) {
	if h.UID == "" {
		return netip.Addr{}, false
	}
	for key, a := range p.allocs {
		if a.PodUID == h.UID && a.NIC == h.NIC {
			return netip.MustParseAddr(key), true
		}
	}
	return netip.Addr{}, false
}

// Preallocated returns the address h's pod interface holds in this pool through a pre-allocation: a
// record written before any sandbox asked, so without a container ID (see Adopt).
func (p *Pool) Preallocated(h Holder) (netip.Addr, bool) {
	a, ok := p.Find(h)
	if !ok || p.allocs[a.String()].ContainerID != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// Adopt records h's sandbox (h.ContainerID) on the pre-allocated address of h's pod interface, and
// reports whether it did. It never gives an address: when the pre-allocation is gone (a DEL freed it
// meanwhile) or already belongs to a sandbox, nothing changes.
func (p *Pool) Adopt(h Holder) bool {
	if h.ContainerID == "" {
		return false
	}
	a, ok := p.Preallocated(h)
	if !ok {
		return false
	}
	key := a.String()
	rec := p.allocs[key]
	rec.ContainerID = h.ContainerID
	p.allocs[key] = rec
	return true
}

// Allocate gives h an address: the one its pod interface already holds (then changed is true only if
// the allocation's record had to be updated, e.g. to a new sandbox), or a free one: the lowest free
// address of a freshly loaded pool, then the next free one after the last this Pool gave, wrapping.
func (p *Pool) Allocate(h Holder) (addr netip.Addr, changed bool, err error) {
	if h.UID == "" || h.NIC == "" || h.Namespace == "" || h.Name == "" {
		return netip.Addr{}, false, fmt.Errorf("allocation from SpiderIPPool %q needs the pod's namespace, name, UID and interface, got %+v", p.Name, h)
	}
	if a, ok := p.Find(h); ok {
		key := a.String()
		want := h.allocation()
		if want.ContainerID == "" {
			want.ContainerID = p.allocs[key].ContainerID
		}
		if want.Node == "" {
			want.Node = p.allocs[key].Node
		}
		if p.allocs[key] != want {
			p.allocs[key] = want
			return a, true, nil
		}
		return a, false, nil
	}
	a, ok := p.nextFree()
	if !ok {
		return netip.Addr{}, false, &ExhaustedError{Pool: p.Name, Total: p.total, Allocated: int64(len(p.allocs)), Reserved: p.reservedFree}
	}
	p.put(a, h.allocation())
	return a, true, nil
}

// nextFree finds the lowest free allocatable address at or after the cursor, wrapping once.
func (p *Pool) nextFree() (netip.Addr, bool) {
	if p.Free() == 0 {
		return netip.Addr{}, false
	}
	ranges := p.avail.Ranges()
	scan := func(from netip.Addr) (netip.Addr, bool) {
		for _, r := range ranges {
			if from.IsValid() && r.Last.Less(from) {
				continue
			}
			a := r.First
			if from.IsValid() && a.Less(from) {
				a = from
			}
			for ; ; a = a.Next() {
				if _, held := p.allocs[a.String()]; !held {
					return a, true
				}
				if a == r.Last {
					break
				}
			}
		}
		return netip.Addr{}, false
	}
	a, ok := scan(p.cursor)
	if !ok && p.cursor.IsValid() {
		a, ok = scan(netip.Addr{})
	}
	if ok {
		p.cursor = a
	}
	return a, ok
}

// Release frees the addresses h holds and returns them. With a container ID on both sides the IDs must
// match, so the late DEL of a replaced sandbox does not free its successor's address; otherwise the pod
// UID must match. The interface must always match, and an allocation recorded on another node than the
// holder's is never its to free.
func (p *Pool) Release(h Holder) []netip.Addr {
	return p.releaseIf(releaseMatch(h, false))
}

// ReleaseSandbox frees only the addresses recorded with h's sandbox (h.ContainerID), by the rules of
// Release otherwise: a record without a container ID is kept. It is the DEL of a sandbox that never
// used the pod's pre-allocation (its ADD failed before reaching the IPAM) while another sandbox's ADD was
// answered from it: the address is that sandbox's.
func (p *Pool) ReleaseSandbox(h Holder) []netip.Addr {
	return p.releaseIf(releaseMatch(h, true))
}

// WouldRelease reports whether Release(h), or with sandbox ReleaseSandbox(h), would free anything. It
// changes nothing, so p may be a shared copy.
func (p *Pool) WouldRelease(h Holder, sandbox bool) bool {
	return p.Any(releaseMatch(h, sandbox))
}

func releaseMatch(h Holder, sandbox bool) func(spv2.PoolIPAllocation) bool {
	if sandbox {
		if h.ContainerID == "" {
			return func(spv2.PoolIPAllocation) bool { return false } // no sandbox named: nothing is its
		}
		return func(a spv2.PoolIPAllocation) bool { return a.ContainerID != "" && ReleaseMatches(a, h) }
	}
	return func(a spv2.PoolIPAllocation) bool { return ReleaseMatches(a, h) }
}

func (p *Pool) releaseIf(match func(spv2.PoolIPAllocation) bool) []netip.Addr {
	var freed []netip.Addr
	for key, a := range p.allocs {
		if match(a) {
			addr := netip.MustParseAddr(key)
			p.drop(addr)
			freed = append(freed, addr)
		}
	}
	return freed
}

// ReleaseMatches reports whether a DEL by h frees the allocation a (the rules of Release).
func ReleaseMatches(a spv2.PoolIPAllocation, h Holder) bool {
	if a.NIC != h.NIC {
		return false
	}
	if a.Node != "" && h.Node != "" && a.Node != h.Node {
		return false // another node's sandbox: only that node's agent releases it
	}
	if a.ContainerID != "" && h.ContainerID != "" {
		return a.ContainerID == h.ContainerID
	}
	return h.UID != "" && a.PodUID == h.UID
}

// MarkConflict sets addr aside as held by a host outside the cluster: the record of h's pod interface
// on addr becomes a conflict record (c, no pod UID, no container ID), which no pod holds, no DEL frees,
// no garbage collection collects and no allocation gives, until ClearConflict. It reports whether addr
// was h's to mark; an address h does not hold (freed meanwhile, or given to another pod) is left
// alone.
func (p *Pool) MarkConflict(h Holder, addr netip.Addr, c spv2.IPConflict) bool {
	key := addr.String()
	a, ok := p.allocs[key]
	if !ok || a.IsConflict() || !ReleaseMatches(a, h) {
		return false
	}
	p.allocs[key] = spv2.PoolIPAllocation{NIC: a.NIC, NamespacedName: a.NamespacedName, IPConflict: c}
	return true
}

// Conflicts returns the addresses set aside by MarkConflict, with their records.
func (p *Pool) Conflicts() map[netip.Addr]spv2.PoolIPAllocation {
	out := map[netip.Addr]spv2.PoolIPAllocation{}
	for key, a := range p.allocs {
		if a.IsConflict() {
			out[netip.MustParseAddr(key)] = a
		}
	}
	return out
}

// ClearConflict frees addr if it is set aside as a conflict, and reports whether it was.
func (p *Pool) ClearConflict(addr netip.Addr) bool {
	if a, ok := p.allocs[addr.String()]; ok && a.IsConflict() {
		p.drop(addr)
		return true
	}
	return false
}

// ReleaseIfHeld frees addr only if it is still held exactly as want says: garbage collection decides on
// a snapshot, and the address may have changed hands since.
func (p *Pool) ReleaseIfHeld(addr netip.Addr, want spv2.PoolIPAllocation) bool {
	key := addr.String()
	if got, ok := p.allocs[key]; ok && got == want {
		p.drop(addr)
		return true
	}
	return false
}

// Status renders the pool's status in Spiderpool's shape.
func (p *Pool) Status() (spv2.IPPoolStatus, error) {
	enc, err := p.allocs.Encode()
	if err != nil {
		return spv2.IPPoolStatus{}, err
	}
	total, allocated := p.total, int64(len(p.allocs))
	return spv2.IPPoolStatus{AllocatedIPs: enc, TotalIPCount: &total, AllocatedIPCount: &allocated}, nil
}

// StatusCurrent reports whether st already says what Status would write, so a caller can skip a write.
func (p *Pool) StatusCurrent(st spv2.IPPoolStatus) bool {
	want, err := p.Status()
	if err != nil {
		return false
	}
	return ptrEq(want.AllocatedIPs, st.AllocatedIPs) && ptrEq(want.TotalIPCount, st.TotalIPCount) && ptrEq(want.AllocatedIPCount, st.AllocatedIPCount)
}

func ptrEq[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
