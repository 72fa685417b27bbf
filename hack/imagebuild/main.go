// Command imagebuild packs underlink's static binaries into OCI image tarballs without a Docker engine
// (github.com/google/go-containerregistry), one per image of Images, for `ctr images import`:
//
//	imagebuild --bin _output/images/bin --binary macvlan=$CACHE/bin/macvlan \
//	  --binary multus=$CACHE/bin/multus ... --image-tag multus-cni=v4.3.0 \
//	  --repo ghcr.io/underlink --tag 0.1.0 --out _output/images
//
// The binaries are built beforehand (make images: CGO_ENABLED=0 go build; hack/build-peers.sh for
// Multus'); each must be static.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// nameValues is a repeatable name=value flag.
type nameValues map[string]string

func (b nameValues) String() string { return fmt.Sprint(map[string]string(b)) }
func (b nameValues) Set(v string) error {
	k, p, ok := strings.Cut(v, "=")
	if !ok || k == "" || p == "" {
		return fmt.Errorf("want name=path, got %q", v)
	}
	b[k] = p
	return nil
}

func main() {
	bins := nameValues{}
	tags := nameValues{}
	binDir := flag.String("bin", "", "directory holding the binaries, by name")
	flag.Var(bins, "binary", "a binary elsewhere, as name=path (repeatable; e.g. macvlan from the tool cache)")
	flag.Var(tags, "image-tag", "the tag of an image that carries its own release's version, as image=tag (repeatable; e.g. multus-cni=v4.3.0)")
	repo := flag.String("repo", "ghcr.io/underlink", "repository prefix of the image references")
	tag := flag.String("tag", "dev", "tag of every image")
	arch := flag.String("arch", runtime.GOARCH, "architecture the binaries were built for")
	out := flag.String("out", "_output/images", "directory the tarballs are written to")
	only := flag.String("only", "", "comma-separated image names to build (default: all)")
	set := flag.String("set", "underlink", "the images to build: underlink (make images) or spiderpool (make spiderpool-images)")
	flag.Parse()
	specs, ok := ImageSets[*set]
	if !ok {
		fmt.Fprintf(os.Stderr, "imagebuild: no image set %q (known: underlink, spiderpool)\n", *set)
		os.Exit(2)
	}
	if err := run(specs, *binDir, bins, tags, *repo, *tag, *arch, *out, *only); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func run(specs []Spec, binDir string, bins, tags map[string]string, repo, tag, arch, out, only string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	for _, spec := range specs {
		if len(want) > 0 && !want[spec.Name] {
			continue
		}
		paths := map[string]string{}
		for _, f := range spec.Files {
			if p, ok := bins[f.Src]; ok {
				paths[f.Src] = p
			} else if binDir != "" {
				paths[f.Src] = filepath.Join(binDir, f.Src)
			}
		}
		imageTag := tag
		if spec.OwnTag {
			if imageTag = tags[spec.Name]; imageTag == "" {
				return fmt.Errorf("image %s carries its release's version: give it with --image-tag %s=VERSION", spec.Name, spec.Name)
			}
		}
		imageRepo := repo
		if spec.Repo != "" {
			imageRepo = spec.Repo
		}
		ref, err := name.NewTag(imageRepo+"/"+spec.Name+":"+imageTag, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("image %s: reference: %w", spec.Name, err)
		}
		img, err := Build(spec, paths, arch, imageTag)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := WriteOCIArchive(&buf, ref, img); err != nil {
			return fmt.Errorf("image %s: %w", spec.Name, err)
		}
		p := filepath.Join(out, spec.Name+".tar")
		if err := os.WriteFile(p+".tmp", buf.Bytes(), 0o644); err != nil {
			return err
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			return err
		}
		d, _ := img.Digest()
		fmt.Printf("%s %s %s (%d MiB)\n", ref.Name(), d, p, buf.Len()>>20)
	}
	return nil
}
