package cache

import (
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func admit(t *testing.T, s *Starts, node string, pod types.UID, wantOK bool, wantAhead int) {
	t.Helper()
	ok, ahead := s.Admit(node, pod)
	if ok != wantOK || ahead != wantAhead {
		t.Fatalf("Admit(%s, %s) = %v, %d; want %v, %d", node, pod, ok, ahead, wantOK, wantAhead)
	}
}

func counts(t *testing.T, s *Starts, node string, wantStarting, wantWaiting int) {
	t.Helper()
	if st, w := s.Counts(node); st != wantStarting || w != wantWaiting {
		t.Fatalf("Counts(%s) = %d starting, %d waiting; want %d, %d", node, st, w, wantStarting, wantWaiting)
	}
}

func promoted(t *testing.T, got []types.UID, want ...types.UID) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("promoted %v, want %v", got, want)
	}
}

func TestStartsAdmitsUpToTheLimitPerNodeAndQueuesInOrder(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	s := NewStarts(2, time.Minute, c.now)
	admit(t, s, "n1", "a", true, 0)
	admit(t, s, "n1", "b", true, 0)
	admit(t, s, "n1", "c", false, 0)
	admit(t, s, "n1", "d", false, 1)
	// Another node has its own slots.
	admit(t, s, "n2", "x", true, 0)
	counts(t, s, "n1", 2, 2)
	counts(t, s, "n2", 1, 0)
	// Asking again changes nothing.
	admit(t, s, "n1", "a", true, 0)
	admit(t, s, "n1", "d", false, 1)
	counts(t, s, "n1", 2, 2)

	// A started pod frees its slot for the first waiter only.
	promoted(t, s.Forget("b"), "c")
	counts(t, s, "n1", 2, 1)
	// A pod that comes while the slots are full waits behind the others.
	admit(t, s, "n1", "e", false, 1)
	promoted(t, s.Forget("a"), "d")
	promoted(t, s.Forget("c"), "e")
	counts(t, s, "n1", 2, 0)
	// With a free slot and nobody waiting, a pod starts at once.
	promoted(t, s.Forget("d"))
	admit(t, s, "n1", "f", true, 0)
	// Forgetting an unknown pod, or twice, frees nothing.
	promoted(t, s.Forget("zz"))
	promoted(t, s.Forget("x"))
	promoted(t, s.Forget("x"))
	counts(t, s, "n2", 0, 0)
}

func TestStartsForgetsAWaitingPodWithoutFreeingASlot(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	s := NewStarts(1, time.Minute, c.now)
	admit(t, s, "n1", "a", true, 0)
	admit(t, s, "n1", "b", false, 0)
	admit(t, s, "n1", "c", false, 1)
	// b's Permit timed out: it leaves the queue and c moves up, but a still holds the slot.
	promoted(t, s.Forget("b"))
	counts(t, s, "n1", 1, 1)
	admit(t, s, "n1", "c", false, 0)
	promoted(t, s.Forget("a"), "c")
}

func TestStartsExpiresPodsThatNeverStart(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	s := NewStarts(2, time.Minute, c.now)
	admit(t, s, "n1", "a", true, 0)
	c.t = c.t.Add(30 * time.Second)
	admit(t, s, "n1", "b", true, 0)
	admit(t, s, "n1", "c", false, 0)
	admit(t, s, "n1", "d", false, 1)
	promoted(t, s.Expire())
	// a has been starting for longer than a minute: c takes its slot; b has 30 s left.
	c.t = c.t.Add(31 * time.Second)
	promoted(t, s.Expire(), "c")
	counts(t, s, "n1", 2, 1)
	// The expired pod is unknown now: its start frees nothing.
	promoted(t, s.Forget("a"))
	c.t = c.t.Add(30 * time.Second)
	promoted(t, s.Expire(), "d")
	counts(t, s, "n1", 2, 0)
	c.t = c.t.Add(2 * time.Minute)
	promoted(t, s.Expire())
	counts(t, s, "n1", 0, 0)
}

func TestStartsTracksPodsBoundWithoutIt(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	s := NewStarts(2, time.Minute, c.now)
	// Pods bound before a restart take slots until they start, but not those bound longer ago than maxAge.
	s.Track("n1", "old1", c.t.Add(-10*time.Second))
	s.Track("n1", "old2", c.t.Add(-50*time.Second))
	s.Track("n1", "old3", c.t)
	s.Track("n1", "stale", c.t.Add(-61*time.Second))
	counts(t, s, "n1", 3, 0)
	admit(t, s, "n1", "a", false, 0)
	// One tracked pod starting leaves two starting: a still waits.
	promoted(t, s.Forget("old1"))
	promoted(t, s.Forget("old3"), "a")
	// Tracking a pod the pacer already holds changes nothing.
	s.Track("n1", "a", c.t)
	s.Track("n9", "a", c.t)
	counts(t, s, "n1", 2, 0)
	counts(t, s, "n9", 0, 0)
	// old2 was tracked with its bind time: it expires 60 s after it, not after the Track.
	c.t = c.t.Add(11 * time.Second)
	promoted(t, s.Expire())
	counts(t, s, "n1", 1, 0)
	// An expired pod's next update does not bring it back.
	s.Track("n1", "old2", c.t.Add(-61*time.Second))
	counts(t, s, "n1", 1, 0)
}
