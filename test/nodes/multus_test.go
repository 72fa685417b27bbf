package nodes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A manifest shaped like Multus' thin DaemonSet (written here, not Multus' own file): MultusManifest
// changes the DaemonSet's images and pull policies, says so line by line, and keeps every other object.
func TestMultusManifestPointsTheDaemonSetAtTheLocalImage(t *testing.T) {
	tree := t.TempDir()
	src := `---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: multus
  namespace: kube-system
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-multus-ds
  namespace: kube-system
spec:
  template:
    spec:
      hostNetwork: true
      containers:
      - name: kube-multus
        image: registry.example/multus-cni:snapshot
        command: ["/thin_entrypoint"]
      initContainers:
      - name: install-multus-binary
        image: registry.example/multus-cni:snapshot
        command: ["/install_multus"]
`
	if err := os.MkdirAll(filepath.Join(tree, "deployments"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, MultusManifestPath), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, changes, err := MultusManifest(tree, "ghcr.io/underlink/multus-cni:v4.3.0")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeManifest(out)
	if err != nil || len(objs) != 2 || objs[0].GetKind() != "ServiceAccount" {
		t.Fatalf("objects %v, %v", objs, err)
	}
	s := string(out)
	if strings.Count(s, "image: ghcr.io/underlink/multus-cni:v4.3.0") != 2 || strings.Count(s, "imagePullPolicy: Never") != 2 ||
		strings.Contains(s, "snapshot") || !strings.Contains(s, "/thin_entrypoint") || !strings.Contains(s, "hostNetwork: true") {
		t.Errorf("manifest:\n%s", s)
	}
	if len(changes) != 2 || !strings.Contains(changes[0], "install-multus-binary") || !strings.Contains(changes[1], "registry.example/multus-cni:snapshot → ghcr.io/underlink/multus-cni:v4.3.0") {
		t.Errorf("changes: %q", changes)
	}
	if err := os.WriteFile(filepath.Join(tree, MultusManifestPath), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := MultusManifest(tree, "i"); err == nil || !strings.Contains(err.Error(), "no DaemonSet kube-multus-ds") {
		t.Errorf("manifest without the DaemonSet: %v", err)
	}
}
