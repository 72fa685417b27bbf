package cniinstall

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallReplacesAtomicallyAndSkipsUnchanged(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for name, body := range map[string]string{"underlink-coordinator": "coordinator v2", "underlink-macvlan": "macvlan"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An older coordinator on the host, and a foreign plugin that must be left alone.
	os.WriteFile(filepath.Join(dst, "underlink-coordinator"), []byte("coordinator v1"), 0o755)
	os.WriteFile(filepath.Join(dst, "bridge"), []byte("bridge"), 0o755)

	res, err := Install(src, dst, []string{"underlink-coordinator", "underlink-macvlan"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !res[0].Changed || !res[1].Changed {
		t.Errorf("first install: %+v, want both changed", res)
	}
	for name, want := range map[string]string{"underlink-coordinator": "coordinator v2", "underlink-macvlan": "macvlan", "bridge": "bridge"} {
		b, err := os.ReadFile(filepath.Join(dst, name))
		st, _ := os.Stat(filepath.Join(dst, name))
		if err != nil || string(b) != want || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: %q mode %v, want %q 0755", name, b, st.Mode(), want)
		}
	}
	res, err = Install(src, dst, []string{"underlink-coordinator", "underlink-macvlan"})
	if err != nil || res[0].Changed || res[1].Changed {
		t.Errorf("second install: %+v %v, want nothing changed", res, err)
	}
	entries, _ := os.ReadDir(dst)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && e.Name() != ManifestName {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestInstallNamesWhatIsMissing(t *testing.T) {
	src := t.TempDir()
	if _, err := Install(src, filepath.Join(src, "nope"), []string{"underlink-x"}); err == nil || !strings.Contains(err.Error(), "mount the host's CNI bin dir") {
		t.Errorf("missing destination: %v", err)
	}
	if _, err := Install(src, t.TempDir(), []string{"underlink-coordinator"}); err == nil || !strings.Contains(err.Error(), "read plugin") {
		t.Errorf("missing plugin: %v", err)
	}
}

// TestInstallOwnsOnlyWhatItInstalled: a plugin named like another package's is refused, and Uninstall
// removes exactly the files Install wrote, leaving one that was replaced since and every foreign one.
func TestInstallOwnsOnlyWhatItInstalled(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for _, name := range []string{"underlink-ipam-full", "underlink-ipam", "underlink-coordinator", "underlink-macvlan", "macvlan"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(name+" v2"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dst, "macvlan"), []byte("the node's macvlan"), 0o755)
	if _, err := Install(src, dst, []string{"underlink-ipam", "macvlan"}); err == nil || !strings.Contains(err.Error(), "never replaces a binary another package owns") {
		t.Fatalf("installing macvlan: %v", err)
	}
	if _, err := Install(src, dst, []string{"underlink-ipam-full", "underlink-ipam", "underlink-coordinator", "underlink-macvlan"}); err != nil {
		t.Fatal(err)
	}
	// Someone replaced the coordinator since: it is theirs now.
	os.WriteFile(filepath.Join(dst, "underlink-coordinator"), []byte("patched by hand"), 0o755)
	removed, left, err := Uninstall(dst)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(removed, ",") != "underlink-ipam,underlink-ipam-full,underlink-macvlan" || strings.Join(left, ",") != "underlink-coordinator" {
		t.Errorf("removed %v, left %v", removed, left)
	}
	entries, _ := os.ReadDir(dst)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "macvlan,underlink-coordinator" {
		t.Errorf("after uninstall the directory holds %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "macvlan")); string(b) != "the node's macvlan" {
		t.Errorf("the node's macvlan was touched: %q", b)
	}
}

// TestInstallBringsTheRelaysPluginFirst: the underlink-ipam relay execs underlink-ipam-full from its own
// directory, so it is installed only with it, and after it.
func TestInstallBringsTheRelaysPluginFirst(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for _, name := range []string{"underlink-ipam-full", "underlink-ipam"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"underlink-ipam"}, "add underlink-ipam-full to the plugins, before underlink-ipam"},
		{[]string{"underlink-ipam", "underlink-ipam-full"}, "list underlink-ipam-full before underlink-ipam"},
	} {
		if _, err := Install(src, dst, tc.names); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Install(%v) = %v, want an error saying %q", tc.names, err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 0 {
		t.Errorf("a refused install wrote %d files", len(entries))
	}
	if _, err := Install(src, dst, []string{"underlink-ipam-full", "underlink-ipam"}); err != nil {
		t.Fatal(err)
	}
}
