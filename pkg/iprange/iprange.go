// Package iprange parses and reasons about the address sets Spiderpool pools are written in: single
// addresses ("172.110.1.10"), inclusive ranges ("172.110.1.1-172.110.1.200") and CIDRs. It is pure
// (no I/O) and shared by admission, IPAM and the scheduler, so they agree on what a pool holds.
package iprange

import (
	"fmt"
	"math/big"
	"net/netip"
	"sort"
	"strings"
)

// Range is an inclusive range of addresses of one family, First <= Last.
type Range struct {
	First, Last netip.Addr
}

// Parse reads "a" or "a-b". Both ends must be the same family and a <= b.
func Parse(s string) (Range, error) {
	first, last, isRange := strings.Cut(strings.TrimSpace(s), "-")
	a, err := netip.ParseAddr(strings.TrimSpace(first))
	if err != nil {
		return Range{}, fmt.Errorf("%q is not an IP address or a range such as 172.110.1.1-172.110.1.200", s)
	}
	if a.Zone() != "" {
		return Range{}, fmt.Errorf("%q: zoned addresses are not allowed", s)
	}
	a = a.Unmap()
	if !isRange {
		return Range{First: a, Last: a}, nil
	}
	b, err := netip.ParseAddr(strings.TrimSpace(last))
	if err != nil {
		return Range{}, fmt.Errorf("%q: range end %q is not an IP address", s, last)
	}
	if b.Zone() != "" {
		return Range{}, fmt.Errorf("%q: zoned addresses are not allowed", s)
	}
	b = b.Unmap()
	if a.Is4() != b.Is4() {
		return Range{}, fmt.Errorf("%q: range mixes IPv4 and IPv6", s)
	}
	if b.Less(a) {
		return Range{}, fmt.Errorf("%q: range start is after its end; write %s-%s", s, b, a)
	}
	return Range{First: a, Last: b}, nil
}

// FromPrefix returns the range covering every address of p.
func FromPrefix(p netip.Prefix) Range {
	p = p.Masked()
	return Range{First: p.Addr(), Last: lastOf(p)}
}

// ParsePrefix reads a CIDR. Host bits must be zero ("172.110.1.0/24", not "172.110.1.5/24"), so a typo in
// a subnet is caught instead of silently widened or narrowed.
func ParsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 172.110.1.0/24", s)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: zoned addresses are not allowed", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; the network is %s", s, p.Masked())
	}
	return p, nil
}

// ParseDestination reads a route destination as Spiderpool's policyRoutes write it: a CIDR, or an address
// (a host route, /32 or /128). Host bits are kept as written.
func ParseDestination(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - uint(i%8))
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// String returns "a" for a single address and "a-b" otherwise.
func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// Contains reports whether a lies in r.
func (r Range) Contains(a netip.Addr) bool {
	a = a.Unmap()
	return a.Is4() == r.First.Is4() && !a.Less(r.First) && !r.Last.Less(a)
}

// Overlaps reports whether r and o share an address.
func (r Range) Overlaps(o Range) bool {
	return r.First.Is4() == o.First.Is4() && !r.Last.Less(o.First) && !o.Last.Less(r.First)
}

// Within reports whether every address of r lies in p.
func (r Range) Within(p netip.Prefix) bool {
	return r.First.Is4() == p.Addr().Is4() && p.Contains(r.First) && p.Contains(r.Last)
}

// Size is the number of addresses in r.
func (r Range) Size() *big.Int {
	n := new(big.Int).Sub(toInt(r.Last), toInt(r.First))
	return n.Add(n, big.NewInt(1))
}

func toInt(a netip.Addr) *big.Int { return new(big.Int).SetBytes(a.AsSlice()) }

// Set is a normalized set of addresses of one family: sorted, non-overlapping, non-adjacent ranges.
type Set struct {
	ranges []Range
}

// ParseSet reads a list of addresses and ranges. Every entry must be of the given family (4 or 6;
// 0 takes the family of the first entry). Index-carrying errors let callers name the field element.
func ParseSet(entries []string, family int) (Set, error) {
	var rs []Range
	for i, e := range entries {
		r, err := Parse(e)
		if err != nil {
			return Set{}, &EntryError{Index: i, Err: err}
		}
		if family == 0 {
			family = FamilyOf(r.First)
		}
		if FamilyOf(r.First) != family {
			return Set{}, &EntryError{Index: i, Err: fmt.Errorf("%q is IPv%d in an IPv%d list", e, FamilyOf(r.First), family)}
		}
		rs = append(rs, r)
	}
	return NewSet(rs...), nil
}

