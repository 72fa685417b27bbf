// Package controlplane runs real Kubernetes control planes for underlink's tests and local clusters:
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler v1.37.2, built once per machine from
// the tool modules under hack/tools into $UNDERLINK_CACHE/bin by hack/build-tools.sh (`make tools`).
package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
)

// CacheDir is $UNDERLINK_CACHE, by default ~/.cache/underlink.
func CacheDir() string {
	if d := os.Getenv("UNDERLINK_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "underlink")
}

// BinDir is where hack/build-tools.sh puts the binaries it builds.
func BinDir() string { return filepath.Join(CacheDir(), "bin") }

// WhereaboutsCRDs are the paths of whereabouts' CRDs (IPPool, OverlappingRangeIPReservation), which
// hack/build-tools.sh whereabouts copies from its module release next to its binary.
func WhereaboutsCRDs() []string {
	dir := filepath.Join(CacheDir(), "crds", "whereabouts")
	return []string{
		filepath.Join(dir, "whereabouts.cni.cncf.io_ippools.yaml"),
		filepath.Join(dir, "whereabouts.cni.cncf.io_overlappingrangeipreservations.yaml"),
	}
}

// Binary returns the path of a cached binary, or an error that says how to build it.
func Binary(name string) (string, error) {
	p := filepath.Join(BinDir(), name)
	st, err := os.Stat(p)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not built at %s: run `make tools` (or hack/build-tools.sh %s); the first build of the Kubernetes components takes several minutes", name, p, name)
	}
	return p, nil
}
