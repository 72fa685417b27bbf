// Package linkwatch keeps the node label <prefix><nic>=up|down (api/underlay, by default
// underlay.underlink.io/<nic>) true for the underlay NICs of the agent's node. It learns link changes from
// a netlink subscription (no polling) and patches only that label, within milliseconds of the kernel's
// event; the scheduler's UnderlayNetwork filter reads it.
package linkwatch

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/cni/agent/metrics"
)

// Watcher watches the underlay NICs of one node.
type Watcher struct {
	// Client patches the node; Reader reads the node and SpiderMultusConfigs from the agent's cache.
	Client client.Client
	Reader client.Reader
	// Informers delivers node and SpiderMultusConfig changes (the agent's cache).
	Informers cache.Informers
	NodeName  string
	// LabelPrefix starts the node labels (--label-prefix); empty means api/underlay.LabelPrefix. It must
	// be the scheduler's labelPrefix.
	LabelPrefix string
	// NICs, when set, is the fixed list of NICs to watch (--nics); otherwise the links the cluster's
	// SpiderMultusConfigs' pods attach to (MastersOf: their parents, the VLAN sub-interface or bond when
	// they name one), or ens224 when none names one.
	NICs []string
	// Netns, when set, is the network namespace to watch instead of the agent's own.
	Netns   *netns.NsHandle
	Metrics *metrics.Metrics
	Log     logr.Logger
}

// NeedLeaderElection says every agent watches its own node.
func (w *Watcher) NeedLeaderElection() bool { return false }

type link struct {
	name string
	up   bool
}

// Start watches until ctx ends.
func (w *Watcher) Start(ctx context.Context) error {
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	for _, obj := range []client.Object{&corev1.Node{}, &spv2.SpiderMultusConfig{}} {
		if len(w.NICs) > 0 {
			if _, ok := obj.(*spv2.SpiderMultusConfig); ok {
				continue
			}
		}
		inf, err := w.Informers.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
	}

	prefix := cmp.Or(w.LabelPrefix, underlay.LabelPrefix)
	published := map[string]string{} // what this watcher last patched, per NIC
	var retry <-chan time.Time
	attempt := 0
	for ctx.Err() == nil {
		updates := make(chan netlink.LinkUpdate, 4096)
		done := make(chan struct{})
		broken := make(chan error, 1)
		opts := netlink.LinkSubscribeOptions{ErrorCallback: func(err error) {
			select {
			case broken <- err:
			default:
			}
		}}
		if w.Netns != nil {
			opts.Namespace = w.Netns
		}
		// Subscribe before listing: a change during the list arrives as an update afterwards.
		if err := netlink.LinkSubscribeWithOptions(updates, done, opts); err != nil {
			return fmt.Errorf("subscribe to netlink link updates: %w", err)
		}
		table, err := w.list()
		if err != nil {
			close(done)
			return err
		}
		w.Log.Info("watching underlay NICs", "nics", w.nics(ctx), "links", len(table))
		eventAt := time.Time{}
		evaluate := func() {
			nics := w.nics(ctx)
			byName := map[string]bool{}
			for _, l := range table {
				byName[l.name] = byName[l.name] || l.up
			}
			want := Desired(nics, byName)
			var node corev1.Node
			haveNode := w.Reader.Get(ctx, types.NamespacedName{Name: w.NodeName}, &node) == nil
			failed := false
			for _, nic := range nics {
				v := want[nic]
				key := underlay.LabelKey(prefix, nic)
				if err := underlay.ValidateLabelKey(prefix, nic); err != nil {
					w.Log.Error(err, "not labelling NIC")
					continue
				}
				w.Metrics.LinkUp.WithLabelValues(nic).Set(map[string]float64{underlay.LinkUp: 1, underlay.LinkDown: 0}[v])
				if published[nic] == v && haveNode && node.Labels[key] == v {
					continue
				}
				if published[nic] == v && !haveNode {
					continue
				}
				if err := w.patch(ctx, key, v); err != nil {
					w.Log.Info("patching node label failed; will retry", "label", key, "value", v, "err", err.Error())
					failed = true
					continue
				}
				if published[nic] != v {
					w.Log.Info("underlay NIC changed", "nic", nic, "label", key, "value", v)
				}
				published[nic] = v
				if !eventAt.IsZero() {
					w.Metrics.LabelPatchSeconds.Observe(time.Since(eventAt).Seconds())
				}
			}
			if failed {
				attempt++
				retry = time.After(backoff(attempt))
			} else {
				attempt, retry = 0, nil
			}
			eventAt = time.Time{}
		}
		evaluate()
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case err := <-broken:
				w.Log.Info("netlink subscription broke; resubscribing", "err", err.Error())
				break loop
			case u, ok := <-updates:
				if !ok {
					break loop
				}
				if eventAt.IsZero() {
					eventAt = time.Now()
				}
				apply(table, u)
				// Drain what is queued, so a burst of events costs one evaluation.
				for more := true; more; {
					select {
					case u, ok := <-updates:
						if !ok {
							break loop
						}
						apply(table, u)
					default:
						more = false
					}
				}
				evaluate()
			case <-kick:
				evaluate()
			case <-retry:
				evaluate()
			}
		}
		close(done)
	}
	return nil
}

func apply(table map[int]link, u netlink.LinkUpdate) {
	idx := int(u.Index)
	if u.Header.Type == unix.RTM_DELLINK {
		delete(table, idx)
		return
	}
	if attrs := u.Attrs(); attrs != nil {
		table[idx] = link{name: attrs.Name, up: LinkUp(attrs.Flags&net.FlagUp != 0, uint8(attrs.OperState))}
	}
}

func (w *Watcher) list() (map[int]link, error) {
	var h *netlink.Handle
	var err error
	if w.Netns != nil {
		h, err = netlink.NewHandleAt(*w.Netns)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	table := map[int]link{}
	for _, l := range links {
		a := l.Attrs()
		table[a.Index] = link{name: a.Name, up: LinkUp(a.Flags&net.FlagUp != 0, uint8(a.OperState))}
	}
	return table, nil
}

var nicsLogged sync.Map

func (w *Watcher) nics(ctx context.Context) []string {
	if len(w.NICs) > 0 {
		return w.NICs
	}
	var list spv2.SpiderMultusConfigList
	if err := w.Reader.List(ctx, &list); err != nil {
		return []string{DefaultNIC}
	}
	nics := MastersOf(list.Items)
	if _, seen := nicsLogged.LoadOrStore(fmt.Sprint(nics), true); !seen && !slices.Equal(nics, []string{DefaultNIC}) {
		w.Log.Info("underlay NICs from SpiderMultusConfigs", "nics", nics)
	}
	return nics
}

// patch sets one label with a merge patch, which touches no other label and needs no resourceVersion.
func (w *Watcher) patch(ctx context.Context, key, value string) error {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{key: value}}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	node := &corev1.Node{}
	node.Name = w.NodeName
	return w.Client.Patch(ctx, node, client.RawPatch(types.MergePatchType, body))
}

func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt, 6)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)))
}
