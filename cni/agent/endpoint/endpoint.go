// Package endpoint reads and deletes the SpiderEndpoints that record a StatefulSet pod's kept addresses,
// for the IPAM service (a DEL of a pod its StatefulSet no longer wants) and garbage collection.
package endpoint

import (
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/ipam"
)

// OrdinalsOf is the ordinals set wants.
func OrdinalsOf(set *appsv1.StatefulSet) ipam.Ordinals {
	o := ipam.Ordinals{Replicas: 1}
	if set.Spec.Replicas != nil {
		o.Replicas = *set.Spec.Replicas
	}
	if set.Spec.Ordinals != nil {
		o.Start = set.Spec.Ordinals.Start
	}
	return o
}

// Delete deletes ep if it is unchanged since it was read (a precondition on its
// resourceVersion), dropping Spiderpool's finalizer first when ep carries it (written by Spiderpool).
func Delete(ctx context.Context, c client.Writer, ep *spv2.SpiderEndpoint) error {
	if i := slices.Index(ep.Finalizers, spv2.EndpointFinalizer); i >= 0 {
		patch := fmt.Appendf(nil, `[{"op":"test","path":"/metadata/resourceVersion","value":%q},{"op":"remove","path":"/metadata/finalizers/%d"}]`, ep.ResourceVersion, i)
		if err := c.Patch(ctx, ep, client.RawPatch(types.JSONPatchType, patch)); err != nil {
			return client.IgnoreNotFound(err)
		}
	}
	err := c.Delete(ctx, ep, client.Preconditions{ResourceVersion: &ep.ResourceVersion})
	return client.IgnoreNotFound(err)
}
