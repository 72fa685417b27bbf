package snapshot

import (
	"context"
	"fmt"
	"reflect"

	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Coalesced reads through Reader, and lets concurrent List calls of the same type and options share one
// apiserver round trip: each caller gets its own deep copy of the one answer. A flood of admission
// requests that read live (pools and configs are judged on a live read) then costs as many LISTs as
// there are distinct reads in flight, not one per request.
//
// A caller joins a read that was already in flight when it arrived, so it may miss an object created
// during that one round trip: the window two simultaneous admissions already have (a webhook cannot
// order them; docs/DESIGN.md, "Denials are confirmed live").
type Coalesced struct {
	Reader client.Reader
	group  singleflight.Group
}

var _ client.Reader = &Coalesced{}

// Get reads through; a Get names one object and is cheap.
func (c *Coalesced) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return c.Reader.Get(ctx, key, obj, opts...)
}

// List shares one List per type and options among concurrent callers.
func (c *Coalesced) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	lo := (&client.ListOptions{}).ApplyOptions(opts)
	key := fmt.Sprintf("%T|%v|%v|%s|%d|%s", list, lo.LabelSelector, lo.FieldSelector, lo.Namespace, lo.Limit, lo.Continue)
	ch := c.group.DoChan(key, func() (any, error) {
		// Detached from any one caller's cancellation (a caller that gives up must not fail the others),
		// bounded by the first caller's deadline.
		rctx := context.WithoutCancel(ctx)
		if d, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			rctx, cancel = context.WithDeadline(rctx, d)
			defer cancel()
		}
		fresh := reflect.New(reflect.TypeOf(list).Elem()).Interface().(client.ObjectList)
		if err := c.Reader.List(rctx, fresh, opts...); err != nil {
			return nil, err
		}
		return fresh, nil
	})
	select {
	case <-ctx.Done():
		return ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return r.Err
		}
		return copyList(r.Val.(client.ObjectList), list)
	}
}

// copyList deep-copies src into dst, which are of the same type.
func copyList(src, dst client.ObjectList) error {
	items, err := meta.ExtractList(src)
	if err != nil {
		return err
	}
	copied := make([]runtime.Object, len(items))
	for i, it := range items {
		copied[i] = it.DeepCopyObject()
	}
	if err := meta.SetList(dst, copied); err != nil {
		return err
	}
	dst.SetResourceVersion(src.GetResourceVersion())
	dst.SetContinue(src.GetContinue())
	return nil
}
