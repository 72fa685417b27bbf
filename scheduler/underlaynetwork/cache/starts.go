package cache

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Starts paces the starts of underlay pods per node: at most limit pods may be starting on a node at
// once (bound, their sandbox not ready yet); a pod admitted beyond that waits, in the order it came,
// until a starting pod on its node starts, goes away or has been starting for maxAge. It is safe for
// concurrent use: Permit admits while informer handlers and a ticker report.
//
// Every method that frees a slot returns the waiting pods that now take one, in order: the caller allows
// them (and reports with Forget any it can no longer find waiting, which may free the slot again).
type Starts struct {
	mu       sync.Mutex
	limit    int
	maxAge   time.Duration
	now      func() time.Time
	starting map[string]map[types.UID]time.Time // node → pod → since
	waiting  map[string][]types.UID             // node → pods in the order they came
	nodeOf   map[types.UID]string               // every pod starting or waiting → its node
}

// NewStarts returns a pacer that lets limit pods start at once per node and counts a pod as starting
// for at most maxAge. now is the clock (time.Now outside tests).
func NewStarts(limit int, maxAge time.Duration, now func() time.Time) *Starts {
	return &Starts{
		limit:    limit,
		maxAge:   maxAge,
		now:      now,
		starting: map[string]map[types.UID]time.Time{},
		waiting:  map[string][]types.UID{},
		nodeOf:   map[types.UID]string{},
	}
}

// Admit asks for a slot for pod on node. It returns true when the pod may start now; otherwise the pod
// waits and ahead is how many pods wait before it. Asking again for a pod already admitted or waiting
// changes nothing.
func (s *Starts) Admit(node string, pod types.UID) (ok bool, ahead int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, known := s.nodeOf[pod]; known {
		if _, ok := s.starting[n][pod]; ok {
			return true, 0
		}
		for i, w := range s.waiting[n] {
			if w == pod {
				return false, i
			}
		}
	}
	// Waiting pods are only there while the node's slots are full (Forget and Expire promote them).
	if len(s.starting[node]) < s.limit && len(s.waiting[node]) == 0 {
		s.start(node, pod, s.now())
		return true, 0
	}
	s.waiting[node] = append(s.waiting[node], pod)
	s.nodeOf[pod] = node
	return false, len(s.waiting[node]) - 1
}

// Track counts a pod bound to node at since that the pacer does not hold (bound before a restart of the
// scheduler) as starting, so it takes a slot until it starts or maxAge after since. A pod bound longer
// ago than maxAge is not counted: that is how a pod whose slot expired stays out when its updates come
// again. It frees no slot; a pod already known is left as it is.
func (s *Starts) Track(node string, pod types.UID, since time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.nodeOf[pod]; !known && !since.Before(s.now().Add(-s.maxAge)) {
		s.start(node, pod, since)
	}
}

// Forget drops pod, starting or waiting: it started, was deleted, or its scheduling ended without a
// bind. It returns the waiting pods that take the slot it frees.
func (s *Starts) Forget(pod types.UID) []types.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	node, known := s.nodeOf[pod]
	if !known {
		return nil
	}
	delete(s.nodeOf, pod)
	if _, ok := s.starting[node][pod]; ok {
		delete(s.starting[node], pod)
	} else {
		q := s.waiting[node]
		for i, w := range q {
			if w == pod {
				s.waiting[node] = append(q[:i:i], q[i+1:]...)
				break
			}
		}
	}
	return s.promote(node)
}

// Expire stops counting pods that have been starting for longer than maxAge, on every node, and returns
// the waiting pods that take their slots: a sandbox that never gets ready (a failing CNI, a node gone
// silent) holds its slot no longer than that.
func (s *Starts) Expire() []types.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	for node := range s.starting {
		s.expire(node)
	}
	var out []types.UID
	for node := range s.waiting {
		out = append(out, s.promote(node)...)
	}
	return out
}

// Counts returns how many pods are starting and waiting on node.
func (s *Starts) Counts(node string) (starting, waiting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.starting[node]), len(s.waiting[node])
}

func (s *Starts) start(node string, pod types.UID, since time.Time) {
	if s.starting[node] == nil {
		s.starting[node] = map[types.UID]time.Time{}
	}
	s.starting[node][pod] = since
	s.nodeOf[pod] = node
}

func (s *Starts) expire(node string) {
	cutoff := s.now().Add(-s.maxAge)
	for pod, since := range s.starting[node] {
		if since.Before(cutoff) {
			delete(s.starting[node], pod)
			delete(s.nodeOf, pod)
		}
	}
	if len(s.starting[node]) == 0 {
		delete(s.starting, node)
	}
}

// promote moves waiting pods of node into its free slots, first come first.
func (s *Starts) promote(node string) []types.UID {
	var out []types.UID
	now := s.now()
	for len(s.waiting[node]) > 0 && len(s.starting[node]) < s.limit {
		pod := s.waiting[node][0]
		s.waiting[node] = s.waiting[node][1:]
		s.start(node, pod, now)
		out = append(out, pod)
	}
	if len(s.waiting[node]) == 0 {
		delete(s.waiting, node)
	}
	return out
}
