package cache

import (
	"sort"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/iprange"
	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/pkg/poolchoice"
	"github.com/underlink/underlink/pkg/reservedip"
)

// Store is the plugin's memory between cycles. It is safe for concurrent use: informer handlers and
// queueing hints write it while scheduling cycles read it.
//
// Objects reach the store twice, from the plugin's own informers and from the objects of the cluster
// events kube-scheduler hands to queueing hints; a version is applied only when it is newer than the one
// held (resourceVersions compared as etcd revisions, as the scheduler's own assume cache does), so the
// second copy is a no-op and a pod requeued by an event always sees at least that event's object.
type Store struct {
	mu       sync.RWMutex
	pools    map[string]*Pool
	networks map[string]network // kind + " " + namespace/name
	gone     map[string]string  // key → resourceVersion at deletion, so a late copy does not resurrect it
	placed   map[types.UID]*placement
	usage    map[string]*usage // pool name → pods placed on it
	// reservedIPs are the SpiderReservedIPs by name, and reservedSets their addresses by family.
	reservedIPs  map[string]spv2.SpiderReservedIP
	reservedSets map[int]iprange.Set
}

type network struct {
	rv  string
	net podnet.Network
}

// placement is a pod placed on pools: claims are addresses it will take from each pool.
type placement struct {
	pod    string
	claims map[string]int
}

// usage is the pods placed on one pool and how many of their addresses are not in its status yet.
type usage struct {
	claims   map[types.UID]int
	reserved int64
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		pools:    map[string]*Pool{},
		networks: map[string]network{},
		gone:     map[string]string{},
		placed:   map[types.UID]*placement{},
		usage:    map[string]*usage{},

		reservedIPs:  map[string]spv2.SpiderReservedIP{},
		reservedSets: map[int]iprange.Set{},
	}
}

// SetReservedIP records a SpiderReservedIP (nil deletes the one named name) and recounts every pool's
// reserved addresses.
func (s *Store) SetReservedIP(name string, r *spv2.SpiderReservedIP) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r == nil {
		delete(s.reservedIPs, name)
	} else {
		s.reservedIPs[name] = *r
	}
	items := make([]spv2.SpiderReservedIP, 0, len(s.reservedIPs))
	for _, x := range s.reservedIPs {
		items = append(items, x)
	}
	s.reservedSets, _ = reservedip.Sets(items)
	for name, p := range s.pools {
		s.pools[name] = p.withReserved(s.reservedSets[p.Family])
	}
}

// newer reports whether resourceVersion a is newer than b. Versions that are not etcd revisions are
// compared for difference only.
func newer(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	if errA != nil || errB != nil {
		return a != b
	}
	return x > y
}

func poolKey(name string) string { return "pool " + name }

// SetPool records a version of a SpiderIPPool and returns the pool it replaced (nil if none) and the
// one now held. applied is false when the store already held this or a newer version.
func (s *Store) SetPool(p *spv2.SpiderIPPool) (old, cur *Pool, applied bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old = s.pools[p.Name]
	if old != nil && !newer(p.ResourceVersion, old.ResourceVersion) {
		return old, old, false
	}
	if rv, ok := s.gone[poolKey(p.Name)]; ok && old == nil {
		if !newer(p.ResourceVersion, rv) {
			return nil, nil, false
		}
		delete(s.gone, poolKey(p.Name))
	}
	cur = NewPool(p)
	cur = cur.withReserved(s.reservedSets[cur.Family])
	s.pools[p.Name] = cur
	if u := s.usage[p.Name]; u != nil {
		u.reserved = 0
		for uid, n := range u.claims {
			u.reserved += waiting(cur, uid, n)
		}
	}
	return old, cur, true
}

// DeletePool forgets a SpiderIPPool deleted at resourceVersion rv.
func (s *Store) DeletePool(name, rv string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pools, name)
	s.gone[poolKey(name)] = rv
	if u := s.usage[name]; u != nil {
		u.reserved = 0
		for uid, n := range u.claims {
			u.reserved += waiting(nil, uid, n)
		}
	}
}

// waiting is how many of n addresses claimed by uid are not yet in the pool's status.
func waiting(p *Pool, uid types.UID, n int) int64 {
	held := 0
	if p != nil {
		held = p.Held(string(uid))
	}
	if held >= n {
		return 0
	}
	return int64(n - held)
}

// Pool returns the pool named name.
func (s *Store) Pool(name string) (*Pool, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.pools[name]
	return p, ok
}

// DefaultPools returns the cluster default pools (spec.default) of an address family, in the order
// they are tried (poolchoice.OrderDefaults).
func (s *Store) DefaultPools(family int) []*Pool {
	s.mu.RLock()
	var out []*Pool
	for _, p := range s.pools {
		if p.Default && p.Family == family {
			out = append(out, p)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return poolchoice.TriedBefore(out[i].Pool, out[j].Pool) })
	return out
}

