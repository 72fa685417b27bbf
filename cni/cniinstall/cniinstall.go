// Package cniinstall copies CNI plugin binaries from the agent image into the host's CNI bin directory, as
// the agent DaemonSet's init container. Each binary is written beside its final name and renamed over it,
// so the container runtime never executes a half-written plugin, even while pods are being set up.
package cniinstall

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Result says what Install did with one plugin.
type Result struct {
	Name string
	// Changed is false when the host already had the same binary.
	Changed bool
}

// Install copies each named file of srcDir into dstDir (mode 0755), replacing what is there atomically;
// a file whose content is already in place is left alone.
func Install(srcDir, dstDir string, names []string) ([]Result, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("no plugins to install from %s", srcDir)
	}
	st, err := os.Stat(dstDir)
	if err != nil {
		return nil, fmt.Errorf("CNI bin directory %s: %w (mount the host's CNI bin dir there)", dstDir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("CNI bin directory %s is not a directory", dstDir)
	}
	var out []Result
	for _, name := range names {
		changed, err := installOne(filepath.Join(srcDir, name), filepath.Join(dstDir, name))
		if err != nil {
			return out, err
		}
		out = append(out, Result{Name: name, Changed: changed})
	}
	return out, nil
}

func installOne(src, dst string) (bool, error) {
	want, err := os.ReadFile(src)
	if err != nil {
		return false, fmt.Errorf("read plugin %s: %w", src, err)
	}
	if have, err := os.ReadFile(dst); err == nil && sha256.Sum256(have) == sha256.Sum256(want) {
		if err := os.Chmod(dst, 0o755); err != nil {
			return false, fmt.Errorf("chmod %s: %w", dst, err)
		}
		return false, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".underlink-")
	if err != nil {
		return false, fmt.Errorf("install %s: %w", dst, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := io.Copy(tmp, bytes.NewReader(want)); err != nil {
		tmp.Close()
		return false, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o755); err != nil {
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
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return false, fmt.Errorf("install %s: %w", dst, err)
	}
	return true, nil
}
