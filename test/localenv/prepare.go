package localenv

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/underlink/underlink/api/scheme"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/test"
)

// SubmarinerNamespace is where Submariner's broker sync puts the Cluster objects of every joined cluster.
const SubmarinerNamespace = "submariner-operator"

// prepare installs the CRDs and creates the Submariner Cluster objects of every local cluster in c, as
// Submariner's broker sync would after `subctl join`. Existing objects are updated to the wanted spec.
func (e *Env) prepare(ctx context.Context, c Cluster) error {
	cfg, err := e.RESTConfig(c)
	if err != nil {
		return err
	}
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		Paths: []string{test.Path("deploy", "crds")}, ErrorIfPathMissing: true,
		MaxTime: 30 * time.Second, PollInterval: 100 * time.Millisecond,
	}); err != nil {
		return fmt.Errorf("install CRDs from deploy/crds: %w", err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SubmarinerNamespace}}
	if err := cl.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", SubmarinerNamespace, err)
	}
	for _, joined := range e.Clusters {
		want := SubmarinerCluster(joined)
		cur := &submarinerv1.Cluster{}
		err := cl.Get(ctx, client.ObjectKeyFromObject(want), cur)
		switch {
		case apierrors.IsNotFound(err):
			err = cl.Create(ctx, want)
		case err == nil:
			cur.Spec = want.Spec
			err = cl.Update(ctx, cur)
		}
		if err != nil {
			return fmt.Errorf("submariner Cluster %s: %w", joined.Name, err)
		}
	}
	return nil
}

// SubmarinerCluster is the submariner.io/v1 Cluster object that Submariner's broker syncs for c.
func SubmarinerCluster(c Cluster) *submarinerv1.Cluster {
	return &submarinerv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: SubmarinerNamespace},
		Spec: submarinerv1.ClusterSpec{
			ClusterID:   c.Name,
			ColorCodes:  []string{"blue"},
			ClusterCIDR: []string{c.ClusterCIDR},
			ServiceCIDR: []string{c.ServiceCIDR},
		},
	}
}
