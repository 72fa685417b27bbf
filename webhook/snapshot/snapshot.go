// Package snapshot reads from the cluster what underlink's rules need — Submariner Clusters, pools,
// multus configs, NADs and namespace labels — and builds the rules.World they run over. The webhook
// reads from its informer cache, `underlink doctor` from the apiserver; both through client.Reader.
package snapshot

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/pkg/rules"
)

// Options say which cluster is local and what stands in for missing Submariner Cluster objects.
type Options struct {
	// LocalCluster is the local cluster's Submariner ID; empty lets rules.NewWorld infer it.
	LocalCluster string
	// APIServerServiceIP is the ClusterIP of default/kubernetes, read once at start: it identifies the
	// local Cluster object by its service_cidr.
	APIServerServiceIP string
	// DefaultNetwork is the network injected into pods that name none.
	DefaultNetwork string
	// StaticClusters stand in for clusters that have no Cluster object (Submariner not installed, or a
	// peer not joined through a broker). A Cluster object with the same ID wins over a static entry.
	StaticClusters []submarinerv1.Cluster
	// StaticClustersConfigMap, when set, is a ConfigMap whose data key ConfigMapKey holds more static
	// clusters (see ParseClusters); it is read on every snapshot, so edits apply without a restart.
	StaticClustersConfigMap *client.ObjectKey
}

// ConfigMapKey is the key of StaticClustersConfigMap that holds the clusters.
const ConfigMapKey = "clusters.yaml"

// Scope limits which namespaces' labels a snapshot reads: admission of one pod needs only its own.
type Scope struct {
	// Namespaces whose labels are read; nil means all namespaces.
	Namespaces []string
}

// Read builds the world from r. Errors wrap the read that failed; a missing optional object (the static
// ConfigMap) is not an error but leaves its clusters out.
func Read(ctx context.Context, r client.Reader, o Options, scope Scope) (*rules.World, error) {
	in, err := readInput(ctx, r, o, scope)
	if err != nil {
		return nil, err
	}
	return rules.NewWorld(in), nil
}

