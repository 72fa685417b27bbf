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

// Orphan is an allocation whose pod is gone, is now another pod under the same name, or has finished.
type Orphan struct {
	Pool       string
	IP         netip.Addr
	Allocation spv2.PoolIPAllocation
	Reason     string
	// Delay is added to the grace period before it is freed: a finished pod's termination grace
	// period, as Spiderpool waits it out.
	Delay time.Duration
	// NodeRenewed is when the allocation's node, up at this pass, last renewed its kubelet's Lease (zero:
	// unknown, or the node is not up). Grace frees the address only once the node has renewed after the
	// orphan was first seen: its kubelet was alive after the pod went away, so the sandbox is torn down
	// or will be. A kubelet that stopped just before its pod was force-deleted renews nothing, and its
	// node is seen down once the Lease expires, however short the grace period.
	NodeRenewed time.Time
}

// FinishedPod is a pod in phase Succeeded or Failed: its containers have all stopped.
type FinishedPod struct {
	UID string
	// Phase is Succeeded or Failed.
	Phase string
	// Grace is the pod's spec.terminationGracePeriodSeconds.
	Grace time.Duration
}

// NodeState is whether a node can still run what it ran: its kubelet renews its Lease and reports it
// Ready. A node that is down may still run a pod that was force-deleted from the API, whose container
// answers on the underlay with its address.
type NodeState struct {
	Up bool
	// Since is when the node was last known up (its Lease's renewTime, or the Ready condition's last
	// transition), for the operator's timeout.
	Since time.Time
	// Why says what shows it down, e.g. "NotReady", "Lease not renewed since 12:00:05".
	Why string
	// Renewed is the last renewal of the node's kubelet Lease (zero when it has none).
	Renewed time.Time
}

// Cluster is what garbage collection knows besides the pools, read after them.
type Cluster struct {
	// Pods maps every pod that exists to its UID.
	Pods LivePods
	// Finished are the pods of Pods that are Succeeded or Failed, by "namespace/name".
	Finished map[string]FinishedPod
	// Nodes are the nodes that exist, by name; nil means unknown, and no allocation is kept for its
	// node.
	Nodes map[string]NodeState
	// NodeLostAfter, when positive, is how long a node may be down before the addresses of its gone pods
	// are freed anyway (the operator's choice; 0: only once the node is back).
	NodeLostAfter time.Duration
	// Now is the time of the pass.
	Now time.Time
	// Kept are the addresses kept for StatefulSet pods whose ordinal their StatefulSet still wants
	// (KeptKey of pool and address): never collected, whether the pod exists or not.
	Kept map[string]bool
}

// KeptKey is the key of an address of a pool in Cluster.Kept.
func KeptKey(pool string, ip netip.Addr) string { return pool + "/" + ip.String() }

// Orphans lists the allocations of a pool that garbage collection may free: those whose pod does not
// exist, or exists with another UID. An allocation whose pod exists with its UID is never listed, nor
// one without a UID whose pod name exists (it cannot be told apart from the live pod), nor an address
// set aside as a conflict (Pool.MarkConflict).
//
// The caller must read the pool before listing the pods: an address is given only to a pod that exists,
// so a pod missing from a later list has been deleted, not "not created yet".
func Orphans(pool string, allocs spv2.PoolIPAllocations, live LivePods) []Orphan {
	out, _ := Collectable(pool, allocs, Cluster{Pods: live})
	return out
}

// Collectable is Orphans with the nodes and the finished pods: it also lists the allocations of pods
// that are Succeeded or Failed (Delay: their termination grace period), and it keeps back (held) the
// orphans recorded on a node that is down, because the old container may still answer on the underlay
// with that address: they are freed once the node is back (its kubelet tears the sandbox down, whose
// DEL frees the address; if none comes, garbage collection frees it as any orphan), or once the node was
// down for c.NodeLostAfter. A node that no longer exists holds nothing back; nor does an allocation
// without a node (written before underlink recorded nodes, or by another IPAM).
func Collectable(pool string, allocs spv2.PoolIPAllocations, c Cluster) (orphans, held []Orphan) {
	for key, a := range allocs {
		ip, err := netip.ParseAddr(key)
		if err != nil {
			continue // Load refuses such a status; never act on what cannot be read
		}
		if a.IsConflict() {
			continue // held by a host outside the cluster, until an operator clears it
		}
		if c.Kept[KeptKey(pool, ip)] {
			continue // the StatefulSet pod's address, until its StatefulSet no longer wants the ordinal
		}
		uid, exists := c.Pods[a.NamespacedName]
		o := Orphan{Pool: pool, IP: ip, Allocation: a}
		switch {
		case !exists:
			o.Reason = fmt.Sprintf("pod %s no longer exists", a.NamespacedName)
		case a.PodUID != "" && uid != a.PodUID:
			o.Reason = fmt.Sprintf("pod %s is now UID %s; the address was given to UID %s", a.NamespacedName, uid, a.PodUID)
		default:
			f, done := c.Finished[a.NamespacedName]
			if !done || (a.PodUID != "" && f.UID != a.PodUID) {
				continue
			}
			// Its containers have stopped: no node state matters.
			o.Reason = fmt.Sprintf("pod %s is %s", a.NamespacedName, f.Phase)
			o.Delay = f.Grace
			orphans = append(orphans, o)
			continue
		}
		if n, known := c.Nodes[a.Node]; c.Nodes != nil && a.Node != "" && known && !n.Up {
			down := c.Now.Sub(n.Since)
			if c.NodeLostAfter <= 0 || down < c.NodeLostAfter {
				o.Reason += fmt.Sprintf("; node %s is down (%s) for %s", a.Node, n.Why, down.Round(time.Second))
				held = append(held, o)
				continue
			}
			o.Reason += fmt.Sprintf("; node %s has been down (%s) for %s, longer than the node-lost timeout %s", a.Node, n.Why, down.Round(time.Second), c.NodeLostAfter)
		} else if known && n.Up {
			o.NodeRenewed = n.Renewed
		}
		orphans = append(orphans, o)
	}
	sort.Slice(orphans, func(i, j int) bool { return orphans[i].IP.Less(orphans[j].IP) })
	sort.Slice(held, func(i, j int) bool { return held[i].IP.Less(held[j].IP) })
	return orphans, held
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
// Period whose node, when known, renewed its Lease after they were first seen (Orphan.NodeRenewed).
// Orphans not in this pass are forgotten: their allocation changed or their pod came back.
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
		if now.Sub(first) >= g.Period+o.Delay && (o.NodeRenewed.IsZero() || o.NodeRenewed.After(first)) {
			due = append(due, o)
		}
	}
	g.first = next
	return due
}

// Pending is the number of orphans waiting out their grace period.
func (g *Grace) Pending() int { return len(g.first) }
