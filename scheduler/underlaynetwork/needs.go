package underlaynetwork

import (
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/scheduler/underlaynetwork/cache"
)

// needs is what a pod asks of a node and of the pools: host NICs that must be up and addresses to take.
type needs struct {
	// nics are the master NICs of the pod's underlay networks, sorted and unique.
	nics []string
	// reqs are the addresses the pod needs, one per interface and address family.
	reqs []request
}

// request is one address: it comes from the first candidate pool that is eligible on the node and has a
// free address (Spiderpool tries pools in the order they are named).
type request struct {
	iface   string
	network string
	family  int
	// pools are the candidates that admit the pod, in order.
	pools []*cache.Pool
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

// resolve reads the pod's annotations, its networks and their pools from the cache. A pod it cannot
// place anywhere (an annotation it cannot read, a network or every candidate pool missing) gets an
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
	poolAnn, err := podnet.ParsePoolAnnotations(pod)
	if err != nil {
		return nil, r, unresolvable("pod %s: %v", pod.Name, err)
	}
	r.pools.Insert(poolAnn.Names()...)
	n := &needs{}
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
		choice, ok := poolAnn.For(att.Interface)
		if !ok {
			choice = net.Pools
		}
		r.pools.Insert(choice.IPv4...)
		r.pools.Insert(choice.IPv6...)
		if choice.Empty() {
			st := p.defaultRequests(pod, att, n, &r)
			if st != nil {
				return nil, r, st
			}
			continue
		}
		for _, fam := range []struct {
			family int
			names  []string
		}{{4, choice.IPv4}, {6, choice.IPv6}} {
			if len(fam.names) == 0 {
				continue
			}
			req, st := p.request(pod, att, fam.family, fam.names, choice.Source)
			if st != nil {
				return nil, r, st
			}
			n.reqs = append(n.reqs, req)
		}
	}
	n.nics = sets.List(nics)
	return n, r, nil
}

// defaultRequests adds requests for the cluster default pools (spec.default) of each family that has any.
func (p *Plugin) defaultRequests(pod *v1.Pod, att podnet.Attachment, n *needs, r *refs) *fwk.Status {
	found := false
	for _, family := range []int{4, 6} {
		pools := p.store.DefaultPools(family)
		if len(pools) == 0 {
			continue
		}
		found = true
		r.defaultFamilies.Insert(family)
		names := make([]string, len(pools))
		for i, pl := range pools {
			names[i] = pl.Name
		}
		req, st := p.request(pod, att, family, names, "cluster default pools")
		if st != nil {
			return st
		}
		n.reqs = append(n.reqs, req)
	}
	if !found {
		r.defaultFamilies.Insert(4, 6) // a new default pool of either family would help
		return unresolvable("network %s (%s) names no pool and no SpiderIPPool has spec.default: true; name pools in its spec.macvlan.ippools or annotate the pod with %s", att.Key(), att.Source, "ipam.spidernet.io/ippool")
	}
	return nil
}

// request collects the candidate pools of one address, dropping those the pod cannot use; when none is
// left the status says why for each.
func (p *Plugin) request(pod *v1.Pod, att podnet.Attachment, family int, names []string, source string) (request, *fwk.Status) {
	req := request{iface: att.Interface, network: att.Key(), family: family}
	var why []string
	for _, name := range names {
		pl, ok := p.store.Pool(name)
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("SpiderIPPool %s not found", name))
		case pl.Problem != "":
			why = append(why, fmt.Sprintf("SpiderIPPool %s cannot be read: %s", name, pl.Problem))
		case pl.Disabled:
			why = append(why, fmt.Sprintf("SpiderIPPool %s is disabled (spec.disable)", name))
		case pl.Family != 0 && pl.Family != family:
			why = append(why, fmt.Sprintf("SpiderIPPool %s is IPv%d, not IPv%d", name, pl.Family, family))
		default:
			if ok, because := pl.AdmitsPod(pod, att.Key(), p.nsLabels); !ok {
				why = append(why, because)
				continue
			}
			req.pools = append(req.pools, pl)
		}
	}
	if len(req.pools) == 0 {
		return req, unresolvable("no usable IPv%d pool for %s of network %s (pools from %s): %s", family, att.Interface, att.Key(), source, strings.Join(why, "; "))
	}
	return req, nil
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
		st.labelKeys[i] = p.args.LabelPrefix + nic
	}
	st.linkKey = strings.Join(st.labelKeys, ",")
	seen := sets.New[string]()
	for _, r := range n.reqs {
		rs := reqState{iface: r.iface, network: r.network, family: r.family}
		for _, pl := range r.pools {
			a, ok := p.store.Availability(pl.Name)
			if !ok {
				a = cache.Availability{Pool: pl} // deleted since resolve: decide on what was read
			}
			rs.cands = append(rs.cands, candidate{Availability: a, free: a.Free(), full: fullPhrase(a)})
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
	taken := a.Pool.Allocated + a.Reserved
	if a.Reserved == 0 {
		return fmt.Sprintf("%s (%d/%d allocated)", a.Pool.Name, taken, a.Pool.Total)
	}
	return fmt.Sprintf("%s (%d/%d taken: %d allocated, %d reserved for scheduled pods)", a.Pool.Name, taken, a.Pool.Total, a.Pool.Allocated, a.Reserved)
}
