package nodes

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/underlink/underlink/test"
)

// ImagesDir is where `make images` writes its tarballs; UNDERLINK_IMAGES_DIR overrides it.
func ImagesDir() string {
	if d := os.Getenv("UNDERLINK_IMAGES_DIR"); d != "" {
		return d
	}
	return test.Path("_output", "images")
}

// Image is one image tarball and the references it carries.
type Image struct {
	Tarball string
	Refs    []string
}

// FindImages reads every *.tar in dir, failing with the command that makes them when there is none.
func FindImages(dir string) ([]Image, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no image tarballs in %s: run `make images` (it builds the pause image, the test app and underlink's images)", dir)
	}
	slices.Sort(files)
	var out []Image
	for _, f := range files {
		refs, err := ImageRefs(f)
		if err != nil {
			return nil, err
		}
		out = append(out, Image{Tarball: f, Refs: refs})
	}
	return out, nil
}

// PickImage returns the first reference whose repository's last path element is name (e.g. "pause" in
// "underlink.local/pause:3.10"), or an error that lists what there is.
func PickImage(images []Image, name string) (string, error) {
	var all []string
	for _, im := range images {
		for _, r := range im.Refs {
			all = append(all, r)
			if repoBase(r) == name {
				return r, nil
			}
		}
	}
	return "", fmt.Errorf("no %q image among %v: run `make images`", name, all)
}

// repoBase is the last path element of a reference's repository, without tag or digest.
func repoBase(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		ref = ref[i+1:]
	}
	if i := strings.IndexByte(ref, ':'); i >= 0 {
		ref = ref[:i]
	}
	return ref
}

// Tarballs lists the images' files.
func Tarballs(images []Image) []string {
	out := make([]string, 0, len(images))
	for _, im := range images {
		out = append(out, im.Tarball)
	}
	return out
}
