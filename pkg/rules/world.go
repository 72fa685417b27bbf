package rules

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/pkg/iprange"
	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/pkg/poolchoice"
)

// DefaultMultusNamespace is where Multus resolves a default-network annotation without a namespace.
const DefaultMultusNamespace = podnet.MultusNamespace

// Input is what a caller read from the cluster or from files; NewWorld turns it into a World.
type Input struct {
	// Clusters are every submariner.io/v1 Cluster object (the broker syncs one per joined cluster, the
	// local one included).
	Clusters []submarinerv1.Cluster
	// LocalCluster is the local cluster's ID (spec.cluster_id or metadata.name), e.g. from
	// --local-cluster. Empty means find it; see NewWorld.
	LocalCluster string
	// NoLocalInference keeps NewWorld to the certain ways of finding the local cluster (LocalCluster,
	// APIServerServiceIP): it never infers it from the pools or from a lone Cluster. The CLI sets it,
	// since offline those inferences can flip verdicts (a pool put by mistake in a remote cluster's CIDR
	// makes that cluster "local", and the pool is then admitted). The webhook leaves it false.
	NoLocalInference bool
	// APIServerServiceIP is the ClusterIP of the default/kubernetes Service, when the caller can read it.
	// It lies in the local cluster's service range, so it identifies the local Cluster object.
	APIServerServiceIP string
	// Pools are every SpiderIPPool.
	Pools []spiderv2beta1.SpiderIPPool
	// ReservedIPs are every SpiderReservedIP.
	ReservedIPs []spiderv2beta1.SpiderReservedIP
	// CoordinatorDefaults is the spec of the SpiderCoordinator "default" (nil: none): the coordinator
	// fields a config leaves unset take its values.
	CoordinatorDefaults *spiderv2beta1.CoordinatorSpec
	// MultusConfigs are every SpiderMultusConfig.
	MultusConfigs []spiderv2beta1.SpiderMultusConfig
	// NADs are every NetworkAttachmentDefinition.
	NADs []nadv1.NetworkAttachmentDefinition
	// Namespaces are the namespaces whose labels are known; pools' namespaceAffinity is checked against
	// them. A namespace missing here has unknown labels (a warning, not a denial).
	Namespaces []corev1.Namespace
	// DefaultNetwork is the network injected into pods that name none ("namespace/name").
	DefaultNetwork string
	// MultusNamespace resolves default-network names without a namespace; empty means kube-system.
	MultusNamespace string
}

// World is everything the rules read. Build it with NewWorld; it is read-only afterwards and safe for
// concurrent use.
type World struct {
	// Local is the local cluster's Submariner Cluster; nil when unknown (alignment unchecked, a warning).
	Local *submarinerv1.Cluster
	// LocalReason says how Local was chosen, or why it is unknown.
	LocalReason string
	// LocalBy says which way of NewWorld chose Local; LocalUnknown when Local is nil.
	LocalBy LocalChoice
	// Remotes are the other clusters.
	Remotes []submarinerv1.Cluster
	// Pools are every SpiderIPPool.
	Pools []spiderv2beta1.SpiderIPPool
	// ReservedIPs are every SpiderReservedIP.
	ReservedIPs []spiderv2beta1.SpiderReservedIP
	// CoordinatorDefaults is Input.CoordinatorDefaults.
	CoordinatorDefaults *spiderv2beta1.CoordinatorSpec
	// MultusConfigs are every SpiderMultusConfig.
	MultusConfigs []spiderv2beta1.SpiderMultusConfig
	// NADs are every NetworkAttachmentDefinition.
	NADs []nadv1.NetworkAttachmentDefinition
	// Namespaces maps a namespace name to its labels; a missing key means the labels are unknown.
	Namespaces map[string]map[string]string
	// DefaultNetwork is the network injected into pods that name none.
	DefaultNetwork string
	// MultusNamespace resolves default-network names without a namespace.
	MultusNamespace string

	// clusters holds the parsed CIDRs of Local (first, when known) and Remotes, in that order.
	clusters []clusterNet
	// noClusters is set when Input had no Cluster object at all.
	noClusters bool
	// noInference is Input.NoLocalInference: the caller is the CLI, whose flags the fixes name.
	noInference bool
	// choice is Pools as pool choice reads them, built on first use.
	choice     *poolchoice.Index
	choiceOnce sync.Once
	// aligned memoizes Alignment per config ("namespace/name"), which the pod rules ask for every pod.
	aligned   map[string]AlignmentStatus
	alignedMu sync.Mutex
}

