//go:build integration

package ipam

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat times, on every Linux architecture Go supports.
const clockTick = 100

// cpuSnapshot is the CPU time so far of this process's running children by command name (the
// apiserver, etcd and the agents the benchmark started), of its waited-for children (the CNI plugin
// processes), and of this process.
type cpuSnapshot struct {
	running map[string]time.Duration
	waited  time.Duration
	self    time.Duration
}

func takeCPU() cpuSnapshot {
	s := cpuSnapshot{running: map[string]time.Duration{}}
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		st := string(raw)
		i, j := strings.IndexByte(st, '('), strings.LastIndexByte(st, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(st[j+1:]) // state ppid ... utime(12) stime(13)
		if len(f) < 13 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		s.running[st[i+1:j]] += time.Duration(u+k) * time.Second / clockTick
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		s.waited = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s
}

// cpuReport says where the CPU went between two snapshots, largest first; plugin is the name the
// waited-for children (the CNI binaries) are reported under.
func cpuReport(before, after cpuSnapshot, plugin string, wall time.Duration) string {
	type row struct {
		name string
		d    time.Duration
	}
	var rows []row
	for n, d := range after.running {
		if d -= before.running[n]; d > 0 {
			rows = append(rows, row{n, d})
		}
	}
	rows = append(rows, row{plugin + " processes", after.waited - before.waited}, row{"benchmark driver", after.self - before.self})
	sort.Slice(rows, func(a, b int) bool { return rows[a].d > rows[b].d })
	var total time.Duration
	parts := make([]string, 0, len(rows))
	for _, r := range rows {
		total += r.d
		parts = append(parts, fmt.Sprintf("%s %.1fs", r.name, r.d.Seconds()))
	}
	return fmt.Sprintf("CPU in %s of wall time: %.1fs (%s)", wall.Round(10*time.Millisecond), total.Seconds(), strings.Join(parts, ", "))
}
