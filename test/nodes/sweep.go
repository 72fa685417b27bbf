package nodes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/underlink/underlink/test/poll"
)

// nsInode is the inode of a namespace file (/proc/PID/ns/net, /run/netns/NAME), which identifies the
// namespace.
func nsInode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// processesIn lists the processes whose network or mount namespace is one of the given inodes (0 is
// ignored), or that sit in one of the given cgroup subtrees: together, everything that runs on a node —
// its daemons and containerd's shims (node namespaces) and the containers (cgroups below the node's
// cgroupRoot; they have namespaces of their own).
func processesIn(netIno, mntIno uint64, cgroups ...string) ([]int, error) {
	self := os.Getpid()
	found := map[int]bool{}
	for _, cg := range cgroups {
		pids, err := cgroupPIDs(cg)
		if err != nil {
			return nil, err
		}
		for _, p := range pids {
			found[p] = true
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if netIno != 0 {
			if ino, err := nsInode(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && ino == netIno {
				found[pid] = true
				continue
			}
		}
		if mntIno != 0 {
			if ino, err := nsInode(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && ino == mntIno {
				found[pid] = true
			}
		}
	}
	delete(found, self)
	out := make([]int, 0, len(found))
	for p := range found {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

// killAll SIGKILLs every process processesIn finds, again and again until none is left (a dying shim's
// children are found on the next round), or fails after timeout naming the survivors.
func killAll(netIno, mntIno uint64, timeout time.Duration, cgroups ...string) error {
	return poll.Wait(context.Background(), timeout, 50*time.Millisecond, "no process left after SIGKILL", func() (bool, string, error) {
		pids, err := processesIn(netIno, mntIno, cgroups...)
		if err != nil {
			return false, "", err
		}
		alive := pids[:0]
		for _, p := range pids {
			if !zombie(p) {
				alive = append(alive, p)
			}
		}
		for _, p := range alive {
			if err := syscall.Kill(p, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return false, "", fmt.Errorf("kill %d: %w", p, err)
			}
		}
		return len(alive) == 0, fmt.Sprintf("still running: %v", alive), nil
	})
}

// procStat is what this package reads of /proc/PID/stat.
type procStat struct {
	comm  string
	state byte
	ppid  int
}

// readStat parses /proc/PID/stat; ok is false when pid is gone.
func readStat(pid int) (st procStat, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, false
	}
	s := string(b)
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses, so it ends at the last ')'.
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return st, false
	}
	st.comm = s[i+1 : j]
	f := strings.Fields(s[j+1:])
	if len(f) >= 2 && len(f[0]) > 0 {
		st.state = f[0][0]
		st.ppid, _ = strconv.Atoi(f[1])
	}
	return st, true
}

// zombie says whether pid has exited and waits for its parent to reap it (or is gone).
func zombie(pid int) bool {
	st, ok := readStat(pid)
	return !ok || st.state == 'Z' || st.state == 'X'
}

// SweepDead removes what beds of dead processes left on the machine (a node host or test that was
// SIGKILLed before its teardown ran): it kills every process in their node cgroups (pods, shims) and
// node namespaces (kubelet, containerd, kube-proxy) and removes the cgroups. The namespaces themselves
// are netbed.Sweep's. Beds of live processes are left alone.
func SweepDead() error {
	hs, err := v1Hierarchies()
	if err != nil {
		return err
	}
	var errs []error
	// Beds are /underlink/ulbed-<pid>-<n> in every hierarchy; the pids hierarchy (or the first) lists them.
	base := filepath.Join(hs[0], "underlink")
	for _, h := range hs {
		if filepath.Base(h) == "pids" {
			base = filepath.Join(h, "underlink")
		}
	}
	beds, _ := os.ReadDir(base)
	for _, b := range beds {
		pid, ok := bedOwner(b.Name())
		if !ok || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		cg := "/underlink/" + b.Name()
		var netIno uint64
		nodesDirs, _ := os.ReadDir(filepath.Join(base, b.Name()))
		for _, n := range nodesDirs {
			// The node's namespace, if it still exists, holds kubelet, containerd and the shims.
			if ino, err := nsInode(filepath.Join("/run/netns", b.Name()+"-"+n.Name())); err == nil {
				netIno = ino
				if err := killAll(netIno, 0, 20*time.Second); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if err := killAll(0, 0, 20*time.Second, cg); err != nil {
			errs = append(errs, err)
		}
		if err := removeCgroup(cg); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// bedOwner parses the pid out of a bed's cgroup name "ulbed-<pid>-<n>".
func bedOwner(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "ulbed-")
	if !ok {
		return 0, false
	}
	p, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(p)
	return pid, err == nil && pid > 0
}

// LeftProcesses lists, as "pid args", the processes whose command line contains one of the given
// strings and that still run or that this process failed to reap. A zombie of another parent is left
// out: it has exited and holds nothing but its pid until its parent (init, for the shims containerd
// daemonizes) reaps it, which this machine's init does lazily.
func LeftProcesses(substrings ...string) ([]string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue // gone meanwhile
		}
		st, ok := readStat(pid)
		if !ok {
			continue
		}
		args := strings.TrimSpace(strings.ReplaceAll(string(raw), "\x00", " "))
		if args == "" {
			args = "[" + st.comm + "]" // a zombie has no command line any more
		}
		if !slices.ContainsFunc(substrings, func(s string) bool { return strings.Contains(args, s) }) {
			continue
		}
		if (st.state == 'Z' || st.state == 'X') && st.ppid != self {
			continue
		}
		out = append(out, fmt.Sprintf("%d %s", pid, args))
	}
	return out, nil
}
