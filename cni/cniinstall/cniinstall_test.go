package cniinstall

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallReplacesAtomicallyAndSkipsUnchanged(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for name, body := range map[string]string{"underlink-ipam": "ipam v2", "macvlan": "macvlan"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An older ipam on the host, and a foreign plugin that must be left alone.
	os.WriteFile(filepath.Join(dst, "underlink-ipam"), []byte("ipam v1"), 0o755)
	os.WriteFile(filepath.Join(dst, "bridge"), []byte("bridge"), 0o755)

	res, err := Install(src, dst, []string{"underlink-ipam", "macvlan"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !res[0].Changed || !res[1].Changed {
		t.Errorf("first install: %+v, want both changed", res)
	}
	for name, want := range map[string]string{"underlink-ipam": "ipam v2", "macvlan": "macvlan", "bridge": "bridge"} {
		b, err := os.ReadFile(filepath.Join(dst, name))
		st, _ := os.Stat(filepath.Join(dst, name))
		if err != nil || string(b) != want || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: %q mode %v, want %q 0755", name, b, st.Mode(), want)
		}
	}
	res, err = Install(src, dst, []string{"underlink-ipam", "macvlan"})
	if err != nil || res[0].Changed || res[1].Changed {
		t.Errorf("second install: %+v %v, want nothing changed", res, err)
	}
	entries, _ := os.ReadDir(dst)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestInstallNamesWhatIsMissing(t *testing.T) {
	src := t.TempDir()
	if _, err := Install(src, filepath.Join(src, "nope"), []string{"x"}); err == nil || !strings.Contains(err.Error(), "mount the host's CNI bin dir") {
		t.Errorf("missing destination: %v", err)
	}
	if _, err := Install(src, t.TempDir(), []string{"underlink-coordinator"}); err == nil || !strings.Contains(err.Error(), "read plugin") {
		t.Errorf("missing plugin: %v", err)
	}
}
