// Package test holds what underlink's tests and its Makefile share: the seed scenario's manifests as
// test data, the repository's layout, and (in sub-packages) real control planes and network test beds.
package test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"sigs.k8s.io/yaml"
)

// RepoRoot is the root of the underlink repository this package was compiled from.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// Path joins elements onto the repository root.
func Path(elem ...string) string {
	return filepath.Join(append([]string{RepoRoot()}, elem...)...)
}

// SeedManifest returns a manifest of the seed scenario (test/testdata/seed), byte for byte as the user
// wrote it in test/testdata/seed/spiderpool-submariner.md.
func SeedManifest(name string) ([]byte, error) {
	return os.ReadFile(Path("test", "testdata", "seed", name))
}

// DecodeSeed decodes the first YAML document of the seed manifest name into obj (a typed object, or a
// *map[string]any) strictly, so a field the mirrored type lacks fails the test instead of being dropped,
// and fails t when the file cannot be read or decoded.
func DecodeSeed(t testing.TB, name string, obj any) {
	t.Helper()
	raw, err := SeedManifest(name)
	if err != nil {
		t.Fatal(err)
	}
	doc, _, _ := bytes.Cut(raw, []byte("\n---\n"))
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		t.Fatalf("seed manifest %s: %v", name, err)
	}
}
