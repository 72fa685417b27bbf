package underlaynetwork

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"
	fwk "k8s.io/kube-scheduler/framework"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/scheduler/underlaynetwork/cache"
)

// The custom resources the plugin reads.
var (
	poolsGVR   = spv2.GroupVersion.WithResource("spiderippools")
	configsGVR = spv2.GroupVersion.WithResource("spidermultusconfigs")
	nadsGVR    = nadv1.GroupVersion.WithResource("network-attachment-definitions")
	// reservedGVR are the addresses no pool gives out: counted as taken.
	reservedGVR = spv2.GroupVersion.WithResource("spiderreservedips")
)

// eventResource names a custom resource in cluster events the way kube-scheduler's event handlers parse
// it: "<plural>.<version>.<group>", served by the scheduler's dynamic informers.
func eventResource(gvr schema.GroupVersionResource) fwk.EventResource {
	return fwk.EventResource(gvr.Resource + "." + gvr.Version + "." + gvr.Group)
}

// served records which of the plugin's resources the apiserver serves.
type served struct{ pools, configs, nads, reserved bool }

// shared is what the profiles of one scheduler share: one cache, fed by one set of informers.
type shared struct {
	store  *cache.Store
	served served
}

var (
	sharedMu sync.Mutex
	// sharedByScheduler is keyed by the scheduler's informer factory, which all its profiles share.
	sharedByScheduler = map[informers.SharedInformerFactory]*shared{}
)

// syncTimeout bounds the wait for the plugin's informers at start-up.
const syncTimeout = 2 * time.Minute

// sharedFor returns the cache of the scheduler behind h, starting its informers on first use. The
// plugin reads its custom resources through client-go dynamic informers over the scheduler's own
// kubeconfig (no controller-runtime): the scheduler's SharedInformerFactory only knows built-in types,
// and kube-scheduler itself watches custom resources the same way for their cluster events.
func sharedFor(ctx context.Context, h fwk.Handle, p *Plugin) (*shared, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sh, ok := sharedByScheduler[h.SharedInformerFactory()]; ok {
		return sh, nil
	}
	cfg := h.KubeConfig()
	if cfg == nil {
		return nil, fmt.Errorf("the scheduler has no kubeconfig to read SpiderIPPools with")
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	sh := &shared{store: cache.NewStore()}
	if sh.served.pools, err = isServed(disc, poolsGVR); err != nil {
		return nil, err
	}
	if sh.served.configs, err = isServed(disc, configsGVR); err != nil {
		return nil, err
	}
	if sh.served.nads, err = isServed(disc, nadsGVR); err != nil {
		return nil, err
	}
	if sh.served.reserved, err = isServed(disc, reservedGVR); err != nil {
		return nil, err
	}
	if !sh.served.pools {
		p.logger.Info("SpiderIPPool is not served by the apiserver: pods of underlay networks with IPAM stay Pending until it is installed and the scheduler restarted", "resource", poolsGVR.String())
	}

	factory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	var synced []toolscache.InformerSynced
	add := func(gvr schema.GroupVersionResource, h toolscache.ResourceEventHandlerFuncs) error {
		inf := factory.ForResource(gvr).Informer()
		// Keep only what the plugin reads; managed fields of busy pools are most of their size.
		if err := inf.SetTransform(stripManagedFields); err != nil {
			return err
		}
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
		synced = append(synced, inf.HasSynced)
		return nil
	}
	if sh.served.pools {
		if err := add(poolsGVR, p.poolHandlers(sh.store)); err != nil {
			return nil, err
		}
	}
	if sh.served.configs {
		if err := add(configsGVR, p.networkHandlers(sh.store, podnet.KindMultusConfig)); err != nil {
			return nil, err
		}
	}
	if sh.served.nads {
		if err := add(nadsGVR, p.networkHandlers(sh.store, podnet.KindNAD)); err != nil {
			return nil, err
		}
	}
	if sh.served.reserved {
		if err := add(reservedGVR, p.reservedHandlers(sh.store)); err != nil {
			return nil, err
		}
	}
	factory.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !toolscache.WaitForCacheSync(syncCtx.Done(), synced...) {
		return nil, fmt.Errorf("SpiderIPPool, SpiderMultusConfig and NetworkAttachmentDefinition informers did not sync within %s: the scheduler's user needs get, list and watch on spiderippools and spidermultusconfigs (spiderpool.spidernet.io) and network-attachment-definitions (k8s.cni.cncf.io)", syncTimeout)
	}

	// Pods bound by any scheduler (or by this one before a restart) hold a claim on their pool until the
	// agent records their address; deleted and finished pods give it back.
	podInformer := h.SharedInformerFactory().Core().V1().Pods().Informer()
	nodes := h.SharedInformerFactory().Core().V1().Nodes().Lister()
	p.store = sh.store
	if _, err := podInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.trackPod(obj, nodes.Get) },
		UpdateFunc: func(_, obj any) { p.trackPod(obj, nodes.Get) },
		DeleteFunc: func(obj any) { p.forgetPod(obj) },
	}); err != nil {
		return nil, err
	}
	sharedByScheduler[h.SharedInformerFactory()] = sh
	return sh, nil
}