// alignmentOf is Alignment of the config namespace/name, computed once per world; ok is false when the
// world has no such config.
func (w *World) alignmentOf(namespace, name string) (AlignmentStatus, bool) {
	if w == nil {
		return AlignmentStatus{}, false
	}
	var smc *spiderv2beta1.SpiderMultusConfig
	for i := range w.MultusConfigs {
		if w.MultusConfigs[i].Namespace == namespace && w.MultusConfigs[i].Name == name {
			smc = &w.MultusConfigs[i]
			break
		}
	}
	if smc == nil {
		return AlignmentStatus{}, false
	}
	key := namespace + "/" + name
	w.alignedMu.Lock()
	defer w.alignedMu.Unlock()
	if st, ok := w.aligned[key]; ok {
		return st, true
	}
	if w.aligned == nil {
		w.aligned = map[string]AlignmentStatus{}
	}
	st := Alignment(w, smc)
	w.aligned[key] = st
	return st, true
}

// clusterNet is a Cluster with its CIDRs parsed; entries that do not parse are left out here and
// reported by CheckClusters.
type clusterNet struct {
	id       string
	local    bool
	pods     []netip.Prefix
	services []netip.Prefix
	globals  []netip.Prefix
}

func (c clusterNet) globalnet() bool { return len(c.globals) > 0 }

// LocalChoice says how NewWorld chose the local cluster.
type LocalChoice string

// The ways of choosing the local cluster, in NewWorld's order.
const (
	// LocalUnknown: no way chose one; the alignment rules warn "alignment unchecked".
	LocalUnknown LocalChoice = ""
	// LocalGiven: Input.LocalCluster named it.
	LocalGiven LocalChoice = "given"
	// LocalByServiceIP: its service_cidr holds the API server's service IP.
	LocalByServiceIP LocalChoice = "apiserver-service-ip"
	// LocalByPools: inferred, its cluster_cidr holds the pools.
	LocalByPools LocalChoice = "inferred-from-pools"
	// LocalOnlyCluster: inferred, it is the only Cluster.
	LocalOnlyCluster LocalChoice = "only-cluster"
)

// Inferred reports whether the choice is an inference that other input could turn around.
func (c LocalChoice) Inferred() bool { return c == LocalByPools || c == LocalOnlyCluster }

// NewWorld indexes the input and picks the local cluster:
//
//  1. in.LocalCluster, matched against spec.cluster_id then metadata.name;
//  2. else the one Cluster whose service_cidr contains in.APIServerServiceIP (the webhook reads the
//     default/kubernetes Service, whose ClusterIP always lies in the local service range);
//  3. else the one Cluster whose cluster_cidr contains every pool named by a SpiderMultusConfig (or every
//     pool, when no config names one);
//  4. else the only Cluster, when there is one (Submariner syncs the local cluster's own object too).
//
// Steps 3 and 4 are inferences; with in.NoLocalInference (the CLI) they are skipped. When no step picks
// exactly one cluster, Local stays nil and LocalReason says why; the checks then warn that alignment is
// unchecked instead of guessing.
func NewWorld(in Input) *World {
	w := &World{
		Pools:               in.Pools,
		ReservedIPs:         in.ReservedIPs,
		CoordinatorDefaults: in.CoordinatorDefaults,
		MultusConfigs:       in.MultusConfigs,
		NADs:                in.NADs,
		Namespaces:          map[string]map[string]string{},
		DefaultNetwork:      in.DefaultNetwork,
		MultusNamespace:     in.MultusNamespace,
		noClusters:          len(in.Clusters) == 0,
		noInference:         in.NoLocalInference,
	}
	if w.MultusNamespace == "" {
		w.MultusNamespace = DefaultMultusNamespace
	}
	for _, ns := range in.Namespaces {
		labels := ns.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		w.Namespaces[ns.Name] = labels
	}
	local, by, reason := pickLocal(in)
	w.LocalReason, w.LocalBy = reason, by
	for i := range in.Clusters {
		c := in.Clusters[i]
		if local >= 0 && i == local {
			w.Local = &c
			continue
		}
		w.Remotes = append(w.Remotes, c)
	}
	sort.Slice(w.Remotes, func(i, j int) bool { return ClusterID(&w.Remotes[i]) < ClusterID(&w.Remotes[j]) })
	if w.Local != nil {
		w.clusters = append(w.clusters, parseCluster(w.Local, true))
	}
	for i := range w.Remotes {
		w.clusters = append(w.clusters, parseCluster(&w.Remotes[i], false))
	}
	return w
}

