package ipam

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/iprange"
)

// StatefulSet fixed addresses: a StatefulSet pod keeps its addresses for its ordinal. A pod deleted and
// recreated under the same name (a rollout, an eviction, a force delete) gets them back on any node
// where their pool is eligible; they are freed once the StatefulSet no longer wants the ordinal (scaled
// below it, or deleted). The pool's record stays as the pod left it (its name, interface, old UID and
// node) and counts as allocated throughout, so no other pod is given the address and the scheduler
// counts it as taken. The SpiderEndpoint named after the pod records which addresses are kept, as
// Spiderpool records them.

// StatefulSetOrdinal splits a StatefulSet pod's name into the StatefulSet's name and the ordinal:
// "web-2" is ("web", 2). ok is false for a name that does not end in -<digits>.
func StatefulSetOrdinal(pod string) (set string, ordinal int, ok bool) {
	i := strings.LastIndexByte(pod, '-')
	if i <= 0 || i == len(pod)-1 {
		return "", 0, false
	}
	n, err := strconv.Atoi(pod[i+1:])
	if err != nil || n < 0 || strconv.Itoa(n) != pod[i+1:] {
		return "", 0, false
	}
	return pod[:i], n, true
}

// OrdinalWanted reports whether a StatefulSet with replicas (spec.replicas) and start
// (spec.ordinals.start, 0 when unset) wants ordinal: start ≤ ordinal < start+replicas.
func OrdinalWanted(replicas, start int32, ordinal int) bool {
	return ordinal >= int(start) && ordinal < int(start)+int(replicas)
}

// KeptError says why a StatefulSet pod cannot get back the address kept for it.
type KeptError struct {
	Pool string
	IP   netip.Addr
	Why  string
}

func (e *KeptError) Error() string {
	return fmt.Sprintf("the address %s kept in SpiderIPPool %q cannot be given back: %s", e.IP, e.Pool, e.Why)
}

// Reclaim gives h the address a kept for its pod name and interface: the record on a, written for an
// earlier pod of the same name (another UID), becomes h's. An address without a record (a pool whose
// status was rewritten) is taken if free. It never takes an address another pod holds, one set aside as
// a conflict, or one the pool may no longer give (spec edited): then it fails with a *KeptError and
// changes nothing. changed is false when the record already is h's.
func (p *Pool) Reclaim(h Holder, a netip.Addr) (changed bool, err error) {
	if !p.usable.Contains(a) {
		return false, &KeptError{Pool: p.Name, IP: a, Why: "it is no longer among the pool's allocatable addresses (spec.ips less spec.excludeIPs and the gateway)"}
	}
	if p.reserved.Contains(a) {
		return false, &KeptError{Pool: p.Name, IP: a, Why: "a SpiderReservedIP reserves it"}
	}
	want := h.allocation()
	rec, held := p.allocs[a.String()]
	switch {
	case !held:
	case rec.IsConflict():
		return false, &KeptError{Pool: p.Name, IP: a, Why: fmt.Sprintf("it is set aside as in use by another host (MAC %s)", rec.IPConflict.MAC)}
	case rec.NamespacedName != h.NamespacedName() || (rec.NIC != h.NIC && rec.NIC != ""):
		// A record without an interface is Spiderpool's, of that pod name: the pod's to take back.
		return false, &KeptError{Pool: p.Name, IP: a, Why: fmt.Sprintf("it is held by interface %s of pod %s", rec.NIC, rec.NamespacedName)}
	case rec == want:
		return false, nil
	case rec.PodUID == h.UID && want.ContainerID == "":
		// A repeated request of the same pod without a sandbox (pre-allocation): keep the sandbox.
		want.ContainerID = rec.ContainerID
		if rec == want {
			return false, nil
		}
	}
	if old, ok := p.Find(h); ok && old != a {
		// The pod interface holds another address here already (allocated before its kept one was
		// known): that one goes back.
		p.drop(old)
	}
	p.put(a, want)
	return true, nil
}

// Ordinals are the ordinals a StatefulSet wants: spec.replicas from spec.ordinals.start.
type Ordinals struct{ Replicas, Start int32 }

// EndpointKept reports whether the addresses of endpoint e are kept: e records a StatefulSet pod, and
// that StatefulSet (sets, by "namespace/name") exists and wants the pod's ordinal.
func EndpointKept(e *spv2.SpiderEndpoint, sets map[string]Ordinals) bool {
	if e.Status.OwnerControllerType != spv2.OwnerStatefulSet {
		return false
	}
	set, ordinal, ok := StatefulSetOrdinal(e.Name)
	if !ok || set != e.Status.OwnerControllerName {
		return false
	}
	o, exists := sets[e.Namespace+"/"+set]
	return exists && OrdinalWanted(o.Replicas, o.Start, ordinal)
}

// Kept is an address an endpoint records, and its pool.
type Kept struct {
	Pool string
	IP   netip.Addr
}

// EndpointKeeps is what endpoint e records for interface nic ("" for every interface), by family (one
// address per family and interface, as an ADD gives).
func EndpointKeeps(e *spv2.SpiderEndpoint, nic string) []Kept {
	var out []Kept
	for _, d := range e.Status.Current.IPs {
		if nic != "" && d.NIC != nic {
			continue
		}
		for _, pair := range [][2]*string{{d.IPv4Pool, d.IPv4}, {d.IPv6Pool, d.IPv6}} {
			if pair[0] == nil || pair[1] == nil {
				continue
			}
			// Endpoints record "172.110.1.10/24"; an address alone is read too.
			if p, ok := iprange.ParseDestination(*pair[1]); ok {
				out = append(out, Kept{Pool: *pair[0], IP: p.Addr()})
			}
		}
	}
	return out
}

// KeptAddresses is Cluster.Kept: the addresses of every endpoint that EndpointKept.
func KeptAddresses(eps []spv2.SpiderEndpoint, sets map[string]Ordinals) map[string]bool {
	kept := map[string]bool{}
	for i := range eps {
		if !EndpointKept(&eps[i], sets) {
			continue
		}
		for _, k := range EndpointKeeps(&eps[i], "") {
			kept[KeptKey(k.Pool, k.IP)] = true
		}
	}
	return kept
}
