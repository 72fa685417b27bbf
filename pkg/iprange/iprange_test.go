package iprange

import (
	"math/big"
	"net/netip"
	"strings"
	"testing"
)

func TestParseAcceptsSpiderpoolForms(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		size     int64
	}{
		{"172.110.1.1-172.110.1.200", "172.110.1.1-172.110.1.200", 200},
		{"172.110.1.7", "172.110.1.7", 1},
		{" 10.0.0.1 - 10.0.0.2 ", "10.0.0.1-10.0.0.2", 2},
		{"fd00::1-fd00::ff", "fd00::1-fd00::ff", 255},
		{"::ffff:10.0.0.1", "10.0.0.1", 1},
	} {
		r, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		if r.String() != tc.want || r.Size().Int64() != tc.size {
			t.Errorf("Parse(%q) = %s (size %s), want %s (size %d)", tc.in, r, r.Size(), tc.want, tc.size)
		}
	}
}

func TestParseRejectsWithTheFix(t *testing.T) {
	for in, want := range map[string]string{
		"172.110.1.200-172.110.1.1":  "write 172.110.1.1-172.110.1.200",
		"10.0.0.1-fd00::1":           "mixes IPv4 and IPv6",
		"10.0.0.300":                 "not an IP address",
		"10.0.0.1-":                  "range end",
		"10.0.0.1-10.0.0.2-10.0.0.3": "range end",
		"fe80::1%eth0":               "zoned",
		"":                           "not an IP address",
	} {
		_, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) error = %v, want it to contain %q", in, err, want)
		}
	}
}

func TestParsePrefixRejectsHostBits(t *testing.T) {
	if _, err := ParsePrefix("172.110.1.5/24"); err == nil || !strings.Contains(err.Error(), "172.110.1.0/24") {
		t.Errorf("want host-bits error naming 172.110.1.0/24, got %v", err)
	}
	if p, err := ParsePrefix("172.110.0.0/16"); err != nil || p.Bits() != 16 {
		t.Errorf("ParsePrefix: %v %v", p, err)
	}
}

func TestSetNormalizesAndCounts(t *testing.T) {
	s, err := ParseSet([]string{"10.0.0.10-10.0.0.20", "10.0.0.5", "10.0.0.21-10.0.0.30", "10.0.0.15-10.0.0.25", "10.0.0.6"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, r := range s.Ranges() {
		got = append(got, r.String())
	}
	if strings.Join(got, ",") != "10.0.0.5-10.0.0.6,10.0.0.10-10.0.0.30" {
		t.Errorf("ranges = %v", got)
	}
	if s.Size().Int64() != 23 {
		t.Errorf("size = %s, want 23", s.Size())
	}
	if !s.Contains(netip.MustParseAddr("10.0.0.30")) || s.Contains(netip.MustParseAddr("10.0.0.7")) {
		t.Error("Contains is wrong at the edges")
	}
}

func TestSetMinusAndOverlap(t *testing.T) {
	ips, _ := ParseSet([]string{"172.110.1.1-172.110.1.200"}, 4)
	ex, _ := ParseSet([]string{"172.110.1.1", "172.110.1.100-172.110.1.109", "172.110.1.200-172.110.1.250"}, 4)
	left := ips.Minus(ex)
	if left.Size().Int64() != 200-1-10-1 {
		t.Errorf("size after minus = %s, want 188", left.Size())
	}
	if left.Contains(netip.MustParseAddr("172.110.1.105")) || !left.Contains(netip.MustParseAddr("172.110.1.110")) {
		t.Error("Minus kept an excluded address or dropped a kept one")
	}
	if !ips.Overlaps(ex) || left.Overlaps(ex) {
		t.Error("Overlaps is wrong")
	}
	other, _ := ParseSet([]string{"172.110.2.1-172.110.2.9"}, 4)
	if ips.Overlaps(other) {
		t.Error("disjoint sets overlap")
	}
}

func TestParseSetReportsIndexAndFamily(t *testing.T) {
	_, err := ParseSet([]string{"10.0.0.1", "fd00::1"}, 4)
	ee, ok := err.(*EntryError)
	if !ok || ee.Index != 1 || !strings.Contains(err.Error(), "IPv6 in an IPv4 list") {
		t.Errorf("err = %#v", err)
	}
}

func TestSmallestCoveringGivesTheSeedsWiderSubnet(t *testing.T) {
	// The seed's pool: subnet 172.110.1.0/24, gateway 172.110.0.1.
	got := SmallestCovering(netip.MustParsePrefix("172.110.1.0/24"), netip.MustParseAddr("172.110.0.1"))
	if got.String() != "172.110.0.0/23" {
		t.Errorf("got %s, want 172.110.0.0/23", got)
	}
}

func TestEachStopsAndHugeSizes(t *testing.T) {
	s, _ := ParseSet([]string{"fd00::-fd00::ffff:ffff:ffff:ffff"}, 6)
	want, _ := new(big.Int).SetString("18446744073709551616", 10)
	if s.Size().Cmp(want) != 0 {
		t.Errorf("size = %s", s.Size())
	}
	n := 0
	s.Each(func(netip.Addr) bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("Each did not stop: %d", n)
	}
	full := NewSet(FromPrefix(netip.MustParsePrefix("0.0.0.0/0")))
	if full.Size().Int64() != 1<<32 {
		t.Errorf("/0 size = %s", full.Size())
	}
	// Merging up to the family's last address must not wrap.
	top := NewSet(Range{netip.MustParseAddr("255.255.255.250"), netip.MustParseAddr("255.255.255.255")}, Range{netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("255.255.255.255")})
	if len(top.Ranges()) != 1 || top.Size().Int64() != 6 {
		t.Errorf("top = %v", top.Ranges())
	}
}
