package validate

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/pkg/manifest"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/admissioncases"
)

// orderDependent are the shared cases whose expectations hold only in apply order, and why; they are
// judged as a set too, and must still differ there (else they leave this list).
var orderDependent = map[string]string{
	"ratchet-network-deleted": "Deployment/default/app is updated three times in a row (the ratchet is about successive updates); " +
		"as a set the copies are duplicates that differ",
	"ratchet-cluster-joins": "SpiderIPPool/cluster-a is updated three times in a row (the ratchet is about successive updates); " +
		"as a set the copies are duplicates that differ",
	"pool-sanity": "SpiderIPPool/first is applied twice, the second an update that changes the subnet; as a set " +
		"it is a duplicate, and first and second overlap each other both ways",
	"pool-update-keeps-allocated": "the second SpiderIPPool/cluster-a is an update of the first, whose status " +
		"it must keep; as a set it is a duplicate and nothing is stored yet",
	"seed-cluster-a": "the config warns that SpiderIPPool cluster-a does not exist yet because the pool " +
		"before it was denied; as a set the pool is there (and denied on its own line)",
}

// The shared case table, offline. The webhook's integration test applies the same cases to a real
// apiserver, object by object in the case's order, and compares with the same expectations, so the two
// agree on every case in order. As a set, every case but the orderDependent ones gives the same verdicts.
func TestSharedCases(t *testing.T) {
	all, err := admissioncases.Load(admissioncases.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 10 {
		t.Fatalf("only %d cases loaded", len(all))
	}
	for _, inOrder := range []bool{true, false} {
		mode := "set"
		if inOrder {
			mode = "in-order"
		}
		for _, c := range all {
			t.Run(mode+"/"+c.Name, func(t *testing.T) {
				rep, err := Evaluate(c.Objects, Options{LocalCluster: c.LocalCluster, InOrder: inOrder, Live: storedAsLive(c)})
				if err != nil {
					t.Fatal(err)
				}
				problems := caseProblems(c, rep)
				why, dependent := orderDependent[c.Name]
				switch {
				case !inOrder && dependent && len(problems) == 0:
					t.Errorf("listed as order-dependent (%s) but passes as a set; drop it from orderDependent", why)
				case !inOrder && dependent:
					t.Skipf("order-dependent: %s", why)
				}
				for _, p := range problems {
					t.Error(p)
				}
				if len(rep.Order) > 0 {
					t.Errorf("no case depends on the order of its files; got %s", rep.Order[0].Line())
				}
			})
		}
	}
}

// storedAsLive is a case's stored objects as the live cluster's, or nil when it has none.
func storedAsLive(c admissioncases.Case) *Live {
	if len(c.StoredObjects) == 0 {
		return nil
	}
	l := &Live{}
	for _, o := range c.StoredObjects {
		switch x := o.Object.(type) {
		case *spiderv2beta1.SpiderIPPool:
			l.Pools = append(l.Pools, *x)
		case *spiderv2beta1.SpiderMultusConfig:
			l.MultusConfigs = append(l.MultusConfigs, *x)
		case *nadv1.NetworkAttachmentDefinition:
			l.NADs = append(l.NADs, *x)
		case *corev1.Namespace:
			l.Namespaces = append(l.Namespaces, *x)
		case *submarinerv1.Cluster:
			l.Clusters = append(l.Clusters, *x)
		default:
			l.Workloads = append(l.Workloads, o.Object)
		}
	}
	return l
}

// caseProblems holds the report to the case's expectations, one per checked object in order.
func caseProblems(c admissioncases.Case, rep Report) []string {
	var out []string
	seen := map[string]int{}
	for _, res := range rep.Results {
		if !res.Checked {
			continue
		}
		exps := c.Expected(res.Ref)
		n := seen[res.Ref]
		seen[res.Ref]++
		if n >= len(exps) {
			out = append(out, fmt.Sprintf("%s (%s) has no expectation; got:\n%s", res.Ref, res.Source, strings.Join(res.Lines(), "\n")))
			continue
		}
		if err := exps[n].Check(res.Verdict, strings.Join(res.Lines(), "\n")); err != nil {
			out = append(out, err.Error())
		}
	}
	for _, e := range c.Expect {
		if seen[e.Object] == 0 {
			out = append(out, e.Object+" was expected but not checked")
		}
	}
	return out
}

func seedPaths(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, test.Path("test", "testdata", "seed", n))
	}
	return out
}

