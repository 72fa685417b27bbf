// Package linkwatch keeps the node label <prefix><nic>=up|down (api/underlay, by default
// underlay.underlink.io/<nic>) true for the underlay NICs of the agent's node, and beside it the node
// annotation <prefix><nic>.addresses with the NIC's addresses (for networks with matchMasterSubnet). It
// learns link and address changes from netlink subscriptions (no polling) and patches only those keys,
// within milliseconds of the kernel's event; the scheduler's UnderlayNetwork filter reads them.
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
	"github.com/underlink/underlink/cni/agent/hostaddr"
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
		addrUpdates := make(chan netlink.AddrUpdate, 1024)
		aopts := netlink.AddrSubscribeOptions{Namespace: opts.Namespace, ErrorCallback: opts.ErrorCallback}
		if err := netlink.AddrSubscribeWithOptions(addrUpdates, done, aopts); err != nil {
			close(done)
			return fmt.Errorf("subscribe to netlink address updates: %w", err)
		}
		table, err := w.list()
		if err != nil {
			close(done)
			return err
		}
		w.Log.Info("watching underlay NICs", "nics", w.nics(ctx), "links", len(table))
		eventAt := time.Time{}
		watched := map[string]bool{} // the NICs of the last evaluation
		evaluate := func() {
			nics := w.nics(ctx)
			clear(watched)
			for _, n := range nics {
				watched[n] = true
			}
			byName := map[string]bool{}
			for _, l := range table {
				byName[l.name] = byName[l.name] || l.up
			}
			want := Desired(nics, byName)
			addrs, err := hostaddr.Reader{Netns: w.Netns}.Each(nics)
			addrsRead := err == nil
			if !addrsRead {
				// The annotation keeps what it said: "no address" would turn the scheduler away.
				w.Log.Info("reading the underlay NICs' addresses failed; publishing link state only, will retry", "err", err.Error())
			}
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
				akey, av := underlay.AddressesKey(prefix, nic), underlay.FormatAddresses(addrs[nic])
				if !addrsRead {
					akey, av = "", "?"
				}
				state := v + " " + av
				if published[nic] == state && haveNode && node.Labels[key] == v && (akey == "" || node.Annotations[akey] == av) {
					continue
				}
				if published[nic] == state && !haveNode {
					continue
				}
				if err := w.patch(ctx, key, v, akey, av); err != nil {
					w.Log.Info("patching node label failed; will retry", "label", key, "value", v, "err", err.Error())
					failed = true
					continue
				}
				if published[nic] != state {
					w.Log.Info("underlay NIC changed", "nic", nic, "label", key, "value", v, "addresses", av)
				}
				published[nic] = state
				if !eventAt.IsZero() {
					w.Metrics.LabelPatchSeconds.Observe(time.Since(eventAt).Seconds())
				}
			}
			if failed || !addrsRead {
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
				if !drain(table, updates, addrUpdates) {
					break loop
				}
				evaluate()
			case u, ok := <-addrUpdates:
				if !ok {
					break loop
				}
				if !watched[table[u.LinkIndex].name] {
					// Another link's address, e.g. the link-local address of a pod's host-side veth.
					continue
				}
				if eventAt.IsZero() {
					eventAt = time.Now()
				}
				if !drain(table, updates, addrUpdates) {
					break loop
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

// drain applies what is queued, so a burst of events costs one evaluation; false when a subscription
// closed.
func drain(table map[int]link, updates <-chan netlink.LinkUpdate, addrUpdates <-chan netlink.AddrUpdate) bool {
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				return false
			}
			apply(table, u)
		case _, ok := <-addrUpdates:
			if !ok {
				return false
			}
		default:
			return true
		}
	}
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
	h, err := hostaddr.Reader{Netns: w.Netns}.Handle()
	if err != nil {
		return nil, err
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

// patch sets one label and one annotation (none when akey is "") with a merge patch, which touches no
// other key and needs no resourceVersion.
func (w *Watcher) patch(ctx context.Context, key, value, akey, avalue string) error {
	meta := map[string]any{"labels": map[string]string{key: value}}
	if akey != "" {
		meta["annotations"] = map[string]string{akey: avalue}
	}
	body, err := json.Marshal(map[string]any{"metadata": meta})
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
