//go:build integration

package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/underlink/underlink/test/e2e"
	"github.com/underlink/underlink/test/localenv"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/nodes"
)

// testPortBase keeps these control planes off `make up`'s ports and other tests'.
const testPortBase = 6000

// TestSeedScenarioEndToEnd runs `make demo`'s scenario on two fresh clusters with real nodes: every
// check of the seed must hold (denials with fixes, pods on pool IPs, hijack routes, ping and HTTP both
// ways through the cable, the link fault), and afterwards no namespace, mount, cgroup or process of the
// bed is left.
func TestSeedScenarioEndToEnd(t *testing.T) {
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	// The failed checks are logged again after the teardown's lines, last: a log cut in its middle (CI
	// keeps the head and the tail) still names them.
	var failed []string
	t.Cleanup(func() {
		if len(failed) > 0 {
			t.Logf("the scenario's failed checks:\n  ✗ %s", strings.Join(failed, "\n  ✗ "))
		}
	})
	cp := &localenv.Env{Dir: t.TempDir(), Clusters: localenv.Clusters(testPortBase), Out: testWriter{t}}
	t.Cleanup(func() {
		if err := cp.Down(); err != nil {
			t.Error(err)
		}
	})
	start := time.Now()
	if err := cp.Up(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("control planes up in %s", time.Since(start).Round(100*time.Millisecond))

	var prefix, nodesDir string
	t.Run("scenario", func(t *testing.T) {
		start := time.Now()
		var env *e2e.Env
		env, prefix, nodesDir = upNodes(ctx, t, cp, "underlink-e2e-nodes-", e2e.UpOptions{})
		t.Logf("nodes Ready and clusters joined in %s", time.Since(start).Round(100*time.Millisecond))
		var out strings.Builder
		target, err := e2e.TargetOf(env, &out)
		if err != nil {
			t.Fatal(err)
		}
		report := e2e.Run(ctx, target)
		t.Log("\n" + out.String())
		// The transcript stays readable after a run that passed without -v (make test): its figures,
		// e.g. the creates the upgrade step lost, are in the summary.
		transcript := filepath.Join("..", "..", "_output", "e2e-scenario.log")
		if err := os.MkdirAll(filepath.Dir(transcript), 0o755); err == nil {
			_ = os.WriteFile(transcript, []byte(out.String()), 0o644)
		}
		if !report.Passed() {
			failed = report.FailedWithDetail()
			t.Errorf("scenario failed: %s", strings.Join(report.Failed(), "; "))
		}
	})

	nothingLeft(t, prefix, nodesDir)
}

// upNodes starts the nodes of cp's clusters in a new bed of t (o's Dir, Out and KeepLogs are set here)
// and returns them with the bed's prefix and the nodes' directory. The nodes' directory is made first:
// cleanups run last-registered first, so its removal then waits for the bed's teardown, which stops the
// kubelets and containerds still writing there. A failed run keeps it, with the nodes' logs
// (containerd, kubelet, Multus' errors), as netbed keeps its own.
func upNodes(ctx context.Context, t *testing.T, cp *localenv.Env, pattern string, o e2e.UpOptions) (env *e2e.Env, prefix, nodesDir string) {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nodes' logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	nodesDir = filepath.Join(dir, "nodes")
	bed := netbed.New(t)
	o.Dir, o.Out, o.KeepLogs = nodesDir, testWriter{t}, t.Failed
	env, err = e2e.Up(ctx, bed, cp, o)
	if err != nil {
		t.Fatal(err)
	}
	return env, bed.Prefix(), nodesDir
}

// nothingLeft fails t for any namespace, mount, cgroup or process the bed of prefix (its nodes in
// nodesDir) left behind after its teardown.
func nothingLeft(t *testing.T, prefix, nodesDir string) {
	t.Helper()
	entries, _ := os.ReadDir(netbed.RunDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, "underlink-node-run") || strings.Contains(l, strings.TrimSuffix(prefix, "-")) {
			t.Errorf("mount left behind: %s", l)
		}
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/pids/underlink", strings.TrimSuffix(prefix, "-"))); err == nil {
		t.Errorf("cgroup /underlink/%s left behind", strings.TrimSuffix(prefix, "-"))
	}
	left, err := nodes.LeftProcesses(nodesDir, "containerd-shim")
	if err != nil {
		t.Error(err)
	}
	for _, l := range left {
		t.Errorf("process left behind: %s", l)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