// UnknownLocalClusterError is a local cluster named (--local-cluster) that is none of the clusters: a
// mistake of the caller's, which CheckLocalCluster reports before any verdict.
type UnknownLocalClusterError struct {
	Name string
	// Known are the clusters' IDs, sorted.
	Known []string
}

func (e *UnknownLocalClusterError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("local cluster %s: there are no Submariner clusters to name", e.Name)
	}
	msg := fmt.Sprintf("local cluster %s names none of the Submariner clusters %s", e.Name, strings.Join(e.Known, ", "))
	if near := nearest(e.Name, e.Known); near != "" {
		msg += "; did you mean " + near + "?"
	}
	return msg
}

// CheckLocalCluster returns an *UnknownLocalClusterError when name is set and matches neither the
// spec.cluster_id nor the metadata.name of any of clusters.
func CheckLocalCluster(name string, clusters []submarinerv1.Cluster) error {
	if name == "" {
		return nil
	}
	known := make([]string, len(clusters))
	for i := range clusters {
		if clusters[i].Spec.ClusterID == name || clusters[i].Name == name {
			return nil
		}
		known[i] = ClusterID(&clusters[i])
	}
	sort.Strings(known)
	return &UnknownLocalClusterError{Name: name, Known: known}
}

// ClusterID is the cluster's spec.cluster_id, or its object name when the ID is empty.
func ClusterID(c *submarinerv1.Cluster) string {
	if c.Spec.ClusterID != "" {
		return c.Spec.ClusterID
	}
	return c.Name
}

func parseCluster(c *submarinerv1.Cluster, local bool) clusterNet {
	return clusterNet{
		id:       ClusterID(c),
		local:    local,
		pods:     parsePrefixes(c.Spec.ClusterCIDR),
		services: parsePrefixes(c.Spec.ServiceCIDR),
		globals:  parsePrefixes(c.Spec.GlobalCIDR),
	}
}

