// Package schedulertest runs the real underlink-scheduler binary, built from this repository, against a
// test control plane: for the integration tests and the scheduling benchmark. It builds the binary
// once per test process and starts it with one of the configurations in deploy/scheduler, pointed at
// the test's apiserver.
package schedulertest

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/poll"
)

// ldflags give the binary the version of the Kubernetes release it is built from, as hack/build-tools.sh
// does for the stock components: the k8s.io/kubernetes version that go.mod requires, so the version is
// written in one place.
func ldflags() (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "k8s.io/kubernetes")
	cmd.Dir = test.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m k8s.io/kubernetes: %w", err)
	}
	v := strings.TrimSpace(string(out))
	major, rest, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	minor, _, _ := strings.Cut(rest, ".")
	if _, err := strconv.Atoi(major); err != nil {
		return "", fmt.Errorf("k8s.io/kubernetes %q in go.mod is not vMAJOR.MINOR.PATCH", v)
	}
	if _, err := strconv.Atoi(minor); err != nil {
		return "", fmt.Errorf("k8s.io/kubernetes %q in go.mod is not vMAJOR.MINOR.PATCH", v)
	}
	return "-X k8s.io/component-base/version.gitVersion=" + v + " -X k8s.io/component-base/version.gitMajor=" + major +
		" -X k8s.io/component-base/version.gitMinor=" + minor + " -X k8s.io/component-base/version.gitTreeState=clean", nil
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds ./cmd/underlink-scheduler (incrementally, through the Go build cache) into
// $UNDERLINK_CACHE/build and returns its path. The first build of the Kubernetes scheduler packages
// takes minutes; later ones only link.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir := filepath.Join(controlplane.CacheDir(), "build")
		if buildErr = os.MkdirAll(dir, 0o755); buildErr != nil {
			return
		}
		// Build beside the final path and rename, so parallel test processes never run a half-written file.
		tmp, err := os.CreateTemp(dir, ".underlink-scheduler-*")
		if err != nil {
			buildErr = err
			return
		}
		tmp.Close()
		flags, err := ldflags()
		if err != nil {
			os.Remove(tmp.Name())
			buildErr = err
			return
		}
		start := time.Now()
		// Default build flags, so the Go build cache that `go build ./...` and `go vet` fill is reused.
		cmd := exec.Command("go", "build", "-ldflags", flags, "-o", tmp.Name(), "./cmd/underlink-scheduler")
		cmd.Dir = test.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp.Name())
			buildErr = fmt.Errorf("go build ./cmd/underlink-scheduler: %w\n%s", err, out)
			return
		}
		binPath = filepath.Join(dir, "underlink-scheduler")
		buildErr = os.Rename(tmp.Name(), binPath)
		t.Logf("built %s in %s", binPath, time.Since(start).Round(time.Second))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Config reads deploy/scheduler/<name>, points its clientConnection at kubeconfig, lets edit change it
// further (may be nil), and writes it to a file of the test. It returns the file's path.
func Config(t testing.TB, name, kubeconfig string, edit func(cfg map[string]any)) string {
	t.Helper()
	raw, err := os.ReadFile(test.Path("deploy", "scheduler", name))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("deploy/scheduler/%s: %v", name, err)
	}
	cc, _ := cfg["clientConnection"].(map[string]any)
	if cc == nil {
		cc = map[string]any{}
	}
	cc["kubeconfig"] = kubeconfig
	// A test creates objects in bursts; the defaults (50 QPS) would measure the client, not the scheduler.
	cc["qps"], cc["burst"] = 5000, 5000
	cfg["clientConnection"] = cc
	if edit != nil {
		edit(cfg)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Process is a running scheduler.
type Process struct {
	// Port is the scheduler's secure port on 127.0.0.1 (healthz and metrics).
	Port int
	// Log is the file the scheduler logs to.
	Log    string
	cmd    *exec.Cmd
	exited chan error
}

// Start runs the scheduler binary with the configuration file config and extra flags, waits until it
// serves /healthz, and stops it when t ends (its log's tail is printed if t failed).
func Start(t testing.TB, config string, extraArgs ...string) *Process {
	t.Helper()
	p := Launch(t, config, extraArgs...)
	p.WaitHealthy(t)
	return p
}

// Launch starts the scheduler like Start but returns at once; WaitHealthy waits for it. Several
// schedulers launched together start together.
func Launch(t testing.TB, config string, extraArgs ...string) *Process {
	t.Helper()
	bin := Binary(t)
	port := freePort(t)
	p := &Process{Port: port, Log: filepath.Join(t.TempDir(), "underlink-scheduler.log")}
	logFile, err := os.Create(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--config=" + config,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		// Health and metrics without a client certificate; they stay on loopback.
		"--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
		"-v=2",
	}, extraArgs...)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	p.exited = exited
	go func() { exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			t.Logf("underlink-scheduler log (%s), last lines:\n%s", p.Log, tail(p.Log, 60))
		}
	})
	return p
}