func readInput(ctx context.Context, r client.Reader, o Options, scope Scope) (rules.Input, error) {
	in := rules.Input{
		LocalCluster:       o.LocalCluster,
		APIServerServiceIP: o.APIServerServiceIP,
		DefaultNetwork:     o.DefaultNetwork,
	}
	var clusters submarinerv1.ClusterList
	if err := r.List(ctx, &clusters); err != nil && !noKind(err) {
		return in, fmt.Errorf("list submariner.io/v1 Clusters: %w", err)
	}
	static := append([]submarinerv1.Cluster(nil), o.StaticClusters...)
	if o.StaticClustersConfigMap != nil {
		more, err := readConfigMap(ctx, r, *o.StaticClustersConfigMap)
		if err != nil {
			return in, err
		}
		static = append(static, more...)
	}
	in.Clusters = Merge(clusters.Items, static)

	var pools spv2.SpiderIPPoolList
	if err := r.List(ctx, &pools); err != nil {
		return in, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	in.Pools = pools.Items
	var reserved spv2.SpiderReservedIPList
	if err := r.List(ctx, &reserved); err != nil && !noKind(err) {
		return in, fmt.Errorf("list SpiderReservedIPs: %w", err)
	}
	in.ReservedIPs = reserved.Items
	var coord spv2.SpiderCoordinator
	switch err := r.Get(ctx, client.ObjectKey{Name: spv2.CoordinatorDefaultName}, &coord); {
	case err == nil:
		in.CoordinatorDefaults = &coord.Spec
	case !noKind(err):
		return in, fmt.Errorf("read SpiderCoordinator %s: %w", spv2.CoordinatorDefaultName, err)
	}
	var configs spv2.SpiderMultusConfigList
	if err := r.List(ctx, &configs); err != nil {
		return in, fmt.Errorf("list SpiderMultusConfigs: %w", err)
	}
	in.MultusConfigs = configs.Items
	var nads nadv1.NetworkAttachmentDefinitionList
	if err := r.List(ctx, &nads); err != nil && !noKind(err) {
		return in, fmt.Errorf("list NetworkAttachmentDefinitions: %w", err)
	}
	in.NADs = nads.Items

	namespaces, err := readNamespaces(ctx, r, scope)
	if err != nil {
		return in, err
	}
	in.Namespaces = namespaces
	return in, nil
}

// Merge returns the Cluster objects plus every static cluster whose ID no object has.
func Merge(objects, static []submarinerv1.Cluster) []submarinerv1.Cluster {
	out := append([]submarinerv1.Cluster(nil), objects...)
	have := map[string]bool{}
	for i := range objects {
		have[rules.ClusterID(&objects[i])] = true
	}
	for i := range static {
		id := rules.ClusterID(&static[i])
		if !have[id] {
			have[id] = true
			out = append(out, static[i])
		}
	}
	return out
}

// noKind reports an API that is not installed (Submariner or Multus CRDs absent): an empty list, not a
// failure, so the rules can warn that alignment is unchecked.
func noKind(err error) bool {
	return apierrors.IsNotFound(err) || meta.IsNoMatchError(err)
}

func readConfigMap(ctx context.Context, r client.Reader, key client.ObjectKey) ([]submarinerv1.Cluster, error) {
	var cm corev1.ConfigMap
	if err := r.Get(ctx, key, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read static clusters ConfigMap %s: %w", key, err)
	}
	raw, ok := cm.Data[ConfigMapKey]
	if !ok {
		return nil, fmt.Errorf("static clusters ConfigMap %s has no data key %q; put a YAML list of {cluster_id, cluster_cidr, service_cidr} under it", key, ConfigMapKey)
	}
	cs, err := ParseClusters([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("static clusters ConfigMap %s, key %s: %w", key, ConfigMapKey, err)
	}
	return cs, nil
}

func readNamespaces(ctx context.Context, r client.Reader, scope Scope) ([]corev1.Namespace, error) {
	toNS := func(m *metav1.PartialObjectMetadata) corev1.Namespace {
		return corev1.Namespace{ObjectMeta: *m.ObjectMeta.DeepCopy()}
	}
	if scope.Namespaces == nil {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
		if err := r.List(ctx, list); err != nil {
			return nil, fmt.Errorf("list Namespaces: %w", err)
		}
		out := make([]corev1.Namespace, 0, len(list.Items))
		for i := range list.Items {
			out = append(out, toNS(&list.Items[i]))
		}
		return out, nil
	}
	var out []corev1.Namespace
	for _, name := range scope.Namespaces {
		m, err := Namespace(ctx, r, name)
		if apierrors.IsNotFound(err) {
			continue // unknown labels: the rules warn rather than deny
		}
		if err != nil {
			return nil, err
		}
		out = append(out, toNS(m))
	}
	return out, nil
}

// Namespace reads a namespace's metadata (labels and annotations), the only part underlink needs, so the
// webhook caches namespace metadata rather than whole objects.
func Namespace(ctx context.Context, r client.Reader, name string) (*metav1.PartialObjectMetadata, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Get(ctx, client.ObjectKey{Name: name}, m); err != nil {
		return nil, fmt.Errorf("read namespace %s: %w", name, err)
	}
	return m, nil
}

// LocalCIDRs returns the local cluster's pod and service CIDRs, or nils when the local cluster is unknown.
func LocalCIDRs(w *rules.World) (clusterCIDR, serviceCIDR []string) {
	if w == nil || w.Local == nil {
		return nil, nil
	}
	return w.Local.Spec.ClusterCIDR, w.Local.Spec.ServiceCIDR
}

// APIServerServiceIP reads the ClusterIP of default/kubernetes, which always lies in the local service
// CIDR and so tells the local Submariner Cluster apart from the remote ones.
func APIServerServiceIP(ctx context.Context, r client.Reader) (string, error) {
	var svc corev1.Service
	if err := r.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceDefault, Name: "kubernetes"}, &svc); err != nil {
		return "", fmt.Errorf("read Service default/kubernetes: %w", err)
	}
	return svc.Spec.ClusterIP, nil
}
