package prealloc

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// Allocator is what the runner asks to pre-allocate (cni/agent/service.Service).
type Allocator interface {
	Preallocate(ctx context.Context, pod *corev1.Pod, atts []Attachment) error
	// Forget is told that pod is gone from the API: what was pre-allocated for it and never taken by
	// an ADD is freed.
	Forget(pod *corev1.Pod)
}

// Runner pre-allocates for the eligible pods of one node as its pod informer sees them. Each pod UID is
// tried once while the agent runs: a pod whose sandbox was torn down again, or whose pre-allocation
// failed, gets its address from its next ADD. It runs on every agent (no leader election).
type Runner struct {
	// Informers gives the agent's pod informer (only this node's pods); Reader reads
	// SpiderMultusConfigs and pods from the same cache.
	Informers cache.Informers
	Reader    client.Reader
	Allocator Allocator
	NodeName  string
	// Workers is the number of pods pre-allocated at once; default 4.
	Workers int
	Log     logr.Logger

	mu    sync.Mutex
	tried map[types.UID]bool
}

// NeedLeaderElection is false: every agent serves its own node.
func (r *Runner) NeedLeaderElection() bool { return false }

// Start runs until ctx ends.
func (r *Runner) Start(ctx context.Context) error {
	if r.Workers <= 0 {
		r.Workers = 4
	}
	r.tried = map[types.UID]bool{}
	q := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName](),
		workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Name: "underlink-preallocate"})
	inf, err := r.Informers.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return err
	}
	enqueue := func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok && Eligible(pod, r.NodeName) && !r.wasTried(pod.UID) {
			q.Add(types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name})
		}
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				r.mu.Lock()
				delete(r.tried, pod.UID)
				r.mu.Unlock()
				r.Allocator.Forget(pod)
			}
		},
	})
	if err != nil {
		return err
	}
	defer func() { _ = inf.RemoveEventHandler(reg) }()
	var wg sync.WaitGroup
	for range r.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r.next(ctx, q) {
			}
		}()
	}
	<-ctx.Done()
	q.ShutDown()
	wg.Wait()
	return nil
}

func (r *Runner) wasTried(uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tried[uid]
}

// claim marks uid tried and reports whether this call was the first.
func (r *Runner) claim(uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tried[uid] {
		return false
	}
	r.tried[uid] = true
	return true
}

func (r *Runner) next(ctx context.Context, q workqueue.TypedRateLimitingInterface[types.NamespacedName]) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	defer q.Forget(key)
	var pod corev1.Pod
	if err := r.Reader.Get(ctx, key, &pod); err != nil || !Eligible(&pod, r.NodeName) {
		return true
	}
	atts := Conf(&pod, r.lookup(ctx))
	if len(atts) == 0 || !r.claim(pod.UID) {
		return true
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Errors are logged and counted by the allocator; the pod's ADD allocates instead.
	_ = r.Allocator.Preallocate(actx, &pod, atts)
	return true
}

func (r *Runner) lookup(ctx context.Context) Lookup {
	return func(namespace, name string) (*spv2.SpiderMultusConfig, bool) {
		var smc spv2.SpiderMultusConfig
		if err := r.Reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &smc); err != nil {
			return nil, false
		}
		return &smc, true
	}
}
