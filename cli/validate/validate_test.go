package validate

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/test/admissioncases"
	"github.com/underlink/underlink/pkg/manifest"
)

// The shared case table, offline. The webhook's integration test applies the same cases to a real
// apiserver and compares with the same expectations, so the two agree on every case.
func TestSharedCases(t *testing.T) {
	all, err := admissioncases.Load(admissioncases.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 10 {
		t.Fatalf("only %d cases loaded", len(all))
	}
	for _, c := range all {
		t.Run(c.Name, func(t *testing.T) {
			rep := Evaluate(c.Objects, Options{LocalCluster: c.LocalCluster})
			seen := map[string]int{}
			for _, res := range rep.Results {
				if !res.Checked {
					continue
				}
				exps := c.Expected(res.Ref)
				n := seen[res.Ref]
				seen[res.Ref]++
				if n >= len(exps) {
					t.Errorf("%s (%s) has no expectation; got:\n%s", res.Ref, res.Source, strings.Join(res.Lines(), "\n"))
					continue
				}
				if err := exps[n].Check(res.Verdict, strings.Join(res.Lines(), "\n")); err != nil {
					t.Error(err)
				}
			}
			for _, e := range c.Expect {
				if seen[e.Object] == 0 {
					t.Errorf("%s was expected but not checked", e.Object)
				}
			}
		})
	}
}

func seedPaths(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, test.Path("test", "testdata", "seed", n))
	}
	return out
}

// The acceptance run: the seed's cluster-a manifests plus the Cluster objects, as a CI pipeline would.
func TestRunOverTheSeedsManifests(t *testing.T) {
	clusters := filepath.Join(admissioncases.Dir(), "_shared", "clusters.yaml")
	paths := append([]string{clusters}, seedPaths("cluster-a-ippool.yaml", "cluster-a-multusconfig.yaml", "deployment-and-service.yaml")...)
	var out, errOut bytes.Buffer
	code := Run(append(paths[:0:0], append([]string{"-"}, paths[1:]...)...), Options{LocalCluster: "cluster-a"}, mustOpen(t, clusters), &out, &errOut)
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	wantPrefixes := []string{
		"ALLOW Cluster/submariner-operator/cluster-a: local cluster cluster-a",
		"ALLOW Cluster/submariner-operator/cluster-b: remote cluster cluster-b",
		`DENY SpiderIPPool/cluster-a: spec.gateway: Invalid value: "172.110.0.1": outside spec.subnet 172.110.1.0/24`,
		`WARN SpiderMultusConfig/kube-system/macvlan-conf: spec.macvlan.ippools.ipv4[0]: Not found: "cluster-a"`,
		`DENY Deployment/default/test-app: spec.template.metadata.annotations[v1.multus-cni.io/default-network]: Not found: "kube-system/macvlan-confg"`,
		"ALLOW Service/default/test-app-svc: no underlink rule applies to this kind",
	}
	if len(lines) != len(wantPrefixes) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(wantPrefixes), out.String())
	}
	for i, p := range wantPrefixes {
		if !strings.HasPrefix(lines[i], p) {
			t.Errorf("line %d:\n got  %s\n want %s…", i, lines[i], p)
		}
	}
	if !strings.Contains(out.String(), "widen spec.subnet to 172.110.0.0/23") || !strings.Contains(out.String(), "did you mean kube-system/macvlan-conf?") {
		t.Errorf("fixes missing:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "local cluster cluster-a given") {
		t.Errorf("stderr: %s", errOut.String())
	}
}

