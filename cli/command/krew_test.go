package command

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/test"
)

// The krew manifest names the plugin after its binary, as krew requires (kubectl-NAME), and has a
// platform for each archive `make krew-archive` builds, each archive holding that binary.
func TestKrewManifest(t *testing.T) {
	raw, err := os.ReadFile(test.Path("deploy", "krew", "underlink.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Version          string `json:"version"`
			Homepage         string `json:"homepage"`
			ShortDescription string `json:"shortDescription"`
			Description      string `json:"description"`
			Platforms        []struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				URI    string `json:"uri"`
				SHA256 string `json:"sha256"`
				Bin    string `json:"bin"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || "kubectl-"+m.Metadata.Name != PluginName ||
		m.Spec.Version != "VERSION" || m.Spec.ShortDescription == "" || len(m.Spec.ShortDescription) > 80 {
		t.Errorf("manifest: %+v", m)
	}
	mk, err := os.ReadFile(test.Path("hack", "make", "cli.mk"))
	if err != nil {
		t.Fatal(err)
	}
	built := strings.Fields(regexp.MustCompile(`(?m)^KREW_PLATFORMS \?= (.*)$`).FindStringSubmatch(string(mk))[1])
	var listed []string
	for _, p := range m.Spec.Platforms {
		os, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		listed = append(listed, os+"/"+arch)
		archive := PluginName + "_" + os + "_" + arch + ".tar.gz"
		if p.Bin != PluginName || !strings.HasSuffix(p.URI, "/VERSION/"+archive) || p.SHA256 != "SHA256_"+os+"_"+arch {
			t.Errorf("platform %s/%s: bin %s, uri %s, sha256 %s", os, arch, p.Bin, p.URI, p.SHA256)
		}
	}
	if !slices.Equal(listed, built) {
		t.Errorf("the manifest's platforms %v are not the archives make krew-archive builds %v", listed, built)
	}
}
