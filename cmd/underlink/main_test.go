package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/admissioncases"
)

func TestDispatch(t *testing.T) {
	seed := func(n string) string { return test.Path("test", "testdata", "seed", n) }
	shared := func(n string) string { return filepath.Join(admissioncases.Dir(), "_shared", n) }
	clusters := shared("clusters.yaml")
	// The corrected seed where the Deployment's file sorts before the config's.
	appFirst := t.TempDir()
	for dst, src := range map[string]string{"app.yaml": shared("deployment-fixed.yaml"), "clusters.yaml": clusters,
		"pool.yaml": shared("pool-cluster-a-fixed.yaml"), "smc.yaml": seed("cluster-a-multusconfig.yaml")} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(appFirst, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{nil, 2, "validate", ""},
		{[]string{"help"}, 0, "check a set of manifests offline", ""},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"validate", "-h"}, 0, "", "--local-cluster"},
		{[]string{"validate", "-h"}, 0, "", "--in-order"},
		{[]string{"validate", "--bogus"}, 2, "", "flag provided but not defined"},
		{[]string{"validate", "-f", clusters, "--filename", seed("cluster-a-ippool.yaml"), "--local-cluster", "cluster-a"}, 1,
			`DENY SpiderIPPool/cluster-a: spec.gateway: Invalid value: "172.110.0.1"`, "local cluster cluster-a given"},
		{[]string{"validate", "--local-cluster=cluster-a", clusters, seed("cluster-a-multusconfig.yaml")}, 0,
			`WARN SpiderMultusConfig/kube-system/macvlan-conf`, ""},
		{[]string{"validate", "-f", appFirst}, 0,
			"ORDER " + filepath.Join(appFirst, "app.yaml") + "#1: Deployment/default/test-app would be denied on a first `kubectl apply -f` in this order",
			"5 objects, judged as a set"},
		{[]string{"validate", "--in-order", "-f", appFirst}, 1,
			`DENY Deployment/default/test-app: spec.template.metadata.annotations[v1.multus-cni.io/default-network]: Not found: "kube-system/macvlan-conf"`,
			"5 objects, in the given order"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := dispatch(context.Background(), tt.args, strings.NewReader(""), &out, &errOut)
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errOut.String())
			}
		})
	}
}
