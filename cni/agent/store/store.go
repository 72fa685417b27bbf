// Package store writes SpiderIPPool status for underlink-agent. All of one agent's changes to one pool go
// through a single writer goroutine that batches the requests waiting for it into one status Update
// (group commit), guarded by the resourceVersion it read. On a conflict it re-reads the pool from the
// apiserver and re-applies the whole batch, with the requests that came in meanwhile, after a jittered
// backoff, so agents on many nodes can write the same pool without ever giving one address twice.
// Nothing is kept that the apiserver does not hold: a restarted agent starts from what it reads.
package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/metrics"
	"github.com/underlink/underlink/cni/agent/pools"
	"github.com/underlink/underlink/cni/ipam"
	"github.com/underlink/underlink/pkg/iprange"
)

// Kind is what an Op does.
type Kind int

const (
	// Allocate gives the holder an address (or the one it holds).
	Allocate Kind = iota
	// Release frees what the holder holds (ipam.Pool.Release rules).
	Release
	// ReleaseSandbox frees what the holder's sandbox holds, keeping a pre-allocation no ADD has used
	// (ipam.Pool.ReleaseSandbox).
	ReleaseSandbox
	// ReleaseIfHeld frees IP only if its record is still Record (garbage collection).
	ReleaseIfHeld
	// Adopt records the holder's sandbox on its pre-allocated address (ipam.Pool.Adopt); it never
	// gives an address.
	Adopt
	// MarkConflict sets IP, held by the holder, aside as in use by another host (ipam.Pool.MarkConflict).
	MarkConflict
	// ClearConflict frees IP if it is set aside as a conflict (ipam.Pool.ClearConflict).
	ClearConflict
	// Reclaim gives the holder IP, kept for its pod name and interface (ipam.Pool.Reclaim): a
	// StatefulSet pod recreated under its name.
	Reclaim
)

// Op is one change to a pool.
type Op struct {
	Kind   Kind
	Holder ipam.Holder
	IP     netip.Addr
	Record spv2.PoolIPAllocation
	// Conflict is what MarkConflict records.
	Conflict spv2.IPConflict
}

// PoolInfo is what a pod needs to know about the pool its address came from.
type PoolInfo struct {
	Name    string
	Family  int
	Subnet  netip.Prefix
	Gateway netip.Addr
	Routes  []spv2.Route
}

// InfoOf is what a pod needs to know about pool.
func InfoOf(pool *ipam.Pool) PoolInfo {
	return PoolInfo{Name: pool.Name, Family: pool.Family, Subnet: pool.Subnet, Gateway: pool.Gateway, Routes: pool.Routes}
}

// Result is the outcome of an Op.
type Result struct {
	// IP is the address given (Allocate) and New whether it was given by this op.
	IP  netip.Addr
	New bool
	// Freed are the addresses freed (Release, ReleaseIfHeld).
	Freed []netip.Addr
	Pool  PoolInfo
	Err   error
}

// PoolGoneError says the pool was deleted (or never existed).
type PoolGoneError struct{ Pool string }

func (e *PoolGoneError) Error() string {
	return fmt.Sprintf("SpiderIPPool %q does not exist (deleted while in use?)", e.Pool)
}

// Options tune a Store.
type Options struct {
	// MaxBatch bounds the ops carried by one write; default 512.
	MaxBatch int
	// WriteTimeout bounds one apiserver call; default 10s.
	WriteTimeout time.Duration
	// BackoffBase and BackoffMax shape the jittered exponential backoff between retries; defaults 5ms, 1s.
	BackoffBase, BackoffMax time.Duration
	// Reserved returns the addresses of a family (4 or 6) SpiderReservedIPs reserve, which no allocation
	// gives; nil reserves none.
	Reserved func(family int) iprange.Set
	// StatusWriter writes the status; nil writes with New's client, which reads the whole pool back.
	StatusWriter StatusWriter
}

// Store owns the pool writers of one agent.
type Store struct {
	status  StatusWriter
	pools   *pools.View // pool reads
	log     logr.Logger
	metrics *metrics.Metrics
	opts    Options

	mu      sync.Mutex
	writers map[string]*writer
	ctx     context.Context
}

// New returns a store; it runs its writers until ctx ends. It writes pool status with c (or
// opts.StatusWriter) and reads pools through view, which it tells of every version it writes.
func New(ctx context.Context, c client.Client, view *pools.View, m *metrics.Metrics, log logr.Logger, opts Options) *Store {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 5 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = time.Second
	}
	if opts.StatusWriter == nil {
		opts.StatusWriter = clientWriter{c}
	}
	return &Store{status: opts.StatusWriter, pools: view, log: log, metrics: m, opts: opts, writers: map[string]*writer{}, ctx: ctx}
}

