//go:build integration

package crds

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/test"
)

// spiderpoolTarball is the peer release whose CRDs underlink's mirror (../shared/peers).
const spiderpoolTarball = "spiderpool-v1.2.2.tar.gz"

// allowedDifferences are the fields of Spiderpool's schema whose type, enum or default underlink's
// differs from, each with the reason. A field Spiderpool has and underlink lacks is never allowed.
var allowedDifferences = map[string]string{
	"spidercoordinators .spec.hostRuleTable": "default: as for spidermultusconfigs' coordinator.hostRuleTable; the cluster default would " +
		"move every config's pod routes into table 500",
	"spidermultusconfigs .spec.coordinator.hostRuleTable": "default: Spiderpool defaults to table 500; underlink's coordinator " +
		"routes pods in the host's main table unless a table is set, and a schema default would move every existing node's pod routes " +
		"into table 500 on the next write of each config",
}

// field is what the test compares of one schema node.
type field struct {
	Type    string
	Enum    []string
	Default string
}

func (f field) String() string {
	return fmt.Sprintf("type %q enum %v default %s", f.Type, f.Enum, f.Default)
}

// TestCRDsMirrorSpiderpool compares underlink's SpiderIPPool, SpiderMultusConfig, SpiderEndpoint, SpiderReservedIP and SpiderCoordinator CRDs (deploy/crds)
// with Spiderpool v1.2.2's own, field by field: every field of Spiderpool's v2beta1 schema exists in
// underlink's, with the same type, enum and default, except allowedDifferences. underlink's own
// additions (status conditions, validation rules) are not differences: a Spiderpool manifest applies.
func TestCRDsMirrorSpiderpool(t *testing.T) {
	const dir = "spiderpool-v1.2.2/charts/spiderpool/crds/"
	kinds := []string{"spiderippools", "spidermultusconfigs", "spiderendpoints", "spiderreservedips", "spidercoordinators"}
	minFields := map[string]int{"spiderippools": 50, "spidermultusconfigs": 50, "spiderendpoints": 15, "spiderreservedips": 3, "spidercoordinators": 15}
	var names []string
	for _, k := range kinds {
		names = append(names, dir+"spiderpool.spidernet.io_"+k+".yaml")
	}
	theirs, err := test.PeerFile(spiderpoolTarball, names...)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for i, k := range kinds {
		ours, err := os.ReadFile(test.Path("deploy", "crds", "spiderpool.spidernet.io_"+k+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		want, got := schemaFields(t, theirs[names[i]]), schemaFields(t, ours)
		if len(want) < minFields[k] {
			t.Fatalf("%s: only %d fields read from Spiderpool's CRD", k, len(want))
		}
		var paths []string
		for p := range want {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			key := k + " " + p
			g, ok := got[p]
			switch {
			case !ok:
				t.Errorf("%s: %s is in Spiderpool's schema (%s) and not in underlink's: a manifest that sets it is rejected as an unknown field", k, p, want[p])
			case !reflect.DeepEqual(g, want[p]):
				if _, allowed := allowedDifferences[key]; allowed {
					used[key] = true
					continue
				}
				t.Errorf("%s: %s is %s in Spiderpool's schema, %s in underlink's", k, p, want[p], g)
			}
		}
		t.Logf("%s: %d fields of Spiderpool's schema, all in underlink's (%d fields)", k, len(want), len(got))
	}
	for key, why := range allowedDifferences {
		if why == "" || !used[key] {
			t.Errorf("allowed difference %q: no reason given, or it no longer differs (remove it)", key)
		}
	}
}

// schemaFields flattens the v2beta1 schema of a CRD into its field paths (".spec.macvlan.master[]").
func schemaFields(t *testing.T, raw []byte) map[string]field {
	t.Helper()
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(crd.Spec.Versions, func(v apiextensionsv1.CustomResourceDefinitionVersion) bool { return v.Name == "v2beta1" })
	if i < 0 || crd.Spec.Versions[i].Schema == nil {
		t.Fatalf("CRD %s has no v2beta1 schema", crd.Name)
	}
	out := map[string]field{}
	var walk func(p string, s *apiextensionsv1.JSONSchemaProps)
	walk = func(p string, s *apiextensionsv1.JSONSchemaProps) {
		f := field{Type: s.Type}
		for _, e := range s.Enum {
			f.Enum = append(f.Enum, string(e.Raw))
		}
		sort.Strings(f.Enum)
		if s.Default != nil {
			f.Default = string(s.Default.Raw)
		}
		out[p] = f
		for name, c := range s.Properties {
			walk(p+"."+name, &c)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(p+"[]", s.Items.Schema)
		}
		if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
			walk(p+"{}", s.AdditionalProperties.Schema)
		}
	}
	walk("", crd.Spec.Versions[i].Schema.OpenAPIV3Schema)
	return out
}
