package underlaynetwork

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/pkg/poolchoice"
	"github.com/underlink/underlink/scheduler/underlaynetwork/cache"
)

// needs is what a pod asks of a node and of the pools: host NICs that must be up and addresses to take.
type needs struct {
	// nics are the master NICs of the pod's underlay networks, sorted and unique.
	nics []string
	// reqs are the addresses the pod needs, one per interface and address family.
	reqs []request
	// kept names a StatefulSet's pod ("namespace/name") and uid its UID: the addresses its pools keep
	// for that name under another UID are its own, free for it alone.
	kept, uid string
}

// request is one address: it comes from the first candidate pool that is eligible on the node and has a
// free address (Spiderpool tries pools in the order they are named).
type request struct {
	iface   string
	network string
	family  int
	// pools are the candidates that admit the pod, in order.
	pools []*cache.Pool
	// master, when not empty, is the NIC whose subnet the pools must match on the node (the network's
	// matchMasterSubnet).
	master string
}

// refs are the networks and pools a pod refers to, known even when they do not exist, so that a queueing
// hint can tell whether an event concerns the pod.
type refs struct {
	networks sets.Set[string]
	pools    sets.Set[string]
	// defaultFamilies are the address families for which the pod takes the cluster default pools.
	defaultFamilies sets.Set[int]
}

// mayNeedUnderlay is the cheap test run before anything is parsed: a pod without network annotations
// needs the underlay only when the args name an underlay default network.
func (p *Plugin) mayNeedUnderlay(pod *v1.Pod) bool {
	return p.args.DefaultNetwork != "" || podnet.HasNetworkAnnotations(pod)
}

// resolve reads the pod's annotations, its networks and their candidate pools from the cache, with the
// pool choice of pkg/poolchoice that the IPAM and admission use too. A pod it cannot place anywhere (an
// annotation it cannot read, a network missing, no candidate pool for an address) gets an
// UnschedulableAndUnresolvable status that names what could not be read; refs are filled as far as
// resolution got.
func (p *Plugin) resolve(pod *v1.Pod) (*needs, refs, *fwk.Status) {
	r := refs{networks: sets.New[string](), pools: sets.New[string](), defaultFamilies: sets.New[int]()}
	atts, err := podnet.Attachments(pod, p.args.DefaultNetwork)
	if err != nil {
		return nil, r, unresolvable("pod %s: %v", pod.Name, err)
	}
	if len(atts) == 0 {
		return &needs{}, r, nil
	}
	ann, err := poolchoice.ParseAnnotations(pod.Annotations)
	if err != nil {
		return nil, r, unresolvable("pod %s: %v", pod.Name, err)
	}
	r.pools.Insert(ann.Mentioned()...)
	nsLabels, nsErr := p.nsLabels(pod.Namespace)
	n := &needs{}
	if podnet.StatefulSetOf(pod) != "" {
		n.kept, n.uid = pod.Namespace+"/"+pod.Name, string(pod.UID)
	}
	nics := sets.New[string]()
	for _, att := range atts {
		key := att.Key()
		r.networks.Insert(key)
		net, ok := p.store.Network(att.Namespace, att.Name)
		if !ok {
			return nil, r, unresolvable("network %s (%s) not found: no SpiderMultusConfig or NetworkAttachmentDefinition %s", key, att.Source, key)
		}
		if net.Problem != "" {
			return nil, r, unresolvable("network %s (%s) cannot be used: %s", key, att.Source, net.Problem)
		}
		nics.Insert(net.Masters...)
		if !net.IPAM {
			continue
		}
		r.pools.Insert(net.Pools.IPv4...)
		r.pools.Insert(net.Pools.IPv6...)
		s := poolchoice.Subject{Namespace: pod.Namespace, Pod: pod.Name, Interface: att.Interface, Network: key,
			PodLabels: pod.Labels, PodAnnotations: pod.Annotations, NamespaceLabels: nsLabels}
		plan, err := ann.Candidates(s, poolchoice.NetworkPools{Names: poolchoice.Names{IPv4: net.Pools.IPv4, IPv6: net.Pools.IPv6},
			IPv4Field: net.Pools.IPv4Field, IPv6Field: net.Pools.IPv6Field, MatchMaster: net.Pools.MatchMaster}, p.store.Choice())
		if plan.Source == poolchoice.SourceDefault {
			r.defaultFamilies.Insert(4, 6) // a new or changed default pool of either family may matter
		}
		if err != nil {
			return nil, r, candidatesFailed(pod, att, err, nsErr)
		}
		for _, fp := range plan.Families {
			req := request{iface: att.Interface, network: key, family: fp.Family, master: plan.MatchMaster}
			var why []string
			for _, name := range fp.Names() {
				pl, ok := p.store.Pool(name)
				switch {
				case !ok:
					why = append(why, fmt.Sprintf("SpiderIPPool %s was deleted", name))
				case pl.Uncountable != "":
					why = append(why, fmt.Sprintf("SpiderIPPool %s: %s", name, pl.Uncountable))
				default:
					req.pools = append(req.pools, pl)
				}
			}
			if len(req.pools) == 0 {
				return nil, r, unresolvable("no usable IPv%d pool for %s of network %s (pools from %s): %s", fp.Family, att.Interface, key, plan.Source, strings.Join(why, "; "))
			}
			n.reqs = append(n.reqs, req)
		}
	}
	n.nics = sets.List(nics)
	return n, r, nil
}

