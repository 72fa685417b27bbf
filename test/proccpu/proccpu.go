// Package proccpu tells where a machine's CPU went between two moments, per program: it reads each
// process's /proc/<pid>/stat at both moments and charges the difference to the process's name. The CPU
// of a process that started and exited in between (a CNI plugin run by containerd, say) is found in its
// parent's "children" counters once the parent has reaped it, and is charged to the parent's name with
// the suffix ChildrenSuffix. Benchmarks use it to say which component a run's CPU went to.
package proccpu

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Stat is what one /proc/<pid>/stat line says of a process, times in clock ticks.
type Stat struct {
	PID, PPID int
	// Comm is the program's name as the kernel keeps it (at most 15 bytes).
	Comm  string
	State string
	// Self is the process's own user and system time; Children that of its reaped children.
	Self, Children uint64
	// Start is when the process started (ticks after boot): with PID it names one process.
	Start uint64
}

// ParseStat parses the content of /proc/<pid>/stat.
func ParseStat(line string) (Stat, error) {
	// pid (comm) state ppid ...: comm may hold spaces and parentheses, so split at the last ')'.
	open, closing := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || closing < open {
		return Stat{}, fmt.Errorf("proccpu: %q is not a /proc/<pid>/stat line", line)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return Stat{}, fmt.Errorf("proccpu: pid of %q: %w", line, err)
	}
	f := strings.Fields(line[closing+1:])
	// After comm: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14) … starttime(19).
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("proccpu: %q has %d fields after the name, want at least 20", line, len(f))
	}
	n := func(i int) uint64 {
		v, _ := strconv.ParseUint(f[i], 10, 64)
		return v
	}
	ppid, _ := strconv.Atoi(f[1])
	return Stat{
		PID: pid, PPID: ppid, Comm: line[open+1 : closing], State: f[0],
		Self: n(11) + n(12), Children: n(13) + n(14), Start: n(19),
	}, nil
}

// ReadStat reads pid's /proc/<pid>/stat; ok is false when there is no such process.
func ReadStat(pid int) (st Stat, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, false
	}
	st, err = ParseStat(string(b))
	return st, err == nil
}

// Snapshot is every process's Stat at one moment, by pid.
type Snapshot map[int]Stat

// Take reads the Stat of every process now running.
func Take() (Snapshot, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	s := Snapshot{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := ReadStat(pid); ok {
			s[pid] = st
		}
	}
	return s, nil
}

// ChildrenSuffix marks the CPU of a program's exited (reaped) children.
const ChildrenSuffix = " (exited children)"

// Use is the CPU a program used, in clock ticks.
type Use struct {
	Name  string
	Ticks uint64
}

// Diff charges the CPU used between before and after to program names, largest first. A process alive
// at both moments is charged what it used in between; one that started in between, all it used. A
// process alive before and gone after is charged nothing of its own, and what it had used before is
// taken back from its parent's children, which its reaping added to (the whole of it, not only the part
// used in between).
func Diff(before, after Snapshot) []Use {
	by := map[string]int64{}
	for pid, a := range after {
		b, was := before[pid]
		if was && b.Start != a.Start {
			was = false // the pid was reused
		}
		self, children := int64(a.Self), int64(a.Children)
		if was {
			self -= int64(b.Self)
			children -= int64(b.Children)
		}
		by[a.Comm] += self
		by[a.Comm+ChildrenSuffix] += children
	}
	for pid, b := range before {
		if a, ok := after[pid]; ok && a.Start == b.Start {
			continue
		}
		if p, ok := after[b.PPID]; ok {
			if pb, ok := before[b.PPID]; ok && pb.Start == p.Start {
				by[p.Comm+ChildrenSuffix] -= int64(b.Self + b.Children)
			}
		}
	}
	var out []Use
	for name, t := range by {
		if t > 0 {
			out = append(out, Use{Name: name, Ticks: uint64(t)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ticks != out[j].Ticks {
			return out[i].Ticks > out[j].Ticks
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// TicksPerSecond is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux architecture Go
// runs on.
const TicksPerSecond = 100

// Format prints the largest uses as "name 12.3 s, …", at most top of them, and the rest summed.
func Format(uses []Use, top int) string {
	var parts []string
	var rest uint64
	for i, u := range uses {
		if i < top {
			parts = append(parts, fmt.Sprintf("%s %.1f s", u.Name, float64(u.Ticks)/TicksPerSecond))
		} else {
			rest += u.Ticks
		}
	}
	if rest > 0 {
		parts = append(parts, fmt.Sprintf("the rest %.1f s", float64(rest)/TicksPerSecond))
	}
	return strings.Join(parts, ", ")
}

// Total sums uses, in seconds.
func Total(uses []Use) float64 {
	var t uint64
	for _, u := range uses {
		t += u.Ticks
	}
	return float64(t) / TicksPerSecond
}
