package ipam

import (
	"net/netip"
	"testing"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// FuzzPool loads arbitrary pools and statuses and runs a sequence of allocations and releases. Whatever
// the input: Load never panics, an allocation is always an allocatable address (never the gateway, an
// excluded address or one outside spec.ips), no two holders share an address, a holder keeps its address,
// the counts add up, and the status written loads back to the same allocations.
func FuzzPool(f *testing.F) {
	f.Add("172.110.1.0/24", "172.110.1.1-172.110.1.200", "172.110.1.5", "172.110.0.1", "", []byte{1, 2, 3, 1, 0x81, 4})
	f.Add("10.0.0.0/29", "10.0.0.0-10.0.0.7", "10.0.0.3", "10.0.0.1", `{"10.0.0.2":{"interface":"eth0","pod":"d/p1","podUid":"u1"}}`, []byte{1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 0x82})
	f.Add("fd00::/120", "fd00::1-fd00::4", "", "fd00::2", "", []byte{0, 1, 2, 3, 4, 0x80, 0x81})
	f.Add("10.0.0.0/24", "10.0.0.1", "", "", `{"x":1}`, []byte{1})
	f.Fuzz(func(t *testing.T, subnet, ips, exclude, gateway, status string, ops []byte) {
		sp := &spv2.SpiderIPPool{Spec: spv2.IPPoolSpec{Subnet: subnet, IPs: []string{ips}}}
		sp.Name = "fuzz"
		if exclude != "" {
			sp.Spec.ExcludeIPs = []string{exclude}
		}
		if gateway != "" {
			sp.Spec.Gateway = &gateway
		}
		if status != "" {
			sp.Status.AllocatedIPs = &status
		}
		p, err := Load(sp)
		if err != nil {
			return
		}
		gw, _ := netip.ParseAddr(gateway)
		excluded := map[netip.Addr]bool{}
		if r, err := netip.ParseAddr(exclude); err == nil {
			excluded[r] = true
		}
		if len(ops) > 64 {
			ops = ops[:64]
		}
		held := map[string]netip.Addr{} // uid → address
		for _, op := range ops {
			uid := string(rune('a' + op&0x0f))
			h := Holder{Namespace: "d", Name: "p" + uid, UID: uid, NIC: "eth0", ContainerID: "c" + uid}
			if op&0x80 != 0 {
				for _, a := range p.Release(h) {
					if held[uid] == a {
						delete(held, uid)
					}
				}
				continue
			}
			a, _, err := p.Allocate(h)
			if err != nil {
				if !IsExhausted(err) {
					t.Fatalf("Allocate: %v", err)
				}
				if p.Free() != 0 {
					t.Fatalf("exhausted with %d free", p.Free())
				}
				continue
			}
			if prev, ok := held[uid]; ok && prev != a {
				t.Fatalf("holder %s moved from %s to %s", uid, prev, a)
			}
			if _, fromStatus := held[uid]; !fromStatus && !p.Allocatable(a) {
				if prev, ok := p.Find(h); !ok || prev != a {
					t.Fatalf("gave %s, which is not allocatable", a)
				}
			}
			if a == gw.Unmap() || excluded[a] {
				t.Fatalf("gave the gateway or an excluded address %s", a)
			}
			held[uid] = a
		}
		owner := map[string]string{}
		for key, al := range p.Allocations() {
			k := al.PodUID + "/" + al.NIC
			if other, dup := owner[k]; dup {
				t.Fatalf("holder %s has %s and %s", k, other, key)
			}
			owner[k] = key
		}
		st, err := p.Status()
		if err != nil {
			t.Fatal(err)
		}
		if *st.AllocatedIPCount != p.Allocated() || *st.TotalIPCount != p.Total() || p.Free() < 0 || p.Free() > p.Total() {
			t.Fatalf("counts: status %d/%d, pool %d/%d free %d", *st.AllocatedIPCount, *st.TotalIPCount, p.Allocated(), p.Total(), p.Free())
		}
		sp.Status = st
		back, err := Load(sp)
		if err != nil {
			t.Fatalf("own status does not load back: %v", err)
		}
		if len(back.Allocations()) != len(p.Allocations()) || back.Free() != p.Free() {
			t.Fatalf("round trip changed allocations")
		}
		for k, v := range p.Allocations() {
			if back.Allocations()[k] != v {
				t.Fatalf("round trip changed %s", k)
			}
		}
	})
}
