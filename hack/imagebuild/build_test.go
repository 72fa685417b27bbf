package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/underlink/underlink/test"
)

// buildPause compiles the pause command statically, as make images does.
func buildPause(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./hack/imagebuild/pause")
	cmd.Dir = test.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build pause: %v\n%s", err, b)
	}
	return out
}

// TestArchiveIsAnOCILayoutNamingTheImage reads a written tarball back as `ctr images import` would: the
// OCI layout marker, an index whose one manifest carries the full reference, and blobs that are what the
// manifest says; the layer holds the binary (0755) and /tmp (1777), the config how it starts.
func TestArchiveIsAnOCILayoutNamingTheImage(t *testing.T) {
	bin := buildPause(t)
	spec := Spec{Name: "pause", User: "65535:65535", Entrypoint: []string{"/pause"}, Files: []File{{"pause", "/pause"}},
		Links: []Link{{"/usr/local/bin/sleep", "/pause"}}}
	img, err := Build(spec, map[string]string{"pause": bin}, "amd64", "0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag("ghcr.io/underlink/pause:0.1.0")
	var buf bytes.Buffer
	if err := WriteOCIArchive(&buf, ref, img); err != nil {
		t.Fatal(err)
	}
	entries := untar(t, buf.Bytes())
	if string(entries["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout: %q", entries["oci-layout"])
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(entries["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != "ghcr.io/underlink/pause:0.1.0" ||
		index.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "0.1.0" || index.Manifests[0].MediaType != types.OCIManifestSchema1 {
		t.Fatalf("index: %+v", index)
	}
	var m v1.Manifest
	if err := json.Unmarshal(entries["blobs/sha256/"+index.Manifests[0].Digest.Hex], &m); err != nil {
		t.Fatal(err)
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(entries["blobs/sha256/"+m.Config.Digest.Hex], &cf); err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || strings.Join(cf.Config.Entrypoint, " ") != "/pause" || cf.Config.User != "65535:65535" {
		t.Errorf("config: %+v", cf.Config)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Fatalf("layers: %+v", m.Layers)
	}
	layer, ok := entries["blobs/sha256/"+m.Layers[0].Digest.Hex]
	if !ok {
		t.Fatal("the layer blob is missing")
	}
	files := untarGzipHeaders(t, layer)
	if files["pause"] != 0o755 || files["tmp/"] != 0o1777 || files["usr/local/bin/sleep -> /pause"] != 0o777 || files["usr/local/bin/"] != 0o755 {
		t.Errorf("layer entries and modes: %v", files)
	}

	// The same binaries give the same image: digests are reproducible.
	again, err := Build(spec, map[string]string{"pause": bin}, "amd64", "0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds of the same binary: %s and %s", d1, d2)
	}
}

func TestDynamicOrMissingBinariesAreRefused(t *testing.T) {
	spec := Spec{Name: "x", Files: []File{{"x", "/x"}}}
	if _, err := Build(spec, map[string]string{}, "amd64", "v"); err == nil || !strings.Contains(err.Error(), `no binary "x"`) {
		t.Errorf("missing binary: %v", err)
	}
	dyn, err := exec.LookPath("env")
	if err != nil {
		t.Fatal(err)
	}
	if err := requireStatic(dyn, mustRead(t, dyn)); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("%s (dynamically linked on this system): %v", dyn, err)
	}
	if err := requireStatic("script", []byte("#!/bin/sh\n")); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Errorf("script: %v", err)
	}
}

func TestEveryImageStartsOneOfItsFiles(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range append(slices.Clone(Images), SpiderpoolImages...) {
		if seen[s.Name] {
			t.Errorf("image %s listed twice", s.Name)
		}
		seen[s.Name] = true
		found := false
		for _, f := range s.Files {
			found = found || f.Dst == s.Entrypoint[0]
		}
		if !found {
			t.Errorf("image %s starts %s, which it does not contain", s.Name, s.Entrypoint[0])
		}
		for _, l := range s.Links {
			target := l.Target
			if !strings.HasPrefix(target, "/") {
				target = filepath.Join(filepath.Dir(l.Path), target)
			}
			ok := false
			for _, f := range s.Files {
				ok = ok || f.Dst == target
			}
			if !ok {
				t.Errorf("image %s: link %s points at %s, which the image does not contain", s.Name, l.Path, target)
			}
		}
	}
	for _, want := range []string{"underlink-webhook", "underlink-agent", "underlink-scheduler", "underlink-testapp", "pause", "multus-cni"} {
		if !seen[want] {
			t.Errorf("no image %s", want)
		}
	}
}

func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out[h.Name] = body
	}
}

func untarGzipHeaders(t *testing.T, gz []byte) map[string]int64 {
	t.Helper()
	l, err := gunzip(gz)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	tr := tar.NewReader(bytes.NewReader(l))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeSymlink {
			out[h.Name+" -> "+h.Linkname] = h.Mode
			continue
		}
		out[h.Name] = h.Mode
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gunzip(b []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// A peer's image is tagged with its own release, never silently with underlink's version.
func TestPeerImageNeedsItsOwnTag(t *testing.T) {
	err := run(Images, t.TempDir(), nil, nil, "ghcr.io/underlink", "0.1.0", "amd64", t.TempDir(), "multus-cni")
	if err == nil || !strings.Contains(err.Error(), "--image-tag multus-cni=VERSION") {
		t.Errorf("multus-cni without --image-tag: %v", err)
	}
}