// run reads the paths and evaluates them, as `underlink validate` does, and returns the report's lines
// (not quiet), and the exit code's part that is the report's: 1 denied, 3 unaligned, else 0; a read
// error fails the test.
func run(t *testing.T, paths []string, o Options, stdin io.Reader) (string, Report) {
	t.Helper()
	objs, err := Read(paths, stdin)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Evaluate(objs, o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rep.Write(&out, false); err != nil {
		t.Fatal(err)
	}
	return out.String(), rep
}

// The acceptance run: the seed's cluster-a manifests plus the Cluster objects, as a CI pipeline would.
// As a set the config finds the pool (denied on its own line); in order it comes after the pool's
// denial and warns that the pool does not exist yet, as the webhook would. The Clusters and the Service
// get no line: they are counted.
func TestRunOverTheSeedsManifests(t *testing.T) {
	clusters := filepath.Join(admissioncases.Dir(), "_shared", "clusters.yaml")
	paths := append([]string{"-"}, seedPaths("cluster-a-ippool.yaml", "cluster-a-multusconfig.yaml", "deployment-and-service.yaml")...)
	pool, config, app := paths[1]+"#1", paths[2]+"#1", paths[3]+"#1"
	for _, tt := range []struct {
		inOrder bool
		config  string
		summary string
	}{
		{false, "ALLOW " + config + ": SpiderMultusConfig/kube-system/macvlan-conf: passes every underlink rule", "6 objects judged as a set: 2 denied, 0 with warnings, 1 allowed; context: 2 Cluster; not read by any rule, not listed: 1 Service\nlocal cluster: cluster-a given; remote clusters: cluster-b"},
		{true, "WARN " + config + `: SpiderMultusConfig/kube-system/macvlan-conf: spec.macvlan.ippools.ipv4[0]: Not found: "cluster-a"`, "6 objects judged in the given order: 2 denied, 1 with warnings, 0 allowed"},
	} {
		t.Run(fmt.Sprintf("in-order=%v", tt.inOrder), func(t *testing.T) {
			out, rep := run(t, paths, Options{LocalCluster: "cluster-a", InOrder: tt.inOrder}, mustOpen(t, clusters))
			if !rep.Denied() || rep.Unaligned() {
				t.Errorf("denied %v, unaligned %v; want denied and aligned", rep.Denied(), rep.Unaligned())
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			wantPrefixes := []string{
				"DENY " + pool + `: SpiderIPPool/cluster-a: spec.gateway: Invalid value: "172.110.0.1": outside spec.subnet 172.110.1.0/24`,
				tt.config,
				"DENY " + app + `: Deployment/default/test-app: spec.template.metadata.annotations[v1.multus-cni.io/default-network]: Not found: "kube-system/macvlan-confg"`,
			}
			if len(lines) != len(wantPrefixes) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(wantPrefixes), out)
			}
			for i, p := range wantPrefixes {
				if !strings.HasPrefix(lines[i], p) {
					t.Errorf("line %d:\n got  %s\n want %s…", i, lines[i], p)
				}
			}
			if !strings.Contains(out, "widen spec.subnet to 172.110.0.0/23") || !strings.Contains(out, "did you mean kube-system/macvlan-conf?") {
				t.Errorf("fixes missing:\n%s", out)
			}
			if !strings.HasPrefix(rep.Summary(), tt.summary) {
				t.Errorf("summary:\n%s\nwant\n%s", rep.Summary(), tt.summary)
			}
		})
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

func TestRunVerdicts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fixed := filepath.Join(admissioncases.Dir(), "_shared", "pool-cluster-a-fixed.yaml")
	tree := treeDir(t)
	tests := []struct {
		name      string
		paths     []string
		denied    bool
		unaligned bool
		stdout    string
	}{
		{"no clusters: a warning, and no verdict on alignment", []string{fixed}, false, true,
			"WARN " + fixed + "#1: SpiderIPPool/cluster-a: no Submariner Cluster objects found, alignment unchecked"},
		{"a directory, recursively, in lexical order; the Clusters given but not which is local", []string{tree}, true, true,
			"WARN " + tree + "/1-net/a-pool.yml#1: SpiderIPPool/cluster-a: the local cluster is not named (--local-cluster), so none of the Submariner Clusters cluster-a, cluster-b is taken as local, alignment unchecked; name the local cluster with --local-cluster, or read it from the cluster with --kubeconfig [submariner-clusters-known]\n" +
				"WARN " + tree + "/1-net/b-config.yaml#1: SpiderMultusConfig/kube-system/macvlan-conf: the local cluster is not named" +
				""},
		{"a kind outside the scheme gets no line", []string{write("cr.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")}, false, false, ""},
		{"a mistyped kind of Spiderpool is denied", []string{write("typo-kind.yaml", "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPol\nmetadata: {name: p}\n")}, true, false,
			`DENY ` + dir + `/typo-kind.yaml#1: SpiderIPPol/default/p: SpiderIPPol is not a kind of spiderpool.spidernet.io, so the apiserver refuses it (no matches for kind); did you mean SpiderIPPool? [kind-known]`},
		{"a version Spiderpool does not serve is denied", []string{write("typo-version.yaml", "apiVersion: spiderpool.spidernet.io/v2beta2\nkind: SpiderIPPool\nmetadata: {name: p}\n")}, true, false,
			"write apiVersion: spiderpool.spidernet.io/v2beta1 [kind-known]"},
		{"another Spiderpool kind is left alone", []string{write("subnet.yaml", "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderSubnet\nmetadata: {name: s}\n")}, false, false, ""},
		{"an unknown field warns", []string{write("typo.yaml", "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: p}\nspec: {subnet: 172.110.1.0/24, gatway: 172.110.1.1}\n")}, false, true,
			`WARN ` + dir + `/typo.yaml#1: SpiderIPPool/p: unknown field "spec.gatway"; correct the field's name or remove it`},
		{"a List", []string{write("list.yaml", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a, annotations: {v1.multus-cni.io/default-network: x/y}}\n")}, true, false,
			"DENY " + dir + "/list.yaml#1[0]: Pod/default/a: metadata.annotations[v1.multus-cni.io/default-network]: Not found"},
		{"a Cluster whose CIDR does not parse warns on the Cluster",
			[]string{write("clusters.yaml", "apiVersion: submariner.io/v1\nkind: Cluster\nmetadata: {name: a, namespace: s}\nspec: {cluster_id: a, cluster_cidr: [172.110.0.0/16], service_cidr: [10.233.0.0/33]}\n")}, false, false,
			`WARN ` + dir + `/clusters.yaml#1: Cluster/s/a: spec.service_cidr[0]: Invalid value: "10.233.0.0/33": is not a CIDR, so cluster a's service_cidr is ignored`},
		{"empty documents and comments", []string{write("empty.yaml", "---\n# nothing\n---\n")}, false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, rep := run(t, tt.paths, Options{}, strings.NewReader(""))
			if rep.Denied() != tt.denied || rep.Unaligned() != tt.unaligned || !strings.Contains(out, tt.stdout) || tt.stdout == "" && out != "" {
				t.Errorf("denied %v unaligned %v (want %v %v)\nstdout: %s", rep.Denied(), rep.Unaligned(), tt.denied, tt.unaligned, out)
			}
		})
	}
}

// In order, objects are checked against what was admitted before them: a denied pool never enters the
// world, and a config before its pool warns. As a set, the config finds its pool wherever it stands.
func TestEvaluateInOrderIsSequential(t *testing.T) {
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
	configFirst := append(append([]manifest.Object(nil), objs...), fixed...)
	poolFirst := append(append(append([]manifest.Object(nil), objs[:2]...), fixed...), objs[2])
	inOrder := Options{LocalCluster: "cluster-a", InOrder: true}
	if v := evaluate(t, configFirst, inOrder).Results[2].Verdict; v != rules.VerdictWarn {
		t.Errorf("in order, config before its pool: %s", v)
	}
	if res := evaluate(t, poolFirst, inOrder).Results[3]; res.Verdict != rules.VerdictAllow {
		t.Errorf("in order, config after its pool: %s %v", res.Verdict, res.Lines())
	}
	// A warning that the next object clears is no ORDER line: those are for denials.
	if rep := evaluate(t, configFirst, Options{LocalCluster: "cluster-a"}); rep.Results[2].Verdict != rules.VerdictAllow || len(rep.Order) != 0 {
		t.Errorf("as a set, config before its pool: %v %v", rep.Results[2].Lines(), rep.Order)
	}
	// The default network is checked when given, in both modes.
	for _, o := range []Options{inOrder, {LocalCluster: "cluster-a"}} {
		o.DefaultNetwork = "kube-system/macvlan-conf"
		rep := evaluate(t, configFirst, o)
		last := rep.Results[len(rep.Results)-1]
		if last.Verdict != rules.VerdictAllow || !strings.HasPrefix(last.Ref, "default network") {
			t.Errorf("default network (in order %v): %+v", o.InOrder, last)
		}
	}
}

func evaluate(t *testing.T, objs []manifest.Object, o Options) Report {
	t.Helper()
	rep, err := Evaluate(objs, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// readTestdata returns a file of the shared cases ("_shared/NAME") or of the seed ("seed:NAME").
func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(admissioncases.Resolve(admissioncases.Dir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The same directory judged as a set and in order: a set's verdicts do not depend on the files' order,
// ORDER lines say where a first apply in that order would fail, and no object meets itself.
func TestSetVersusInOrder(t *testing.T) {
	clusters := readTestdata(t, "_shared/clusters.yaml")
	pool := readTestdata(t, "_shared/pool-cluster-a-fixed.yaml")
	config := readTestdata(t, "seed:cluster-a-multusconfig.yaml")
	app := readTestdata(t, "_shared/deployment-fixed.yaml")
	typo := readTestdata(t, "seed:deployment-and-service.yaml")
	poolNamed := func(name, subnet, ips string) string {
		return fmt.Sprintf("apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: %s}\nspec: {subnet: %s, ips: [%q]}\n", name, subnet, ips)
	}
	tests := []struct {
		name    string
		files   map[string]string
		inOrder bool
		code    int
		want    []string // substrings of stdout; "DIR/" is the directory
		notWant []string
	}{
		{"app.yaml before smc.yaml, as a set: admitted, with the ORDER line",
			map[string]string{"app.yaml": app, "clusters.yaml": clusters, "pool.yaml": pool, "smc.yaml": config}, false, 0,
			[]string{
				"ALLOW DIR/app.yaml#1: Deployment/default/test-app: passes every underlink rule\n",
				"ALLOW DIR/smc.yaml#1: SpiderMultusConfig/kube-system/macvlan-conf: passes every underlink rule\n",
				"ORDER DIR/app.yaml#1: Deployment/default/test-app would be denied on a first `kubectl apply -f` in this order " +
					"because SpiderMultusConfig/kube-system/macvlan-conf (DIR/smc.yaml#1) comes later; apply DIR/smc.yaml first, or re-apply [pod-network-exists]\n",
			}, []string{"DENY"}},
		{"app.yaml before smc.yaml, in order: denied as today, the config not yet there",
			map[string]string{"app.yaml": app, "clusters.yaml": clusters, "pool.yaml": pool, "smc.yaml": config}, true, 1,
			[]string{`DENY DIR/app.yaml#1: Deployment/default/test-app: spec.template.metadata.annotations[v1.multus-cni.io/default-network]: Not found: "kube-system/macvlan-conf": ` +
				"network kube-system/macvlan-conf does not exist (no SpiderMultusConfig or NetworkAttachmentDefinition of that name); " +
				"create SpiderMultusConfig kube-system/macvlan-conf or name an existing network [pod-network-exists]"},
			[]string{"ORDER", "did you mean"}},
		{"a typo before smc.yaml, as a set: the did-you-mean names the config that comes later",
			map[string]string{"app.yaml": typo, "clusters.yaml": clusters, "pool.yaml": pool, "smc.yaml": config}, false, 1,
			[]string{`DENY DIR/app.yaml#1: Deployment/default/test-app: spec.template.metadata.annotations[v1.multus-cni.io/default-network]: Not found: "kube-system/macvlan-confg"`,
				"did you mean kube-system/macvlan-conf?"},
			[]string{"ORDER"}},
		{"a typo before smc.yaml, in order: the did-you-mean names nothing",
			map[string]string{"app.yaml": typo, "clusters.yaml": clusters, "pool.yaml": pool, "smc.yaml": config}, true, 1,
			[]string{`Not found: "kube-system/macvlan-confg"`, "create SpiderMultusConfig kube-system/macvlan-confg or name an existing network [pod-network-exists]"},
			[]string{"did you mean", "ORDER"}},
		{"the config after the app in one file: the ORDER line says to move it",
			map[string]string{"all.yaml": app + "---\n" + config, "clusters.yaml": clusters, "pool.yaml": pool}, false, 0,
			[]string{"ORDER DIR/all.yaml#1: Deployment/default/test-app would be denied on a first `kubectl apply -f` in this order " +
				"because SpiderMultusConfig/kube-system/macvlan-conf (DIR/all.yaml#2) comes later; " +
				"move SpiderMultusConfig/kube-system/macvlan-conf above Deployment/default/test-app in DIR/all.yaml, or re-apply [pod-network-exists]"},
			nil},
		{"a pool given twice, differently, as a set: the later copy is denied, each judged without the other",
			map[string]string{"clusters.yaml": clusters, "pool.yaml": pool, "pool-wide.yaml": strings.Replace(pool, "172.110.1.0/24", "172.110.0.0/23", 1)}, false, 1,
			[]string{"ALLOW DIR/pool-wide.yaml#1: SpiderIPPool/cluster-a: passes every underlink rule\n",
				"DENY DIR/pool.yaml#1: SpiderIPPool/cluster-a: given more than once, differently (first at DIR/pool-wide.yaml#1, again at DIR/pool.yaml#1): " +
					"the set does not say which is meant, and `kubectl apply -f` keeps whichever comes last; keep one of them [objects-unique]"},
			[]string{"pool-no-overlap", "pool-subnet-immutable", "WARN"}},
		{"a pool given twice, differently, in order: the second is an update of the first",
			map[string]string{"clusters.yaml": clusters, "pool.yaml": pool, "pool-wide.yaml": strings.Replace(pool, "172.110.1.0/24", "172.110.0.0/23", 1)}, true, 1,
			[]string{"ALLOW DIR/pool-wide.yaml#1: SpiderIPPool/cluster-a: passes every underlink rule\n", "DENY DIR/pool.yaml#1: SpiderIPPool/cluster-a: spec.subnet: Forbidden: spec.subnet cannot change (it is 172.110.0.0/23)"},
			[]string{"objects-unique"}},
		{"a pool given twice, the same, as a set: a warning",
			map[string]string{"clusters.yaml": clusters, "pool.yaml": pool, "pool-copy.yaml": pool}, false, 0,
			[]string{"ALLOW DIR/pool-copy.yaml#1: SpiderIPPool/cluster-a: passes every underlink rule\n",
				"WARN DIR/pool.yaml#1: SpiderIPPool/cluster-a: given more than once, the same each time (first at DIR/pool-copy.yaml#1, again at DIR/pool.yaml#1); keep one of them [objects-unique]"},
			[]string{"DENY"}},
		{"two pools overlapping, as a set: each denied once, naming the other",
			map[string]string{"a.yaml": poolNamed("a", "172.110.1.0/24", "172.110.1.1-172.110.1.100"), "b.yaml": poolNamed("b", "172.110.1.0/25", "172.110.1.50"), "clusters.yaml": clusters},
			false, 1,
			[]string{`DENY DIR/a.yaml#1: SpiderIPPool/a: spec.subnet: Invalid value: "172.110.1.0/24": overlaps 172.110.1.0/25, the subnet of SpiderIPPool/b`,
				`DENY DIR/b.yaml#1: SpiderIPPool/b: spec.subnet: Invalid value: "172.110.1.0/25": overlaps 172.110.1.0/24, the subnet of SpiderIPPool/a`},
			[]string{"ALLOW SpiderIPPool", "ORDER"}},
		{"two pools overlapping, in order: the first is admitted, the second denied",
			map[string]string{"a.yaml": poolNamed("a", "172.110.1.0/24", "172.110.1.1-172.110.1.100"), "b.yaml": poolNamed("b", "172.110.1.0/25", "172.110.1.50"), "clusters.yaml": clusters},
			true, 1,
			[]string{"ALLOW DIR/a.yaml#1: SpiderIPPool/a: passes every underlink rule\n", `DENY DIR/b.yaml#1: SpiderIPPool/b: spec.subnet: Invalid value: "172.110.1.0/25": overlaps 172.110.1.0/24, the subnet of SpiderIPPool/a`},
			[]string{"SpiderIPPool/a: spec.subnet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, rep := run(t, []string{dir}, Options{LocalCluster: "cluster-a", InOrder: tt.inOrder}, strings.NewReader(""))
			if code := map[bool]int{true: 1}[rep.Denied()]; code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "DIR/", dir+"/"); !strings.Contains(got, w) {
					t.Errorf("no %q in:\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("%q in:\n%s", w, got)
				}
			}
		})
	}
}

// Each pool of an overlapping pair is judged once against the set, naming the other and never itself.
func TestSetJudgesEachPoolOnceAgainstTheOthers(t *testing.T) {
	objs, err := manifest.NewDecoder().Decode(strings.NewReader(
		"apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: a}\nspec: {subnet: 172.110.1.0/24, ips: [172.110.1.1-172.110.1.100]}\n---\n"+
			"apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: b}\nspec: {subnet: 172.110.1.0/24, ips: [172.110.1.50-172.110.1.150]}\n"), "pools.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep := evaluate(t, objs, Options{})
	if len(rep.Results) != 2 {
		t.Fatalf("%d results", len(rep.Results))
	}
	for i, other := range []string{"SpiderIPPool/b", "SpiderIPPool/a"} {
		var overlaps []rules.Violation
		for _, v := range rep.Results[i].Violations {
			if v.Rule == rules.RulePoolNoOverlap {
				overlaps = append(overlaps, v)
			}
		}
		if rep.Results[i].Verdict != rules.VerdictDeny || len(overlaps) != 1 || overlaps[0].Object != other {
			t.Errorf("%s: want one overlap with %s, got %v", rep.Results[i].Ref, other, rep.Results[i].Lines())
		}
	}
}

func TestOrderWarningLine(t *testing.T) {
	w := OrderWarning{Place: Place{Ref: "Pod/default/p", Source: "app.yaml#2"}, Rules: []string{"pod-network-exists", "pod-pools-allowed"},
		Later: []Place{{"SpiderMultusConfig/kube-system/net", "net/smc.yaml#1"}, {"SpiderIPPool/p", "net/pools.yaml#3"}, {"SpiderIPPool/q", "app.yaml#3"}}}
	want := "ORDER app.yaml#2: Pod/default/p would be denied on a first `kubectl apply -f` in this order because " +
		"SpiderMultusConfig/kube-system/net (net/smc.yaml#1), SpiderIPPool/p (net/pools.yaml#3) and SpiderIPPool/q (app.yaml#3) come later; " +
		"apply net/smc.yaml and net/pools.yaml first, move SpiderIPPool/q above Pod/default/p in app.yaml, or re-apply [pod-network-exists, pod-pools-allowed]"
	if got := w.Line(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