// Choice is the store as pool choice reads it (poolchoice.Pools).
func (s *Store) Choice() poolchoice.Pools { return choicePools{s} }

type choicePools struct{ s *Store }

func (c choicePools) Pool(name string) (*poolchoice.Pool, bool) {
	p, ok := c.s.Pool(name)
	if !ok {
		return nil, false
	}
	return p.Pool, true
}

func (c choicePools) Defaults(family int) []*poolchoice.Pool {
	ds := c.s.DefaultPools(family)
	out := make([]*poolchoice.Pool, len(ds))
	for i, p := range ds {
		out[i] = p.Pool
	}
	return out
}

// Availability is a pool and how many of its addresses are spoken for, read together.
type Availability struct {
	Pool *Pool
	// Reserved is the number of addresses claimed by pods placed on the pool (assumed by this scheduler
	// or bound) that are not yet in its status.allocatedIPs.
	Reserved int64
}

// Free is Total − Allocated − ReservedFree − Reserved: the addresses a newly placed pod can still get.
func (a Availability) Free() int64 {
	return a.Pool.Total - a.Pool.Allocated - a.Pool.ReservedFree - a.Reserved
}

// Availability returns the pool named name with its reservations.
func (s *Store) Availability(name string) (Availability, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.pools[name]
	if !ok {
		return Availability{}, false
	}
	a := Availability{Pool: p}
	if u := s.usage[name]; u != nil {
		a.Reserved = u.reserved
	}
	return a, true
}

func networkKey(kind, namespace, name string) string { return kind + " " + namespace + "/" + name }

// SetNetwork records a version of a SpiderMultusConfig or NetworkAttachmentDefinition (kind is
// podnet.KindMultusConfig or podnet.KindNAD). It returns the network it replaced, whether there was one,
// and whether this version was applied.
func (s *Store) SetNetwork(namespace, name, rv string, n podnet.Network) (old podnet.Network, existed, applied bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := networkKey(n.Kind, namespace, name)
	cur, existed := s.networks[key]
	if existed && !newer(rv, cur.rv) {
		return cur.net, true, false
	}
	if goneAt, ok := s.gone[key]; ok && !existed {
		if !newer(rv, goneAt) {
			return podnet.Network{}, false, false
		}
		delete(s.gone, key)
	}
	s.networks[key] = network{rv: rv, net: n}
	return cur.net, existed, true
}

// DeleteNetwork forgets a network object of kind deleted at resourceVersion rv.
func (s *Store) DeleteNetwork(kind, namespace, name, rv string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := networkKey(kind, namespace, name)
	delete(s.networks, key)
	s.gone[key] = rv
}

// Network returns the network namespace/name: its SpiderMultusConfig when there is one (the
// NetworkAttachmentDefinition of the same name is generated from it), else the NAD.
func (s *Store) Network(namespace, name string) (podnet.Network, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if n, ok := s.networks[networkKey(podnet.KindMultusConfig, namespace, name)]; ok {
		return n.net, true
	}
	n, ok := s.networks[networkKey(podnet.KindNAD, namespace, name)]
	return n.net, ok
}

// Place records that the pod with uid (key "namespace/name") will take claims[pool] addresses from each
// pool. Placing a pod again replaces its earlier claims.
func (s *Store) Place(uid types.UID, pod string, claims map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.release(uid)
	s.placed[uid] = &placement{pod: pod, claims: claims}
	for name, n := range claims {
		u := s.usage[name]
		if u == nil {
			u = &usage{claims: map[types.UID]int{}}
			s.usage[name] = u
		}
		u.claims[uid] = n
		u.reserved += waiting(s.pools[name], uid, n)
	}
}

// Release forgets the claims of the pod with uid (deleted, finished, or unreserved); it reports
// whether the pod had any.
func (s *Store) Release(uid types.UID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.release(uid)
}

func (s *Store) release(uid types.UID) bool {
	pl, ok := s.placed[uid]
	if !ok {
		return false
	}
	delete(s.placed, uid)
	for name, n := range pl.claims {
		u := s.usage[name]
		if u == nil {
			continue
		}
		u.reserved -= waiting(s.pools[name], uid, n)
		delete(u.claims, uid)
		if len(u.claims) == 0 {
			delete(s.usage, name)
		}
	}
	return true
}

// Placed reports whether the pod with uid has claims.
func (s *Store) Placed(uid types.UID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.placed[uid]
	return ok
}

// Claims returns the pools the pod with uid was placed on, or nil.
func (s *Store) Claims(uid types.UID) map[string]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if pl, ok := s.placed[uid]; ok {
		return pl.claims
	}
	return nil
}
