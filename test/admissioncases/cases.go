// Package admissioncases loads the shared table of admission cases (test/testdata/admission-cases): manifests
// applied in order and the verdict expected for each object. `underlink validate`'s test runs them
// offline and the webhook's integration test applies them to a real apiserver, so both prove the same
// verdicts on the same inputs.
//
// A case is a directory with a case.yaml:
//
//	description: the seed's manifests on cluster-a
//	localCluster: cluster-a        # --local-cluster / the webhook's local cluster
//	offlineOnly: ""                # when set, why the live webhook cannot reproduce the case
//	stored:                        # optional: objects that exist before the case, stored without admission
//	- deployment-on-gone-network.yaml  # (created before a rule, a network deletion or a cluster made them wrong)
//	files:                         # applied in order; relative to the case, or seed:NAME for test/testdata/seed/NAME
//	- ../_shared/clusters.yaml
//	- seed:cluster-a-ippool.yaml
//	expect:
//	- object: SpiderIPPool/cluster-a
//	  verdict: DENY                # DENY, WARN or ALLOW
//	  lines:                       # substrings of the object's violation lines (kubectl-style field errors)
//	  - 'spec.gateway: Invalid value: "172.110.0.1"'
//
// Directories whose name starts with "_" hold shared manifests, not cases.
package admissioncases

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/pkg/manifest"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/test"
)

// Dir is the directory of the shared cases in this checkout.
func Dir() string { return test.Path("test", "testdata", "admission-cases") }

// Case is one loaded case.
type Case struct {
	// Name is the case's directory name.
	Name string `json:"-"`
	// Description says what the case pins.
	Description string `json:"description"`
	// LocalCluster is the local cluster's ID for the run.
	LocalCluster string `json:"localCluster"`
	// OfflineOnly, when set, says why the live webhook cannot reproduce the case (e.g. it needs a pool
	// status that create would drop); the webhook test skips it.
	OfflineOnly string `json:"offlineOnly"`
	// Stored are manifests of objects that exist before the case and were never judged (the world
	// changed under them): the live test creates them before it registers the webhook, the offline run
	// reads them as the live cluster's objects. An object of Files with the same kind and name updates
	// them.
	Stored []string `json:"stored"`
	// Files are the manifests in apply order, as written in case.yaml.
	Files []string `json:"files"`
	// Expect are the expected verdicts, one per checked object.
	Expect []Expectation `json:"expect"`
	// Objects are the decoded manifests of Files, in order.
	Objects []manifest.Object `json:"-"`
	// StoredObjects are the decoded manifests of Stored, in order.
	StoredObjects []manifest.Object `json:"-"`
}

// Expectation is the verdict expected for one object.
type Expectation struct {
	// Object is "Kind/namespace/name" or "Kind/name" (manifest.Object.Ref).
	Object string `json:"object"`
	// Verdict is DENY, WARN or ALLOW.
	Verdict rules.Verdict `json:"verdict"`
	// Lines are substrings that must appear in the object's violation lines.
	Lines []string `json:"lines"`
}

// Check compares an outcome with the expectation: the verdict, and every expected line inside text (the
// object's violation lines, or the webhook's denial message and warnings, joined).
func (e Expectation) Check(verdict rules.Verdict, text string) error {
	var problems []string
	if verdict != e.Verdict {
		problems = append(problems, fmt.Sprintf("verdict %s, want %s", verdict, e.Verdict))
	}
	for _, l := range e.Lines {
		if !strings.Contains(text, l) {
			problems = append(problems, fmt.Sprintf("no line contains %q", l))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s; got:\n%s", e.Object, strings.Join(problems, "; "), text)
	}
	return nil
}

// Load reads every case under dir, sorted by name.
func Load(dir string) ([]Case, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read cases: %w", err)
	}
	dec := manifest.NewDecoder()
	var out []Case
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		c, err := loadCase(dec, filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func loadCase(dec *manifest.Decoder, dir string) (Case, error) {
	path := filepath.Join(dir, "case.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		return Case{}, fmt.Errorf("read case: %w", err)
	}
	var c Case
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		return Case{}, fmt.Errorf("%s: %w", path, err)
	}
	c.Name = filepath.Base(dir)
	if len(c.Files) == 0 || len(c.Expect) == 0 {
		return Case{}, fmt.Errorf("%s: a case needs files and expect", path)
	}
	for _, f := range c.Stored {
		objs, err := dec.ReadFile(Resolve(dir, f))
		if err != nil {
			return Case{}, fmt.Errorf("%s: %w", path, err)
		}
		c.StoredObjects = append(c.StoredObjects, objs...)
	}
	for _, f := range c.Files {
		objs, err := dec.ReadFile(Resolve(dir, f))
		if err != nil {
			return Case{}, fmt.Errorf("%s: %w", path, err)
		}
		c.Objects = append(c.Objects, objs...)
	}
	refs := map[string]bool{}
	for _, o := range c.Objects {
		refs[o.Ref()] = true
	}
	for _, e := range c.Expect {
		switch e.Verdict {
		case rules.VerdictDeny, rules.VerdictWarn, rules.VerdictAllow:
		default:
			return Case{}, fmt.Errorf("%s: %s: verdict %q is not DENY, WARN or ALLOW", path, e.Object, e.Verdict)
		}
		if !refs[e.Object] {
			return Case{}, fmt.Errorf("%s: expectation for %s, which no file holds", path, e.Object)
		}
	}
	return c, nil
}

// Resolve turns a case's file entry into a path: "seed:NAME" is test/testdata/seed/NAME, anything else
// is relative to the case's directory.
func Resolve(caseDir, f string) string {
	if name, ok := strings.CutPrefix(f, "seed:"); ok {
		return test.Path("test", "testdata", "seed", name)
	}
	return filepath.Join(caseDir, f)
}

// Expected returns the expectations of the object with that ref (an object applied twice has one per
// application, in order).
func (c Case) Expected(ref string) []Expectation {
	var out []Expectation
	for _, e := range c.Expect {
		if e.Object == ref {
			out = append(out, e)
		}
	}
	return out
}
