package nodes

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadStatOfThisProcess(t *testing.T) {
	st, ok := readStat(os.Getpid())
	if !ok {
		t.Fatal("readStat of this process: not found")
	}
	exe, _ := os.Executable()
	want := filepath.Base(exe)
	if len(want) > 15 {
		want = want[:15] // the kernel keeps 15 characters of comm
	}
	if st.comm != want {
		t.Errorf("comm %q, want %q", st.comm, want)
	}
	if st.ppid != os.Getppid() {
		t.Errorf("ppid %d, want %d", st.ppid, os.Getppid())
	}
	if st.state != 'R' && st.state != 'S' {
		t.Errorf("state %q, want R or S for a running test", st.state)
	}
	if zombie(os.Getpid()) {
		t.Error("zombie(self) = true")
	}
	if _, ok := readStat(1 << 30); ok {
		t.Error("readStat of a pid that cannot exist: found")
	}
}
