// Package pools is underlink-agent's view of the SpiderIPPools. It watches only their metadata and
// reads a pool's object from the apiserver when a decision needs it and the copy it holds is stale:
// by metadata.generation for the spec (pool choice), by resourceVersion for the status (a write).
//
// Why not an informer on the whole objects: a pool's status is one string that grows with every
// allocation (Spiderpool's format), and every status write would be decoded by every agent of the
// cluster, whether or not it allocates from that pool. In the IPAM benchmark (10 agents, one pool of
// 1023 addresses) that decoding was half of the machine's CPU. With this view an agent decodes a pool
// only when it writes to it after someone else did, and the watch events every agent decodes are a
// few hundred bytes.
package pools

import (
	"context"
	"fmt"
	"sort"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// View reads pools for one agent. It is safe for concurrent use; the objects it returns are shared
// and must not be modified.
type View struct {
	// Meta reads the pools' metadata (PartialObjectMetadata), normally from a metadata-only informer.
	Meta client.Reader
	// Live reads whole pools from the apiserver.
	Live client.Reader

	mu   sync.Mutex
	objs map[string]*spv2.SpiderIPPool
}

// New returns a view over meta (metadata reads) and live (whole-object reads).
func New(meta, live client.Reader) *View {
	return &View{Meta: meta, Live: live, objs: map[string]*spv2.SpiderIPPool{}}
}

// Metadata is the object a metadata-only informer or read of SpiderIPPools takes.
func Metadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(spv2.GroupVersion.WithKind("SpiderIPPool"))
	return m
}

func metadataList() *metav1.PartialObjectMetadataList {
	l := &metav1.PartialObjectMetadataList{}
	l.SetGroupVersionKind(spv2.GroupVersion.WithKind("SpiderIPPoolList"))
	return l
}

// List returns every pool with its current spec, sorted by name; their statuses may be stale. A pool
// whose spec changed since the view last read it is read again.
func (v *View) List(ctx context.Context) ([]*spv2.SpiderIPPool, error) {
	metas := metadataList()
	if err := v.Meta.List(ctx, metas); err != nil {
		return nil, err
	}
	out := make([]*spv2.SpiderIPPool, 0, len(metas.Items))
	for i := range metas.Items {
		m := &metas.Items[i]
		obj := v.held(m.Name)
		if obj == nil || obj.UID != m.UID || obj.Generation < m.Generation {
			var err error
			if obj, err = v.Read(ctx, m.Name); err != nil {
				if client.IgnoreNotFound(err) == nil {
					continue // deleted since the list
				}
				return nil, fmt.Errorf("read SpiderIPPool %s: %w", m.Name, err)
			}
		}
		out = append(out, obj)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}

// Latest returns pool name as of the newest version the view knows of: the copy it holds when no
// newer resourceVersion has been seen (the agent's own last write usually), else a read from the
// apiserver. The copy may still be stale by the watch's delay; a write based on it then conflicts.
func (v *View) Latest(ctx context.Context, name string) (*spv2.SpiderIPPool, error) {
	obj := v.held(name)
	if obj != nil {
		m := Metadata()
		err := v.Meta.Get(ctx, types.NamespacedName{Name: name}, m)
		switch {
		case err == nil && m.UID == obj.UID && !Newer(m.ResourceVersion, obj.ResourceVersion):
			return obj, nil
		case err != nil && client.IgnoreNotFound(err) != nil:
			return nil, err
		}
	}
	return v.Read(ctx, name)
}

// Read returns pool name from the apiserver (a quorum read) and keeps it; a pool found gone is forgotten.
func (v *View) Read(ctx context.Context, name string) (*spv2.SpiderIPPool, error) {
	var p spv2.SpiderIPPool
	if err := v.Live.Get(ctx, types.NamespacedName{Name: name}, &p); err != nil {
		if client.IgnoreNotFound(err) == nil {
			v.forget(name)
		}
		return nil, err
	}
	v.Observe(&p)
	return &p, nil
}

// Observe records a version of a pool the agent wrote or read, unless the view holds a newer one.
func (v *View) Observe(p *spv2.SpiderIPPool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if old, ok := v.objs[p.Name]; ok && old.UID == p.UID && Newer(old.ResourceVersion, p.ResourceVersion) {
		return
	}
	if v.objs == nil {
		v.objs = map[string]*spv2.SpiderIPPool{}
	}
	v.objs[p.Name] = p.DeepCopy()
}

// Held returns the copies the view holds, sorted by name, as last read or written by this agent.
func (v *View) Held() []*spv2.SpiderIPPool {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]*spv2.SpiderIPPool, 0, len(v.objs))
	for _, p := range v.objs {
		out = append(out, p)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

func (v *View) held(name string) *spv2.SpiderIPPool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.objs[name]
}

func (v *View) forget(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.objs, name)
}

// Newer compares resourceVersions as etcd revisions. They are opaque by contract, so a non-numeric one
// counts as newer: a wrong guess costs a read or a conflict, never correctness.
func Newer(a, b string) bool {
	var ra, rb uint64
	if _, err := fmt.Sscan(a, &ra); err != nil {
		return true
	}
	if _, err := fmt.Sscan(b, &rb); err != nil {
		return true
	}
	return ra > rb
}
