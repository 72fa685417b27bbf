package command

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"

	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/admissioncases"
)

// ciRunLine is the command line of the validate step of docs/ci.md's workflow: its words, and the file
// its stdout is redirected to.
func ciRunLine(t *testing.T) ([]string, string) {
	t.Helper()
	doc, err := os.ReadFile(test.Path("docs", "ci.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(doc), "\n") {
		cmd, ok := strings.CutPrefix(strings.TrimSpace(l), "run: underlink validate ")
		if !ok {
			continue
		}
		words, redirect, _ := strings.Cut(cmd, ">")
		if strings.ContainsAny(words, `'"$|;&<`+"`") {
			t.Fatalf("the run line is more than words and one redirect: %s", l)
		}
		return append([]string{"validate"}, strings.Fields(words)...), strings.TrimSpace(redirect)
	}
	t.Fatal("docs/ci.md has no `run: underlink validate` line")
	return nil, ""
}

// The workflow's validate step, run as written in a checkout holding the seed's corrected manifests
// under deploy/: it passes, and with the seed's mistyped Deployment added it fails and the SARIF it
// writes places the denial on the file, relative to the checkout, and the line.
func TestTheCIExampleRuns(t *testing.T) {
	args, redirect := ciRunLine(t)
	if redirect == "" {
		t.Fatal("the run line writes no file to upload")
	}
	checkout := t.TempDir()
	copyTo := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(checkout, dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(checkout, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shared := func(n string) string { return filepath.Join(admissioncases.Dir(), "_shared", n) }
	copyTo(shared("clusters.yaml"), "deploy/submariner/clusters.yaml")
	copyTo(shared("pool-cluster-a-fixed.yaml"), "deploy/network/pool.yaml")
	copyTo(test.Path("test", "testdata", "seed", "cluster-a-multusconfig.yaml"), "deploy/network/multusconfig.yaml")
	copyTo(shared("deployment-fixed.yaml"), "deploy/zz-app/deployment.yaml")
	t.Chdir(checkout)

	run := func() (int, *sarif.Report) {
		code, out, errOut := runCLI(args, "")
		if err := os.WriteFile(redirect, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		log, err := sarif.Open(redirect)
		if err != nil {
			t.Fatalf("%s: %v (stderr %s)", redirect, err, errOut)
		}
		if err := log.Validate(); err != nil {
			t.Fatalf("%s is not SARIF 2.1.0: %v", redirect, err)
		}
		return code, log
	}
	if code, log := run(); code != ExitOK || len(log.Runs[0].Results) != 0 {
		t.Errorf("the corrected seed: exit %d, %d results", code, len(log.Runs[0].Results))
	}

	copyTo(test.Path("test", "testdata", "seed", "deployment-and-service.yaml"), "deploy/zz-app/deployment.yaml")
	code, log := run()
	if code != ExitDenied {
		t.Errorf("the seed's typo: exit %d, want %d", code, ExitDenied)
	}
	found := false
	for _, r := range log.Runs[0].Results {
		loc := r.Locations[0].PhysicalLocation
		found = found || *r.RuleID == "pod-network-exists" && r.Level == "error" && *loc.ArtifactLocation.URI == "deploy/zz-app/deployment.yaml" &&
			*loc.Region.StartLine == 13 && strings.Contains(*r.Message.Text, "did you mean kube-system/macvlan-conf?")
	}
	if !found {
		b, _ := os.ReadFile(redirect)
		t.Errorf("no error for the typo on deploy/zz-app/deployment.yaml line 13:\n%s", b)
	}
}
