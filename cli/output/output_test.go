package output

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	junitparse "github.com/joshdk/go-junit"
	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
)

// A denial fails its case and a warning goes to the case's output; SARIF places a manifest's finding on
// its file, relative to the working directory, and line, and one from a cluster on its object alone.
func TestWriters(t *testing.T) {
	wd, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	cases := []Case{
		{Name: "SpiderIPPool/edge", Class: "net/pool.yaml", Findings: []Finding{
			{Rule: "pool-gateway-in-subnet", Level: Error, Object: "SpiderIPPool/edge", Field: "spec.gateway", Message: "spec.gateway: outside", File: filepath.Join(wd, "net", "pool.yaml"), Line: 9},
			{Rule: "pool-capacity", Level: Warning, Object: "SpiderIPPool/edge", Message: "nearly full", File: "net/pool.yaml", Line: 7},
		}},
		{Name: "Deployment/shop/web", Class: "app.yaml"},
		{Name: "SpiderMultusConfig/shop/net", Class: "cluster", Findings: []Finding{{Rule: "nads-in-sync", Level: Warning, Object: "SpiderMultusConfig/shop/net", Message: "not owned"}}},
	}
	var xml bytes.Buffer
	if err := WriteJUnit(&xml, "suite", cases); err != nil {
		t.Fatal(err)
	}
	suites, err := junitparse.Ingest(xml.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if s := suites[0]; s.Totals.Tests != 3 || s.Totals.Failed != 1 || !strings.Contains(s.Tests[0].SystemOut, "net/pool.yaml:7: nearly full [pool-capacity]") {
		t.Errorf("JUnit: %+v", s)
	}
	var out bytes.Buffer
	var all []Finding
	for _, c := range cases {
		all = append(all, c.Findings...)
	}
	if err := WriteSARIF(&out, Tool{Name: "underlink", Rules: []Rule{{ID: "pool-gateway-in-subnet", Description: "d"}}}, all); err != nil {
		t.Fatal(err)
	}
	log, err := sarif.FromBytes(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Validate(); err != nil {
		t.Fatal(err)
	}
	rs := log.Runs[0].Results
	if len(rs) != 3 || *rs[0].Locations[0].PhysicalLocation.ArtifactLocation.URI != "net/pool.yaml" || *rs[0].Locations[0].PhysicalLocation.Region.StartLine != 9 ||
		rs[2].Locations[0].PhysicalLocation != nil || *rs[2].Locations[0].LogicalLocations[0].FullyQualifiedName != "SpiderMultusConfig/shop/net" {
		t.Errorf("SARIF:\n%s", out.String())
	}
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("-o yaml accepted")
	}
}
