package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is every timestamp in the images, so the same binaries give the same digests.
var epoch = time.Unix(0, 0).UTC()

// File is one binary of an image: Src names it in the build's binary set, Dst is its path in the image.
type File struct {
	Src, Dst string
}

// Link is a symbolic link in an image: Path points at Target.
type Link struct {
	Path, Target string
}

// Spec is one image: its name (the last element of its reference), its files and how it starts.
type Spec struct {
	Name  string
	Files []File
	// Links name a multi-call binary by its other names (argv[0] picks the tool).
	Links      []Link
	Entrypoint []string
	// User is the image's default user; the chart sets its own per pod.
	User string
	// OwnTag: the image is a peer's release, tagged with that release's version (imagebuild --image-tag),
	// not with underlink's.
	OwnTag bool
	// Repo, when set, replaces --repo: a peer image under its upstream reference, so the peer's own
	// chart names it with its default values.
	Repo string
}

// Images are the tarballs `make images` writes: one per binary the chart or the local clusters run. The
// agent image carries the CNI plugins its init container installs on the host.
var Images = []Spec{
	{Name: "underlink-webhook", User: "65532:65532", Entrypoint: []string{"/usr/local/bin/underlink-webhook"},
		Files: []File{{"underlink-webhook", "/usr/local/bin/underlink-webhook"}}},
	{Name: "underlink-agent", User: "0:0", Entrypoint: []string{"/usr/local/bin/underlink-agent"},
		Files: []File{
			{"underlink-agent", "/usr/local/bin/underlink-agent"},
			{"underlink-cni-install", "/usr/local/bin/underlink-cni-install"},
			{"underlink-ipam-full", "/opt/underlink/cni/underlink-ipam-full"},
			{"underlink-ipam", "/opt/underlink/cni/underlink-ipam"},
			{"underlink-coordinator", "/opt/underlink/cni/underlink-coordinator"},
			// The reference macvlan under underlink's name: installing it never replaces the node's own
			// macvlan (cni/cniinstall), and the NADs name it (api/cniconf.MacvlanType).
			{"macvlan", "/opt/underlink/cni/underlink-macvlan"},
		}},
	{Name: "underlink-scheduler", User: "65532:65532", Entrypoint: []string{"/usr/local/bin/underlink-scheduler"},
		Files: []File{{"underlink-scheduler", "/usr/local/bin/underlink-scheduler"}}},
	{Name: "underlink-testapp", User: "0:0", Entrypoint: []string{"/usr/local/bin/underlink-testapp"},
		// The same binary as ip, ping and curl, for the seed's in-pod checks (test/cmd/underlink-testapp/tools.go).
		Files: []File{{"underlink-testapp", "/usr/local/bin/underlink-testapp"}, {"underlink-testapp", "/usr/local/bin/ip"},
			{"underlink-testapp", "/usr/local/bin/ping"}, {"underlink-testapp", "/usr/local/bin/curl"}}},
	{Name: "pause", User: "65535:65535", Entrypoint: []string{"/pause"},
		Files: []File{{"pause", "/pause"}}},
	// Multus' thin mode, built by hack/build-peers.sh from its release tree, at the paths its own
	// DaemonSet (deployments/multus-daemonset.yml) runs: /thin_entrypoint copies multus and writes the
	// node's configuration, the init container's /install_multus copies multus and passthru from
	// /usr/src/multus-cni/bin onto the node.
	{Name: "multus-cni", User: "0:0", OwnTag: true, Entrypoint: []string{"/thin_entrypoint"},
		Files: []File{
			{"thin_entrypoint", "/thin_entrypoint"},
			{"install_multus", "/install_multus"},
			{"multus", "/usr/src/multus-cni/bin/multus"},
			{"passthru", "/usr/src/multus-cni/bin/passthru"},
		}},
}

// SpiderpoolImages are Spiderpool v1.2.2's images, built from its release tree by hack/build-peers.sh
// (make spiderpool-images; not part of make images), under the references its chart (charts/spiderpool)
// names by default: ghcr.io/spidernet-io/spiderpool/<image>:v1.2.2. Each binary sits where the chart's
// commands run it (/usr/bin). The agent's postStart hook is a shell script (copy its CNI plugins onto the
// node), so its image carries Debian's static busybox as /bin/sh and the tools that script calls.
var SpiderpoolImages = []Spec{
	{Name: "spiderpool-agent", User: "0:0", OwnTag: true, Repo: "ghcr.io/spidernet-io/spiderpool",
		Entrypoint: []string{"/usr/bin/spiderpool-agent"},
		Files: []File{
			{"spiderpool-agent", "/usr/bin/spiderpool-agent"},
			{"spiderpool-ipam", "/usr/bin/spiderpool"},
			{"spiderpool-coordinator", "/usr/bin/coordinator"},
			{"spiderpool-ifacer", "/usr/bin/ifacer"},
			{"busybox", "/bin/busybox"},
		},
		Links: busyboxLinks("sh", "cp", "mv", "rm", "cat", "ls")},
	// The controller image also runs the post-install Job (spiderpool-init) and the pre-delete hook.
	{Name: "spiderpool-controller", User: "0:0", OwnTag: true, Repo: "ghcr.io/spidernet-io/spiderpool",
		Entrypoint: []string{"/usr/bin/spiderpool-controller"},
		Files: []File{
			{"spiderpool-controller", "/usr/bin/spiderpool-controller"},
			{"spiderpool-init", "/usr/bin/spiderpool-init"},
		}},
}

