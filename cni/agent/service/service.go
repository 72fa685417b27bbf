// Package service is underlink-agent's IPAM service: it turns a plugin's ADD, DEL or CHECK into pool
// choices (cni/ipam) and pool writes (cni/agent/store), and serves them on the agent's unix socket.
package service

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/hostaddr"
	"github.com/underlink/underlink/cni/agent/metrics"
	"github.com/underlink/underlink/cni/agent/pools"
	"github.com/underlink/underlink/cni/agent/prealloc"
	"github.com/underlink/underlink/cni/agent/store"
	"github.com/underlink/underlink/cni/ipam"
	"github.com/underlink/underlink/cni/ipam/protocol"
	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/pkg/poolchoice"
)

// Service answers IPAM requests for the pods of one node.
//
// Pre-allocation (see Preallocate): the agent gives a pod scheduled to its node its addresses as soon as
// it sees the pod, before the runtime asks, so the ADD that follows answers from the pool as the agent
// last wrote it, without waiting for an apiserver write; the sandbox is recorded on the address
// afterwards (store.Adopt).
type Service struct {
	// Cache reads pods of this node, namespaces and this node from the agent's informers.
	Cache client.Reader
	// Pools reads SpiderIPPools (their specs current, their statuses as of the agent's last look).
	Pools *pools.View
	// Live reads from the apiserver when the cache does not know an object yet.
	Live     client.Reader
	Store    *store.Store
	NodeName string
	Metrics  *metrics.Metrics
	// Events records Events on pods (an address conflict); nil records none.
	Events Recorder
	Log    logr.Logger
	// StatefulSets keeps a StatefulSet pod's addresses for its ordinal (sticky.go); Writer writes the
	// pods' SpiderEndpoints that record them.
	StatefulSets bool
	Writer       client.Client

	// inflight holds, per pod UID, a channel closed when that pod's pre-allocation has finished.
	inflight sync.Map
	// ahead holds, per pod interface (aheadKey), the addresses this agent pre-allocated and no ADD has
	// used yet.
	ahead sync.Map
	// answered holds, per pod interface (aheadKey), the sandbox (container ID) whose ADD was answered
	// from the pre-allocation, until its adoption has been written.
	answered sync.Map
}

// aheadKey is a pod interface whose addresses were pre-allocated.
type aheadKey struct {
	uid types.UID
	nic string
}

// Allocate serves an ADD: it chooses the pod interface's pools and gives it one address per family, or
// the addresses it already holds.
func (s *Service) Allocate(ctx context.Context, req protocol.Request) (_ *protocol.Allocation, err error) {
	start := time.Now()
	log := s.requestLog(req)
	result := "failed"
	defer func() {
		s.Metrics.RequestSeconds.WithLabelValues("allocate").Observe(time.Since(start).Seconds())
		s.Metrics.Allocations.WithLabelValues(result).Inc()
		if err != nil {
			log.Info("allocation failed", "after", time.Since(start).Round(time.Millisecond).String(), "err", err.Error())
			s.allocationFailed(ctx, req, err)
		}
	}()
	if err := validate(req, true); err != nil {
		return nil, err
	}
	pod, err := s.pod(ctx, req.Pod)
	if err != nil {
		return nil, err
	}
	subject, err := s.subjectOf(ctx, pod, ipam.Holder{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), NIC: req.IfName, ContainerID: req.ContainerID})
	if err != nil {
		return nil, err
	}
	log = log.WithValues("podUID", subject.UID)
	all, err := s.Pools.List(ctx)
	if err != nil {
		return nil, tryAgain("list SpiderIPPools", err)
	}
	network := poolchoice.NetworkPools{Names: poolchoice.Names{IPv4: req.IPv4Pools, IPv6: req.IPv6Pools}, MatchMaster: req.MatchMaster}
	if err := s.masterAddrs(&subject, network.MatchMaster); err != nil {
		return nil, err
	}
	plan, err := ipam.Choose(subject, network, all)
	if err != nil {
		return nil, toProtocol(err)
	}
	if got, ahead, ok := s.claimPreallocation(ctx, subject.Holder, plan); ok {
		result = "preallocated"
		out := s.answer(got, plan)
		s.adopt(subject.Holder, got)
		s.dropStrayPreallocations(subject.Holder, got, ahead)
		log.Info("allocated", "ips", out.IPs, "source", plan.Source, "preallocated", true, "took", time.Since(start).String())
		return out, nil
	}
	f, err := s.fixedFor(ctx, pod, req.IfName)
	if err != nil {
		return nil, err
	}
	got, err := s.allocate(ctx, subject.Holder, plan, f)
	if err != nil {
		return nil, err
	}
	if err := s.recordFixed(ctx, pod, subject.Holder, got, plan, f); err != nil {
		return nil, err
	}
	out := s.answer(got, plan)
	anyNew := false
	for _, r := range got {
		anyNew = anyNew || r.New
	}
	result = "existing"
	if anyNew {
		result = "new"
	}
	ahead, _ := s.ahead.LoadAndDelete(aheadKey{uid: types.UID(subject.UID), nic: subject.NIC})
	s.dropStrayPreallocations(subject.Holder, got, ahead)
	log.Info("allocated", "ips", out.IPs, "source", plan.Source, "new", anyNew, "took", time.Since(start).String())
	return out, nil
}

