//go:build integration

package chart

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/integration/bed"
)

// chartNamespace is where the tests install the chart, as hack/install-chart.sh does.
const chartNamespace = "underlink-system"

func chartDir() string { return test.Path("deploy", "helm", "underlink") }

// chartRunTool runs a cached binary (helm, kubectl) with its own Helm home, so tests leave no state in $HOME.
func chartRunTool(t *testing.T, tool string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := bed.Tool(t, tool, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// chartMustTool runs a tool and fails the test, with its stderr, if it fails.
func chartMustTool(t *testing.T, tool string, args ...string) string {
	t.Helper()
	out, errOut, err := chartRunTool(t, tool, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, errOut)
	}
	return out
}

// renderChart runs `helm template` as an install into chartNamespace with extra flags (--set, --api-versions).
func renderChart(t *testing.T, flags ...string) []byte {
	t.Helper()
	return []byte(chartMustTool(t, "helm", append([]string{"template", "underlink", chartDir(), "--namespace", chartNamespace}, flags...)...))
}

// chartObjects splits a multi-document manifest into objects, skipping empty documents.
func chartObjects(t *testing.T, manifest []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	for {
		var m map[string]any
		err := d.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("rendered manifest does not parse: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// chartFind returns the one rendered object of kind and name, failing the test when there is not exactly one.
func chartFind(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var hits []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			hits = append(hits, o)
		}
	}
	if len(hits) != 1 {
		t.Fatalf("rendered chart has %d %s named %q, want 1", len(hits), kind, name)
	}
	return hits[0]
}

// chartDecodeStrict converts a rendered object into a typed one, failing on any field the type does not have
// (a typo in the chart would otherwise vanish silently).
func chartDecodeStrict(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	b, err := yaml.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s %s does not decode strictly into %T: %v", o.GetKind(), o.GetName(), into, err)
	}
}

// args returns a container's arguments as flag name → values (--name=value).
func chartFlagValues(args []string) map[string][]string {
	out := map[string][]string{}
	for _, a := range args {
		name, value, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		out[name] = append(out[name], value)
	}
	return out
}
