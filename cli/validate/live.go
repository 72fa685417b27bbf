package validate

import (
	"context"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/cli/live"
	"github.com/underlink/underlink/webhook/snapshot"
)

// Live is what `underlink validate --kubeconfig` reads from a cluster, read-only: the world the
// manifests would be applied to. An application repository can then check its Deployments alone,
// against the networks and pools that exist.
type Live struct {
	// Server is the cluster's address, for the report.
	Server string
	// APIServerServiceIP is the ClusterIP of default/kubernetes; it finds the local Cluster, as the
	// webhook finds it. Empty when it cannot be read.
	APIServerServiceIP string
	// Clusters are the Submariner Cluster objects.
	Clusters []submarinerv1.Cluster
	// Pools, MultusConfigs, NADs and Namespaces are what exists.
	Pools         []spiderv2beta1.SpiderIPPool
	MultusConfigs []spiderv2beta1.SpiderMultusConfig
	NADs          []nadv1.NetworkAttachmentDefinition
	Namespaces    []corev1.Namespace
	// Workloads are stored Deployments, StatefulSets, ... (rules.PodTemplateOf) that a manifest of the
	// same kind and name updates: the update ratchets against them (rules.Ratchet). ReadLive leaves it
	// empty; the shared admission cases fill it with their stored objects.
	Workloads []runtime.Object
	// DefaultNetwork is the one the chart configured, if found.
	DefaultNetwork live.DefaultNetwork
}

// ReadLive reads the world of a cluster through r, with the webhook's reader (webhook/snapshot).
func ReadLive(ctx context.Context, r client.Reader, server string) (*Live, error) {
	l := &Live{Server: server}
	if ip, err := snapshot.APIServerServiceIP(ctx, r); err == nil {
		l.APIServerServiceIP = ip
	}
	w, err := snapshot.Read(ctx, r, snapshot.Options{}, snapshot.Scope{})
	if err != nil {
		return nil, err
	}
	if w.Local != nil {
		l.Clusters = append(l.Clusters, *w.Local)
	}
	l.Clusters = append(l.Clusters, w.Remotes...)
	l.Pools, l.MultusConfigs, l.NADs = w.Pools, w.MultusConfigs, w.NADs
	names := make([]string, 0, len(w.Namespaces))
	for n := range w.Namespaces {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l.Namespaces = append(l.Namespaces, corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: w.Namespaces[n]}})
	}
	if l.DefaultNetwork, err = live.ReadDefaultNetwork(ctx, r); err != nil {
		return nil, err
	}
	return l, nil
}