// allocationFailed leaves an Event on the pod that names why its interface got no address, so `kubectl
// describe pod` shows underlink's reason beside the runtime's.
func (s *Service) allocationFailed(ctx context.Context, req protocol.Request, err error) {
	if req.Pod.Namespace == "" || req.Pod.Name == "" {
		return
	}
	s.podEvent(ctx, req.Pod.Namespace, req.Pod.Name, req.Pod.UID, ReasonAllocationFailed, fmt.Sprintf(
		"underlink-agent on %s gave interface %s no address: %v", s.NodeName, req.IfName, err))
}

// allocate takes one address per family of plan for h, through the pools' writers, or frees what it
// newly took and fails.
func (s *Service) allocate(ctx context.Context, h ipam.Holder, plan poolchoice.Plan, f *fixed) ([]store.Result, error) {
	var got []store.Result
	rollback := func() {
		// Free what this request newly took; a DEL after the failed ADD would too, but need not come.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, r := range got {
			if r.New {
				s.Store.Do(rctx, r.Pool.Name, store.Op{Kind: store.Release, Holder: h})
			}
		}
	}
	for _, fp := range plan.Families {
		r, err := s.allocateFamily(ctx, h, plan.Source, fp, f)
		if err != nil {
			rollback()
			return nil, err
		}
		got = append(got, r)
	}
	return got, nil
}

// answer is the plugin's result for the addresses got.
func (s *Service) answer(got []store.Result, plan poolchoice.Plan) *protocol.Allocation {
	out := &protocol.Allocation{}
	for _, r := range got {
		ipc := protocol.IP{Address: netip.PrefixFrom(r.IP, r.Pool.Subnet.Bits()).String(), Pool: r.Pool.Name}
		if r.Pool.Gateway.IsValid() && !plan.CleanGateway {
			ipc.Gateway = r.Pool.Gateway.String()
			out.Routes = append(out.Routes, defaultRoutes(r.Pool)...)
		}
		for _, rt := range r.Pool.Routes {
			out.Routes = append(out.Routes, protocol.Route{Dst: rt.Dst, Gw: rt.Gw})
		}
		out.IPs = append(out.IPs, ipc)
	}
	return out
}

