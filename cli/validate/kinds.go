package validate

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/pkg/manifest"
	"github.com/underlink/underlink/pkg/rules"
)

// RuleKindKnown is the ID of the check that an object of an API group underlink reads (Spiderpool,
// Submariner, Multus) is of a kind and version that group serves: a typo such as SpiderIPPol would
// otherwise pass as an object no rule reads, and fail only at kubectl apply. Like RuleObjectsUnique it
// is not one of rules.Rules, which judge objects of known kinds.
const RuleKindKnown = "kind-known"

// ownedGroups are the kinds, with their served versions, of the API groups whose objects underlink
// reads: the ones it checks and the others those projects define, which it leaves alone.
var ownedGroups = map[string]map[string][]string{
	spiderv2beta1.GroupVersion.Group: {
		"SpiderIPPool": {"v2beta1"}, "SpiderMultusConfig": {"v2beta1"}, "SpiderSubnet": {"v2beta1"}, "SpiderReservedIP": {"v2beta1"},
		"SpiderEndpoint": {"v2beta1"}, "SpiderCoordinator": {"v2beta1"}, "SpiderClaimParameter": {"v2beta1"},
	},
	submarinerv1.GroupVersion.Group: {
		"Cluster": {"v1"}, "Endpoint": {"v1"}, "Gateway": {"v1"}, "ClusterGlobalEgressIP": {"v1"}, "GlobalEgressIP": {"v1"},
		"GlobalIngressIP": {"v1"}, "Broker": {"v1alpha1"}, "Submariner": {"v1alpha1"}, "ServiceDiscovery": {"v1alpha1"},
	},
	nadv1.GroupVersion.Group: {
		"NetworkAttachmentDefinition": {"v1"}, "MultiNetworkPolicy": {"v1beta1", "v1beta2"}, "IPAMClaim": {"v1alpha1"},
	},
}

// unknownKind is the denial of an object of an owned group whose kind or version the group does not
// serve, or nil. The fix names the nearest kind of the group, or the versions it serves.
func unknownKind(obj manifest.Object) *rules.Violation {
	u, ok := obj.Object.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	gvk := u.GroupVersionKind()
	kinds, owned := ownedGroups[gvk.Group]
	if !owned {
		return nil
	}
	v := &rules.Violation{Rule: RuleKindKnown, Subject: obj.Ref(), Severity: rules.Deny, Value: gvk.Kind}
	if versions, known := kinds[gvk.Kind]; known {
		if slices.Contains(versions, gvk.Version) {
			return nil
		}
		v.Value = u.GetAPIVersion()
		v.Message = fmt.Sprintf("%s %s is not served by %s, so the apiserver refuses it (no matches for kind)", u.GetAPIVersion(), gvk.Kind, gvk.Group)
		v.Fix = fmt.Sprintf("write apiVersion: %s/%s", gvk.Group, versions[len(versions)-1])
		return v
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	v.Message = fmt.Sprintf("%s is not a kind of %s, so the apiserver refuses it (no matches for kind)", gvk.Kind, gvk.Group)
	v.Fix = "use one of its kinds: " + strings.Join(names, ", ")
	if near := rules.Nearest(gvk.Kind, names); near != "" {
		v.Fix = "did you mean " + near + "?"
	}
	return v
}
