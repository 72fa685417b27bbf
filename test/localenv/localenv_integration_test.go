//go:build integration

package localenv_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/localenv"
	"github.com/underlink/underlink/test/poll"
)

// testPortBase keeps the test's clusters off the ports of a developer's running `make up`.
const testPortBase = 3000

func kubectl(t *testing.T, kubeconfig string, stdin []byte, args ...string) (string, error) {
	t.Helper()
	bin, err := controlplane.Binary("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestUpAnswersDownCleans is the foundation's local-cluster contract: both clusters answer with both
// Submariner Cluster objects, a second Up is idempotent and quick, Down leaves no process and no port.
func TestUpAnswersDownCleans(t *testing.T) {
	var log bytes.Buffer
	env := &localenv.Env{Dir: t.TempDir(), Clusters: localenv.Clusters(testPortBase), Out: &log}
	t.Cleanup(func() { _ = env.Down() })
	ctx := context.Background()

	start := time.Now()
	if err := env.Up(ctx); err != nil {
		t.Fatalf("up: %v\n%s", err, log.String())
	}
	t.Logf("first up: %s", time.Since(start))
	for _, c := range env.Clusters {
		out, err := kubectl(t, env.KubeconfigPath(c), nil, "get", "clusters.submariner.io", "-A", "-o", "custom-columns=ID:.spec.cluster_id,PODS:.spec.cluster_cidr[*],SVC:.spec.service_cidr[*]", "--no-headers")
		if err != nil {
			t.Fatalf("%s: kubectl get clusters: %v\n%s", c.Name, err, out)
		}
		want := "cluster-a   172.110.0.0/16   10.233.0.0/18\ncluster-b   172.111.0.0/16   10.243.0.0/18"
		if got := strings.Join(strings.Fields(strings.ReplaceAll(out, "\n", " | ")), " "); got != strings.Join(strings.Fields(strings.ReplaceAll(want+"\n", "\n", " | ")), " ") {
			t.Errorf("%s: kubectl get clusters.submariner.io -A:\n%s\nwant:\n%s", c.Name, out, want)
		}
	}

	start = time.Now()
	if err := env.Up(ctx); err != nil {
		t.Fatalf("second up: %v", err)
	}
	t.Logf("second up (idempotent, all running): %s", time.Since(start))
	if !strings.Contains(log.String(), "cluster-a: already running") {
		t.Errorf("second up did not find cluster-a running:\n%s", log.String())
	}

	st, err := env.Status()
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, s := range st {
		if !s.Running {
			t.Errorf("status: %s/%s not running", s.Cluster, s.Name)
		}
		pids = append(pids, s.PID)
	}
	if err := env.Down(); err != nil {
		t.Fatalf("down: %v", err)
	}
	// A process of ours that exited stays a zombie until this test process's reaper collects it, so
	// alive means a thread that still runs, not a pid that still answers kill -0.
	for _, pid := range pids {
		if !localenv.Gone(pid) {
			t.Errorf("pid %d still alive after down", pid)
		}
	}
	for _, s := range st {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("port %d (%s/%s) still listening after down", s.Port, s.Cluster, s.Name)
		}
	}
}

// TestUpRefusesBusyPortWithoutOrphans: a port held by someone else names the holder and the fix, and
// nothing of that cluster is left running.
func TestUpRefusesBusyPortWithoutOrphans(t *testing.T) {
	clusters := localenv.Clusters(testPortBase + 1000)[:1]
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", clusters[0].APIServerPort))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	env := &localenv.Env{Dir: t.TempDir(), Clusters: clusters}
	t.Cleanup(func() { _ = env.Down() })
	err = env.Up(context.Background())
	if err == nil {
		t.Fatal("up succeeded with the apiserver port taken")
	}
	for _, want := range []string{fmt.Sprintf("port %d is in use by pid", clusters[0].APIServerPort), "kube-apiserver", "UNDERLINK_PORT_BASE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	st, _ := env.Status()
	for _, s := range st {
		if s.Running {
			t.Errorf("%s left running (pid %d) after a failed up", s.Name, s.PID)
		}
	}
}

// TestSchemaAndKubectlFeedback: the apiserver rejects what the schema can say with the field path, and
// kubectl shows field descriptions and the pool's printer columns.
func TestSchemaAndKubectlFeedback(t *testing.T) {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{})
	kc := env.Kubeconfig(t)

	// The apiserver runs CEL rules only on an object that passes the structural schema, hence two objects.
	for _, c := range []struct {
		spec string
		want []string
	}{
		{"ipVersion: 5\n  subnet: 172.110.1.0/24", []string{`spec.ipVersion: Unsupported value: 5: supported values: "4", "6"`}},
		{"subnet: 172.110.1.0/33\n  gateway: 172.110.1.300\n  ips: [\"172.110.1.1-172.110.1.x\"]", []string{
			"spec.subnet: Invalid value", "must be a CIDR such as 172.110.1.0/24",
			"spec.gateway: Invalid value", "must be an IP address",
			"spec.ips[0]: Invalid value", "each entry must be an IP address or a range"}},
	} {
		bad := []byte("apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata:\n  name: bad\nspec:\n  " + c.spec + "\n")
		out, err := kubectl(t, kc, bad, "apply", "-f", "-")
		if err == nil {
			t.Fatalf("an invalid pool was accepted:\n%s\n%s", bad, out)
		}
		for _, want := range c.want {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl apply output lacks %q:\n%s", want, out)
			}
		}
	}

	out, err := kubectl(t, kc, nil, "explain", "spiderippool.spec.gateway")
	if err != nil || !strings.Contains(out, "FIELD: gateway <string>") || !strings.Contains(out, "never given to a pod") {
		t.Errorf("kubectl explain spiderippool.spec.gateway: %v\n%s", err, out)
	}

	pool, err := test.SeedManifest("cluster-a-ippool.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, kc, pool, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply seed pool: %v\n%s", err, out)
	}
	out, err = kubectl(t, kc, nil, "get", "sp")
	if err != nil {
		t.Fatalf("kubectl get sp: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME SUBNET DEFAULT TOTAL ALLOCATED DISABLE" ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "cluster-a 172.110.1.0/24 true") {
		t.Errorf("kubectl get sp:\n%s", out)
	}
	t.Logf("kubectl get sp:\n%s", out)
}