// Preallocate gives every interface of pod (scheduled to this node) that atts names its addresses ahead
// of the runtime's ADDs, from the pools each attachment's network names (its SpiderMultusConfig), the
// pod's annotations or the default pools, exactly as that interface's ADD would choose them. The
// records carry no container ID until a sandbox adopts them. It is idempotent per pod UID, and an ADD
// for the pod waits for a pre-allocation under way instead of racing it. An interface that fails is
// logged and counted and the others go on: its ADD allocates.
func (s *Service) Preallocate(ctx context.Context, pod *corev1.Pod, atts []prealloc.Attachment) error {
	done := make(chan struct{})
	if _, busy := s.inflight.LoadOrStore(pod.UID, done); busy {
		return nil
	}
	defer func() {
		s.inflight.Delete(pod.UID)
		close(done)
	}()
	var errs []error
	for _, att := range atts {
		if err := s.preallocate(ctx, pod, att); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", att.Interface, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) preallocate(ctx context.Context, pod *corev1.Pod, att prealloc.Attachment) (err error) {
	start := time.Now()
	log := s.Log.WithValues("pod", pod.Namespace+"/"+pod.Name, "podUID", pod.UID, "ifName", att.Interface)
	defer func() {
		if err != nil {
			s.Metrics.Allocations.WithLabelValues("ahead-failed").Inc()
			log.Info("pre-allocation failed; the ADD will allocate", "err", err.Error())
		}
	}()
	subject, err := s.subjectOf(ctx, pod, ipam.Holder{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), NIC: att.Interface})
	if err != nil {
		return err
	}
	all, err := s.Pools.List(ctx)
	if err != nil {
		return tryAgain("list SpiderIPPools", err)
	}
	if err := s.masterAddrs(&subject, att.Pools.MatchMaster); err != nil {
		return err
	}
	plan, err := ipam.Choose(subject, att.Pools, all)
	if err != nil {
		return toProtocol(err)
	}
	f, err := s.fixedFor(ctx, pod, att.Interface)
	if err != nil {
		return err
	}
	got, err := s.allocate(ctx, subject.Holder, plan, f)
	if err != nil {
		return err
	}
	if err := s.recordFixed(ctx, pod, subject.Holder, got, plan, f); err != nil {
		return err
	}
	s.Metrics.Allocations.WithLabelValues("ahead").Inc()
	s.ahead.Store(aheadKey{uid: pod.UID, nic: att.Interface}, got)
	ips := make([]string, 0, len(got))
	for _, r := range got {
		ips = append(ips, r.IP.String())
	}
	log.Info("pre-allocated", "ips", ips, "source", plan.Source, "took", time.Since(start).String())
	return nil
}

// waitPreallocation waits for a pre-allocation of the pod under way, if any.
func (s *Service) waitPreallocation(ctx context.Context, uid string) {
	v, ok := s.inflight.Load(types.UID(uid))
	if !ok {
		return
	}
	select {
	case <-v.(chan struct{}):
	case <-ctx.Done():
	}
}

