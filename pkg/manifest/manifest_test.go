package manifest

import (
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

// Arbitrary bytes decode or fail with an error naming the source; never a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n"))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: []}]\n"))
	f.Add([]byte("---\n---\n{\"apiVersion\":\"spiderpool.spidernet.io/v2beta1\",\"kind\":\"SpiderIPPool\",\"spec\":{\"ips\":5}}"))
	f.Add([]byte("apiVersion: submariner.io/v1\nkind: Cluster\nspec: {cluster_cidr: [1]}\n"))
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, b []byte) {
		objs, err := d.Decode(strings.NewReader(string(b)), "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz#") {
				t.Fatalf("error without the source: %v", err)
			}
			return
		}
		for _, o := range objs {
			if o.Object == nil || o.Kind == "" {
				t.Fatalf("empty object from %q", b)
			}
		}
	})
}
