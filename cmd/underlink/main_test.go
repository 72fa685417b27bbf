package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/underlink/underlink/test"
)

func TestDispatch(t *testing.T) {
	seed := func(n string) string { return test.Path("test", "testdata", "seed", n) }
	clusters := test.Path("webhook", "alignment", "testdata", "cases", "_shared", "clusters.yaml")
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{nil, 2, "validate", ""},
		{[]string{"help"}, 0, "usage: underlink COMMAND", ""},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"validate", "-h"}, 0, "", "--local-cluster"},
		{[]string{"validate", "--bogus"}, 2, "", "flag provided but not defined"},
		{[]string{"validate", "-f", clusters, "--filename", seed("cluster-a-ippool.yaml"), "--local-cluster", "cluster-a"}, 1,
			`DENY SpiderIPPool/cluster-a: spec.gateway: Invalid value: "172.110.0.1"`, "local cluster cluster-a given"},
		{[]string{"validate", "--local-cluster=cluster-a", clusters, seed("cluster-a-multusconfig.yaml")}, 0,
			`WARN SpiderMultusConfig/kube-system/macvlan-conf`, ""},
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