func isServed(disc discovery.DiscoveryInterface, gvr schema.GroupVersionResource) (bool, error) {
	list, err := disc.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover %s: %w", gvr.GroupVersion(), err)
	}
	for _, r := range list.APIResources {
		if r.Name == gvr.Resource {
			return true, nil
		}
	}
	return false, nil
}

func stripManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}

// fromUnstructured converts an object of an informer or a cluster event to its typed form. Deletion
// tombstones are unwrapped.
func fromUnstructured[T any, PT interface {
	*T
	runtime.Object
}](obj any) (PT, error) {
	if obj == nil {
		return nil, nil
	}
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	switch o := obj.(type) {
	case PT:
		return o, nil
	case *unstructured.Unstructured:
		out := PT(new(T))
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
			return nil, fmt.Errorf("%s %s/%s cannot be read: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unexpected object %T", obj)
	}
}

func (p *Plugin) poolHandlers(store *cache.Store) toolscache.ResourceEventHandlerFuncs {
	set := func(obj any) {
		pool, err := fromUnstructured[spv2.SpiderIPPool](obj)
		if err != nil {
			p.logger.Error(err, "Ignoring SpiderIPPool event")
			return
		}
		if _, cur, applied := store.SetPool(pool); applied && (cur.Problem != "" || len(cur.Notes) > 0) {
			p.logger.Info("SpiderIPPool read with problems", "pool", pool.Name, "problem", cur.Problem, "notes", cur.Notes)
		}
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(obj any) {
			pool, err := fromUnstructured[spv2.SpiderIPPool](obj)
			if err != nil {
				p.logger.Error(err, "Ignoring SpiderIPPool deletion")
				return
			}
			store.DeletePool(pool.Name, pool.ResourceVersion)
		},
	}
}

func (p *Plugin) reservedHandlers(store *cache.Store) toolscache.ResourceEventHandlerFuncs {
	set := func(obj any) {
		r, err := fromUnstructured[spv2.SpiderReservedIP](obj)
		if err != nil {
			p.logger.Error(err, "Ignoring SpiderReservedIP event")
			return
		}
		store.SetReservedIP(r.Name, r)
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if u, ok := obj.(interface{ GetName() string }); ok {
				store.SetReservedIP(u.GetName(), nil)
			}
		},
	}
}

// networkOf reads a SpiderMultusConfig or NetworkAttachmentDefinition event object.
func networkOf(kind string, obj any) (ns, name, rv string, n podnet.Network, err error) {
	if kind == podnet.KindMultusConfig {
		smc, err := fromUnstructured[spv2.SpiderMultusConfig](obj)
		if err != nil || smc == nil {
			return "", "", "", n, err
		}
		return smc.Namespace, smc.Name, smc.ResourceVersion, podnet.FromMultusConfig(smc), nil
	}
	nad, err := fromUnstructured[nadv1.NetworkAttachmentDefinition](obj)
	if err != nil || nad == nil {
		return "", "", "", n, err
	}
	return nad.Namespace, nad.Name, nad.ResourceVersion, podnet.FromNAD(nad), nil
}

func (p *Plugin) networkHandlers(store *cache.Store, kind string) toolscache.ResourceEventHandlerFuncs {
	set := func(obj any) {
		ns, name, rv, n, err := networkOf(kind, obj)
		if err != nil {
			p.logger.Error(err, "Ignoring network event", "kind", kind)
			return
		}
		if _, _, applied := store.SetNetwork(ns, name, rv, n); applied && n.Problem != "" {
			p.logger.Info("Network cannot be used", "kind", kind, "network", ns+"/"+name, "problem", n.Problem)
		}
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(obj any) {
			ns, name, rv, _, err := networkOf(kind, obj)
			if err != nil {
				p.logger.Error(err, "Ignoring network deletion", "kind", kind)
				return
			}
			store.DeleteNetwork(kind, ns, name, rv)
		},
	}
}

// trackPod records the pool claims of a pod bound to a node that this scheduler did not reserve (bound by
// another scheduler, or before a restart), choosing its pools as Reserve would; finished pods give their
// claims back.
func (p *Plugin) trackPod(obj any, getNode func(string) (*v1.Node, error)) {
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return
	}
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		p.store.Release(pod.UID)
		return
	}
	if p.store.Placed(pod.UID) || !p.mayNeedUnderlay(pod) {
		return
	}
	n, _, st := p.resolve(pod)
	if st != nil || len(n.reqs) == 0 {
		return
	}
	node, err := getNode(pod.Spec.NodeName)
	if err != nil {
		p.logger.V(4).Info("Bound pod's node not found; its pool claim waits for the next update", "pod", klogKObj(pod), "node", pod.Spec.NodeName)
		return
	}
	claims, _ := p.stateFor(n).claimsOn(node)
	if len(claims) == 0 {
		return
	}
	p.store.Place(pod.UID, pod.Namespace+"/"+pod.Name, claims)
	p.logger.V(4).Info("Tracking pool claims of a bound pod", "pod", klogKObj(pod), "node", pod.Spec.NodeName, "claims", claims)
}

func (p *Plugin) forgetPod(obj any) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if pod, ok := obj.(*v1.Pod); ok {
		p.store.Release(pod.UID)
	}
}