// fromPreallocation answers an ADD from pre-allocations, without a write. It waits for a pre-allocation
// of the pod under way, and looks at the pools only when this agent pre-allocated for the pod, so the
// ADD of any other pod reads no pool more than before. For every family of plan, one of its pools must
// hold a pre-allocated address (no container ID yet) of h's pod interface in the
// newest version of the pool this agent knows of. No quorum read confirms it: the record was written by
// this agent's own writer for a pod of this node, and only a DEL of that pod (which goes through this
// agent) or garbage collection of a pod that is gone or has another UID (this ADD's pod exists, with
// this UID) can free it.
func (s *Service) fromPreallocation(ctx context.Context, h ipam.Holder, plan poolchoice.Plan) ([]store.Result, bool) {
	s.waitPreallocation(ctx, h.UID)
	if _, ok := s.ahead.Load(aheadKey{uid: types.UID(h.UID), nic: h.NIC}); !ok {
		return nil, false
	}
	var got []store.Result
	for _, fp := range plan.Families {
		found := false
		for _, name := range fp.Names() {
			snap, err := s.Store.Snapshot(ctx, name)
			if err != nil {
				continue
			}
			if a, ok := snap.Preallocated(h); ok {
				got = append(got, store.Result{IP: a, Pool: store.InfoOf(snap)})
				found = true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return got, len(got) > 0
}

// claimPreallocation answers an ADD from the pod interface's pre-allocation (fromPreallocation) if no
// DEL has claimed it first: the ADD and a DEL of another sandbox of the pod each take the interface out
// of ahead, and only the one that does goes on. The ADD stores its sandbox in answered before it tries,
// so a DEL that loses sees whose the address is (releaseKind). It returns the answer and what ahead held.
func (s *Service) claimPreallocation(ctx context.Context, h ipam.Holder, plan poolchoice.Plan) ([]store.Result, any, bool) {
	got, ok := s.fromPreallocation(ctx, h, plan)
	if !ok {
		return nil, nil, false
	}
	key := aheadKey{uid: types.UID(h.UID), nic: h.NIC}
	s.answered.Store(key, h.ContainerID)
	ahead, claimed := s.ahead.LoadAndDelete(key)
	if !claimed {
		s.answered.CompareAndDelete(key, h.ContainerID)
		return nil, nil, false
	}
	return got, ahead, true
}

// AdoptDelay is how long after an ADD answered from a pre-allocation its sandbox is recorded. The write
// then leaves the ADD's critical path and the CPU the plugins chained after underlink-ipam need, and the
// adoptions of a burst of pods share one pool write (group commit). Until it lands, the agent knows the
// sandbox from memory (answered): the DEL of another sandbox of the pod (one whose ADD failed before it
// reached the IPAM, torn down late) keeps the address (releaseKind).
const AdoptDelay = 250 * time.Millisecond

// adopt records h's sandbox on the pre-allocated addresses got, AdoptDelay after the ADD was answered.
// If the agent dies first, the records keep no container ID, and a DEL matches them by pod UID.
func (s *Service) adopt(h ipam.Holder, got []store.Result) {
	go func() {
		key := aheadKey{uid: types.UID(h.UID), nic: h.NIC}
		defer s.answered.CompareAndDelete(key, h.ContainerID)
		time.Sleep(AdoptDelay)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, r := range got {
			if res := s.Store.Do(ctx, r.Pool.Name, store.Op{Kind: store.Adopt, Holder: h}); res.Err != nil {
				s.Log.Info("recording the sandbox on a pre-allocated address failed; a DEL matches it by pod UID", "pool", r.Pool.Name, "ip", r.IP.String(), "err", res.Err.Error())
			}
		}
	}()
}

// releaseKind is how a DEL by h frees. When another sandbox's ADD was answered from the pod interface's
// pre-allocation and its adoption is not written yet, store.ReleaseSandbox, which keeps the records
// without a sandbox: this DEL's sandbox never used the address (its ADD failed before it reached the
// IPAM: Multus gave up reading the pod, say, and the runtime tore it down late), and freed, the address
// would go to another pod while the other sandbox runs on it. Else store.Release. A DEL that finds the
// pre-allocation unused claims it (no ADD can then be answered from it) and frees it: a pod whose
// sandboxes keep failing holds no address.
func (s *Service) releaseKind(h ipam.Holder) store.Kind {
	key := aheadKey{uid: types.UID(h.UID), nic: h.NIC}
	if _, claimed := s.ahead.LoadAndDelete(key); claimed {
		return store.Release
	}
	if c, ok := s.answered.Load(key); ok && c.(string) != h.ContainerID {
		return store.ReleaseSandbox
	}
	return store.Release
}

// dropStrayPreallocations frees pre-allocations this agent made for h's pod interface in pools other
// than those the ADD got its addresses from (the pod's network changed its pools between the
// pre-allocation and the ADD), so the pod does not hold an address it never uses until it is deleted.
// Only this agent's own pre-allocations since it started are known here; one made before a restart
// stays until the pod is gone.
// v is what ahead held for the interface (nil: nothing).
func (s *Service) dropStrayPreallocations(h ipam.Holder, got []store.Result, v any) {
	if v == nil {
		return
	}
	used := map[string]bool{}
	for _, r := range got {
		used[r.Pool.Name] = true
	}
	for _, r := range v.([]store.Result) {
		if used[r.Pool.Name] {
			continue
		}
		go s.releaseUnclaimed(h, r.Pool.Name, r.IP, "the ADD took its addresses from other pools")
	}
}

// Forget drops what the service remembers of a pod's pre-allocations (the pod was deleted before an
// ADD came; garbage collection frees its addresses).
func (s *Service) Forget(pod *corev1.Pod) {
	s.ahead.Range(func(k, _ any) bool {
		key := k.(aheadKey)
		if key.uid != pod.UID {
			return true
		}
		// An ADD that took them removed the entry first (dropStrayPreallocations).
		v, ok := s.ahead.LoadAndDelete(k)
		if !ok {
			return true
		}
		if s.StatefulSets && podnet.StatefulSetOf(pod) != "" {
			// Kept for the ordinal while the StatefulSet wants it: garbage collection decides.
			return true
		}
		// The pod is gone from the API and no ADD took these addresses: its sandbox never got them (a pod
		// deleted while ContainerCreating, e.g. a workload scaled down at once). Garbage collection would
		// free them after its grace period; they are freed now, if still unclaimed.
		h := ipam.Holder{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), NIC: key.nic}
		for _, r := range v.([]store.Result) {
			go s.releaseUnclaimed(h, r.Pool.Name, r.IP, "its pod was deleted before any ADD took it")
		}
		return true
	})
}

// releaseUnclaimed frees ip of pool if it is still h's pre-allocation (no sandbox recorded), with a
// release conditional on that very record, so an address an ADD adopted meanwhile is kept.
func (s *Service) releaseUnclaimed(h ipam.Holder, pool string, ip netip.Addr, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap, err := s.Store.Snapshot(ctx, pool)
	if err != nil {
		return
	}
	if a, ok := snap.Preallocated(h); !ok || a != ip {
		return
	}
	rec := snap.Allocations()[ip.String()]
	if res := s.Store.Do(ctx, pool, store.Op{Kind: store.ReleaseIfHeld, IP: ip, Record: rec}); res.Err == nil && len(res.Freed) > 0 {
		s.Log.Info("freed a pre-allocation", "pool", pool, "ip", ip.String(), "pod", h.NamespacedName(), "ifName", h.NIC, "why", why)
	}
}

// defaultRoutes is the default route via the pool's gateway. A gateway outside the pool's subnet (the
// seed's 172.110.0.1 for 172.110.1.0/24, which admission denies) is not on-link: a route via it would make
// macvlan's ADD fail, so only the gateway is returned and underlink-coordinator, chained after macvlan,
// installs the default route with the onlink flag.
func defaultRoutes(p store.PoolInfo) []protocol.Route {
	if !p.Subnet.Contains(p.Gateway) {
		return nil
	}
	def := "0.0.0.0/0"
	if p.Family == 6 {
		def = "::/0"
	}
	return []protocol.Route{{Dst: def, Gw: p.Gateway.String()}}
}

// allocateFamily takes one address from the family's pools, in order, skipping pools that are exhausted
// or refused. A StatefulSet pod's kept address comes first (f), then a pool where the pod interface
// already holds an address (a repeated ADD).
func (s *Service) allocateFamily(ctx context.Context, h ipam.Holder, source string, fp poolchoice.FamilyPlan, f *fixed) (store.Result, error) {
	if r, ok := s.reclaim(ctx, h, fp, f); ok {
		return r, nil
	}
	order := fp.Names()
	if len(order) > 1 {
		for i, name := range order {
			if snap, err := s.Store.Snapshot(ctx, name); err == nil {
				if _, ok := snap.Find(h); ok {
					order[0], order[i] = order[i], order[0]
					break
				}
			}
		}
	}
	rejected := append([]poolchoice.Rejection(nil), fp.Rejected...)
	var lastErr error
	for _, name := range order {
		r := s.Store.Do(ctx, name, store.Op{Kind: store.Allocate, Holder: h})
		if r.Err == nil {
			return r, nil
		}
		if !skippable(r.Err) {
			return store.Result{}, toProtocol(r.Err)
		}
		s.Log.Info("pool skipped", "pool", name, "reason", r.Err.Error())
		lastErr = r.Err
		rejected = append(rejected, poolchoice.Rejection{Pool: name, Reason: r.Err.Error()})
	}
	if len(rejected) == 1 {
		return store.Result{}, toProtocol(lastErr)
	}
	return store.Result{}, toProtocol(&poolchoice.NoPoolError{Interface: h.NIC, Family: fp.Family, Source: source, Rejections: rejected})
}

// skippable errors concern one pool; the next pool of the list may still serve.
func skippable(err error) bool {
	var ee *ipam.ExhaustedError
	return errors.As(err, &ee) || refused(err)
}

// Release serves a DEL: it frees what the pod interface's sandbox holds in any pool. A pod that no longer
// exists is fine: its container ID identifies the allocation.
func (s *Service) Release(ctx context.Context, req protocol.Request) (_ *protocol.Released, err error) {
	start := time.Now()
	log := s.requestLog(req)
	defer func() {
		s.Metrics.RequestSeconds.WithLabelValues("release").Observe(time.Since(start).Seconds())
		if err != nil {
			s.Metrics.ReleaseFailures.Inc()
			log.Info("release failed", "after", time.Since(start).Round(time.Millisecond).String(), "err", err.Error())
		}
	}()
	if err := validate(req, false); err != nil {
		return nil, err
	}
	// The sandbox (CNI_CONTAINERID, which validate requires) names what is freed, and only on this node:
	// a record with another sandbox, or of another node, is not this DEL's (ipam.ReleaseMatches).
	h := ipam.Holder{Namespace: req.Pod.Namespace, Name: req.Pod.Name, UID: req.Pod.UID, NIC: req.IfName, ContainerID: req.ContainerID, Node: s.NodeName}
	keep, drop, err := s.keepOnRelease(ctx, h)
	if err != nil {
		return nil, err
	}
	if keep {
		log.Info("addresses kept for the StatefulSet's ordinal")
		return &protocol.Released{}, nil
	}
	all, err := s.Pools.List(ctx)
	if err != nil {
		return nil, tryAgain("list SpiderIPPools", err)
	}
	out, err := s.release(ctx, h, all)
	if err != nil {
		return nil, err
	}
	if drop != nil {
		s.dropEndpoint(ctx, drop)
	}
	s.Metrics.Releases.Add(float64(len(out.Addresses)))
	log.Info("released", "addresses", out.Addresses)
	return out, nil
}

// release frees what h holds in any of the pools all. Each pool's writer answers from the newest
// version of the pool it knows, and reads that once for all the releases waiting for it (store.Do), so
// a DEL costs no read of its own even where other agents keep writing the pool. The pools are asked at
// once; a refused or deleted pool holds nothing it could free.
func (s *Service) release(ctx context.Context, h ipam.Holder, all []*spv2.SpiderIPPool) (*protocol.Released, error) {
	kind := s.releaseKind(h)
	results := make([]store.Result, len(all))
	var wg sync.WaitGroup
	for i, p := range all {
		wg.Go(func() { results[i] = s.Store.Do(ctx, p.Name, store.Op{Kind: kind, Holder: h}) })
	}
	wg.Wait()
	out := &protocol.Released{}
	for _, r := range results {
		switch {
		case r.Err == nil:
			for _, a := range r.Freed {
				out.Addresses = append(out.Addresses, a.String())
			}
		case !refused(r.Err):
			return nil, toProtocol(r.Err)
		}
	}
	return out, nil
}

// refused says the pool cannot be read as a SpiderIPPool of ours (ipam.Load) or is gone.
func refused(err error) bool {
	var se *ipam.StatusError
	var pe *ipam.SpecError
	var gone *store.PoolGoneError
	return errors.As(err, &se) || errors.As(err, &pe) || errors.As(err, &gone)
}

// Check serves a CHECK: every address of prevResult must be held by the pod interface.
func (s *Service) Check(ctx context.Context, req protocol.CheckRequest) (err error) {
	start := time.Now()
	defer func() { s.Metrics.RequestSeconds.WithLabelValues("check").Observe(time.Since(start).Seconds()) }()
	if err := validate(req.Request, true); err != nil {
		return err
	}
	subject, err := s.subject(ctx, req.Request)
	if err != nil {
		return err
	}
	var pools spv2.SpiderIPPoolList
	if err := s.Live.List(ctx, &pools); err != nil {
		return tryAgain("list SpiderIPPools", err)
	}
	held := map[netip.Addr]string{}
	for i := range pools.Items {
		p, err := ipam.Load(&pools.Items[i])
		if err != nil {
			continue
		}
		if a, ok := p.Find(subject.Holder); ok {
			held[a] = p.Name
		}
	}
	for _, raw := range req.Addresses {
		pfx, err := netip.ParsePrefix(raw)
		if err != nil {
			return &protocol.Error{Code: protocol.CodeInvalidConfig, Msg: fmt.Sprintf("prevResult.ips: %q is not an address with prefix length", raw)}
		}
		if _, ok := held[pfx.Addr()]; !ok {
			return &protocol.Error{Code: protocol.CodeNotAllocated, Msg: fmt.Sprintf("%s is not allocated to pod %s (UID %s) interface %s in any SpiderIPPool", pfx.Addr(), subject.NamespacedName(), subject.UID, subject.NIC)}
		}
	}
	return nil
}

// subject reads the pod, its namespace and this node for pool choice.
func (s *Service) subject(ctx context.Context, req protocol.Request) (ipam.Subject, error) {
	pod, err := s.pod(ctx, req.Pod)
	if err != nil {
		return ipam.Subject{}, err
	}
	return s.subjectOf(ctx, pod, ipam.Holder{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), NIC: req.IfName, ContainerID: req.ContainerID})
}

// subjectOf reads pod's namespace and this node for pool choice for the holder h.
// masterAddrs reads the addresses of the host NIC master into subject, for a network with
// matchMasterSubnet; nothing when master is "".
func (s *Service) masterAddrs(subject *ipam.Subject, master string) error {
	if master == "" {
		return nil
	}
	addrs, err := hostaddr.Reader{}.Of(master)
	if errors.Is(err, hostaddr.ErrNoLink) {
		return &protocol.Error{Code: protocol.CodeInvalidConfig, Msg: fmt.Sprintf(
			"ipam.matchMasterSubnet: host NIC %s does not exist on node %s, so no pool can match its subnet; create the NIC or fix the network's master", master, s.NodeName)}
	}
	if err != nil {
		return tryAgain("read the addresses of host NIC "+master, err)
	}
	subject.NodeAddrs = map[string][]netip.Prefix{master: addrs}
	return nil
}

func (s *Service) subjectOf(ctx context.Context, pod *corev1.Pod, h ipam.Holder) (ipam.Subject, error) {
	if pod.Spec.NodeName != s.NodeName {
		// A process on this node asking for another node's pod (or one not yet bound) would take an
		// address that pod's own agent gives out: refused, so one node cannot drain or squat a pool
		// on behalf of pods it does not run.
		bound := pod.Spec.NodeName
		if bound == "" {
			bound = "no node yet"
		}
		return ipam.Subject{}, &protocol.Error{Code: protocol.CodeContainerUnknown, Msg: fmt.Sprintf(
			"pod %s/%s is bound to %s, not to this agent's node %s: underlink-agent allocates only for its own node's pods", pod.Namespace, pod.Name, bound, s.NodeName)}
	}
	h.Node = s.NodeName
	var ns corev1.Namespace
	if err := s.get(ctx, types.NamespacedName{Name: pod.Namespace}, &ns); err != nil {
		return ipam.Subject{}, tryAgain(fmt.Sprintf("read namespace %s", pod.Namespace), err)
	}
	var node corev1.Node
	if err := s.get(ctx, types.NamespacedName{Name: s.NodeName}, &node); err != nil {
		return ipam.Subject{}, tryAgain(fmt.Sprintf("read node %s", s.NodeName), err)
	}
	subject := ipam.Subject{
		Holder:          h,
		PodLabels:       pod.Labels,
		PodAnnotations:  pod.Annotations,
		NamespaceLabels: ns.Labels,
		NodeName:        s.NodeName,
		NodeLabels:      node.Labels,
	}
	if att, ok := podnet.NetworkOn(pod, h.NIC); ok {
		subject.Network = att.Key()
	}
	return subject, nil
}

// get reads from the cache, then from the apiserver when the cache does not have the object yet.
func (s *Service) get(ctx context.Context, key types.NamespacedName, obj client.Object) error {
	if err := s.Cache.Get(ctx, key, obj); err == nil {
		return nil
	}
	return s.Live.Get(ctx, key, obj)
}

func (s *Service) pod(ctx context.Context, ref protocol.Pod) (*corev1.Pod, error) {
	key := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	var pod corev1.Pod
	if err := s.Cache.Get(ctx, key, &pod); err == nil && (ref.UID == "" || string(pod.UID) == ref.UID) {
		return &pod, nil
	}
	// Not (yet) in the cache, or the cache has an older pod of that name: ask the apiserver.
	if err := s.Live.Get(ctx, key, &pod); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &protocol.Error{Code: protocol.CodeContainerUnknown, Msg: fmt.Sprintf("pod %s (CNI_ARGS K8S_POD_NAMESPACE/K8S_POD_NAME) does not exist", key)}
		}
		return nil, tryAgain(fmt.Sprintf("read pod %s", key), err)
	}
	if ref.UID != "" && string(pod.UID) != ref.UID {
		return nil, &protocol.Error{Code: protocol.CodeContainerUnknown, Msg: fmt.Sprintf("pod %s is UID %s, but the runtime asks for UID %s (K8S_POD_UID): a sandbox of a deleted pod", key, pod.UID, ref.UID)}
	}
	return &pod, nil
}

