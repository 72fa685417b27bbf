package rules

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

// sampleValues are values of the user's sample (test/testdata/seed) that a message could only hold by
// copying them: a message or fix is built from the user's own objects, never from the sample's.
var sampleValues = []string{"172.110.", "172.111.", "10.233.", "10.243.", "macvlan-conf", "cluster-a", "cluster-b", "ens224"}

// No string of the rules' code holds a sample value, so no message can.
func TestMessagesHoldNoSampleValues(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	scanned := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		scanned++
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatalf("%s: %v", fset.Position(lit.Pos()), err)
			}
			for _, v := range sampleValues {
				if strings.Contains(s, v) {
					t.Errorf("%s: %q holds the sample's %q; build the message from the user's values", fset.Position(lit.Pos()), s, v)
				}
			}
			return true
		})
	}
	if scanned < 5 {
		t.Fatalf("scanned %d files", scanned)
	}
}

// Messages and fixes name the user's own values: a world unlike the sample (dc1, dc2, 10.20.0.0/16,
// eth7, shop/net) gets fixes built from it, and no sample value appears.
func TestMessagesNameTheUsersValues(t *testing.T) {
	dc1 := cluster("dc1", "10.10.0.0/16", "10.96.0.0/18")
	dc2 := cluster("dc2", "10.20.0.0/16", "10.97.0.0/18")
	netA := config("shop", "net-a", []string{"p1"}, "10.20.0.0/16", "10.97.0.0/18")
	netA.Spec.MacvlanConfig.Master = []string{"eth7"}
	world := func(pools ...spiderv2beta1.SpiderIPPool) *World {
		return NewWorld(Input{Clusters: []submarinerv1.Cluster{dc1, dc2}, LocalCluster: "dc1", Pools: pools,
			MultusConfigs: []spiderv2beta1.SpiderMultusConfig{netA}})
	}
	noMaster := config("shop", "net-b", nil)
	noMaster.Spec.MacvlanConfig.Master = nil
	badHijack := config("shop", "net-c", nil, "10.20.0.0/33", "0.0.0.0/0")
	pod := func(annos map[string]string, host bool) []Violation {
		meta := metav1.ObjectMeta{Name: "web", Namespace: "shop", Annotations: annos}
		return CheckPod(world(), "shop", &meta, &corev1.PodSpec{HostNetwork: host}, field.NewPath("spec", "template"))
	}
	tests := []struct {
		name string
		vs   []Violation
		want []string
	}{
		{"a reversed range", CheckPool(world(), ptr(pool("p1", "10.10.1.0/24", "", []string{"10.10.1.200-10.10.1.10"})), nil),
			[]string{"range start 10.10.1.200 is after its end 10.10.1.10; write 10.10.1.10-10.10.1.200"}},
		{"an entry that is no address", CheckPool(world(), ptr(pool("p1", "10.10.1.0/24", "", []string{"ten"})), nil),
			[]string{"write an address or a range inside 10.10.1.0/24, such as 10.10.1.1-10.10.1.254"}},
		{"a /33 subnet", CheckPool(world(), ptr(pool("p1", "10.10.1.0/33", "", []string{"10.10.1.1-10.10.1.100"})), nil),
			[]string{`prefix length "33" is not a number from 0 to 32`, "e.g. 10.10.1.0/25, the smallest CIDR that holds spec.ips"}},
		{"a subnet with host bits", CheckPool(world(), ptr(pool("p1", "10.10.1.7/24", "", nil)), nil), []string{"write 10.10.1.0/24 if that network is meant"}},
		{"no subnet", CheckPool(world(), ptr(pool("p1", "", "", []string{"10.10.4.1-10.10.4.9"})), nil), []string{"e.g. 10.10.4.0/28, the smallest CIDR"}},
		{"a gateway that is no address", CheckPool(world(), ptr(pool("p1", "10.10.1.0/24", "gw", []string{"10.10.1.1-10.10.1.100"})), nil),
			[]string{"inside 10.10.1.0/24 (e.g. 10.10.1.254, not in spec.ips)"}},
		{"a route without prefix length", CheckPool(world(), ptr(pool("p1", "10.10.1.0/24", "", nil, func(p *spiderv2beta1.SpiderIPPool) {
			p.Spec.Routes = []spiderv2beta1.Route{{Dst: "10.30.0.0", Gw: "10.10.1.1"}}
		})), nil), []string{"has no prefix length; write 10.30.0.0/LENGTH"}},
		{"a config without master", CheckMultusConfig(world(), &noMaster), []string{"as SpiderMultusConfig shop/net-a has: [eth7]"}},
		{"hijack entries that do not parse, or /0", CheckMultusConfig(world(), &badHijack),
			[]string{"list the remote clusters' pod and service CIDRs: 10.20.0.0/16, 10.97.0.0/18"}},
		{"a default network in the wrong namespace", pod(map[string]string{nadv1.DefaultNetworkAnnotation: "team/net-a"}, false),
			[]string{"did you mean shop/net-a? (net-a is in namespace shop, not team)"}},
		{"a bare default network", pod(map[string]string{nadv1.DefaultNetworkAnnotation: "net-a"}, false),
			[]string{"did you mean shop/net-a? (a name without a namespace resolves in kube-system)"}},
		{"a bad default network", pod(map[string]string{nadv1.DefaultNetworkAnnotation: "a/b/c"}, false), []string{"e.g. shop/net-a"}},
		{"JSON on several lines", pod(map[string]string{nadv1.NetworksAnnotation: "[\n  {\"name\": \"nope\",\n   \"namespace\": \"shop\"}\n]"}, false),
			[]string{`Not found: "[{\"name\":\"nope\",\"namespace\":\"shop\"}]"`}},
		{"hostNetwork", pod(map[string]string{nadv1.DefaultNetworkAnnotation: "shop/net-a"}, true), []string{"spec.template.spec.hostNetwork: Invalid value: true"}},
		{"a default network that does not parse", CheckDefaultNetwork(NewWorld(Input{DefaultNetwork: "a,b", MultusConfigs: []spiderv2beta1.SpiderMultusConfig{netA}})),
			[]string{"e.g. shop/net-a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lines []string
			for _, v := range tt.vs {
				lines = append(lines, v.String())
			}
			all := strings.Join(lines, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("no %q in:\n%s", w, all)
				}
			}
			for _, v := range sampleValues {
				if strings.Contains(all, v) {
					t.Errorf("the sample's %q in:\n%s", v, all)
				}
			}
			if strings.Contains(all, "Invalid value: null") || strings.Contains(all, `\n`) && !strings.Contains(tt.name, "JSON") {
				t.Errorf("a value echoed badly:\n%s", all)
			}
		})
	}
}