func parsePrefixes(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		// Submariner writes masked CIDRs, but be lenient with host bits here: CheckClusters reports them.
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

// pickLocal returns the index of the local cluster in in.Clusters (-1 when unknown), how it was chosen
// and why.
func pickLocal(in Input) (int, LocalChoice, string) {
	if len(in.Clusters) == 0 {
		return -1, LocalUnknown, "no Submariner Cluster objects found"
	}
	ids := make([]string, len(in.Clusters))
	for i := range in.Clusters {
		ids[i] = ClusterID(&in.Clusters[i])
	}
	if in.LocalCluster != "" {
		for i := range in.Clusters {
			if in.Clusters[i].Spec.ClusterID == in.LocalCluster {
				return i, LocalGiven, fmt.Sprintf("local cluster %s given", in.LocalCluster)
			}
		}
		for i := range in.Clusters {
			if in.Clusters[i].Name == in.LocalCluster {
				return i, LocalGiven, fmt.Sprintf("local cluster %s given", in.LocalCluster)
			}
		}
		return -1, LocalUnknown, fmt.Sprintf("local cluster %q names no Submariner Cluster (have %s)", in.LocalCluster, strings.Join(ids, ", "))
	}
	if ip, err := netip.ParseAddr(in.APIServerServiceIP); err == nil {
		ip = ip.Unmap()
		var hits []int
		for i := range in.Clusters {
			for _, p := range parsePrefixes(in.Clusters[i].Spec.ServiceCIDR) {
				if p.Contains(ip) {
					hits = append(hits, i)
					break
				}
			}
		}
		if len(hits) == 1 {
			return hits[0], LocalByServiceIP, fmt.Sprintf("local cluster %s: its service_cidr holds the API server's service IP %s", ids[hits[0]], ip)
		}
	}
	if in.NoLocalInference {
		return -1, LocalUnknown, fmt.Sprintf("the local cluster is not named (--local-cluster), so none of the Submariner Clusters %s is taken as local", strings.Join(ids, ", "))
	}
	if subnets := usedPoolSubnets(in.Pools, in.MultusConfigs); len(subnets) > 0 {
		var hits []int
		for i := range in.Clusters {
			pods := parsePrefixes(in.Clusters[i].Spec.ClusterCIDR)
			all := true
			for _, s := range subnets {
				if !coveredByAny(pods, s) {
					all = false
					break
				}
			}
			if all {
				hits = append(hits, i)
			}
		}
		if len(hits) == 1 {
			return hits[0], LocalByPools, fmt.Sprintf("local cluster %s inferred: its cluster_cidr holds the pools; pass the local cluster's ID to be sure", ids[hits[0]])
		}
	}
	if len(in.Clusters) == 1 {
		return 0, LocalOnlyCluster, fmt.Sprintf("local cluster %s: the only Submariner Cluster", ids[0])
	}
	return -1, LocalUnknown, fmt.Sprintf("cannot tell which of the Submariner Clusters %s is local; name it (--local-cluster)", strings.Join(ids, ", "))
}

// usedPoolSubnets returns the subnets of the pools SpiderMultusConfigs name, or of every pool when none
// is named.
func usedPoolSubnets(pools []spiderv2beta1.SpiderIPPool, configs []spiderv2beta1.SpiderMultusConfig) []netip.Prefix {
	named := map[string]bool{}
	for i := range configs {
		for _, n := range configPoolNames(&configs[i]) {
			named[n] = true
		}
	}
	var out []netip.Prefix
	for i := range pools {
		if len(named) > 0 && !named[pools[i].Name] {
			continue
		}
		if p, err := iprange.ParsePrefix(pools[i].Spec.Subnet); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func coveredByAny(outer []netip.Prefix, inner netip.Prefix) bool {
	for _, o := range outer {
		if iprange.PrefixCovers(o, inner) {
			return true
		}
	}
	return false
}

// hijackOf is a config's coordinator hijack CIDRs with the cluster defaults merged as its NAD merges them
// (spiderv2beta1.CoordinatorSpec.WithDefaults): its own list, else the SpiderCoordinator's.
func (w *World) hijackOf(smc *spiderv2beta1.SpiderMultusConfig) []string {
	var defaults *spiderv2beta1.CoordinatorSpec
	if w != nil {
		defaults = w.CoordinatorDefaults
	}
	if merged := smc.Spec.CoordinatorConfig.WithDefaults(defaults); merged != nil {
		return merged.HijackCIDR
	}
	return nil
}

// ofFamily returns the prefixes of ps in the address family of a.
func ofFamily(ps []netip.Prefix, a netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() == a.Is4() {
			out = append(out, p)
		}
	}
	return out
}

// configPoolNames lists the pools a config names, IPv4 first.
func configPoolNames(c *spiderv2beta1.SpiderMultusConfig) []string {
	m := c.Spec.MacvlanConfig
	if m == nil || m.SpiderpoolConfigPools == nil {
		return nil
	}
	return append(append([]string(nil), m.SpiderpoolConfigPools.IPv4IPPool...), m.SpiderpoolConfigPools.IPv6IPPool...)
}

// Pool returns the pool of that name.
func (w *World) Pool(name string) (*spiderv2beta1.SpiderIPPool, bool) {
	if w == nil {
		return nil, false
	}
	for i := range w.Pools {
		if w.Pools[i].Name == name {
			return &w.Pools[i], true
		}
	}
	return nil, false
}

// choicePools is the world's pools as pool choice reads them (pkg/poolchoice), read once.
func (w *World) choicePools() poolchoice.Pools {
	if w == nil {
		return poolchoice.NewIndex(nil)
	}
	w.choiceOnce.Do(func() {
		pools := make([]*poolchoice.Pool, len(w.Pools))
		for i := range w.Pools {
			pools[i] = poolchoice.NewPool(&w.Pools[i])
		}
		w.choice = poolchoice.NewIndex(pools)
	})
	return w.choice
}

// network reads the SpiderMultusConfig or NetworkAttachmentDefinition namespace/name as placement does
// (pkg/podnet); a SpiderMultusConfig wins over the NAD it generates.
func (w *World) network(namespace, name string) (podnet.Network, bool) {
	if w == nil {
		return podnet.Network{}, false
	}
	for i := range w.MultusConfigs {
		if w.MultusConfigs[i].Namespace == namespace && w.MultusConfigs[i].Name == name {
			return podnet.FromMultusConfig(&w.MultusConfigs[i]), true
		}
	}
	for i := range w.NADs {
		if w.NADs[i].Namespace == namespace && w.NADs[i].Name == name {
			return podnet.FromNAD(&w.NADs[i]), true
		}
	}
	return podnet.Network{}, false
}

// namespaceLabels returns the labels of namespace ns, and false when they are unknown.
func (w *World) namespaceLabels(ns string) (map[string]string, bool) {
	if w == nil {
		return nil, false
	}
	l, ok := w.Namespaces[ns]
	return l, ok
}