func validate(req protocol.Request, needPod bool) error {
	switch {
	case req.IfName == "":
		return &protocol.Error{Code: protocol.CodeInvalidEnvironment, Msg: "CNI_IFNAME is empty"}
	case req.ContainerID == "":
		return &protocol.Error{Code: protocol.CodeInvalidEnvironment, Msg: "CNI_CONTAINERID is empty"}
	case needPod && (req.Pod.Namespace == "" || req.Pod.Name == ""):
		return &protocol.Error{Code: protocol.CodeInvalidEnvironment, Msg: "CNI_ARGS lacks K8S_POD_NAMESPACE or K8S_POD_NAME; underlink-ipam allocates per pod and must be run by a Kubernetes runtime (or Multus)"}
	}
	return nil
}

func tryAgain(what string, err error) error {
	return &protocol.Error{Code: protocol.CodeTryAgainLater, Msg: what + " from the apiserver failed; try again", Details: err.Error()}
}

// toProtocol maps an allocation error to its CNI error code.
func toProtocol(err error) error {
	var pe *protocol.Error
	var ce *poolchoice.ConfigError
	var ee *ipam.ExhaustedError
	var se *ipam.StatusError
	var spe *ipam.SpecError
	var np *poolchoice.NoPoolError
	var gone *store.PoolGoneError
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.As(err, &ce):
		return &protocol.Error{Code: protocol.CodeInvalidConfig, Msg: err.Error()}
	case errors.As(err, &ee):
		return &protocol.Error{Code: protocol.CodePoolExhausted, Msg: err.Error()}
	case errors.As(err, &se), errors.As(err, &spe), errors.As(err, &gone):
		return &protocol.Error{Code: protocol.CodePoolRefused, Msg: err.Error()}
	case errors.As(err, &np):
		code := uint(protocol.CodeNoEligiblePool)
		if allExhausted(np) {
			code = protocol.CodePoolExhausted
		}
		return &protocol.Error{Code: code, Msg: err.Error()}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &protocol.Error{Code: protocol.CodeTryAgainLater, Msg: "the request timed out before its pool write completed; try again", Details: err.Error()}
	default:
		return &protocol.Error{Code: protocol.CodeInternal, Msg: err.Error()}
	}
}

func allExhausted(np *poolchoice.NoPoolError) bool {
	for _, r := range np.Rejections {
		if !strings.Contains(r.Reason, "is exhausted") {
			return false
		}
	}
	return len(np.Rejections) > 0
}

// requestLog is s.Log naming the pod interface and the sandbox a request is for.
func (s *Service) requestLog(req protocol.Request) logr.Logger {
	return s.Log.WithValues("pod", req.Pod.Namespace+"/"+req.Pod.Name, "ifName", req.IfName, "containerID", short(req.ContainerID))
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
