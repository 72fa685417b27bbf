package nodes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/test"
)

// Multus is installed on the local clusters the way its users install it: Multus' own thin-mode
// DaemonSet (deployments/multus-daemonset.yml of the release tree that hack/build-peers.sh verified and
// unpacked), the mode Spiderpool's chart installs, with the image `make images` built from that tree.
const (
	// MultusImageName is the last path element of the local Multus image's repository.
	MultusImageName = "multus-cni"
	// MultusManifestPath is the thin DaemonSet's manifest in Multus' release tree.
	MultusManifestPath = "deployments/multus-daemonset.yml"
	// MultusNamespace, MultusDaemonSet and MultusClusterRole are the objects of that manifest the tests
	// wait for, read logs of, or take rights from.
	MultusNamespace   = "kube-system"
	MultusDaemonSet   = "kube-multus-ds"
	MultusClusterRole = "multus"
	// MultusConfFile is what Multus' thin_entrypoint writes into the node's CNIConfDir when it wraps a
	// primary network of CNI 1.0.0 or later; MultusConfReady is the line it logs once it has.
	MultusConfFile  = "00-multus.conflist"
	MultusConfReady = "multus config file is created."
)

// MultusTree is the unpacked Multus release tree in the tool cache, as hack/build-peers.sh (which holds
// the pinned version and checksum) names it; it unpacks the tree first when needed, and fails with the
// script's message (what to put into $UNDERLINK_PEERS) when the release tarball is not there.
func MultusTree() (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(test.Path("hack", "build-peers.sh"), "--tree", "multus")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/build-peers.sh --tree multus: %w\n%s", err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(dir, MultusManifestPath)); err != nil {
		return "", fmt.Errorf("the Multus tree %s has no %s: %w", dir, MultusManifestPath, err)
	}
	return dir, nil
}

// MultusManifest reads Multus' thin DaemonSet manifest from tree and points it at image, which the nodes
// imported from `make images`. It returns the manifest to apply and one line per change, for the reader.
//
// The changes, each for a reason of this bed and nothing else:
//   - every container's image: the manifest names ghcr.io/k8snetworkplumbingwg/multus-cni:snapshot, which
//     no node can pull (no registry here); the local image carries the v4.3.0 binaries at the paths the
//     manifest's commands use (/thin_entrypoint, /install_multus, /usr/src/multus-cni/bin/).
//   - every container's imagePullPolicy Never: the image is imported into the nodes, never pulled.
func MultusManifest(tree, image string) ([]byte, []string, error) {
	src, err := os.ReadFile(filepath.Join(tree, MultusManifestPath))
	if err != nil {
		return nil, nil, err
	}
	objs, err := decodeManifest(src)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", MultusManifestPath, err)
	}
	var changes []string
	found := false
	for _, o := range objs {
		if o.GetKind() != "DaemonSet" || o.GetName() != MultusDaemonSet {
			continue
		}
		found = true
		for _, field := range []string{"initContainers", "containers"} {
			cs, _, err := unstructured.NestedSlice(o.Object, "spec", "template", "spec", field)
			if err != nil {
				return nil, nil, fmt.Errorf("DaemonSet %s spec.template.spec.%s: %w", MultusDaemonSet, field, err)
			}
			for i, c := range cs {
				m, ok := c.(map[string]any)
				if !ok {
					return nil, nil, fmt.Errorf("DaemonSet %s spec.template.spec.%s[%d] is not an object", MultusDaemonSet, field, i)
				}
				changes = append(changes, fmt.Sprintf("DaemonSet %s/%s %s %s: image %v → %s, imagePullPolicy Never (imported, not pulled)",
					o.GetNamespace(), o.GetName(), strings.TrimSuffix(field, "s"), m["name"], m["image"], image))
				m["image"] = image
				m["imagePullPolicy"] = "Never"
			}
			if err := unstructured.SetNestedSlice(o.Object, cs, "spec", "template", "spec", field); err != nil {
				return nil, nil, err
			}
		}
	}
	if !found {
		return nil, nil, fmt.Errorf("%s has no DaemonSet %s", MultusManifestPath, MultusDaemonSet)
	}
	var out bytes.Buffer
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, nil, err
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	return out.Bytes(), changes, nil
}

// decodeManifest reads every object of a multi-document YAML manifest.
func decodeManifest(b []byte) ([]*unstructured.Unstructured, error) {
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := d.Decode(&m); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}
