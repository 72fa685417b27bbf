package manifest

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/test"
)

func TestDecodeTheSeedsManifests(t *testing.T) {
	d := NewDecoder()
	objs, err := d.ReadPaths([]string{test.Path("test", "testdata", "seed")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, o := range objs {
		refs = append(refs, o.Ref())
		if len(o.Warnings) > 0 {
			t.Errorf("%s: %v", o.Ref(), o.Warnings)
		}
	}
	want := "SpiderIPPool/cluster-a SpiderMultusConfig/kube-system/macvlan-conf SpiderIPPool/cluster-b SpiderMultusConfig/kube-system/macvlan-conf Deployment/default/test-app Service/default/test-app-svc"
	if got := strings.Join(refs, " "); got != want {
		t.Errorf("refs:\n got  %s\n want %s", got, want)
	}
	if p, ok := objs[0].Object.(*spiderv2beta1.SpiderIPPool); !ok || *p.Spec.Gateway != "172.110.0.1" {
		t.Errorf("pool: %#v", objs[0].Object)
	}
	if dep, ok := objs[4].Object.(*appsv1.Deployment); !ok || dep.Spec.Template.Annotations["v1.multus-cni.io/default-network"] != "kube-system/macvlan-confg" {
		t.Errorf("deployment: %#v", objs[4].Object)
	}
	if !strings.HasSuffix(objs[5].Source, "deployment-and-service.yaml#2") {
		t.Errorf("source %s", objs[5].Source)
	}
}

func TestDecodeForms(t *testing.T) {
	d := NewDecoder()
	in := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"json"}}
---
apiVersion: v1
kind: PodList
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: x}
- apiVersion: example.com/v1
  kind: Widget
  metadata: {name: w}
---
apiVersion: v1
kind: Pod
metadata: {name: dup}
metadata2: {}
spec:
  nodeName: a
---
apiVersion: v1
kind: Namespace
metadata: {name: team}
`
	objs, err := d.Decode(strings.NewReader(in), "in")
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, o := range objs {
		refs = append(refs, o.Ref()+"@"+o.Source)
	}
	want := "Pod/default/json@in#1 Pod/x/a@in#2[0] Widget/default/w@in#2[1] Pod/default/dup@in#3 Namespace/team@in#4"
	if got := strings.Join(refs, " "); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, ok := objs[0].Object.(*corev1.Pod); !ok {
		t.Errorf("JSON document not typed: %T", objs[0].Object)
	}
	if _, ok := objs[2].Object.(*unstructured.Unstructured); !ok {
		t.Errorf("unknown kind: %T", objs[2].Object)
	}
	if len(objs[3].Warnings) != 1 || !strings.Contains(objs[3].Warnings[0], `unknown field "metadata2"`) {
		t.Errorf("warnings: %v", objs[3].Warnings)
	}
	for _, bad := range []string{"kind: Pod\n", "a: [\n", "[1, 2]\n", "apiVersion: v1\nkind: Pod\nmetadata: 5\n"} {
		if _, err := d.Decode(strings.NewReader(bad), "bad"); err == nil || !strings.Contains(err.Error(), "bad#1") {
			t.Errorf("Decode(%q): %v", bad, err)
		}
	}
}

// Documents, concatenated JSON objects and List items each know their file, document and line, and
// the line of each of their fields.
func TestPositions(t *testing.T) {
	in := `# leading comment
---

apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: p
spec:
  subnet: 10.9.1.0/24
  ips:
  - 10.9.1.1-10.9.1.9
  - 10.9.1.20
---
{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"name": "a", "annotations": {"v1.multus-cni.io/default-network": "x/y"}}}
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: c}
- apiVersion: v1
  kind: Pod
  metadata:
    name: d
    annotations:
      k8s.v1.cni.cncf.io/networks: net1
`
	objs, err := NewDecoder().Decode(strings.NewReader(in), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type pos struct {
		source    string
		doc, line int
		field     string
		fieldLine int
	}
	want := []pos{
		{"f.yaml#2", 2, 4, "spec.ips[1]", 12},
		{"f.yaml#3", 3, 14, "metadata.annotations[v1.multus-cni.io/default-network]", 15},
		{"f.yaml#4", 4, 16, "spec.containers", 16},
		{"f.yaml#5[0]", 5, 18, "", 21},
		{"f.yaml#5[1]", 5, 18, "metadata.annotations[k8s.v1.cni.cncf.io/networks]", 29},
	}
	if len(objs) != len(want) {
		t.Fatalf("%d objects, want %d", len(objs), len(want))
	}
	for i, w := range want {
		o := objs[i]
		got := pos{o.Source, o.Document, o.Line, w.field, o.LineOf(w.field)}
		if got != w || o.File != "f.yaml" {
			t.Errorf("object %d (%s): got %+v, want %+v", i, o.Ref(), got, w)
		}
	}
	if l := objs[0].LineOf("spec.gateway"); l != 8 {
		t.Errorf("a field not written is placed on its parent's line: %d, want 8", l)
	}
}

// Concatenated JSON objects are documents of their own; a broken one is an error naming it.
func TestConcatenatedJSON(t *testing.T) {
	d := NewDecoder()
	objs, err := d.Decode(strings.NewReader(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}
{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}`), "ns.json")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, fmt.Sprintf("%s@%s:%d", o.Ref(), o.Source, o.Line))
	}
	if want := "Namespace/a@ns.json#1:1 Namespace/b@ns.json#2:1 Namespace/c@ns.json#3:2"; strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	if _, err := d.Decode(strings.NewReader(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}{"kind":"Namespace"}`), "ns.json"); err == nil || !strings.Contains(err.Error(), "ns.json#2: not a Kubernetes object") {
		t.Errorf("a broken second object: %v", err)
	}
}

// Arbitrary bytes decode or fail with an error naming the source; never a panic. Every object has a
// line inside the input, and so has each of its fields.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n"))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: []}]\n"))
	f.Add([]byte("---\n---\n{\"apiVersion\":\"spiderpool.spidernet.io/v2beta1\",\"kind\":\"SpiderIPPool\",\"spec\":{\"ips\":5}}"))
	f.Add([]byte("apiVersion: submariner.io/v1\nkind: Cluster\nspec: {cluster_cidr: [1]}\n"))
	f.Add([]byte("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"}}\n{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}"))
	f.Add([]byte("# c\n--- # c\n\napiVersion: v1\nkind: Pod\nmetadata:\n  annotations: {a.b/c: d}\n"))
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, b []byte) {
		objs, err := d.Decode(strings.NewReader(string(b)), "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz#") {
				t.Fatalf("error without the source: %v", err)
			}
			return
		}
		lines := strings.Count(string(b), "\n") + 1
		for _, o := range objs {
			if o.Object == nil || o.Kind == "" {
				t.Fatalf("empty object from %q", b)
			}
			for _, p := range []string{"", "metadata.name", "metadata.annotations[a.b/c]", "spec.ips[3]", "items[0]"} {
				if l := o.LineOf(p); l < 1 || l > lines {
					t.Fatalf("%s of %s on line %d of %d: %q", p, o.Source, l, lines, b)
				}
			}
		}
	})
}
