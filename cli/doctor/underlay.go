package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/pkg/rules"
)

// Checks doctor runs on the underlay itself.
const (
	// CheckParentsOnNodes: every node has the link that each underlay network's pods attach to (the
	// master, or the VLAN sub-interface or bond it names), up, as underlink-agent reports it in the node
	// label <prefix><link>.
	CheckParentsOnNodes = "underlay-parents-on-nodes"
	// CheckIPConflicts: no pool address is set aside because a host outside the cluster answered for it.
	CheckIPConflicts = "ip-conflicts"
)

const (
	whatParentsOnNodes = "every node has the link each underlay network's pods attach to (master, VLAN sub-interface or bond), up"
	whatIPConflicts    = "no pool address is set aside because another host on the segment answered for it"
)

// checkParents lists, per underlay network, the nodes whose agent reports its parent link down or
// missing (label "down"), or reports nothing (no label: the agent does not run there, or has not
// started). Pods of the network are never placed on those nodes. A parent missing on every node fails
// the check: no pod of the network can start anywhere.
func checkParents(ctx context.Context, r client.Reader, w *rules.World, prefix string) (Check, error) {
	c := Check{ID: CheckParentsOnNodes, What: whatParentsOnNodes}
	var nodes corev1.NodeList
	if err := r.List(ctx, &nodes); err != nil {
		if apierrors.IsForbidden(err) {
			c.Findings = append(c.Findings, Finding{Severity: rules.Warn, Subject: "Nodes", Why: "cannot be read with these credentials, so where the underlay links exist is unknown",
				Fix: "run doctor with a kubeconfig that may list nodes"})
			return finish(c), nil
		}
		return c, fmt.Errorf("list nodes: %w", err)
	}
	if len(nodes.Items) == 0 {
		return finish(c), nil
	}
	for i := range w.MultusConfigs {
		smc := &w.MultusConfigs[i]
		if smc.Spec.MacvlanConfig == nil || (smc.Spec.CniType != nil && *smc.Spec.CniType != "macvlan") {
			continue
		}
		parent, err := podnet.Parent(smc.Spec.MacvlanConfig)
		if err != nil {
			continue // config-spec-valid reports it
		}
		key := underlay.LabelKey(prefix, parent)
		var down, silent []string
		for _, n := range nodes.Items {
			switch v, ok := n.Labels[key]; {
			case !ok:
				silent = append(silent, n.Name)
			case v != underlay.LinkUp:
				down = append(down, n.Name)
			}
		}
		if len(down)+len(silent) == 0 {
			continue
		}
		sev := rules.Warn
		if len(down)+len(silent) == len(nodes.Items) {
			sev = rules.Deny
		}
		subject := rules.ObjectRef("SpiderMultusConfig", smc.Namespace, smc.Name)
		field := "spec.macvlan.master"
		if podnet.HasCreatedParent(smc.Spec.MacvlanConfig) {
			field = "spec.macvlan.vlanID"
			if smc.Spec.MacvlanConfig.VlanID == nil || *smc.Spec.MacvlanConfig.VlanID == 0 {
				field = "spec.macvlan.bond.name"
			}
		}
		var why []string
		if len(down) > 0 {
			why = append(why, fmt.Sprintf("%s is missing or down on %s (node label %s=%s)", parent, strings.Join(down, ", "), key, underlay.LinkDown))
		}
		if len(silent) > 0 {
			why = append(why, fmt.Sprintf("no underlink-agent reports %s on %s (no node label %s)", parent, strings.Join(silent, ", "), key))
		}
		c.Findings = append(c.Findings, Finding{Severity: sev, Subject: subject, Field: field, Value: parent,
			Why: "pods of this network attach to " + parent + ", and are never placed where it is not up: " + strings.Join(why, "; "),
			Fix: fmt.Sprintf("create and bring up %s on those nodes (underlink does not create VLAN sub-interfaces or bonds), or keep the network's pods off them", parent)})
	}
	sort.SliceStable(c.Findings, func(i, j int) bool { return c.Findings[i].Subject < c.Findings[j].Subject })
	return finish(c), nil
}

// checkConflicts lists the addresses the agents set aside because another host answered for them.
func checkConflicts(w *rules.World) Check {
	c := Check{ID: CheckIPConflicts, What: whatIPConflicts}
	for i := range w.Pools {
		p := &w.Pools[i]
		allocs, err := spv2.ParseAllocations(p.Status)
		if err != nil {
			continue
		}
		var ips []netip.Addr
		for k, a := range allocs {
			if ip, err := netip.ParseAddr(k); err == nil && a.IsConflict() {
				ips = append(ips, ip)
			}
		}
		slices.SortFunc(ips, netip.Addr.Compare)
		for _, ip := range ips {
			a := allocs[ip.String()]
			c.Findings = append(c.Findings, Finding{Severity: rules.Warn, Subject: rules.ObjectRef("SpiderIPPool", "", p.Name),
				Field: fmt.Sprintf("status.allocatedIPs[%s]", ip), Value: a.IPConflict.MAC,
				Why: fmt.Sprintf("%s is in use on the underlay by %s (it answered when pod %s was given the address on node %s at %s); underlink gives it to no pod", ip, a.IPConflict.MAC, a.NamespacedName, a.IPConflict.Node, a.IPConflict.DetectedAt),
				Fix: fmt.Sprintf("free %s on the segment (or exclude it in spec.excludeIPs), then kubectl annotate spiderippool %s %s=%s", ip, p.Name, spv2.AnnoClearIPConflicts, ip)})
		}
	}
	return finish(c)
}
