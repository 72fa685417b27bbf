package localenv

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/proccpu"
)

// testDir matches the directories a test's control plane lives in: Go's t.TempDir (the test's name,
// digits, then a numbered subdirectory) and envtest's own temporary directories. `make up`'s clusters
// live under the repository's .local, which never matches.
var testDir = regexp.MustCompile(`^` + regexp.QuoteMeta(os.TempDir()) + `/(Test[^/]*[0-9]+/[0-9]{3}|k8s_test_framework_[0-9]+)(/|$)`)

// controlPlaneBinaries are the tool cache's binaries a test's control plane runs.
var controlPlaneBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// Orphan is a control-plane process that a test started and left behind: its test binary is gone
// (killed before its cleanups ran), so init adopted it.
type Orphan struct {
	PID  int
	Name string
	// Dir is the test's directory its command line names.
	Dir string
}

// Orphans lists the control-plane processes (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler of the tool cache) that init adopted and whose command line names a test's temporary
// directory. A running test's processes are its children, not init's, and are never listed.
func Orphans() ([]Orphan, error) {
	bins := map[string]string{}
	for _, b := range controlPlaneBinaries {
		bins[filepath.Join(controlplane.BinDir(), b)] = b
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Orphan
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue
		}
		name, ok := bins[strings.TrimSuffix(exe, " (deleted)")]
		if !ok || !orphaned(pid) {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			_, value, found := strings.Cut(arg, "=")
			if !found {
				value = arg
			}
			if m := testDir.FindString(value); m != "" {
				out = append(out, Orphan{PID: pid, Name: name, Dir: strings.TrimSuffix(m, "/")})
				break
			}
		}
	}
	return out, nil
}

// procStat reads pid's state letter (R, S, Z, …) and parent; ok is false when there is no such process.
func procStat(pid int) (state string, ppid int, ok bool) {
	st, ok := proccpu.ReadStat(pid)
	return st.State, st.PPID, ok
}

// orphaned says whether pid runs (not a zombie) with init as its parent.
func orphaned(pid int) bool {
	state, ppid, ok := procStat(pid)
	return ok && state != "Z" && ppid == 1
}

// gone says whether pid has exited: no such process, or a zombie none of whose threads still runs. A
// thread-group leader shows as a zombie while its other threads exit, and the process's files (its
// listening sockets) are closed only when the last of them has.
func gone(pid int) bool {
	state, _, ok := procStat(pid)
	if !ok {
		return true
	}
	if state != "Z" {
		return false
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return err != nil || len(tasks) <= 1
}

// SweepOrphans stops the processes Orphans lists (SIGTERM, then SIGKILL after grace) and removes the
// test directories they named. It returns what it stopped.
func SweepOrphans(grace time.Duration) ([]Orphan, error) {
	orphans, err := Orphans()
	if err != nil || len(orphans) == 0 {
		return nil, err
	}
	for _, o := range orphans {
		_ = syscall.Kill(o.PID, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	alive := func(o Orphan) bool { return !gone(o.PID) }
	for time.Now().Before(deadline) && slices.ContainsFunc(orphans, alive) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, o := range orphans {
		if alive(o) {
			_ = syscall.Kill(o.PID, syscall.SIGKILL)
		}
	}
	var errs []string
	for _, o := range orphans {
		stopped := false
		for range 40 {
			if !alive(o) {
				stopped = true
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !stopped {
			errs = append(errs, fmt.Sprintf("%s (pid %d) still runs after SIGKILL", o.Name, o.PID))
		}
	}
	dirs := map[string]bool{}
	for _, o := range orphans {
		dirs[o.Dir] = true
	}
	for d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err.Error())
		}
		// t.TempDir's parent (the test's own directory) is left empty by a killed test; os.Remove takes
		// it only if it is.
		if parent := filepath.Dir(d); parent != filepath.Clean(os.TempDir()) {
			_ = os.Remove(parent)
		}
	}
	if len(errs) > 0 {
		return orphans, fmt.Errorf("sweeping control planes of killed tests: %s", strings.Join(errs, "; "))
	}
	return orphans, nil
}
