package service

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/endpoint"
	"github.com/underlink/underlink/cni/agent/store"
	"github.com/underlink/underlink/cni/ipam"
	"github.com/underlink/underlink/pkg/iprange"
	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/pkg/poolchoice"
)

// ReasonFixedAddressChanged is the reason of the Event on a StatefulSet pod that cannot get back its kept
// address.
const ReasonFixedAddressChanged = "FixedAddressChanged"

// fixed is what a StatefulSet pod's SpiderEndpoint keeps for one of its interfaces.
type fixed struct {
	// set is the StatefulSet that controls the pod.
	set string
	// endpoint is the pod's SpiderEndpoint, nil when it has none yet.
	endpoint *spv2.SpiderEndpoint
	// kept are the addresses recorded for the interface, by family.
	kept map[int]ipam.Kept
}

// fixedFor reads what pod's SpiderEndpoint keeps for interface nic, when StatefulSet fixed addresses
// are on and a StatefulSet controls pod (nil otherwise). It reads the apiserver, not the cache: the
// endpoint was written by whichever node's agent ran the pod before.
func (s *Service) fixedFor(ctx context.Context, pod *corev1.Pod, nic string) (*fixed, error) {
	if !s.StatefulSets {
		return nil, nil
	}
	set := podnet.StatefulSetOf(pod)
	if set == "" {
		return nil, nil
	}
	f := &fixed{set: set, kept: map[int]ipam.Kept{}}
	ep, ours, err := s.statefulSetEndpoint(ctx, pod.Namespace, pod.Name, set)
	if err != nil || ep == nil {
		return f, err
	}
	f.endpoint = ep
	if !ours {
		return f, nil // an endpoint of an earlier pod of that name that no StatefulSet owned
	}
	for _, k := range ipam.EndpointKeeps(ep, nic) {
		f.kept[iprange.FamilyOf(k.IP)] = k
	}
	return f, nil
}

// reclaim gives h the address f keeps for the family of fp, when there is one. ok is false when there is
// none, or it cannot be given back: then the pod gets a new address, an Event says why, and the kept one
// is freed by garbage collection once the endpoint records the new one.
func (s *Service) reclaim(ctx context.Context, h ipam.Holder, fp poolchoice.FamilyPlan, f *fixed) (store.Result, bool) {
	if f == nil {
		return store.Result{}, false
	}
	k, ok := f.kept[fp.Family]
	if !ok {
		return store.Result{}, false
	}
	why := ""
	if slices.Contains(fp.Names(), k.Pool) {
		r := s.Store.Do(ctx, k.Pool, store.Op{Kind: store.Reclaim, Holder: h, IP: k.IP})
		if r.Err == nil {
			s.Log.Info("StatefulSet pod got its kept address back", "pod", h.NamespacedName(), "ifName", h.NIC, "pool", k.Pool, "ip", k.IP.String())
			return r, true
		}
		why = r.Err.Error()
	} else {
		why = fmt.Sprintf("SpiderIPPool %q is not among the pools this pod may use on node %s (%s)", k.Pool, s.NodeName, rejection(fp, k.Pool))
	}
	s.podEvent(ctx, h.Namespace, h.Name, h.UID, ReasonFixedAddressChanged, fmt.Sprintf(
		"StatefulSet %s's pod %s cannot get back its address %s on %s: %s; it gets a new address, and %s is freed",
		f.set, h.Name, k.IP, h.NIC, why, k.IP))
	return store.Result{}, false
}

func rejection(fp poolchoice.FamilyPlan, pool string) string {
	for _, r := range fp.Rejected {
		if r.Pool == pool {
			return r.Reason
		}
	}
	return "not named by the pod's network, annotations or default pools"
}