// busyboxLinks names /bin/busybox by each of tools.
func busyboxLinks(tools ...string) []Link {
	out := make([]Link, 0, len(tools))
	for _, t := range tools {
		out = append(out, Link{Path: "/bin/" + t, Target: "busybox"})
	}
	return out
}

// ImageSets are the lists imagebuild --set chooses from.
var ImageSets = map[string][]Spec{"underlink": Images, "spiderpool": SpiderpoolImages}

// Build makes the image of spec for linux/arch from the binaries in bins (Src → host path). Every
// binary must be a static ELF: the images have no libc.
func Build(spec Spec, bins map[string]string, arch, version string) (v1.Image, error) {
	layer, err := Layer(spec, bins)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = arch, "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.User = spec.User
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   spec.Name,
		"org.opencontainers.image.version": version,
		"org.opencontainers.image.source":  "https://github.com/underlink/underlink",
	}
	cf.History = []v1.History{{Created: v1.Time{Time: epoch}, CreatedBy: "underlink hack/imagebuild", Comment: spec.Name}}
	return mutate.ConfigFile(img, cf)
}

// Layer is the image's single layer: its directories, /tmp (1777, for libraries that want a temp dir),
// its binaries (0755) and links, owned by root, stamped with epoch.
func Layer(spec Spec, bins map[string]string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{"tmp": true}
	paths := make([]string, 0, len(spec.Files)+len(spec.Links))
	for _, f := range spec.Files {
		paths = append(paths, f.Dst)
	}
	for _, l := range spec.Links {
		paths = append(paths, l.Path)
	}
	for _, p := range paths {
		for d := path.Dir(strings.TrimPrefix(p, "/")); d != "." && d != ""; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted)
	for _, d := range sorted {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	files := append([]File(nil), spec.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Dst < files[j].Dst })
	for _, f := range files {
		src, ok := bins[f.Src]
		if !ok {
			return nil, fmt.Errorf("image %s: no binary %q was given (build it first: make images)", spec.Name, f.Src)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", spec.Name, err)
		}
		if err := requireStatic(src, b); err != nil {
			return nil, fmt.Errorf("image %s: %w", spec.Name, err)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Dst, "/"), Mode: 0o755, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	links := append([]Link(nil), spec.Links...)
	sort.Slice(links, func(i, j int) bool { return links[i].Path < links[j].Path })
	for _, l := range links {
		hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(l.Path, "/"), Linkname: l.Target, Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// requireStatic refuses an ELF with a program interpreter (a dynamically linked binary, e.g. one built
// with cgo), which would not start in an image without libc.
func requireStatic(p string, b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s is not an ELF binary: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; build it with CGO_ENABLED=0", p)
		}
	}
	return nil
}

// WriteOCIArchive writes img as an OCI image layout in a tar stream, the format `ctr images import`
// reads: oci-layout, index.json naming the image (io.containerd.image.name, the full reference, and
// org.opencontainers.image.ref.name, its tag) and the blobs. Entries are sorted and stamped with epoch.
func WriteOCIArchive(w io.Writer, ref name.Tag, img v1.Image) error {
	blobs := map[string][]byte{}
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	blobs[digest.Hex] = manifest
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	blobs[cfgName.Hex] = config
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		blobs[d.Hex] = b
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mt, Size: int64(len(manifest)), Digest: digest,
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture},
			Annotations: map[string]string{
				"io.containerd.image.name":          ref.Name(),
				"org.opencontainers.image.ref.name": ref.TagStr(),
			},
		}},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	put := func(name string, b []byte, mode int64, typ byte) error {
		h := &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}
		if typ == tar.TypeDir {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644, tar.TypeReg); err != nil {
		return err
	}
	if err := put("index.json", indexJSON, 0o644, tar.TypeReg); err != nil {
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := put(d, nil, 0o755, tar.TypeDir); err != nil {
			return err
		}
	}
	hexes := make([]string, 0, len(blobs))
	for h := range blobs {
		hexes = append(hexes, h)
	}
	sort.Strings(hexes)
	for _, h := range hexes {
		if err := put("blobs/sha256/"+h, blobs[h], 0o644, tar.TypeReg); err != nil {
			return err
		}
	}
	return tw.Close()
}
