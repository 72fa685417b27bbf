package rules

import (
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

// CheckClusters checks the Submariner clusters themselves: that they exist and the local one is known
// (warnings), that their CIDRs parse, and that without globalnet no remote CIDR overlaps a local one.
func CheckClusters(w *World) []Violation {
	c := &collector{subject: "Submariner clusters"}
	var all []*submarinerv1.Cluster
	if w != nil {
		if w.Local != nil {
			all = append(all, w.Local)
		}
		for i := range w.Remotes {
			all = append(all, &w.Remotes[i])
		}
	}
	for _, cl := range all {
		sub := ObjectRef("Cluster", cl.Namespace, cl.Name)
		for _, list := range []struct {
			key     string
			entries []string
		}{{"cluster_cidr", cl.Spec.ClusterCIDR}, {"service_cidr", cl.Spec.ServiceCIDR}, {"global_cidr", cl.Spec.GlobalCIDR}} {
			for i, s := range list.entries {
				p, err := netip.ParsePrefix(strings.TrimSpace(s))
				if err == nil && p.Addr().Zone() == "" {
					continue
				}
				c.add(Violation{Rule: RuleClusterCIDRsValid, Subject: sub, Cluster: ClusterID(cl), Field: field.NewPath("spec", list.key).Index(i), Value: s, Severity: Deny,
					Message: fmt.Sprintf("is not a CIDR, so cluster %s's %s is ignored by every alignment rule", ClusterID(cl), list.key),
					Fix:     "rejoin the cluster with subctl join and a valid --clustercidr / --servicecidr"})
			}
		}
		if len(cl.Spec.ClusterCIDR) == 0 {
			c.add(Violation{Rule: RuleClusterCIDRsValid, Subject: sub, Cluster: ClusterID(cl), Field: field.NewPath("spec", "cluster_cidr"), Type: field.ErrorTypeRequired, Severity: Warn,
				Message: fmt.Sprintf("cluster %s has no cluster_cidr, so its pod routes cannot be checked", ClusterID(cl)),
				Fix:     "rejoin with subctl join --clustercidr"})
		}
	}
	if !w.clustersKnown(c) {
		return c.vs
	}
	local := w.clusters[0]
	for ri, r := range w.clusters[1:] {
		if local.globalnet() || r.globalnet() {
			continue
		}
		sub := ObjectRef("Cluster", w.Remotes[ri].Namespace, w.Remotes[ri].Name)
		for _, lp := range namedPrefixes(local) {
			for _, rp := range namedPrefixes(r) {
				if !lp.p.Overlaps(rp.p) {
					continue
				}
				c.add(Violation{Rule: RuleClustersDisjoint, Subject: sub, Cluster: r.id, Field: field.NewPath("spec", rp.key), Value: rp.p.String(), Severity: Deny,
					Message: fmt.Sprintf("%s (%s of cluster %s) overlaps %s (%s of the local cluster %s), so Submariner cannot route between them", rp.p, rp.what, r.id, lp.p, lp.what, local.id),
					Fix:     "give the clusters disjoint CIDRs, or enable Submariner globalnet"})
			}
		}
	}
	return c.vs
}

type namedPrefix struct {
	p         netip.Prefix
	key, what string
}

func namedPrefixes(c clusterNet) []namedPrefix {
	var out []namedPrefix
	for _, p := range c.pods {
		out = append(out, namedPrefix{p, "cluster_cidr", "pod CIDR"})
	}
	for _, p := range c.services {
		out = append(out, namedPrefix{p, "service_cidr", "service CIDR"})
	}
	return out
}

// CheckDefaultNetwork checks that the network injected into pods that name none (World.DefaultNetwork)
// resolves to a SpiderMultusConfig or NetworkAttachmentDefinition.
func CheckDefaultNetwork(w *World) []Violation {
	if w == nil || w.DefaultNetwork == "" {
		return nil
	}
	c := &collector{subject: "default network"}
	sel, err := ParseNetworks(w.DefaultNetwork, w.MultusNamespace)
	if err != nil || len(sel) != 1 {
		msg := "the default network must name one network"
		if err != nil {
			msg = "the default network " + err.Error()
		}
		c.deny(RuleDefaultNetworkExists, nil, w.DefaultNetwork, msg, "configure namespace/name of a SpiderMultusConfig"+w.networkExample())
		return c.vs
	}
	if !w.HasNetwork(sel[0].Namespace, sel[0].Name) {
		msg := fmt.Sprintf("the default network %s does not exist, so injected pods fail to start", sel[0])
		fix := "create SpiderMultusConfig " + sel[0].String() + " or configure another default network"
		if near := nearest(sel[0].String(), w.networkNames()); near != "" {
			fix = "did you mean " + near + "?"
		}
		c.add(Violation{Rule: RuleDefaultNetworkExists, Value: w.DefaultNetwork, Object: ObjectRef("SpiderMultusConfig", sel[0].Namespace, sel[0].Name), Severity: Deny, Message: msg, Fix: fix})
	}
	return c.vs
}
