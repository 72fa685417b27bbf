package command

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/underlink/underlink/test"
)

// The user's own world, unlike the seed's in every value: clusters dc1 and dc2, a pool "edge", a config
// shop/net-edge on eth7 and a Deployment shop/web. Messages must name these values, never the seed's.
const (
	userClusters = `apiVersion: submariner.io/v1
kind: Cluster
metadata: {name: dc1, namespace: submariner-operator}
spec: {cluster_id: dc1, cluster_cidr: [10.10.0.0/16], service_cidr: [10.96.0.0/16]}
---
apiVersion: submariner.io/v1
kind: Cluster
metadata: {name: dc2, namespace: submariner-operator}
spec: {cluster_id: dc2, cluster_cidr: [10.20.0.0/16], service_cidr: [10.97.0.0/16]}
`
	userPool = `apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: edge
spec:
  subnet: 10.10.5.0/24
  ips:
  - 10.10.5.10-10.10.5.100
  gateway: 10.10.5.1
`
	userConfig = `apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata: {name: net-edge, namespace: shop}
spec:
  cniType: macvlan
  macvlan:
    master: [eth7]
    ippools: {ipv4: [edge]}
  coordinator:
    hijackCIDR: [10.20.0.0/16, 10.97.0.0/16]
`
	userApp = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations:
        v1.multus-cni.io/default-network: shop/net-edge
    spec:
      containers: [{name: web, image: nginx}]
`
	userService = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80}]}
`
	statics = "id=dc1,cluster-cidr=10.10.0.0/16,service-cidr=10.96.0.0/16"
	staticB = "id=dc2,cluster-cidr=10.20.0.0/16,service-cidr=10.97.0.0/16"
)

// sampleValues are the seed's values (pkg/rules' message test has the same list): a message about the
// user's manifests must not hold one unless the user wrote it.
var sampleValues = []string{"172.110.", "172.111.", "10.233.", "10.243.", "macvlan-conf", "cluster-a", "cluster-b", "ens224"}

// cliCase is one command line run against files written into a temporary directory.
type cliCase struct {
	name string
	// kind is correct, mistake, hostile, unreachable or convention, for the count the issue asks for.
	kind  string
	files map[string]string
	// args: "DIR" is the directory of the files, "DIR/x" a file there; "KUBE:name" the kubeconfig of
	// one of the servers below.
	args  []string
	stdin string
	code  int
	// out and errOut are substrings of stdout and stderr ("DIR" replaced); not must not be in stdout.
	out, errOut []string
	not         []string
}

func userFiles(extra map[string]string) map[string]string {
	files := map[string]string{"clusters.yaml": userClusters, "net/pool.yaml": userPool, "net/config.yaml": userConfig, "app/web.yaml": userApp + "---\n" + userService}
	for k, v := range extra {
		if v == "" {
			delete(files, k)
			continue
		}
		files[k] = v
	}
	return files
}

