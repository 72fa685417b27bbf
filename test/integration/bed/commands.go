package bed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/netbed"
)

var commands struct {
	mu    sync.Mutex
	dir   string
	built map[string]error
}

// Commands builds ./cmd/<name> of this repository for each name, once per test binary, into a directory
// of the shared cache ($UNDERLINK_CACHE/build/integration-<pid>) and returns that directory, so every
// test runs the real binaries.
func Commands(t testing.TB, names ...string) string {
	t.Helper()
	commands.mu.Lock()
	defer commands.mu.Unlock()
	if commands.dir == "" {
		commands.dir = filepath.Join(controlplane.CacheDir(), "build", fmt.Sprintf("integration-%d", os.Getpid()))
		if err := os.MkdirAll(commands.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		commands.built = map[string]error{}
		removeStaleBuilds(commands.dir)
	}
	var missing []string
	for _, n := range names {
		if _, ok := commands.built[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		err := netbed.BuildCommands(commands.dir, missing...)
		for _, n := range missing {
			commands.built[n] = err
		}
	}
	for _, n := range names {
		if err := commands.built[n]; err != nil {
			t.Fatal(err)
		}
	}
	return commands.dir
}

// removeStaleBuilds removes the builds of test binaries that have exited, since a test binary has no hook
// after its last test. Those of test binaries still running (packages tested in parallel) stay.
func removeStaleBuilds(keep string) {
	old, _ := filepath.Glob(filepath.Join(controlplane.CacheDir(), "build", "integration-*"))
	legacy, _ := filepath.Glob(filepath.Join(controlplane.CacheDir(), "build", "ipam-*"))
	for _, d := range append(old, legacy...) {
		if d == keep {
			continue
		}
		_, pid, _ := strings.Cut(filepath.Base(d), "-")
		if n, err := strconv.Atoi(pid); err == nil {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", n)); err == nil || !errors.Is(err, os.ErrNotExist) {
				continue
			}
		}
		_ = os.RemoveAll(d)
	}
}

// Tool is a command running a cached binary (helm, kubectl) with a Helm home of its own, so tests leave no
// state in $HOME.
func Tool(t *testing.T, tool string, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := controlplane.Binary(tool)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = HelmEnv(t)
	return cmd
}

// HelmEnv is the environment with a Helm home of the test's own (cache, config and data directories).
func HelmEnv(t *testing.T) []string {
	home := t.TempDir()
	return append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
}
