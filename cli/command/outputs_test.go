package command

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	junitparse "github.com/joshdk/go-junit"
	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"

	"github.com/underlink/underlink/cli/validate"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/admissioncases"
)

// The seed's directory with the Submariner clusters, in each machine-readable form, parsed back with
// the libraries CI systems' own tools use: the JSON into the documented types (no unknown field), the
// JUnit XML with github.com/joshdk/go-junit, the SARIF with github.com/owenrumney/go-sarif/v3 and
// validated against the SARIF 2.1.0 schema.
func TestOutputsParseBack(t *testing.T) {
	seed := test.Path("test", "testdata", "seed")
	clusters := filepath.Join(admissioncases.Dir(), "_shared", "clusters.yaml")
	pool := filepath.Join(seed, "cluster-a-ippool.yaml")
	run := func(format string) []byte {
		code, out, errOut := runCLI([]string{"validate", seed, clusters, "--local-cluster", "cluster-a", "-o", format}, "")
		if code != ExitDenied {
			t.Fatalf("-o %s: exit %d, want %d; stderr: %s", format, code, ExitDenied, errOut)
		}
		return []byte(out)
	}

	t.Run("json", func(t *testing.T) {
		dec := json.NewDecoder(bytes.NewReader(run("json")))
		dec.DisallowUnknownFields()
		var rep validate.JSONReport
		if err := dec.Decode(&rep); err != nil {
			t.Fatal(err)
		}
		if rep.Schema != validate.Schema || rep.LocalCluster.ID != "cluster-a" || rep.LocalCluster.By != "given" || rep.Summary.Skipped["Service"] != 1 ||
			rep.Summary.Context["Cluster"] != 2 || rep.Summary.Alignment != "checked" || rep.Summary.Objects != 8 {
			t.Errorf("report: %+v", rep)
		}
		var gateway *validate.JSONFinding
		for _, o := range rep.Objects {
			if o.Source == "" || o.File == "" || o.Document < 1 || o.Line < 1 {
				t.Errorf("%s without its place: %+v", o.Object, o)
			}
			for i, f := range o.Findings {
				if f.Rule == "pool-gateway-in-subnet" && o.File == pool {
					gateway = &o.Findings[i]
				}
			}
		}
		if gateway == nil || gateway.Line != 10 || gateway.Field != "spec.gateway" || gateway.Value != "172.110.0.1" || gateway.Severity != "deny" ||
			!strings.Contains(gateway.Fix, "widen spec.subnet to 172.110.0.0/23") {
			t.Errorf("the gateway finding: %+v", gateway)
		}
	})

	t.Run("junit", func(t *testing.T) {
		suites, err := junitparse.Ingest(run("junit"))
		if err != nil {
			t.Fatal(err)
		}
		if len(suites) != 1 {
			t.Fatalf("%d suites", len(suites))
		}
		s := suites[0]
		failed := map[string]string{}
		for _, tc := range s.Tests {
			if tc.Status == junitparse.StatusFailed {
				failed[tc.Name] = tc.Classname + ": " + tc.Error.Error()
			}
		}
		if s.Name != "underlink validate" || s.Totals.Tests != 5 || s.Totals.Failed != 5 {
			t.Errorf("suite %s: %+v, failed %v", s.Name, s.Totals, failed)
		}
		if f := failed["SpiderIPPool/cluster-a"]; !strings.HasPrefix(f, pool+": ") || !strings.Contains(f, pool+":10: SpiderIPPool/cluster-a: spec.gateway") {
			t.Errorf("the pool's failure: %s", f)
		}
	})

	t.Run("sarif", func(t *testing.T) {
		log, err := sarif.FromBytes(run("sarif"))
		if err != nil {
			t.Fatal(err)
		}
		if err := log.Validate(); err != nil {
			t.Fatalf("not SARIF 2.1.0: %v", err)
		}
		if log.Version != "2.1.0" || len(log.Runs) != 1 || *log.Runs[0].Tool.Driver.Name != "underlink" {
			t.Fatalf("log: version %s, %d runs", log.Version, len(log.Runs))
		}
		found := false
		for _, r := range log.Runs[0].Results {
			if *r.RuleID != "pool-gateway-in-subnet" {
				continue
			}
			loc := r.Locations[0].PhysicalLocation
			found = found || r.Level == "error" && strings.HasSuffix(*loc.ArtifactLocation.URI, "test/testdata/seed/cluster-a-ippool.yaml") && *loc.Region.StartLine == 10 &&
				strings.Contains(*r.Message.Text, "widen spec.subnet to 172.110.0.0/23")
		}
		if !found || len(log.Runs[0].Results) < 6 || log.Runs[0].GetRuleIndex("pod-network-exists") < 0 {
			t.Errorf("no error on cluster-a-ippool.yaml line 10 among %d results", len(log.Runs[0].Results))
		}
	})
}