func TestCommandLines(t *testing.T) {
	seedPool, _ := os.ReadFile(test.Path("test", "testdata", "seed", "cluster-a-ippool.yaml"))
	seedApp, _ := os.ReadFile(test.Path("test", "testdata", "seed", "deployment-and-service.yaml"))
	servers := unreachableServers(t)
	bigIPs := "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: big}\nspec:\n  subnet: 10.10.0.0/16\n  ips:\n" +
		strings.Repeat("  - 10.10.1.1\n", 600)
	manyNets := strings.Replace(userApp, "shop/net-edge", strings.Repeat("n,", 10000)+"n", 1)
	laughs := "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n" +
		"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n" +
		"g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\ni: [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n"
	poolIn := func(subnet, ips, gw string) string {
		return fmt.Sprintf("apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata:\n  name: edge\nspec:\n  subnet: %s\n  ips:\n  - %s\n  gateway: %s\n", subnet, ips, gw)
	}
	validate := []string{"validate", "DIR", "--local-cluster", "dc1"}
	tests := []cliCase{
		// Correct setups: exit 0, an ALLOW line per checked object naming its file and document.
		{name: "the user's setup", kind: "correct", files: userFiles(nil), args: validate, code: 0,
			out: []string{"ALLOW DIR/net/pool.yaml#1: SpiderIPPool/edge: passes every underlink rule", "ALLOW DIR/net/config.yaml#1: SpiderMultusConfig/shop/net-edge",
				"ALLOW DIR/app/web.yaml#1: Deployment/shop/web"},
			errOut: []string{"context: 2 Cluster", "not read by any rule, not listed: 1 Service", "local cluster: dc1 given; remote clusters: dc2"},
			not:    []string{"Service/shop/web", "Cluster/"}},
		{name: "the clusters as --static-cluster", kind: "correct", files: userFiles(map[string]string{"clusters.yaml": ""}),
			args: []string{"validate", "DIR", "--static-cluster", statics, "--static-cluster", staticB, "--local-cluster", "dc1"}, code: 0,
			out: []string{"ALLOW DIR/net/pool.yaml#1: SpiderIPPool/edge"}},
		{name: "flags after the paths, and -f mixed with paths", kind: "correct", files: userFiles(nil),
			args: []string{"validate", "DIR/net", "-f", "DIR/clusters.yaml", "DIR/app", "--local-cluster=dc1", "-o", "text"}, code: 0},
		{name: "stdin", kind: "correct", stdin: userClusters + "---\n" + userPool + "---\n" + userConfig, args: []string{"validate", "-", "--local-cluster", "dc1"}, code: 0,
			out: []string{"ALLOW <stdin>#3: SpiderIPPool/edge"}},
		{name: "concatenated JSON objects", kind: "correct", files: map[string]string{"all.json": `{"apiVersion":"submariner.io/v1","kind":"Cluster","metadata":{"name":"dc1","namespace":"s"},"spec":{"cluster_id":"dc1","cluster_cidr":["10.10.0.0/16"]}}` +
			"\n" + `{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool","metadata":{"name":"edge"},"spec":{"subnet":"10.10.5.0/24","ips":["10.10.5.10-10.10.5.100"]}}`},
			args: validate, code: 0, out: []string{"ALLOW DIR/all.json#2: SpiderIPPool/edge"}},
		{name: "in the given order", kind: "correct", files: map[string]string{"1.yaml": userClusters, "2.yaml": userPool, "3.yaml": userConfig, "4.yaml": userApp},
			args: []string{"validate", "--in-order", "DIR", "--local-cluster", "dc1"}, code: 0, out: []string{"ALLOW DIR/4.yaml#1: Deployment/shop/web"}},
		{name: "the default network resolves", kind: "correct", files: userFiles(nil), args: append(validate, "--default-network", "shop/net-edge"), code: 0,
			out: []string{"ALLOW --default-network: default network shop/net-edge: resolves"}},
		{name: "no clusters, accepted with --allow-unaligned", kind: "correct", files: map[string]string{"pool.yaml": userPool},
			args: []string{"validate", "DIR", "--allow-unaligned"}, code: 0, out: []string{"WARN DIR/pool.yaml#1: SpiderIPPool/edge: no Submariner Cluster objects found, alignment unchecked"}},
		{name: "only objects no rule reads", kind: "correct", files: map[string]string{"svc.yaml": userService}, args: []string{"validate", "DIR"}, code: 0,
			errOut: []string{"1 object judged as a set: 0 denied, 0 with warnings, 0 allowed; not read by any rule, not listed: 1 Service"}},
		{name: "globalnet: overlapping clusters", kind: "correct", files: map[string]string{"c.yaml": strings.ReplaceAll(strings.ReplaceAll(userClusters, "10.20.0.0/16", "10.10.0.0/16"), "service_cidr: [10.97.0.0/16]}", "service_cidr: [10.97.0.0/16], global_cidr: [242.1.0.0/16]}"),
			"p.yaml": userPool}, args: validate, code: 0},
		{name: "quiet prints nothing when all pass", kind: "correct", files: userFiles(nil), args: append(validate, "--quiet"), code: 0, not: []string{"ALLOW"}},

		// Common mistakes: a denial naming the field, the user's value and a fix from the user's data.
		{name: "gateway outside the subnet", kind: "mistake", files: userFiles(map[string]string{"net/pool.yaml": poolIn("10.10.5.0/24", "10.10.5.10-10.10.5.100", "10.10.4.1")}),
			args: validate, code: 1, out: []string{`DENY DIR/net/pool.yaml#1: SpiderIPPool/edge: spec.gateway: Invalid value: "10.10.4.1": outside spec.subnet 10.10.5.0/24`,
				"(e.g. 10.10.5.254, not in spec.ips), or widen spec.subnet to 10.10.4.0/23, which contains 10.10.4.1 [pool-gateway-in-subnet]"}},
		{name: "a reversed range", kind: "mistake", files: userFiles(map[string]string{"net/pool.yaml": poolIn("10.10.5.0/24", "10.10.5.100-10.10.5.10", "10.10.5.1")}),
			args: validate, code: 1, out: []string{"DENY DIR/net/pool.yaml#1: SpiderIPPool/edge: spec.ips[0]", "range start 10.10.5.100 is after its end 10.10.5.10; write 10.10.5.10-10.10.5.100"}},
		{name: "a /33 subnet", kind: "mistake", files: userFiles(map[string]string{"net/pool.yaml": poolIn("10.10.5.0/33", "10.10.5.10-10.10.5.100", "10.10.5.1")}),
			args: validate, code: 1, out: []string{"spec.subnet", `prefix length "33" is not a number from 0 to 32`, "e.g. 10.10.5.0/25, the smallest CIDR that holds spec.ips"}},
		{name: "the gateway among the pool's addresses", kind: "mistake", files: userFiles(map[string]string{"net/pool.yaml": poolIn("10.10.5.0/24", "10.10.5.1-10.10.5.100", "10.10.5.1")}),
			args: validate, code: 1, out: []string{"lies in spec.ips, so a pod could be given the gateway's address; add 10.10.5.1 to spec.excludeIPs"}},
		{name: "a pool in the remote cluster's CIDR, local cluster named", kind: "mistake",
			files: userFiles(map[string]string{"net/pool.yaml": poolIn("10.20.5.0/24", "10.20.5.10-10.20.5.100", "10.20.5.1")}), args: validate, code: 1,
			out: []string{"DENY DIR/net/pool.yaml#1: SpiderIPPool/edge: spec.subnet", "the local cluster dc1", "overlaps 10.20.0.0/16 (pod CIDR of cluster dc2)"}},
		{name: "a pool in the remote cluster's CIDR, local cluster not named: no verdict, exit 3", kind: "mistake",
			files: map[string]string{"clusters.yaml": userClusters, "pool.yaml": poolIn("10.20.5.0/24", "10.20.5.10-10.20.5.100", "10.20.5.1")}, args: []string{"validate", "DIR"}, code: 3,
			out:    []string{"WARN DIR/pool.yaml#1: SpiderIPPool/edge: the local cluster is not named (--local-cluster), so none of the Submariner Clusters dc1, dc2 is taken as local, alignment unchecked"},
			errOut: []string{"local cluster: unknown", "alignment unchecked", "exit 3"}, not: []string{"ALLOW", "inferred"}},
		{name: "a pool in the remote cluster's CIDR with its config, local cluster not named: the hijack still denies", kind: "mistake",
			files: userFiles(map[string]string{"net/pool.yaml": poolIn("10.20.5.0/24", "10.20.5.10-10.20.5.100", "10.20.5.1")}), args: []string{"validate", "DIR"}, code: 1,
			out: []string{"WARN DIR/net/pool.yaml#1: SpiderIPPool/edge: the local cluster is not named", "covers SpiderIPPool/edge (subnet 10.20.5.0/24)"}, not: []string{"ALLOW DIR/net/pool.yaml"}},
		{name: "hijack routes miss the remote service CIDR", kind: "mistake", files: userFiles(map[string]string{"net/config.yaml": strings.Replace(userConfig, ", 10.97.0.0/16", "", 1)}),
			args: validate, code: 1, out: []string{"DENY DIR/net/config.yaml#1: SpiderMultusConfig/shop/net-edge: spec.coordinator.hijackCIDR", "missing 10.97.0.0/16 (service CIDR of cluster dc2); add 10.97.0.0/16 so pods reach dc2's services"}},
		{name: "hijack routes cover the local pool", kind: "mistake", files: userFiles(map[string]string{"net/config.yaml": strings.Replace(userConfig, "10.20.0.0/16, ", "10.20.0.0/16, 10.10.0.0/16, ", 1)}),
			args: validate, code: 1, out: []string{"covers SpiderIPPool/edge (subnet 10.10.5.0/24), a local pool", "remove 10.10.0.0/16"}},
		{name: "a mistyped network, with the did-you-mean", kind: "mistake", files: userFiles(map[string]string{"app/web.yaml": strings.Replace(userApp, "shop/net-edge", "shop/net-egde", 1)}),
			args: validate, code: 1, out: []string{`DENY DIR/app/web.yaml#1: Deployment/shop/web: spec.template.metadata.annotations[v1.multus-cni.io/default-network]: Not found: "shop/net-egde"`, "did you mean shop/net-edge?"}},
		{name: "a default network in another namespace", kind: "mistake", files: userFiles(map[string]string{"app/web.yaml": strings.Replace(userApp, "shop/net-edge", "team/net-edge", 1)}),
			args: validate, code: 1, out: []string{"did you mean shop/net-edge? (net-edge is in namespace shop, not team)"}},
		{name: "a pool annotation naming a missing pool", kind: "mistake", files: userFiles(map[string]string{"app/web.yaml": strings.Replace(userApp, "v1.multus-cni.io/default-network: shop/net-edge", `ipam.spidernet.io/ippool: '{"ipv4":["edgee"]}'`, 1)}),
			args: validate, code: 1, out: []string{"SpiderIPPool edgee does not exist", "did you mean edge?"}},
		{name: "a mistyped kind of Spiderpool", kind: "mistake", files: userFiles(map[string]string{"net/pool.yaml": strings.Replace(userPool, "kind: SpiderIPPool", "kind: SpiderIPPol", 1)}),
			args: validate, code: 1, out: []string{"DENY DIR/net/pool.yaml#1: SpiderIPPol/default/edge: SpiderIPPol is not a kind of spiderpool.spidernet.io", "did you mean SpiderIPPool? [kind-known]"}},
		{name: "a version Spiderpool does not serve", kind: "mistake", files: userFiles(map[string]string{"net/pool.yaml": strings.Replace(userPool, "v2beta1", "v2beta2", 1)}),
			args: validate, code: 1, out: []string{"spiderpool.spidernet.io/v2beta2 SpiderIPPool is not served", "write apiVersion: spiderpool.spidernet.io/v2beta1"}},
		{name: "a mistyped field", kind: "mistake", files: userFiles(map[string]string{"net/pool.yaml": strings.Replace(userPool, "gateway:", "gatway:", 1)}),
			args: validate, code: 0, out: []string{`WARN DIR/net/pool.yaml#1: SpiderIPPool/edge: unknown field "spec.gatway"`}},
		{name: "one object twice, differently", kind: "mistake", files: userFiles(map[string]string{"net/pool-copy.yaml": strings.Replace(userPool, "10.10.5.100", "10.10.5.120", 1)}),
			args: validate, code: 1, out: []string{"DENY DIR/net/pool.yaml#1: SpiderIPPool/edge: given more than once, differently (first at DIR/net/pool-copy.yaml#1"}},
		{name: "no clusters at all: no verdict, exit 3", kind: "mistake", files: userFiles(map[string]string{"clusters.yaml": ""}), args: []string{"validate", "DIR"}, code: 3,
			out: []string{"WARN DIR/net/pool.yaml#1: SpiderIPPool/edge: no Submariner Cluster objects found, alignment unchecked; add the Submariner Cluster objects to the input, describe the clusters with --static-cluster, or read them from the cluster with --kubeconfig"}},
		{name: "an unknown --local-cluster is a usage error", kind: "mistake", files: userFiles(nil), args: []string{"validate", "DIR", "--local-cluster", "dc9"}, code: 2,
			errOut: []string{"--local-cluster: local cluster dc9 names none of the Submariner clusters dc1, dc2; did you mean dc1?"}},
		{name: "a hostNetwork pod with a network", kind: "mistake", files: userFiles(map[string]string{"app/web.yaml": strings.Replace(userApp, "containers:", "hostNetwork: true\n      containers:", 1)}),
			args: validate, code: 0, out: []string{"WARN DIR/app/web.yaml#1: Deployment/shop/web: spec.template.spec.hostNetwork: Invalid value: true: Multus ignores"}, not: []string{"null"}},
		{name: "a macvlan config without master", kind: "mistake", files: userFiles(map[string]string{"net/other.yaml": strings.Replace(strings.Replace(userConfig, "master: [eth7]", "mode: bridge", 1), "net-edge", "net-b", 1)}),
			args: validate, code: 1, out: []string{"DENY DIR/net/other.yaml#1: SpiderMultusConfig/shop/net-b: spec.macvlan.master: Required value", "as SpiderMultusConfig shop/net-edge has: [eth7]"}},
		{name: "a mistyped default network", kind: "mistake", files: userFiles(nil), args: append(validate, "--default-network", "shop/net-egde"), code: 1,
			out: []string{"DENY --default-network: default network shop/net-egde:", "did you mean shop/net-edge?"}},
		{name: "two pools overlapping", kind: "mistake", files: userFiles(map[string]string{"net/pool2.yaml": strings.Replace(poolIn("10.10.5.0/25", "10.10.5.50", "10.10.5.1"), "name: edge", "name: edge2", 1)}),
			args: validate, code: 1, out: []string{"overlaps 10.10.5.0/25, the subnet of SpiderIPPool/edge2"}},
		{name: "the seed's typo, in the seed's own files", kind: "mistake", files: map[string]string{"pool.yaml": string(seedPool), "app.yaml": string(seedApp)},
			args: []string{"validate", "DIR", "--allow-unaligned"}, code: 1, out: []string{`DENY DIR/app.yaml#1: Deployment/default/test-app`, `DENY DIR/pool.yaml#1: SpiderIPPool/cluster-a: spec.gateway`}},
		{name: "quiet prints only denials and warnings", kind: "mistake", files: userFiles(map[string]string{"app/web.yaml": strings.Replace(userApp, "shop/net-edge", "shop/net-egde", 1)}),
			args: append(validate, "-q"), code: 1, out: []string{"DENY DIR/app/web.yaml#1"}, not: []string{"ALLOW"}},

		// Hostile input: no crash, no hang, exit 4 (or a denial) naming the file.
		{name: "not YAML", kind: "hostile", files: map[string]string{"bad.yaml": "kind: [\n"}, args: []string{"validate", "DIR"}, code: 4, errOut: []string{"DIR/bad.yaml#1: not YAML"}},
		{name: "not a Kubernetes object", kind: "hostile", files: map[string]string{"bad.yaml": "just: text\n"}, args: []string{"validate", "DIR"}, code: 4,
			errOut: []string{"DIR/bad.yaml#1: not a Kubernetes object"}},
		{name: "a document over 3 MiB", kind: "hostile", files: map[string]string{"big.yaml": "a: " + strings.Repeat("x", 4<<20) + "\n"}, args: []string{"validate", "DIR"}, code: 4,
			errOut: []string{"DIR/big.yaml#1: document is more than"}},
		{name: "binary bytes", kind: "hostile", files: map[string]string{"bin.json": "\x00\x01\xff{\x7f"}, args: []string{"validate", "DIR"}, code: 4, errOut: []string{"DIR/bin.json#1"}},
		{name: "an alias bomb", kind: "hostile", files: map[string]string{"bomb.yaml": laughs}, args: []string{"validate", "DIR"}, code: 4, errOut: []string{"DIR/bomb.yaml#1"}},
		{name: "a missing file", kind: "hostile", args: []string{"validate", "/nonexistent/underlink.yaml"}, code: 4, errOut: []string{"no such file"}},
		{name: "600 addresses listed one by one", kind: "hostile", files: userFiles(map[string]string{"net/pool.yaml": bigIPs}), args: validate, code: 1,
			out: []string{"DENY DIR/net/pool.yaml#1: SpiderIPPool/big: spec.ips: Too many: 600: has 600 entries, more than 512"}},
		{name: "an annotation naming 10001 networks", kind: "hostile", files: userFiles(map[string]string{"app/web.yaml": manyNets}), args: validate, code: 1,
			out: []string{"DENY DIR/app/web.yaml#1: Deployment/shop/web", "more than"}},
		{name: "a second JSON object that is broken", kind: "hostile", files: map[string]string{"two.json": `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}{"kind":"Namespace"}`},
			args: []string{"validate", "DIR"}, code: 4, errOut: []string{"DIR/two.json#2: not a Kubernetes object"}},
		{name: "-- ends the flags", kind: "hostile", files: map[string]string{"-odd.yaml": userService}, args: []string{"validate", "--", "DIR/-odd.yaml"}, code: 0,
			errOut: []string{"1 Service"}},
		{name: "an unknown flag", kind: "hostile", args: []string{"validate", "--bogus", "x"}, code: 2, errOut: []string{"unknown flag: --bogus", "Run 'underlink validate --help' for usage."}},
		{name: "an unknown output format", kind: "hostile", args: []string{"validate", "-o", "yaml", "x"}, code: 2, errOut: []string{`-o "yaml": use text, json, junit or sarif`}},
		{name: "a --static-cluster that does not parse", kind: "hostile", args: []string{"validate", "x", "--static-cluster", "id=dc2,cluster-cidr=10.20.0.0/33"}, code: 2,
			errOut: []string{`--static-cluster: static cluster "id=dc2,cluster-cidr=10.20.0.0/33"`}},

		// Unreachable clusters: exit 4 within the request timeout, naming the server.
		{name: "validate: nothing listens", kind: "unreachable", files: userFiles(nil), args: []string{"validate", "DIR", "--kubeconfig", "KUBE:refused"}, code: 4,
			errOut: []string{"read cluster https://127.0.0.1:", "connection refused"}},
		{name: "doctor: a server that never answers", kind: "unreachable", args: []string{"doctor", "--kubeconfig", "KUBE:silent", "--request-timeout", "300ms"}, code: 4,
			errOut: []string{"read cluster https://127.0.0.1:"}},
		{name: "doctor: a server that forbids everything", kind: "unreachable", args: []string{"doctor", "--kubeconfig", "KUBE:forbidden"}, code: 4, errOut: []string{"read cluster https://127.0.0.1:"}},
		{name: "doctor: a server whose certificate is not trusted", kind: "unreachable", args: []string{"doctor", "--kubeconfig", "KUBE:untrusted"}, code: 4, errOut: []string{"certificate"}},
		{name: "doctor: a missing kubeconfig", kind: "unreachable", args: []string{"doctor", "--kubeconfig", "/nonexistent/kubeconfig"}, code: 4, errOut: []string{"kubeconfig"}},
		{name: "doctor: a context that does not exist", kind: "unreachable", args: []string{"doctor", "--kubeconfig", "KUBE:refused", "--context", "nope"}, code: 4, errOut: []string{`context "nope"`}},
		{name: "doctor: arguments it does not take are refused, flags not ignored", kind: "unreachable", args: []string{"doctor", "extra", "--kubeconfig", "KUBE:refused"}, code: 2,
			errOut: []string{`unknown command "extra" for "underlink doctor"`}},
		{name: "doctor: a request timeout that is not positive", kind: "unreachable", args: []string{"doctor", "--kubeconfig", "KUBE:refused", "--request-timeout", "0s"}, code: 2,
			errOut: []string{"--request-timeout 0s"}},

		// Conventions.
		{name: "version", kind: "convention", args: []string{"version"}, code: 0, out: []string{"underlink "}},
		{name: "version -o json", kind: "convention", args: []string{"version", "-o", "json"}, code: 0, out: []string{`"goVersion"`}},
		{name: "help goes to stdout", kind: "convention", args: []string{"validate", "--help"}, code: 0, out: []string{"--local-cluster", "--allow-unaligned", "Exit codes"}},
		{name: "help of doctor", kind: "convention", args: []string{"help", "doctor"}, code: 0, out: []string{"--request-timeout duration", "(default 10s)"}},
		{name: "no command: help, exit 2", kind: "convention", args: nil, code: 2, out: []string{"Available Commands"}},
		{name: "an unknown command", kind: "convention", args: []string{"frobnicate"}, code: 2, errOut: []string{`unknown command "frobnicate" for "underlink"`}},
		{name: "bash completion", kind: "convention", args: []string{"completion", "bash"}, code: 0, out: []string{"__start_underlink"}},
		{name: "zsh completion", kind: "convention", args: []string{"completion", "zsh"}, code: 0, out: []string{"#compdef underlink"}},
		{name: "fish completion", kind: "convention", args: []string{"completion", "fish"}, code: 0, out: []string{"complete -c underlink"}},
		{name: "completion of another shell", kind: "convention", args: []string{"completion", "tcsh"}, code: 2, errOut: []string{`invalid argument "tcsh"`}},
		{name: "dynamic completion of -o", kind: "convention", args: []string{"__complete", "validate", "-o", ""}, code: 0, out: []string{"sarif"}},
	}
	kinds := map[string]int{}
	for _, tt := range tests {
		kinds[tt.kind]++
		t.Run(tt.kind+"/"+tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tt.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				if name, ok := strings.CutPrefix(a, "KUBE:"); ok {
					a = servers[name]
				}
				args[i] = strings.ReplaceAll(a, "DIR", dir)
			}
			start := time.Now()
			code, out, errOut := runCLI(args, tt.stdin)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %s", took)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, w := range tt.out {
				if w = strings.ReplaceAll(w, "DIR", dir); !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.errOut {
				if w = strings.ReplaceAll(w, "DIR", dir); !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(out, strings.ReplaceAll(w, "DIR", dir)) {
					t.Errorf("stdout holds %q:\n%s", w, out)
				}
			}
			if len(tt.args) > 0 && tt.args[0] == "validate" && !slices.Contains(tt.args, "--help") {
				checkLines(t, tt, dir, out)
			}
		})
	}
	if len(tests) < 40 || kinds["correct"] < 5 || kinds["mistake"] < 10 || kinds["hostile"] < 5 || kinds["unreachable"] < 3 {
		t.Errorf("%d cases (%v): the issue asks for at least 40 of every kind", len(tests), kinds)
	}
	t.Logf("%d cases: %v", len(tests), kinds)
}

