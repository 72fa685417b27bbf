package nodes

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// ImageRefs lists the image references an image tarball names, as `ctr images import` names what it
// imports: the io.containerd.image.name annotation of an OCI index entry, else its
// org.opencontainers.image.ref.name when that is a full reference, else the RepoTags of a Docker
// manifest.json.
func ImageRefs(tarball string) ([]string, error) {
	refs, err := imageDigests(tarball)
	if err != nil {
		return nil, err
	}
	return refNames(refs), nil
}

// imageDigests maps each reference a tarball names to its manifest's digest ("" when the tarball is in
// Docker's format, which does not say).
func imageDigests(tarball string) (map[string]string, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	// A gzip-compressed tarball is accepted too.
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && magic == [2]byte{0x1f, 0x8b} {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		r = gz
	} else if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	tr := tar.NewReader(r)
	var index, manifest []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", tarball, err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "index.json":
			if index, err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		case "manifest.json":
			if manifest, err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
	}
	refs, err := refsOf(index, manifest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tarball, err)
	}
	return refs, nil
}

// refNames lists the references of refsOf's map, sorted.
func refNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for r := range m {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// refsOf is imageDigests on the tarball's index.json and manifest.json (either may be nil).
func refsOf(index, manifest []byte) (map[string]string, error) {
	refs := map[string]string{}
	if index != nil {
		var idx struct {
			Manifests []struct {
				Digest      string            `json:"digest"`
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.Unmarshal(index, &idx); err != nil {
			return nil, fmt.Errorf("index.json: %w", err)
		}
		for _, m := range idx.Manifests {
			if n := m.Annotations["io.containerd.image.name"]; n != "" {
				refs[n] = m.Digest
			} else if n := m.Annotations["org.opencontainers.image.ref.name"]; strings.ContainsAny(n, "/:") && !strings.HasPrefix(n, ":") {
				refs[n] = m.Digest
			}
		}
	}
	if len(refs) == 0 && manifest != nil {
		var ms []struct {
			RepoTags []string `json:"RepoTags"`
		}
		if err := json.Unmarshal(manifest, &ms); err != nil {
			return nil, fmt.Errorf("manifest.json: %w", err)
		}
		for _, m := range ms {
			for _, t := range m.RepoTags {
				refs[t] = ""
			}
		}
	}
	if len(refs) == 0 {
		return nil, errors.New("names no image (no io.containerd.image.name or full org.opencontainers.image.ref.name in index.json, no RepoTags in manifest.json)")
	}
	return refs, nil
}

// importImages loads image tarballs into a node's containerd (namespace k8s.io, unpacked for the CRI's
// snapshotter) through its socket.
func importImages(ctx context.Context, sock string, tarballs []string) error {
	for _, t := range tarballs {
		out, err := exec.CommandContext(ctx, "ctr", "--address", sock, "--namespace", "k8s.io", "images", "import", t).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr images import %s: %w\n%s", t, err, out)
		}
	}
	return nil
}

// SyncImages imports into a node's containerd every tarball whose images it lacks or holds at another
// digest (a rebuilt `make images`), and returns the tarballs it imported. Nodes that keep running
// between demos thereby always run what the tree builds.
func SyncImages(ctx context.Context, sock string, tarballs []string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ctr", "--address", sock, "--namespace", "k8s.io", "images", "ls").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ctr images ls: %w\n%s", err, out)
	}
	have := map[string]string{}
	for _, l := range strings.Split(string(out), "\n")[1:] {
		// REF TYPE DIGEST SIZE PLATFORMS LABELS
		f := strings.Fields(l)
		if len(f) >= 3 {
			have[f[0]] = f[2]
		}
	}
	var imported []string
	for _, t := range tarballs {
		want, err := imageDigests(t)
		if err != nil {
			return imported, err
		}
		stale := false
		for ref, d := range want {
			if got, ok := have[ref]; !ok || (d != "" && got != d) {
				stale = true
			}
		}
		if !stale {
			continue
		}
		if err := importImages(ctx, sock, []string{t}); err != nil {
			return imported, err
		}
		imported = append(imported, t)
	}
	return imported, nil
}
