package snapshot

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// slowReader answers List with one pool after a pause, counting calls.
type slowReader struct {
	client.Reader
	calls atomic.Int32
}

func (r *slowReader) List(ctx context.Context, list client.ObjectList, _ ...client.ListOption) error {
	r.calls.Add(1)
	time.Sleep(50 * time.Millisecond)
	list.(*spv2.SpiderIPPoolList).Items = []spv2.SpiderIPPool{{ObjectMeta: metav1.ObjectMeta{Name: "cluster-a"}}}
	return nil
}

// TestConcurrentListsShareOneRead: a burst of admission requests reading pools live costs one LIST, and
// each caller gets a copy of its own.
func TestConcurrentListsShareOneRead(t *testing.T) {
	r := &slowReader{}
	c := &Coalesced{Reader: r}
	var wg sync.WaitGroup
	lists := make([]*spv2.SpiderIPPoolList, 20)
	for i := range lists {
		lists[i] = &spv2.SpiderIPPoolList{}
		wg.Go(func() {
			if err := c.List(context.Background(), lists[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := r.calls.Load(); n != 1 {
		t.Errorf("%d LISTs for 20 concurrent reads, want 1", n)
	}
	lists[0].Items[0].Name = "changed"
	if lists[1].Items[0].Name != "cluster-a" {
		t.Error("callers share one list: a change by one is seen by another")
	}
	if err := c.List(context.Background(), &spv2.SpiderIPPoolList{}); err != nil || r.calls.Load() != 2 {
		t.Errorf("a later read must read again: %d calls, %v", r.calls.Load(), err)
	}
}
