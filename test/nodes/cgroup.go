package nodes

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupMount is where the machine mounts its cgroup v1 hierarchies (test/nodes/README.md: v1 hierarchies
// plus cgroup2 at /sys/fs/cgroup/unified).
const cgroupMount = "/sys/fs/cgroup"

// v1Hierarchies lists the mounted cgroup v1 hierarchies (directories under /sys/fs/cgroup whose mount
// is of type cgroup), named by their mount directory.
func v1Hierarchies() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if fields[sep+1] == "cgroup" && strings.HasPrefix(fields[4], cgroupMount+"/") {
			out = append(out, fields[4])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no cgroup v1 hierarchy is mounted under /sys/fs/cgroup; these nodes are built for a cgroup v1 (hybrid) machine, see shared/NODES.md")
	}
	slices.Sort(out)
	return out, nil
}

// createCgroup makes path (e.g. /underlink/<bed>/<node>) in every v1 hierarchy, as kubelet demands of its
// cgroupRoot, and gives new cpuset directories their parent's CPUs and memory nodes (a v1 cpuset starts
// empty and accepts no task until both are set).
func createCgroup(path string) error {
	hs, err := v1Hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		parts := strings.Split(strings.Trim(path, "/"), "/")
		dir := h
		for _, p := range parts {
			parent := dir
			dir = filepath.Join(dir, p)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("create cgroup %s: %w", dir, err)
			}
			if strings.Contains(filepath.Base(h), "cpuset") {
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					cur, _ := os.ReadFile(filepath.Join(dir, f))
					if strings.TrimSpace(string(cur)) != "" {
						continue
					}
					v, err := os.ReadFile(filepath.Join(parent, f))
					if err != nil {
						return err
					}
					if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
						return fmt.Errorf("set %s of %s: %w", f, dir, err)
					}
				}
			}
		}
	}
	return nil
}

// cgroupPIDs lists every process in path or below it, in any v1 hierarchy.
func cgroupPIDs(path string) ([]int, error) {
	hs, err := v1Hierarchies()
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	for _, h := range hs {
		root := filepath.Join(h, path)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil // removed while walking
			}
			for _, l := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(l); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	slices.Sort(out)
	return out, nil
}

// removeCgroup removes path and everything below it from every v1 hierarchy, deepest first, and then its
// parents that became empty (/underlink/<bed>, /underlink), leaving those another bed still uses. It
// retries briefly: the kernel frees a cgroup a moment after its last task exits.
func removeCgroup(path string) error {
	hs, err := v1Hierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		root := filepath.Join(h, path)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		// Deepest first.
		slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		for _, d := range dirs {
			if err := rmdirRetry(d); err != nil {
				errs = append(errs, err)
			}
		}
		// Parents that became empty, e.g. /underlink/<bed> after its last node.
		parts := strings.Split(strings.Trim(path, "/"), "/")
		for i := len(parts) - 1; i > 0; i-- {
			d := filepath.Join(append([]string{h}, parts[:i]...)...)
			if err := syscall.Rmdir(d); err != nil {
				break // not empty (another node or bed), or gone
			}
		}
	}
	return errors.Join(errs...)
}

func rmdirRetry(dir string) error {
	var err error
	for i := 0; i < 50; i++ {
		err = syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}