// WaitHealthy waits until the scheduler serves /healthz, failing t if it exits or takes over 2 minutes.
func (p *Process) WaitHealthy(t testing.TB) {
	t.Helper()
	err := poll.Wait(context.Background(), 2*time.Minute, 200*time.Millisecond, "underlink-scheduler serving /healthz", func() (bool, string, error) {
		select {
		case err := <-p.exited:
			p.exited <- err
			return false, "", fmt.Errorf("it exited at start-up (%v)", err)
		default:
		}
		body, err := p.get("/healthz")
		if err != nil {
			return false, err.Error(), nil
		}
		return body == "ok", "answered " + body, nil
	})
	if err != nil {
		t.Fatalf("%v:\n%s", err, tail(p.Log, 40))
	}
}

var insecure = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // self-signed serving cert on loopback
}

func (p *Process) get(path string) (string, error) {
	resp, err := insecure.Get(fmt.Sprintf("https://127.0.0.1:%d%s", p.Port, path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b), nil
}

// Metrics returns the scheduler's /metrics in Prometheus text format.
func (p *Process) Metrics(ctx context.Context) (string, error) {
	return p.get("/metrics")
}

// LogContains reports whether the scheduler's log has a line containing s.
func (p *Process) LogContains(s string) bool {
	f, err := os.Open(p.Log)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return true
		}
	}
	return false
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// SetPluginArgs sets args of the UnderlayNetwork plugin in every profile of cfg that enables it,
// adding its pluginConfig entry where a profile has none: an edit for Config.
func SetPluginArgs(cfg map[string]any, args map[string]any) {
	profiles, _ := cfg["profiles"].([]any)
	for _, p := range profiles {
		profile, _ := p.(map[string]any)
		if profile == nil || !strings.Contains(fmt.Sprint(profile["plugins"]), "UnderlayNetwork") {
			continue
		}
		configs, _ := profile["pluginConfig"].([]any)
		var entry map[string]any
		for _, c := range configs {
			if c, _ := c.(map[string]any); c != nil && c["name"] == "UnderlayNetwork" {
				entry = c
			}
		}
		if entry == nil {
			entry = map[string]any{"name": "UnderlayNetwork", "args": map[string]any{
				"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "UnderlayNetworkArgs",
			}}
			profile["pluginConfig"] = append(configs, entry)
		}
		a, _ := entry["args"].(map[string]any)
		if a == nil {
			a = map[string]any{}
			entry["args"] = a
		}
		for k, v := range args {
			a[k] = v
		}
	}
}

// NoPacing turns the plugin's start pacing off (maxStartingPodsPerNode 0), an edit for Config: nodes
// made by CreateNode have no kubelet, so no pod's sandbox ever gets ready and a paced node would take
// no more pods than the limit until each one's startingTimeout passed.
func NoPacing(cfg map[string]any) { SetPluginArgs(cfg, map[string]any{"maxStartingPodsPerNode": 0}) }
