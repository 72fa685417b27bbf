//go:build integration

package command

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/admissioncases"
	"github.com/underlink/underlink/test/controlplane"
)

// TestKubectlPlugin builds cmd/underlink as kubectl-underlink (krew's naming, what `make build` puts in
// bin/) and runs it through the real kubectl: kubectl finds it on PATH, `kubectl underlink` runs it
// with its arguments and exit code, and its help names it as kubectl does.
func TestKubectlPlugin(t *testing.T) {
	kubectl, err := controlplane.Binary("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, PluginName), "./cmd/underlink")
	build.Dir = test.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(kubectl, args...)
		cmd.Env = append(os.Environ(), "PATH="+dir, "KUBECONFIG="+filepath.Join(dir, "none"))
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			return ee.ExitCode(), out.String(), errOut.String()
		case err != nil:
			t.Fatal(err)
		}
		return 0, out.String(), errOut.String()
	}

	if code, out, errOut := run("plugin", "list"); code != 0 || !strings.Contains(out, filepath.Join(dir, PluginName)) {
		t.Errorf("kubectl plugin list: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := run("underlink", "version"); code != 0 || !strings.HasPrefix(out, "underlink ") {
		t.Errorf("kubectl underlink version: exit %d: %s", code, out)
	}
	if code, out, _ := run("underlink", "validate", "--help"); code != 0 || !strings.Contains(out, "kubectl underlink validate [-f] PATH...") {
		t.Errorf("kubectl underlink validate --help: exit %d:\n%s", code, out)
	}
	shared := func(n string) string { return filepath.Join(admissioncases.Dir(), "_shared", n) }
	config := test.Path("test", "testdata", "seed", "cluster-a-multusconfig.yaml")
	if code, out, errOut := run("underlink", "validate", shared("clusters.yaml"), shared("pool-cluster-a-fixed.yaml"), config, "--local-cluster", "cluster-a", "-q"); code != 0 || out != "" {
		t.Errorf("kubectl underlink validate of the corrected seed: exit %d\n%s%s", code, out, errOut)
	}
	typo := test.Path("test", "testdata", "seed", "deployment-and-service.yaml")
	if code, out, _ := run("underlink", "validate", typo, config, "-q"); code != ExitDenied || !strings.Contains(out, "did you mean kube-system/macvlan-conf?") {
		t.Errorf("kubectl underlink validate of the seed's typo: exit %d\n%s", code, out)
	}
	if code, _, errOut := run("underlink", "doctor", "--kubeconfig", filepath.Join(dir, "missing")); code != ExitUnreadable || !strings.Contains(errOut, "kubectl underlink doctor: kubeconfig") {
		t.Errorf("kubectl underlink doctor without a cluster: exit %d: %s", code, errOut)
	}
}
