//go:build integration && spiderpool

package e2e_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/e2e"
	"github.com/underlink/underlink/test/localenv"
	"github.com/underlink/underlink/test/nodes"
)

// TestSpiderpoolMigration moves a cluster with real nodes from Spiderpool v1.2.2 (its own chart and
// images) to underlink with pods running, and back (make test-migration; it needs make spiderpool-images,
// which `make test` does not build).
func TestSpiderpoolMigration(t *testing.T) {
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	sp, cp := spiderpoolBed(ctx, t, localenv.Clusters(testPortBase+200))
	var prefix, nodesDir string
	t.Run("migration", func(t *testing.T) {
		var env *e2e.Env
		env, prefix, nodesDir = upNodes(ctx, t, cp, "underlink-migration-nodes-", e2e.UpOptions{ExtraPlugins: []string{"macvlan"}})
		// The transcript goes to _output/migration.log as it is written, and into the test's log at the end.
		var transcript strings.Builder
		logPath := filepath.Join("..", "..", "_output", "migration.log")
		if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
			t.Fatal(err)
		}
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		defer logFile.Close()
		target, err := e2e.TargetOf(env, io.MultiWriter(&transcript, logFile))
		if err != nil {
			t.Fatal(err)
		}
		report := e2e.RunMigration(ctx, target, sp)
		t.Log("\n" + transcript.String())
		if !report.Passed() {
			t.Errorf("migration failed: %s", strings.Join(report.Failed(), "; "))
		}
	})
	nothingLeft(t, prefix, nodesDir)
}

// spiderpoolBed finds Spiderpool's chart and images and starts the control planes of clusters.
func spiderpoolBed(ctx context.Context, t *testing.T, clusters []localenv.Cluster) (e2e.Spiderpool, *localenv.Env) {
	t.Helper()
	out, err := exec.Command(test.Path("hack", "build-peers.sh"), "--tree", "spiderpool").Output()
	if err != nil {
		t.Fatalf("Spiderpool's release tree: hack/build-peers.sh --tree spiderpool: %v", err)
	}
	chart := filepath.Join(strings.TrimSpace(string(out)), "charts", "spiderpool")
	images, err := nodes.FindImages(e2e.SpiderpoolImagesDir())
	if err != nil {
		t.Fatalf("Spiderpool's images: %v (make spiderpool-images)", err)
	}

	cp := &localenv.Env{Dir: t.TempDir(), Clusters: clusters, Out: testWriter{t}}
	t.Cleanup(func() {
		if err := cp.Down(); err != nil {
			t.Error(err)
		}
	})
	if err := cp.Up(ctx); err != nil {
		t.Fatal(err)
	}
	return e2e.Spiderpool{Chart: chart, Images: images}, cp
}

// TestPodStartAtScale is a report, not a check of speed (make bench-podstart): N pods
// (UNDERLINK_BENCH_PODS, 200) of one Deployment created at once on cluster-a's two real nodes, until
// every one is Running, under the floor (macvlan and host-local), whereabouts v0.9.2, Spiderpool v1.2.2
// (its own chart) and underlink, one after the other on the same nodes, underlay and range; rounds after
// the first (UNDERLINK_BENCH_ROUNDS, 1) run the floor, Spiderpool and underlink again. It fails only when
// a pod does not start or an address is given twice.
func TestPodStartAtScale(t *testing.T) {
	ctrllog.SetLogger(logr.Discard())
	n, rounds := 200, 1
	if v := os.Getenv("UNDERLINK_BENCH_PODS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 210 {
			t.Fatalf("UNDERLINK_BENCH_PODS=%q: want 1 to 210 (two nodes of 110 pods, less their DaemonSets' pods)", v)
		}
	}
	if v := os.Getenv("UNDERLINK_BENCH_ROUNDS"); v != "" {
		var err error
		if rounds, err = strconv.Atoi(v); err != nil || rounds < 1 || rounds > 5 {
			t.Fatalf("UNDERLINK_BENCH_ROUNDS=%q: want 1 to 5 (a round takes about 15 minutes)", v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(40+15*rounds)*time.Minute)
	defer cancel()
	// cluster-a alone: an idle cluster-b would take a share of the cores the pods start on.
	sp, cp := spiderpoolBed(ctx, t, localenv.Clusters(testPortBase + 200)[:1])
	var prefix, nodesDir string
	t.Run("podstart", func(t *testing.T) {
		var env *e2e.Env
		env, prefix, nodesDir = upNodes(ctx, t, cp, "underlink-podstart-nodes-", e2e.UpOptions{ExtraPlugins: []string{"macvlan", "whereabouts"}})
		var transcript strings.Builder
		target, err := e2e.TargetOf(env, &transcript)
		if err != nil {
			t.Fatal(err)
		}
		starts, report := e2e.PodStartAtScale(ctx, target, sp, n, rounds)
		e2e.WritePodStarts(&transcript, starts)
		t.Log("\n" + transcript.String())
		fmt.Print(transcript.String()[strings.LastIndex(transcript.String(), "\npod start at scale"):])
		if !report.Passed() {
			t.Errorf("pod start at scale failed: %s", strings.Join(report.Failed(), "; "))
		}
	})
	nothingLeft(t, prefix, nodesDir)
}
