// Package cniinstall copies CNI plugin binaries from the agent image into the host's CNI bin directory, as
// the agent DaemonSet's init container, and removes them again when underlink is uninstalled. Each binary
// is written beside its final name and renamed over it, so the container runtime never executes a
// half-written plugin, even while pods are being set up.
//
// underlink owns only what it installed: every plugin it installs carries underlink's name (OwnedPrefix:
// underlink-ipam, underlink-coordinator, and underlink-macvlan, its copy of the reference macvlan), so it
// never replaces a binary another package installed, and a manifest in the directory (ManifestName)
// records each file with the digest it wrote. Uninstall removes exactly those files, and only while they
// still hold what underlink wrote.
package cniinstall

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// OwnedPrefix starts the name of every plugin underlink installs.
const OwnedPrefix = "underlink-"

// ManifestName is the file in the CNI bin directory that lists what underlink installed there.
const ManifestName = ".underlink-installed.json"

// Manifest lists the files underlink installed in a directory, by name, with the sha256 it wrote.
type Manifest struct {
	Files map[string]string `json:"files"`
}

// Result says what Install did with one plugin.
type Result struct {
	Name string
	// Changed is false when the host already had the same binary.
	Changed bool
}

// Install copies each named file of srcDir into dstDir (mode 0755), replacing what is there atomically;
// a file whose content is already in place is left alone. Every name must start with OwnedPrefix: a
// plugin another package owns (the reference macvlan, say) is never written. The manifest records what
// was installed.
func Install(srcDir, dstDir string, names []string) ([]Result, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("no plugins to install from %s", srcDir)
	}
	for _, name := range names {
		if !strings.HasPrefix(name, OwnedPrefix) || strings.ContainsRune(name, '/') {
			return nil, fmt.Errorf("plugin %q: underlink installs only plugins named %s*, so it never replaces a binary another package owns in the CNI bin directory", name, OwnedPrefix)
		}
	}
	if err := companionsFirst(names); err != nil {
		return nil, err
	}
	st, err := os.Stat(dstDir)
	if err != nil {
		return nil, fmt.Errorf("CNI bin directory %s: %w (mount the host's CNI bin dir there)", dstDir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("CNI bin directory %s is not a directory", dstDir)
	}
	m, err := ReadManifest(dstDir)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, name := range names {
		sum, changed, err := installOne(filepath.Join(srcDir, name), filepath.Join(dstDir, name))
		if err != nil {
			return out, err
		}
		m.Files[name] = sum
		out = append(out, Result{Name: name, Changed: changed})
	}
	return out, writeManifest(dstDir, m)
}

// Companions are the plugins a plugin execs from its own directory: the underlink-ipam relay runs
// underlink-ipam-full for the calls it does not hand to the agent.
var Companions = map[string]string{"underlink-ipam": "underlink-ipam-full"}

// companionsFirst checks that each plugin's companion is installed too, and before it: a relay in place
// without the plugin it execs would fail the calls it passes on.
func companionsFirst(names []string) error {
	at := map[string]int{}
	for i, n := range names {
		at[n] = i
	}
	for i, n := range names {
		c, ok := Companions[n]
		if !ok {
			continue
		}
		j, listed := at[c]
		if !listed {
			return fmt.Errorf("plugin %q execs %q from the same directory: add %s to the plugins, before %s", n, c, c, n)
		}
		if j > i {
			return fmt.Errorf("plugin %q execs %q: list %s before %s, so that it is in place first", n, c, c, n)
		}
	}
	return nil
}

// Uninstall removes from dir the files the manifest lists, each only if it still holds the digest
// underlink wrote (a file someone replaced since is theirs now), then the manifest. It returns the
// files removed and those left.
func Uninstall(dir string) (removed, left []string, err error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil || digest(b) != m.Files[name] {
			left = append(left, name)
			continue
		}
		if err := os.Remove(p); err != nil {
			return removed, left, fmt.Errorf("remove %s: %w", p, err)
		}
		removed = append(removed, name)
	}
	if err := os.Remove(filepath.Join(dir, ManifestName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return removed, left, err
	}
	return removed, left, nil
}

// ReadManifest reads dir's manifest; a missing one is empty.
func ReadManifest(dir string) (Manifest, error) {
	m := Manifest{Files: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{Files: map[string]string{}}, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestName), err)
	}
	if m.Files == nil {
		m.Files = map[string]string{}
	}
	return m, nil
}

func writeManifest(dir string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	_, err = writeAtomically(filepath.Join(dir, ManifestName), append(b, '\n'), 0o644)
	return err
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func installOne(src, dst string) (string, bool, error) {
	want, err := os.ReadFile(src)
	if err != nil {
		return "", false, fmt.Errorf("read plugin %s: %w", src, err)
	}
	sum := digest(want)
	if have, err := os.ReadFile(dst); err == nil && digest(have) == sum {
		if err := os.Chmod(dst, 0o755); err != nil {
			return "", false, fmt.Errorf("chmod %s: %w", dst, err)
		}
		return sum, false, nil
	}
	changed, err := writeAtomically(dst, want, 0o755)
	return sum, changed, err
}

// writeAtomically writes body beside path and renames it over path.
func writeAtomically(path string, body []byte, mode os.FileMode) (bool, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".underlink-")
	if err != nil {
		return false, fmt.Errorf("install %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := io.Copy(tmp, bytes.NewReader(body)); err != nil {
		tmp.Close()
		return false, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return false, fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, fmt.Errorf("install %s: %w", path, err)
	}
	return true, nil
}
