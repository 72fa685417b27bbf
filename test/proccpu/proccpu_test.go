package proccpu

import (
	"fmt"
	"os"
	"reflect"
	"testing"
)

// stat renders a /proc/<pid>/stat line with the fields Diff reads.
func stat(pid, ppid int, comm string, self, children, start uint64) string {
	// state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
	// priority nice threads itrealvalue starttime vsize
	return fmt.Sprintf("%d (%s) S %d 1 1 0 -1 0 0 0 0 0 %d 0 %d 0 20 0 1 0 %d 1000", pid, comm, ppid, self, children, start)
}

func TestParseStat(t *testing.T) {
	got, err := ParseStat(stat(42, 7, "a (b) c", 150, 30, 9000))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{PID: 42, PPID: 7, Comm: "a (b) c", State: "S", Self: 150, Children: 30, Start: 9000}
	if got != want {
		t.Errorf("ParseStat = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "42 (x", "x (y) S 1", "42 (y) S 1 2 3"} {
		if _, err := ParseStat(bad); err == nil {
			t.Errorf("ParseStat(%q) gave no error", bad)
		}
	}
}

func TestReadStatOfThisProcess(t *testing.T) {
	st, ok := ReadStat(os.Getpid())
	if !ok || st.PID != os.Getpid() || st.PPID != os.Getppid() || st.Start == 0 {
		t.Fatalf("ReadStat(self) = %+v, %v", st, ok)
	}
}

func snap(t *testing.T, lines ...string) Snapshot {
	t.Helper()
	s := Snapshot{}
	for _, l := range lines {
		st, err := ParseStat(l)
		if err != nil {
			t.Fatal(err)
		}
		s[st.PID] = st
	}
	return s
}

func TestDiff(t *testing.T) {
	before := snap(t,
		stat(10, 1, "containerd", 1000, 500, 100),
		stat(11, 10, "multus", 20, 5, 200), // exits in between, reaped by containerd
		stat(12, 1, "kube-apiserver", 400, 0, 100),
		stat(13, 1, "old", 70, 0, 100),      // its pid is reused in between
		stat(14, 999, "orphan", 30, 0, 100), // exits; its parent is gone too
	)
	after := snap(t,
		// containerd used 200 ticks itself; its children counter grew by multus' whole 60 (25 before)
		// and by 90 of plugins that started and exited in between.
		stat(10, 1, "containerd", 1200, 650, 100),
		stat(12, 1, "kube-apiserver", 1400, 0, 100),
		stat(13, 10, "new", 15, 0, 300),
		stat(20, 10, "underlink-agent", 50, 0, 250), // started in between
	)
	want := []Use{
		{"kube-apiserver", 1000},
		{"containerd", 200},
		{"containerd" + ChildrenSuffix, 125}, // 150 grown, less multus' 25 from before
		{"underlink-agent", 50},
		{"new", 15},
	}
	if got := Diff(before, after); !reflect.DeepEqual(got, want) {
		t.Errorf("Diff =\n%v\nwant\n%v", got, want)
	}
	if got := Format(Diff(before, after), 2); got != "kube-apiserver 10.0 s, containerd 2.0 s, the rest 1.9 s" {
		t.Errorf("Format = %q", got)
	}
	if got := Total(want); got != 13.9 {
		t.Errorf("Total = %v", got)
	}
}