var verdictLine = regexp.MustCompile(`^(DENY|WARN|ALLOW|ORDER) (\S+): `)

// checkLines holds every line of validate's text to its format: a verdict, then its source (a file of
// the input with its document, stdin, or the flag that set it); and no sample value in a line about
// the user's own files.
func checkLines(t *testing.T, tt cliCase, dir, out string) {
	t.Helper()
	userOnly := true
	for _, body := range tt.files {
		for _, v := range sampleValues {
			userOnly = userOnly && !strings.Contains(body, v)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		m := verdictLine.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("a line without verdict and source: %s", l)
			continue
		}
		if src := m[2]; !regexp.MustCompile(`^(`+regexp.QuoteMeta(dir)+`/\S+|<stdin>)#\d+(\[\d+\])*$`).MatchString(src) && src != "--default-network" {
			t.Errorf("a line without its file and document: %s", l)
		}
		for _, v := range sampleValues {
			if userOnly && strings.Contains(l, v) {
				t.Errorf("the sample's %q in a line about the user's files: %s", v, l)
			}
		}
	}
}

// runCLI runs one command line in this process.
func runCLI(args []string, stdin string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Execute(context.Background(), "underlink", args, Streams{In: strings.NewReader(stdin), Out: &out, Err: &errOut})
	return code, out.String(), errOut.String()
}

// unreachableServers are kubeconfigs of clusters that cannot be read: nothing listening (refused), a
// server that accepts and never answers (silent), one that answers 403 to everything (forbidden) and
// one whose certificate no CA of the kubeconfig signed (untrusted).
func unreachableServers(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, server string, insecure bool) string {
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: server, InsecureSkipTLSVerify: insecure}
		cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "t"}
		cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
		cfg.CurrentContext = "c"
		p := filepath.Join(dir, name)
		if err := clientcmd.WriteToFile(*cfg, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := map[string]string{}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out["refused"] = write("refused", "https://"+l.Addr().String(), true)
	l.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // never read, never answered
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		for _, c := range held {
			c.Close()
		}
	})
	out["silent"] = write("silent", "https://"+silent.Addr().String(), true)

	forbidden := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"forbidden: User \"t\" cannot list","reason":"Forbidden","code":403}`)
	}))
	t.Cleanup(forbidden.Close)
	out["forbidden"] = write("forbidden", forbidden.URL, true)

	untrusted := httptest.NewUnstartedServer(http.NotFoundHandler())
	untrusted.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	untrusted.StartTLS()
	t.Cleanup(untrusted.Close)
	out["untrusted"] = write("untrusted", untrusted.URL, false)
	return out
}