// EntryError is a parse error of the Index-th entry of a list.
type EntryError struct {
	Index int
	Err   error
}

func (e *EntryError) Error() string { return e.Err.Error() }
func (e *EntryError) Unwrap() error { return e.Err }

// FamilyOf returns 4 or 6.
func FamilyOf(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 4
	}
	return 6
}

// NewSet builds a normalized set from ranges of one family.
func NewSet(rs ...Range) Set {
	if len(rs) == 0 {
		return Set{}
	}
	sorted := append([]Range(nil), rs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].First.Less(sorted[j].First) })
	out := []Range{sorted[0]}
	for _, r := range sorted[1:] {
		cur := &out[len(out)-1]
		next := cur.Last.Next() // invalid past the family's last address
		if r.First.Compare(cur.Last) <= 0 || (next.IsValid() && r.First == next) {
			if cur.Last.Less(r.Last) {
				cur.Last = r.Last
			}
			continue
		}
		out = append(out, r)
	}
	return Set{ranges: out}
}

// Ranges returns the set's ranges in order.
func (s Set) Ranges() []Range { return append([]Range(nil), s.ranges...) }

// Empty reports whether the set has no address.
func (s Set) Empty() bool { return len(s.ranges) == 0 }

// Size is the number of addresses in the set.
func (s Set) Size() *big.Int {
	n := new(big.Int)
	for _, r := range s.ranges {
		n.Add(n, r.Size())
	}
	return n
}

// Contains reports whether a is in the set.
func (s Set) Contains(a netip.Addr) bool {
	a = a.Unmap()
	i := sort.Search(len(s.ranges), func(i int) bool { return !s.ranges[i].Last.Less(a) })
	return i < len(s.ranges) && s.ranges[i].Contains(a)
}

// Overlaps reports whether the sets share an address.
func (s Set) Overlaps(o Set) bool {
	i, j := 0, 0
	for i < len(s.ranges) && j < len(o.ranges) {
		if s.ranges[i].Overlaps(o.ranges[j]) {
			return true
		}
		if s.ranges[i].Last.Less(o.ranges[j].Last) {
			i++
		} else {
			j++
		}
	}
	return false
}

// Minus returns the addresses of s that are not in o.
func (s Set) Minus(o Set) Set {
	var out []Range
	for _, r := range s.ranges {
		cur := r
		keep := true
		for _, x := range o.ranges {
			if !cur.Overlaps(x) {
				continue
			}
			if cur.First.Less(x.First) {
				out = append(out, Range{First: cur.First, Last: x.First.Prev()})
			}
			if x.Last.Less(cur.Last) {
				cur = Range{First: x.Last.Next(), Last: cur.Last}
				continue
			}
			keep = false
			break
		}
		if keep {
			out = append(out, cur)
		}
	}
	return NewSet(out...)
}

// Within reports whether every address of the set lies in p.
func (s Set) Within(p netip.Prefix) bool {
	for _, r := range s.ranges {
		if !r.Within(p) {
			return false
		}
	}
	return true
}

// Each calls f for every address in order until f returns false. Callers bound the work themselves
// (e.g. by Size) before iterating a large IPv6 set.
func (s Set) Each(f func(netip.Addr) bool) {
	for _, r := range s.ranges {
		for a := r.First; ; a = a.Next() {
			if !f(a) {
				return
			}
			if a == r.Last {
				break
			}
		}
	}
}

// PrefixesOverlap reports whether two CIDRs share an address.
func PrefixesOverlap(a, b netip.Prefix) bool { return a.Overlaps(b) }

// PrefixCovers reports whether outer contains every address of inner.
func PrefixCovers(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// SmallestCovering returns the longest prefix that contains both p and a: the widest-subnet fix for a
// gateway that lies outside its pool's subnet.
func SmallestCovering(p netip.Prefix, a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() != p.Addr().Is4() {
		return netip.Prefix{}
	}
	for bits := p.Bits(); bits >= 0; bits-- {
		q, _ := p.Addr().Prefix(bits)
		if q.Contains(a) {
			return q
		}
	}
	return netip.Prefix{}
}