// Do applies op to the named pool and waits for it to be written (or found unnecessary). It returns when
// ctx ends, with ctx's error; the op is then dropped unless its write is already under way.
func (s *Store) Do(ctx context.Context, pool string, op Op) Result {
	p := &pending{ctx: ctx, op: op, done: make(chan Result, 1)}
	w := s.writer(pool)
	select {
	case w.queue <- p:
	case <-ctx.Done():
		return Result{Err: ctx.Err()}
	}
	select {
	case r := <-p.done:
		return r
	case <-ctx.Done():
		return Result{Err: ctx.Err()}
	}
}

// Snapshot returns the pool as of the newest version this agent knows of (pools.View.Latest), parsed
// once per resourceVersion. It is shared: callers only read it.
func (s *Store) Snapshot(ctx context.Context, pool string) (*ipam.Pool, error) {
	obj, err := s.pools.Latest(ctx, pool)
	if err != nil {
		return nil, err
	}
	w := s.writer(pool)
	p, owned, err := w.parsed(obj)
	if err == nil && owned {
		w.keep(p, obj.ResourceVersion)
	}
	return p, err
}

func (s *Store) writer(pool string) *writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.writers[pool]
	if !ok {
		w = &writer{s: s, name: pool, queue: make(chan *pending, s.opts.MaxBatch), log: s.log.WithValues("pool", pool)}
		s.writers[pool] = w
		go w.run(s.ctx)
	}
	return w
}

type pending struct {
	ctx  context.Context
	op   Op
	done chan Result
}

type writer struct {
	s     *Store
	name  string
	queue chan *pending
	log   logr.Logger

	mu sync.Mutex
	// snap is the pool parsed at snapRV, by Snapshot or as the writer's last write; shared, never changed.
	snap   *ipam.Pool
	snapRV string

	refusedRV string // the version last refused (parse failed); the writer's goroutine only
}

func (w *writer) run(ctx context.Context) {
	for {
		var batch []*pending
		select {
		case <-ctx.Done():
			return
		case p := <-w.queue:
			batch = append(batch, p)
		}
		w.commit(ctx, w.drain(batch))
	}
}

