// Package underlaynetwork is the UnderlayNetwork kube-scheduler plugin: it places a pod attached to an
// underlay network (macvlan on a host NIC, addresses from a SpiderIPPool) only on nodes where that NIC
// is up and whose pool has a free address for it, and keeps the pod Pending with a readable reason
// otherwise. See README.md.
package underlaynetwork

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	configv1 "github.com/underlink/underlink/scheduler/apis/config/v1"
	"github.com/underlink/underlink/scheduler/underlaynetwork/cache"
)

// Name is the plugin's name in the scheduler's registry and in KubeSchedulerConfiguration profiles.
const Name = "UnderlayNetwork"

// stateKey is where PreFilter leaves the pod's resolved needs for the later extension points.
const stateKey fwk.StateKey = Name

// Plugin is the UnderlayNetwork plugin.
type Plugin struct {
	args  *configv1.UnderlayNetworkArgs
	store *cache.Store
	// links remembers the link state of the nodes of the last cycles, for PreFilter's scan.
	links *cache.Links
	// served says which of the custom resources the plugin reads the apiserver serves; only their
	// events are registered, because kube-scheduler waits for an informer of every registered resource.
	served served
	// node returns a node of the cycle's snapshot, for Reserve.
	node func(name string) (*v1.Node, error)
	// nsLabels returns a namespace's labels, for pools with spec.namespaceAffinity.
	nsLabels func(name string) (map[string]string, error)
	// starts paces pod starts per node (args.MaxStartingPodsPerNode); nil when pacing is off.
	starts *cache.Starts
	// waitingPod finds a pod waiting in Permit, for the pacer to allow.
	waitingPod func(types.UID) fwk.WaitingPod
	logger     klog.Logger
}

var (
	_ fwk.PreFilterPlugin   = &Plugin{}
	_ fwk.FilterPlugin      = &Plugin{}
	_ fwk.PreScorePlugin    = &Plugin{}
	_ fwk.ScorePlugin       = &Plugin{}
	_ fwk.ScoreExtensions   = &Plugin{}
	_ fwk.ReservePlugin     = &Plugin{}
	_ fwk.PermitPlugin      = &Plugin{}
	_ fwk.EnqueueExtensions = &Plugin{}
	_ fwk.SignPlugin        = &Plugin{}
)

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// New builds the plugin from its pluginConfig args (see scheduler/apis/config/v1). The profiles of one
// scheduler share one cache and one set of informers, built on first use from the scheduler's
// kubeconfig; New returns only when those informers have synced, so the first cycle sees every pool.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := configv1.Decode(obj)
	if err != nil {
		return nil, err
	}
	logger := klog.FromContext(ctx).WithValues("plugin", Name, "profile", h.ProfileName())
	nsLister := h.SharedInformerFactory().Core().V1().Namespaces().Lister()
	p := &Plugin{
		args:   args,
		links:  cache.NewLinks(),
		logger: logger,
		node: func(name string) (*v1.Node, error) {
			ni, err := h.SnapshotSharedLister().NodeInfos().Get(name)
			if err != nil {
				return nil, err
			}
			return ni.Node(), nil
		},
		nsLabels: func(name string) (map[string]string, error) {
			ns, err := nsLister.Get(name)
			if err != nil {
				return nil, err
			}
			return ns.Labels, nil
		},
	}
	sh, err := sharedFor(ctx, h, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	p.store, p.served = sh.store, sh.served
	if err := p.pacing(ctx, h); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	logger.Info("UnderlayNetwork plugin ready", "labelPrefix", args.LabelPrefix, "defaultNetwork", args.DefaultNetwork,
		"maxStartingPodsPerNode", *args.MaxStartingPodsPerNode, "startingTimeout", args.StartingTimeout.Duration,
		"spiderIPPools", p.served.pools, "spiderMultusConfigs", p.served.configs, "networkAttachmentDefinitions", p.served.nads)
	return p, nil
}
