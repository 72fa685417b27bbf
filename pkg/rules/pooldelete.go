package rules

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// maxNamedHolders bounds the pods a pool deletion's denial names; the rest are counted.
const maxNamedHolders = 10

// PodExists says whether the pod namespace/name exists, as the pod of uid when uid is not empty.
type PodExists func(namespacedName, uid string) bool

// CheckPoolDelete judges the deletion of the stored pool: denied while pods hold its addresses
// (status.allocatedIPs), naming them, as Spiderpool holds such a pool with its finalizer. An address set
// aside for a host outside the cluster (an IP conflict) is no pod's and does not hold the pool. With
// exists, an address whose pod is gone (an orphan that garbage collection frees after its grace period)
// does not deny the deletion either: it is a warning, and the pool's finalizer keeps the pool until the
// address is released. With exists nil, every record holds the pool.
func CheckPoolDelete(pool *spiderv2beta1.SpiderIPPool, exists PodExists) []Violation {
	if pool == nil {
		return nil
	}
	allocs, err := spiderv2beta1.ParseAllocations(pool.Status)
	if err != nil {
		return nil // the agents refuse such a pool too; deleting it is how an operator gets rid of it
	}
	byPod, gone := map[string][]string{}, map[string][]string{}
	for ip, a := range allocs {
		if a.IsConflict() {
			continue
		}
		if exists != nil && !exists(a.NamespacedName, a.PodUID) {
			gone[a.NamespacedName] = append(gone[a.NamespacedName], ip+" "+a.NIC)
			continue
		}
		byPod[a.NamespacedName] = append(byPod[a.NamespacedName], ip+" "+a.NIC)
	}
	path, subject := field.NewPath("status", "allocatedIPs"), ObjectRef("SpiderIPPool", "", pool.Name)
	if len(byPod) == 0 {
		if len(gone) == 0 {
			return nil
		}
		return []Violation{{
			Rule: RulePoolInUse, Field: path, Subject: subject, Severity: Warn,
			Message: fmt.Sprintf("SpiderIPPool %s still records addresses of %d pod(s) that no longer exist: %s", pool.Name, len(gone), holders(gone)),
			Fix:     "nothing to do: garbage collection releases them after its grace period (agent --gc-grace), and the pool's finalizer keeps it until then",
		}}
	}
	return []Violation{{
		Rule: RulePoolInUse, Field: path, Type: field.ErrorTypeForbidden, Subject: subject, Severity: Deny,
		Message: fmt.Sprintf("SpiderIPPool %s still gives addresses to %d pod(s): %s", pool.Name, len(byPod), holders(byPod)),
		Fix:     "delete those pods (or scale their workloads to 0) first; the pool can be deleted once its last address is released",
	}}
}

// holders names the pods of byPod with their addresses, at most maxNamedHolders, and counts the rest.
func holders(byPod map[string][]string) string {
	pods := make([]string, 0, len(byPod))
	for p := range byPod {
		pods = append(pods, p)
	}
	sort.Strings(pods)
	named := pods
	if len(named) > maxNamedHolders {
		named = named[:maxNamedHolders]
	}
	parts := make([]string, 0, len(named))
	for _, p := range named {
		sort.Strings(byPod[p])
		parts = append(parts, fmt.Sprintf("%s (%s)", p, strings.Join(byPod[p], ", ")))
	}
	more := ""
	if n := len(pods) - len(named); n > 0 {
		more = fmt.Sprintf(" and %d more", n)
	}
	return strings.Join(parts, "; ") + more
}