// drain adds to batch the requests waiting in the queue, up to MaxBatch.
func (w *writer) drain(batch []*pending) []*pending {
	for len(batch) < w.s.opts.MaxBatch {
		select {
		case p := <-w.queue:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// liveGet reads the pool from the apiserver, bounded by the write timeout.
func (w *writer) liveGet(ctx context.Context) (*spv2.SpiderIPPool, error) {
	ctx, cancel := context.WithTimeout(ctx, w.s.opts.WriteTimeout)
	defer cancel()
	return w.s.pools.Read(ctx, w.name)
}

func (w *writer) backoff(attempt int) time.Duration {
	d := w.s.opts.BackoffBase << min(attempt, 16)
	if d > w.s.opts.BackoffMax || d <= 0 {
		d = w.s.opts.BackoffMax
	}
	return time.Duration(rand.Int64N(int64(d)) + 1) // full jitter: agents that collided spread out
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// commit applies a batch to the pool and writes the status until the write succeeds, the pool refuses,
// or every op's requester has gone.
func (w *writer) commit(ctx context.Context, batch []*pending) {
	base, err := w.s.pools.Latest(ctx, w.name)
	fresh := false // base came from a quorum read just now
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// Every attempt applies the whole batch to the pool it read: requests that came in while
			// the last one was under way ride on this one, not on a write of their own after it.
			batch = w.drain(batch)
		}
		batch = dropGone(batch)
		if len(batch) == 0 || ctx.Err() != nil {
			return
		}
		if err != nil {
			if apierrors.IsNotFound(err) {
				replyAll(batch, Result{Err: &PoolGoneError{Pool: w.name}})
				return
			}
			w.s.metrics.WriteErrors.WithLabelValues(w.name).Inc()
			w.log.V(1).Info("reading pool failed; retrying", "attempt", attempt, "err", err)
			if !sleep(ctx, w.backoff(attempt)) {
				return
			}
			base, err = w.liveGet(ctx)
			fresh = err == nil
			continue
		}
		parsed, owned, lerr := w.parsed(base)
		if lerr != nil {
			if !fresh {
				// Refuse only what the apiserver holds now, not a stale copy.
				base, err = w.liveGet(ctx)
				fresh = err == nil
				continue
			}
			if base.ResourceVersion != w.refusedRV { // once per version: every DEL asks every pool
				w.log.Error(lerr, "refusing the pool")
				w.refusedRV = base.ResourceVersion
			}
			replyAll(batch, Result{Err: lerr})
			return
		}
		if freesNothing(parsed, batch) {
			// Every DEL asks every pool's writer (service.release): releases that match nothing here
			// are answered from the parse, without the copy a change of a shared parse needs.
			if owned {
				w.keep(parsed, base.ResourceVersion)
			}
			replyAll(batch, Result{Pool: InfoOf(parsed)})
			return
		}
		pool := parsed
		if !owned {
			pool = parsed.Clone()
		}
		if w.s.opts.Reserved != nil {
			pool.SetReserved(w.s.opts.Reserved(pool.Family))
		}
		results, changed, hits := apply(pool, batch)
		if !changed {
			if hits && !fresh {
				// "Already held" read from a copy that may be stale: confirm with a quorum read.
				base, err = w.liveGet(ctx)
				fresh = err == nil
				continue
			}
			reply(batch, results)
			return
		}
		st, serr := pool.Status()
		if serr != nil {
			replyAll(batch, Result{Err: serr})
			return
		}
		obj := base.DeepCopy()
		obj.Status = st
		wctx, cancel := context.WithTimeout(ctx, w.s.opts.WriteTimeout)
		uerr := w.s.status.UpdateStatus(wctx, obj)
		cancel()
		switch {
		case uerr == nil:
			w.s.pools.Observe(obj)
			// pool is obj parsed: keep it for Snapshot and the next commit, which then parse nothing
			// while this agent is the pool's only writer. It is not changed after this.
			w.keep(pool, obj.ResourceVersion)
			w.s.metrics.BatchSize.Observe(float64(len(batch)))
			reply(batch, results)
			return
		case apierrors.IsConflict(uerr):
			w.s.metrics.Conflicts.WithLabelValues(w.name).Inc()
		case apierrors.IsNotFound(uerr):
			replyAll(batch, Result{Err: &PoolGoneError{Pool: w.name}})
			return
		default:
			// Unknown outcome (apiserver down, timeout): the re-read tells whether it landed.
			w.s.metrics.WriteErrors.WithLabelValues(w.name).Inc()
			w.log.V(1).Info("writing pool status failed; retrying", "attempt", attempt, "err", uerr)
		}
		if !sleep(ctx, w.backoff(attempt)) {
			return
		}
		// The version that beat this write, or tells whether an unanswered one landed.
		base, err = w.liveGet(ctx)
		fresh = err == nil
	}
}

// parsed returns base parsed: the writer's last parse when that is of base's resourceVersion (most
// often the writer's own last write; shared, so callers only read it), else a new parse of base, which
// the caller owns and may make the last (keep) once it will not change it.
func (w *writer) parsed(base *spv2.SpiderIPPool) (p *ipam.Pool, owned bool, err error) {
	w.mu.Lock()
	snap, rv := w.snap, w.snapRV
	w.mu.Unlock()
	if snap != nil && rv != "" && rv == base.ResourceVersion {
		return snap, false, nil
	}
	p, err = ipam.Load(base)
	return p, true, err
}

// keep makes p, the pool at resourceVersion rv, the writer's last parse. p is not changed after this.
func (w *writer) keep(p *ipam.Pool, rv string) {
	w.mu.Lock()
	w.snap, w.snapRV = p, rv
	w.mu.Unlock()
}

// freesNothing says every op of the batch is a release that frees nothing in pool.
func freesNothing(pool *ipam.Pool, batch []*pending) bool {
	for _, p := range batch {
		switch p.op.Kind {
		case Release, ReleaseSandbox:
			if pool.WouldRelease(p.op.Holder, p.op.Kind == ReleaseSandbox) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func dropGone(batch []*pending) []*pending {
	kept := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.done <- Result{Err: err}
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

// apply runs the batch's ops in order on pool. hits says some allocation was answered from an existing
// record without a change.
func apply(pool *ipam.Pool, batch []*pending) (results []Result, changed, hits bool) {
	info := InfoOf(pool)
	results = make([]Result, len(batch))
	for i, p := range batch {
		r := Result{Pool: info}
		switch p.op.Kind {
		case Allocate:
			_, existed := pool.Find(p.op.Holder)
			ip, ch, err := pool.Allocate(p.op.Holder)
			r.IP, r.New, r.Err = ip, err == nil && !existed, err
			changed = changed || ch
			hits = hits || (existed && !ch)
		case Release:
			r.Freed = pool.Release(p.op.Holder)
			changed = changed || len(r.Freed) > 0
		case ReleaseSandbox:
			r.Freed = pool.ReleaseSandbox(p.op.Holder)
			changed = changed || len(r.Freed) > 0
		case Adopt:
			if pool.Adopt(p.op.Holder) {
				changed = true
			}
		case MarkConflict:
			if pool.MarkConflict(p.op.Holder, p.op.IP, p.op.Conflict) {
				r.IP = p.op.IP
				changed = true
			}
		case ClearConflict:
			if pool.ClearConflict(p.op.IP) {
				r.Freed = []netip.Addr{p.op.IP}
				changed = true
			}
		case Reclaim:
			ch, err := pool.Reclaim(p.op.Holder, p.op.IP)
			r.IP, r.Err = p.op.IP, err
			changed = changed || ch
		case ReleaseIfHeld:
			if pool.ReleaseIfHeld(p.op.IP, p.op.Record) {
				r.Freed = []netip.Addr{p.op.IP}
				changed = true
			}
		default:
			r.Err = errors.New("unknown op")
		}
		results[i] = r
	}
	return results, changed, hits
}

func reply(batch []*pending, results []Result) {
	for i, p := range batch {
		p.done <- results[i]
	}
}

func replyAll(batch []*pending, r Result) {
	for _, p := range batch {
		p.done <- r
	}
}