// treeDir lays out the corrected seed in a tree whose lexical order is apply order, with a file kubectl
// would not read.
func treeDir(t *testing.T) string {
	dir := t.TempDir()
	copyTo := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyTo(filepath.Join(admissioncases.Dir(), "_shared", "clusters.yaml"), filepath.Join(dir, "0-clusters.yaml"))
	copyTo(filepath.Join(admissioncases.Dir(), "_shared", "pool-cluster-a-fixed.yaml"), filepath.Join(dir, "1-net", "a-pool.yml"))
	copyTo(seedPaths("cluster-a-multusconfig.yaml")[0], filepath.Join(dir, "1-net", "b-config.yaml"))
	copyTo(seedPaths("deployment-and-service.yaml")[0], filepath.Join(dir, "2-app.yaml"))
	copyTo(seedPaths("deployment-and-service.yaml")[0], filepath.Join(dir, "README.md"))
	return dir
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fixed := filepath.Join(admissioncases.Dir(), "_shared", "pool-cluster-a-fixed.yaml")
	tests := []struct {
		name   string
		paths  []string
		code   int
		stdout string
		stderr string
	}{
		{"admitted with a warning (no clusters)", []string{fixed}, 0, "WARN SpiderIPPool/cluster-a: no Submariner Cluster objects found, alignment unchecked", ""},
		{"a directory, recursively, in lexical order", []string{treeDir(t)}, 1,
			"ALLOW Cluster/submariner-operator/cluster-a: local cluster cluster-a: cluster_cidr 172.110.0.0/16, service_cidr 10.233.0.0/18\n" +
				"ALLOW Cluster/submariner-operator/cluster-b: remote cluster cluster-b: cluster_cidr 172.111.0.0/16, service_cidr 10.243.0.0/18\n" +
				"ALLOW SpiderIPPool/cluster-a: passes every underlink rule\n" +
				"ALLOW SpiderMultusConfig/kube-system/macvlan-conf: passes every underlink rule\n" +
				"DENY Deployment/default/test-app: spec.template.metadata.annotations", ""},
		{"no paths", nil, 2, "", "no manifests"},
		{"a missing file", []string{filepath.Join(dir, "nope.yaml")}, 2, "", "no such file"},
		{"not a Kubernetes object", []string{write("bad.yaml", "just: text\n")}, 2, "", "bad.yaml#1: not a Kubernetes object"},
		{"not YAML", []string{write("broken.yaml", "kind: [\n")}, 2, "", "broken.yaml#1"},
		{"a kind outside the scheme", []string{write("cr.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")}, 0, "ALLOW Widget/default/w: no underlink rule applies", ""},
		{"an unknown field warns", []string{write("typo.yaml", "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: p}\nspec: {subnet: 172.110.1.0/24, gatway: 172.110.1.1}\n")}, 0,
			`WARN SpiderIPPool/p: unknown field "spec.gatway"`, ""},
		{"a List", []string{write("list.yaml", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a, annotations: {v1.multus-cni.io/default-network: x/y}}\n")}, 1,
			"DENY Pod/default/a: metadata.annotations[v1.multus-cni.io/default-network]: Not found", ""},
		{"a Cluster whose CIDR does not parse warns on the Cluster",
			[]string{write("clusters.yaml", "apiVersion: submariner.io/v1\nkind: Cluster\nmetadata: {name: a, namespace: s}\nspec: {cluster_id: a, cluster_cidr: [172.110.0.0/16], service_cidr: [10.233.0.0/33]}\n")}, 0,
			`WARN Cluster/s/a: spec.service_cidr[0]: Invalid value: "10.233.0.0/33": is not a CIDR, so cluster a's service_cidr is ignored`, ""},
		{"empty documents and comments", []string{write("empty.yaml", "---\n# nothing\n---\n")}, 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Run(tt.paths, Options{}, strings.NewReader(""), &out, &errOut)
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errOut.String())
			}
		})
	}
}

// Objects are checked in order against what was admitted before them: a denied pool never enters the
// world, and a config before its pool warns.
func TestEvaluateIsSequential(t *testing.T) {
	dec := manifest.NewDecoder()
	var objs []manifest.Object
	for _, p := range append([]string{filepath.Join(admissioncases.Dir(), "_shared", "clusters.yaml")}, seedPaths("cluster-a-multusconfig.yaml")...) {
		o, err := dec.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	fixed, err := dec.ReadFile(filepath.Join(admissioncases.Dir(), "_shared", "pool-cluster-a-fixed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	configFirst := Evaluate(append(append([]manifest.Object(nil), objs...), fixed...), Options{LocalCluster: "cluster-a"})
	if v := configFirst.Results[2].Verdict; v != rules.VerdictWarn {
		t.Errorf("config before its pool: %s", v)
	}
	poolFirst := Evaluate(append(append(append([]manifest.Object(nil), objs[:2]...), fixed...), objs[2]), Options{LocalCluster: "cluster-a"})
	if v := poolFirst.Results[3].Verdict; v != rules.VerdictAllow {
		t.Errorf("config after its pool: %s %v", v, poolFirst.Results[3].Lines())
	}
	// The default network is checked when given.
	rep := Evaluate(poolFirst0(objs, fixed), Options{LocalCluster: "cluster-a", DefaultNetwork: "kube-system/macvlan-conf"})
	last := rep.Results[len(rep.Results)-1]
	if last.Verdict != rules.VerdictAllow || !strings.HasPrefix(last.Ref, "default network") {
		t.Errorf("default network: %+v", last)
	}
}

func poolFirst0(objs, fixed []manifest.Object) []manifest.Object {
	return append(append(append([]manifest.Object(nil), objs[:2]...), fixed...), objs[2])
}