// candidatesFailed is the status of a pod interface without candidate pools: the pool choice's error,
// with the namespace's read error when the labels it needed could not be read.
func candidatesFailed(pod *v1.Pod, att podnet.Attachment, err error, nsErr error) *fwk.Status {
	var np *poolchoice.NoPoolError
	if errors.As(err, &np) {
		why := make([]string, len(np.Rejections))
		for i, rj := range np.Rejections {
			why[i] = "SpiderIPPool " + rj.Pool + ": " + rj.Reason
			if rj.Field == "spec.namespaceAffinity" && nsErr != nil {
				why[i] += fmt.Sprintf(" (namespace %s could not be read: %v)", pod.Namespace, nsErr)
			}
		}
		return unresolvable("no usable IPv%d pool for %s of network %s (pools from %s): %s", np.Family, att.Interface, att.Key(), np.Source, strings.Join(why, "; "))
	}
	return unresolvable("network %s (%s) on %s: %v", att.Key(), att.Source, att.Interface, err)
}

func unresolvable(format string, args ...any) *fwk.Status {
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf(format, args...))
}

// concerns reports whether an event on pool pl can matter to a pod with these refs.
func (r refs) concerns(pl *cache.Pool) bool {
	return r.pools.Has(pl.Name) || (pl.Default && r.defaultFamilies.Has(pl.Family))
}

// stateFor snapshots the availability of every candidate pool: the cycle decides on these numbers.
func (p *Plugin) stateFor(n *needs) *cycleState {
	st := &cycleState{nics: n.nics, uniform: true}
	st.labelKeys = make([]string, len(n.nics))
	for i, nic := range n.nics {
		st.labelKeys[i] = underlay.LabelKey(p.args.LabelPrefix, nic)
	}
	st.linkKey = strings.Join(st.labelKeys, ",")
	seen := sets.New[string]()
	for _, r := range n.reqs {
		rs := reqState{iface: r.iface, network: r.network, family: r.family, master: r.master}
		if r.master != "" {
			// Which pools serve depends on the subnet of the NIC on each node.
			rs.addrKey = underlay.AddressesKey(p.args.LabelPrefix, r.master)
			st.uniform, st.nodeScoped = false, true
		}
		for _, pl := range r.pools {
			a, ok := p.store.Availability(pl.Name)
			if !ok {
				a = cache.Availability{Pool: pl} // deleted since resolve: decide on what was read
			}
			free := a.Free()
			if n.kept != "" && a.Pool.HoldersKnown {
				free += int64(a.Pool.KeptFor(n.kept, n.uid))
			}
			rs.cands = append(rs.cands, candidate{Availability: a, free: free, full: fullPhrase(a)})
			if pl.NodeScoped() {
				st.uniform, st.nodeScoped = false, true
			}
			if seen.Has(pl.Name) {
				st.shared = true
			}
			seen.Insert(pl.Name)
		}
		st.reqs = append(st.reqs, rs)
	}
	if len(st.reqs) > 1 {
		// Which pool a node gets can then depend on the others' headroom.
		st.uniform = st.uniform && !st.shared
	}
	sort.Strings(st.nics)
	return st
}

// fullPhrase is how a pool without a free address is described in a reason, computed once per cycle.
func fullPhrase(a cache.Availability) string {
	if a.Free() > 0 {
		return ""
	}
	taken := a.Pool.Allocated + a.Reserved + a.Pool.ReservedFree
	if a.Reserved == 0 && a.Pool.ReservedFree == 0 {
		return fmt.Sprintf("%s (%d/%d allocated)", a.Pool.Name, taken, a.Pool.Total)
	}
	parts := []string{fmt.Sprintf("%d allocated", a.Pool.Allocated)}
	if a.Reserved > 0 {
		parts = append(parts, fmt.Sprintf("%d reserved for scheduled pods", a.Reserved))
	}
	if a.Pool.ReservedFree > 0 {
		parts = append(parts, fmt.Sprintf("%d reserved by SpiderReservedIPs", a.Pool.ReservedFree))
	}
	return fmt.Sprintf("%s (%d/%d taken: %s)", a.Pool.Name, taken, a.Pool.Total, strings.Join(parts, ", "))
}
