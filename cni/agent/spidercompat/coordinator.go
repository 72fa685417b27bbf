package spidercompat

import (
	corev1 "k8s.io/api/core/v1"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// AnnoDefaultRouteNIC is Spiderpool's pod annotation naming the NIC of the pod's default route; its
// agent answers it as the pod's podDefaultRouteNIC.
const AnnoDefaultRouteNIC = "ipam.spidernet.io/default-route-nic"

// Spiderpool's defaults for a SpiderCoordinator field left unset: what its mutating webhook writes,
// and so what its agent answered with.
const (
	DefaultMode          = "auto"
	DefaultTunePodRoutes = true
	DefaultHostRuleTable = 500
	DefaultPodRPFilter   = 0
	DefaultTxQueueLen    = 0
	DefaultVethMTU       = 1500
)

// ConfigFor is the answer Spiderpool's agent gave its coordinator plugin: the cluster's coordinator
// defaults (coord, the SpiderCoordinator "default"; nil when there is none) with Spiderpool's defaults
// for what it leaves unset, overlayPodCIDR and serviceCIDR from its status, and podDefaultRouteNIC
// from pod's annotation when pod (nil when unknown) has one. The coordinator's DEL uses mode (nothing
// is done in Spiderpool's "disable") and hostRuleTable (the host table its rules are removed from).
func ConfigFor(coord *spv2.SpiderCoordinator, pod *corev1.Pod) CoordinatorConfig {
	var spec spv2.CoordinatorSpec
	var status spv2.CoordinatorStatus
	if coord != nil {
		spec, status = coord.Spec, coord.Status
	}
	out := CoordinatorConfig{
		Mode:           deref(spec.Mode, DefaultMode),
		OverlayPodCIDR: nonNil(status.OverlayPodCIDR),
		ServiceCIDR:    nonNil(status.ServiceCIDR),
		HijackCIDR:     nonNil(spec.HijackCIDR),
		PodMACPrefix:   deref(spec.PodMACPrefix, ""),
		TunePodRoutes:  deref(spec.TunePodRoutes, DefaultTunePodRoutes),
		// The CRD keeps it at 1 or more; a 0 would make the coordinator fall back to 500 as well.
		HostRuleTable:      deref(spec.HostRuleTable, DefaultHostRuleTable),
		PodRPFilter:        int64(deref(spec.PodRPFilter, DefaultPodRPFilter)),
		TxQueueLen:         int64(deref(spec.TxQueueLen, DefaultTxQueueLen)),
		PodDefaultRouteNIC: deref(spec.PodDefaultRouteNIC, ""),
		VethLinkAddress:    deref(spec.VethLinkAddress, ""),
		VethMTU:            deref(spec.VethMTU, DefaultVethMTU),
	}
	for _, r := range spec.PolicyRoutes {
		out.PolicyRoutes = append(out.PolicyRoutes, CoordinatorRoute{Dst: r.Dst, Gw: r.Gw})
	}
	if pod != nil {
		if nic, ok := pod.Annotations[AnnoDefaultRouteNIC]; ok {
			out.PodDefaultRouteNIC = nic
		}
	}
	return out
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// nonNil keeps a required list present in the JSON answer: the coordinator refuses a null one.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