// sweepChildEnv marks the process TestDownSweepsKilledTests starts: it brings a cluster up in its own
// t.TempDir and waits to be killed.
const sweepChildEnv = "UNDERLINK_SWEEP_TEST_CHILD"

// TestDownSweepsKilledTests: a test binary killed with SIGKILL runs no cleanup, and its control plane
// (etcd, kube-apiserver, kube-controller-manager) keeps running under init. SweepOrphans, which `make
// down` runs, stops exactly those processes and removes their directory; it leaves alone a control
// plane whose test still runs.
func TestDownSweepsKilledTests(t *testing.T) {
	clusters := localenv.Clusters(3500)[:1]
	if os.Getenv(sweepChildEnv) == "1" {
		env := &localenv.Env{Dir: t.TempDir(), Clusters: clusters}
		if err := env.Up(context.Background()); err != nil {
			t.Fatal(err)
		}
		fmt.Println("READY " + env.Dir)
		time.Sleep(5 * time.Minute)
		return
	}
	// A live test's control plane, which the sweep must not touch.
	live := &localenv.Env{Dir: t.TempDir(), Clusters: localenv.Clusters(3600)[:1]}
	t.Cleanup(func() { _ = live.Down() })
	if err := live.Up(context.Background()); err != nil {
		t.Fatal(err)
	}

	child := exec.Command(os.Args[0], "-test.run", "^TestDownSweepsKilledTests$", "-test.v")
	child.Env = append(os.Environ(), sweepChildEnv+"=1")
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var dir string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
			dir = d
			break
		}
	}
	if dir == "" {
		_ = child.Process.Kill()
		_ = child.Wait()
		t.Fatal("the child test did not bring its cluster up")
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	t.Cleanup(func() { _, _ = localenv.SweepOrphans(5 * time.Second) })

	var left []localenv.Orphan
	poll.Until(t, 10*time.Second, "the killed test's control plane adopted by init", func() (bool, string) {
		all, err := localenv.Orphans()
		if err != nil {
			return false, err.Error()
		}
		left = nil
		for _, o := range all {
			if strings.HasPrefix(o.Dir, dir) || strings.HasPrefix(dir, o.Dir) {
				left = append(left, o)
			}
		}
		return len(left) == 3, fmt.Sprintf("%d orphans of %s: %v (all: %v)", len(left), dir, left, all)
	})
	swept, err := localenv.SweepOrphans(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	after, err := localenv.Orphans()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range left {
		if !slices.ContainsFunc(swept, func(s localenv.Orphan) bool { return s.PID == o.PID }) {
			t.Errorf("%s (pid %d) was not swept", o.Name, o.PID)
		}
		if slices.ContainsFunc(after, func(s localenv.Orphan) bool { return s.PID == o.PID }) {
			t.Errorf("%s (pid %d) still runs after the sweep", o.Name, o.PID)
		}
	}
	if _, err := os.Stat(filepath.Dir(dir)); !os.IsNotExist(err) {
		t.Errorf("the killed test's directory %s is still there (%v)", filepath.Dir(dir), err)
	}
	// The kernel closes an exited process's sockets as its last thread goes, a moment after the sweep.
	poll.Until(t, 5*time.Second, "the killed test's apiserver port free", func() (bool, string) {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", clusters[0].APIServerPort))
		if err != nil {
			return false, err.Error()
		}
		l.Close()
		return true, ""
	})
	st, err := live.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Running {
			t.Errorf("the sweep stopped %s of a running test", s.Name)
		}
	}
}
