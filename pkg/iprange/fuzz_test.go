package iprange

import (
	"math/big"
	"net/netip"
	"strings"
	"testing"
)

// Invariants of a parsed range: ends of one family, ordered, unzoned, and its String parses back to it.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"172.110.1.1-172.110.1.200", "172.110.1.7", " 10.0.0.1 - 10.0.0.2 ", "fd00::1-fd00::ff", "::ffff:10.0.0.1",
		"172.110.1.200-172.110.1.1", "10.0.0.1-fd00::1", "fe80::1-fe80::2%eth0", "0.0.0.0-255.255.255.255", "-", "1-2-3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Parse(%q): empty error", s)
			}
			return
		}
		if r.First.Is4() != r.Last.Is4() || r.Last.Less(r.First) || r.First.Zone() != "" || r.Last.Zone() != "" || r.First.Is4In6() || r.Last.Is4In6() {
			t.Fatalf("Parse(%q) = %#v: not a normalized range", s, r)
		}
		back, err := Parse(r.String())
		if err != nil || back != r {
			t.Fatalf("Parse(%q).String() = %q does not parse back (%v, %v)", s, r.String(), back, err)
		}
		if r.Size().Sign() <= 0 || !r.Contains(r.First) || !r.Contains(r.Last) {
			t.Fatalf("Parse(%q) = %s: size %s or ends not contained", s, r, r.Size())
		}
	})
}

// A parsed prefix is masked, unzoned, and round-trips; SmallestCovering of it and any address of its
// family contains both.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"172.110.1.0/24", "172.110.1.5/24", "0.0.0.0/0", "fd00::/64", "::/0", "10.0.0.0/33", "fe80::/10%eth0", "garbage"} {
		f.Add(s, "172.110.0.1")
	}
	f.Fuzz(func(t *testing.T, s, addr string) {
		p, err := ParsePrefix(s)
		if err != nil {
			return
		}
		if p.Masked() != p || p.Addr().Zone() != "" {
			t.Fatalf("ParsePrefix(%q) = %s: not a masked network", s, p)
		}
		if back, err := ParsePrefix(p.String()); err != nil || back != p {
			t.Fatalf("ParsePrefix(%q) does not round-trip: %v %v", s, back, err)
		}
		r := FromPrefix(p)
		if !r.Within(p) || !p.Contains(r.First) || !p.Contains(r.Last) {
			t.Fatalf("FromPrefix(%s) = %s", p, r)
		}
		a, err := netip.ParseAddr(addr)
		if err != nil || a.Zone() != "" {
			return
		}
		c := SmallestCovering(p, a)
		if a.Unmap().Is4() != p.Addr().Is4() {
			if c.IsValid() {
				t.Fatalf("SmallestCovering(%s, %s) = %s across families", p, a, c)
			}
			return
		}
		if !c.IsValid() || !PrefixCovers(c, p) || !c.Contains(a.Unmap()) {
			t.Fatalf("SmallestCovering(%s, %s) = %s", p, a, c)
		}
		if c.Bits() < p.Bits() {
			if narrower, _ := p.Addr().Prefix(c.Bits() + 1); narrower.Contains(a.Unmap()) {
				t.Fatalf("SmallestCovering(%s, %s) = %s is not the smallest", p, a, c)
			}
		}
	})
}

// Set algebra over two fuzzed lists: normalization, Minus, Overlaps and Contains agree with each other
// and sizes add up: |a| = |a−b| + |a∩b|.
func FuzzSetAlgebra(f *testing.F) {
	f.Add("172.110.1.1-172.110.1.200\n172.110.1.7", "172.110.1.100-172.110.1.250", "172.110.1.150")
	f.Add("fd00::1-fd00::ff", "fd00::10", "fd00::10")
	f.Add("10.0.0.0-10.0.0.255\n10.0.1.0-10.0.1.255", "10.0.0.255-10.0.1.0", "10.0.1.0")
	f.Add("0.0.0.0-255.255.255.255", "255.255.255.255", "0.0.0.0")
	f.Fuzz(func(t *testing.T, as, bs, probe string) {
		la, lb := strings.Split(as, "\n"), strings.Split(bs, "\n")
		if len(la) > 64 || len(lb) > 64 {
			return
		}
		a, err := ParseSet(la, 4)
		if err != nil {
			if a, err = ParseSet(la, 6); err != nil {
				return
			}
		}
		fam := 4
		if rs := a.Ranges(); len(rs) > 0 && rs[0].First.Is6() {
			fam = 6
		}
		b, err := ParseSet(lb, fam)
		if err != nil {
			return
		}
		for _, s := range []Set{a, b} {
			rs := s.Ranges()
			for i := 1; i < len(rs); i++ {
				if !rs[i-1].Last.Less(rs[i].First) || rs[i-1].Last.Next() == rs[i].First {
					t.Fatalf("set %v is not normalized at %d", rs, i)
				}
			}
		}
		d := a.Minus(b)
		if d.Overlaps(b) {
			t.Fatalf("(%v − %v) = %v still overlaps", a.Ranges(), b.Ranges(), d.Ranges())
		}
		common := a.Minus(d)
		if a.Overlaps(b) != !common.Empty() {
			t.Fatalf("Overlaps(%v, %v) = %v but the common part is %v", a.Ranges(), b.Ranges(), a.Overlaps(b), common.Ranges())
		}
		if new(big.Int).Add(d.Size(), common.Size()).Cmp(a.Size()) != 0 {
			t.Fatalf("|a| %s != |a−b| %s + |a∩b| %s", a.Size(), d.Size(), common.Size())
		}
		if p, err := netip.ParseAddr(probe); err == nil {
			inA, inB, inD := a.Contains(p), b.Contains(p), d.Contains(p)
			if inD != (inA && !inB) {
				t.Fatalf("Contains(%s): a=%v b=%v a−b=%v", p, inA, inB, inD)
			}
		}
	})
}