// recordFixed writes the addresses got for h's interface into the pod's SpiderEndpoint (created when
// the pod has none), so that the pod recreated under its name gets them back. Nothing is written when it
// already says so.
func (s *Service) recordFixed(ctx context.Context, pod *corev1.Pod, h ipam.Holder, got []store.Result, plan poolchoice.Plan, f *fixed) error {
	if f == nil {
		return nil
	}
	detail := spv2.IPAllocationDetail{NIC: h.NIC, Vlan: ptr(int64(0))}
	if plan.CleanGateway {
		detail.CleanGateway = ptr(true)
	}
	for _, r := range got {
		addr := netip.PrefixFrom(r.IP, r.Pool.Subnet.Bits()).String()
		var gw *string
		if r.Pool.Gateway.IsValid() {
			gw = ptr(r.Pool.Gateway.String())
		}
		if r.Pool.Family == 6 {
			detail.IPv6, detail.IPv6Pool, detail.IPv6Gateway = &addr, ptr(r.Pool.Name), gw
		} else {
			detail.IPv4, detail.IPv4Pool, detail.IPv4Gateway = &addr, ptr(r.Pool.Name), gw
		}
		detail.Routes = append(detail.Routes, r.Pool.Routes...)
	}
	key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
	want := func(ep *spv2.SpiderEndpoint) bool {
		st := &ep.Status
		old := *st.DeepCopy()
		st.OwnerControllerType, st.OwnerControllerName = spv2.OwnerStatefulSet, f.set
		// Another pod of that name may have written it: its other interfaces' entries stay, each taken
		// back by that interface's own ADD (the pod's interfaces are set up one after the other).
		st.Current.UID, st.Current.Node = string(pod.UID), s.NodeName
		i := slices.IndexFunc(st.Current.IPs, func(d spv2.IPAllocationDetail) bool { return d.NIC == h.NIC })
		if i < 0 {
			st.Current.IPs = append(st.Current.IPs, detail)
		} else {
			st.Current.IPs[i] = detail
		}
		return !reflect.DeepEqual(old, *st)
	}
	ep := f.endpoint
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if ep == nil {
			ep = &spv2.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}
			want(ep)
			err := s.Writer.Create(ctx, ep)
			if !apierrors.IsAlreadyExists(err) {
				return wrapEndpoint(key, err)
			}
			ep = nil
		}
		if ep == nil || ep.ResourceVersion == "" {
			ep = &spv2.SpiderEndpoint{}
			if err := s.Live.Get(ctx, key, ep); err != nil {
				return wrapEndpoint(key, err)
			}
		}
		fresh := ep.DeepCopy()
		if !want(fresh) {
			return nil
		}
		err := s.Writer.Update(ctx, fresh)
		if apierrors.IsConflict(err) {
			ep = nil // read it again
			return err
		}
		return wrapEndpoint(key, err)
	})
}

func wrapEndpoint(key types.NamespacedName, err error) error {
	if err == nil || apierrors.IsConflict(err) {
		return err
	}
	return tryAgain(fmt.Sprintf("record the StatefulSet pod's addresses in SpiderEndpoint %s", key), err)
}

// keepOnRelease reports whether a DEL of h must keep its addresses: StatefulSet fixed addresses are on,
// h's pod has a SpiderEndpoint of its StatefulSet, and that StatefulSet still wants the pod's ordinal.
// When the StatefulSet no longer wants it, the endpoint is returned for deletion after the release.
func (s *Service) keepOnRelease(ctx context.Context, h ipam.Holder) (keep bool, drop *spv2.SpiderEndpoint, err error) {
	if !s.StatefulSets {
		return false, nil, nil
	}
	setName, _, ok := ipam.StatefulSetOrdinal(h.Name)
	if !ok {
		return false, nil, nil
	}
	ep, ours, err := s.statefulSetEndpoint(ctx, h.Namespace, h.Name, setName)
	if err != nil || !ours {
		return false, nil, err
	}
	sets := map[string]ipam.Ordinals{}
	var set appsv1.StatefulSet
	switch err := s.Live.Get(ctx, types.NamespacedName{Namespace: h.Namespace, Name: setName}, &set); {
	case err == nil:
		sets[h.Namespace+"/"+setName] = endpoint.OrdinalsOf(&set)
	case !apierrors.IsNotFound(err):
		return false, nil, tryAgain(fmt.Sprintf("read StatefulSet %s/%s", h.Namespace, setName), err)
	}
	if ipam.EndpointKept(ep, sets) {
		return true, nil, nil
	}
	return false, ep, nil
}

// statefulSetEndpoint reads the SpiderEndpoint of pod namespace/name from the apiserver (nil when it has
// none); ours says whether it records a pod of StatefulSet set.
func (s *Service) statefulSetEndpoint(ctx context.Context, namespace, name, set string) (ep *spv2.SpiderEndpoint, ours bool, err error) {
	ep = &spv2.SpiderEndpoint{}
	switch err := s.Live.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, ep); {
	case apierrors.IsNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, tryAgain(fmt.Sprintf("read SpiderEndpoint %s/%s", namespace, name), err)
	}
	return ep, ep.Status.OwnerControllerType == spv2.OwnerStatefulSet && ep.Status.OwnerControllerName == set, nil
}

// dropEndpoint deletes a StatefulSet pod's SpiderEndpoint whose addresses were released, if it is still
// the one read (its resourceVersion).
func (s *Service) dropEndpoint(ctx context.Context, ep *spv2.SpiderEndpoint) {
	if err := endpoint.Delete(ctx, s.Writer, ep); err != nil {
		s.Log.Info("deleting a released StatefulSet pod's SpiderEndpoint failed; garbage collection deletes it", "endpoint", ep.Namespace+"/"+ep.Name, "err", err.Error())
	}
}

func ptr[T any](v T) *T { return &v }
