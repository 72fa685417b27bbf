package service

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/store"
	"github.com/underlink/underlink/cni/ipam"
	"github.com/underlink/underlink/cni/ipam/protocol"
)

// ReasonIPConflict is the reason of the Event an address conflict leaves on the pod.
const ReasonIPConflict = "IPConflict"

// Recorder records Events on pods.
type Recorder interface {
	Warning(ctx context.Context, pod *corev1.Pod, reason, message string)
	// Event records an Event on any object (a pod, a pool).
	Event(ctx context.Context, ref corev1.ObjectReference, eventType, reason, message string)
}

// Conflict serves a conflict report of underlink-ipam: its ADD was given addresses that another host on
// the segment answered for. Each is set aside in its pool (ipam.Pool.MarkConflict: the record stays,
// with the holder's MAC, held by no pod, until an operator clears it), the pod interface's other
// addresses are freed so the next ADD starts clean, and an Event on the pod names the address, the MAC
// and how to clear it. The answer says what was set aside and freed, and how to clear it.
func (s *Service) Conflict(ctx context.Context, req protocol.ConflictRequest) (_ *protocol.SetAside, err error) {
	start := time.Now()
	defer func() { s.Metrics.RequestSeconds.WithLabelValues("conflict").Observe(time.Since(start).Seconds()) }()
	if err := validate(req.Request, true); err != nil {
		return nil, err
	}
	if len(req.Conflicts) == 0 {
		return nil, &protocol.Error{Code: protocol.CodeInvalidConfig, Msg: "a conflict report without conflicts"}
	}
	pod, err := s.pod(ctx, req.Pod)
	if err != nil {
		return nil, err
	}
	h := ipam.Holder{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), NIC: req.IfName, ContainerID: req.ContainerID}
	log := s.requestLog(req.Request)
	all, err := s.Pools.List(ctx)
	if err != nil {
		return nil, tryAgain("list SpiderIPPools", err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	answer := &protocol.SetAside{}
	var marked, clear []string
	for _, c := range req.Conflicts {
		addr, err := netip.ParseAddr(c.Address)
		if err != nil {
			return nil, &protocol.Error{Code: protocol.CodeInvalidConfig, Msg: fmt.Sprintf("conflicts: %q is not an address", c.Address)}
		}
		mac, err := net.ParseMAC(c.MAC)
		if err != nil {
			return nil, &protocol.Error{Code: protocol.CodeInvalidConfig, Msg: fmt.Sprintf("conflicts: %q is not a MAC address", c.MAC)}
		}
		pool := ""
		for _, p := range all {
			snap, err := s.Store.Snapshot(ctx, p.Name)
			if err != nil {
				continue
			}
			if a, ok := snap.Allocations()[addr.String()]; ok && ipam.ReleaseMatches(a, h) {
				pool = p.Name
				break
			}
		}
		if pool == "" {
			log.Info("conflict on an address the pod interface does not hold; nothing to set aside", "ip", addr.String(), "mac", mac.String())
			continue
		}
		r := s.Store.Do(ctx, pool, store.Op{Kind: store.MarkConflict, Holder: h, IP: addr,
			Conflict: spv2.IPConflict{MAC: mac.String(), Node: s.NodeName, DetectedAt: now}})
		if r.Err != nil {
			return nil, toProtocol(r.Err)
		}
		if !r.IP.IsValid() {
			continue // freed or moved meanwhile: not this pod's to mark
		}
		s.Metrics.IPConflicts.WithLabelValues(pool).Inc()
		log.Info("address in use by another host on the segment; set aside", "pool", pool, "ip", addr.String(), "mac", mac.String(), "probe", c.Probe)
		marked = append(marked, fmt.Sprintf("%s (SpiderIPPool %s) answered by %s", addr, pool, mac))
		answer.Addresses = append(answer.Addresses, addr.String())
		clear = append(clear, fmt.Sprintf("SpiderIPPool %s sets %s aside until an operator clears it (kubectl annotate spiderippool %s %s=%s)", pool, addr, pool, spv2.AnnoClearIPConflicts, addr))
		if s.Events != nil {
			by := cmpOr(c.Probe, "ARP/NDP")
			s.Events.Warning(context.WithoutCancel(ctx), pod, ReasonIPConflict, fmt.Sprintf(
				"%s of SpiderIPPool %s, given to %s, is in use on the underlay by %s: it answered %s from %s on node %s. The address is set aside in the pool (status.allocatedIPs, ipConflict) and is not given again until cleared: kubectl annotate spiderippool %s %s=%s; the pod's next attempt takes another address",
				addr, pool, h.NIC, mac, by, h.NIC, s.NodeName, pool, spv2.AnnoClearIPConflicts, addr))
		}
	}
	// The rest of what the attachment holds goes back, so the runtime's next ADD starts clean.
	freed, err := s.release(ctx, h, all)
	if err != nil {
		return nil, err
	}
	s.ahead.Delete(aheadKey{uid: types.UID(h.UID), nic: h.NIC})
	answer.Freed, answer.Msg = freed.Addresses, strings.Join(clear, "; ")
	if len(clear) == 0 {
		answer.Msg = "the pod interface no longer held it, so nothing was set aside"
	}
	log.Info("conflict reported", "setAside", strings.Join(marked, "; "), "freed", freed.Addresses)
	return answer, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// EventWriter records core/v1 Events with Client, as underlink-agent on node Host (RBAC: create events).
type EventWriter struct {
	Client client.Client
	Host   string
}

// Warning creates a Warning Event on pod; a failure is not the caller's: the Event is advice.
func (e *EventWriter) Warning(ctx context.Context, pod *corev1.Pod, reason, message string) {
	e.Event(ctx, podRef(pod), corev1.EventTypeWarning, reason, message)
}
