package test

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// PeersDir is the folder of the peers' release tarballs, found as hack/build-peers.sh finds it:
// $UNDERLINK_PEERS, else ../shared/peers beside the repository, else beside the checkout this clone was
// cloned from (CI clones main elsewhere on the machine).
func PeersDir() string {
	if d := os.Getenv("UNDERLINK_PEERS"); d != "" {
		return d
	}
	if d := filepath.Join(RepoRoot(), "..", "shared", "peers"); isDir(d) {
		return d
	}
	if out, err := exec.Command("git", "-C", RepoRoot(), "config", "--get", "remote.origin.url").Output(); err == nil {
		if d := filepath.Join(strings.TrimSpace(string(out)), "..", "shared", "peers"); isDir(d) {
			return d
		}
	}
	return filepath.Join(RepoRoot(), "..", "shared", "peers")
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// PeerFile returns the files of a peer's release tarball (e.g. "spiderpool-v1.2.2.tar.gz" in PeersDir)
// whose paths inside it are names, by those names.
func PeerFile(tarball string, names ...string) (map[string][]byte, error) {
	path := filepath.Join(PeersDir(), tarball)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w (set UNDERLINK_PEERS to the folder holding %s)", err, tarball)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string][]byte{}
	tr := tar.NewReader(zr)
	for len(out) < len(want) {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !want[h.Name] {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, h.Name, err)
		}
		out[h.Name] = b
	}
	for n := range want {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("%s holds no %s", path, n)
		}
	}
	return out, nil
}
