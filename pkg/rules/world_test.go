package rules

import (
	"strings"
	"testing"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

func TestNewWorldPicksTheLocalCluster(t *testing.T) {
	ab := []submarinerv1.Cluster{clusterA, clusterB}
	renamed := cluster("cluster-b", "172.111.0.0/16", "10.243.0.0/18")
	renamed.Name = "submariner-b"
	tests := []struct {
		name      string
		in        Input
		wantLocal string
		reason    string
	}{
		{"by the given ID", Input{Clusters: ab, LocalCluster: "cluster-b"}, "cluster-b", "local cluster cluster-b given"},
		{"by the object name", Input{Clusters: []submarinerv1.Cluster{clusterA, renamed}, LocalCluster: "submariner-b"}, "cluster-b", "given"},
		{"a given ID that names no cluster", Input{Clusters: ab, LocalCluster: "cluster-z"}, "", `local cluster "cluster-z" names no Submariner Cluster (have cluster-a, cluster-b)`},
		{"by the API server's service IP", Input{Clusters: ab, APIServerServiceIP: "10.243.0.1"}, "cluster-b", "holds the API server's service IP 10.243.0.1"},
		{"the service IP beats the pools", Input{Clusters: ab, APIServerServiceIP: "10.233.0.1", Pools: []spiderv2beta1.SpiderIPPool{pool("b", "172.111.1.0/24", "", nil)}}, "cluster-a", "service IP"},
		{"by the pools configs name", Input{Clusters: ab, Pools: []spiderv2beta1.SpiderIPPool{fixedPool(), pool("stray", "172.111.1.0/24", "", nil)},
			MultusConfigs: []spiderv2beta1.SpiderMultusConfig{seedConfig()}}, "cluster-a", "inferred: its cluster_cidr holds the pools"},
		{"by every pool when no config names one", Input{Clusters: ab, Pools: []spiderv2beta1.SpiderIPPool{pool("b", "172.111.1.0/24", "", nil)}}, "cluster-b", "inferred"},
		{"pools of both clusters: ambiguous", Input{Clusters: ab, Pools: []spiderv2beta1.SpiderIPPool{fixedPool(), pool("b", "172.111.1.0/24", "", nil)}}, "",
			"cannot tell which of the Submariner Clusters cluster-a, cluster-b is local"},
		{"the only cluster", Input{Clusters: []submarinerv1.Cluster{clusterA}}, "cluster-a", "the only Submariner Cluster"},
		{"no clusters", Input{}, "", "no Submariner Cluster objects found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWorld(tt.in)
			got := ""
			if w.Local != nil {
				got = ClusterID(w.Local)
			}
			if got != tt.wantLocal {
				t.Errorf("local = %q, want %q (%s)", got, tt.wantLocal, w.LocalReason)
			}
			if !strings.Contains(w.LocalReason, tt.reason) {
				t.Errorf("reason %q lacks %q", w.LocalReason, tt.reason)
			}
			if n := len(w.Remotes); w.Local != nil && n != len(tt.in.Clusters)-1 {
				t.Errorf("%d remotes for %d clusters", n, len(tt.in.Clusters))
			}
		})
	}
}

func TestCheckClusters(t *testing.T) {
	bad := cluster("cluster-b", "172.111.0.0/16", "10.243.0.0/18")
	bad.Spec.ServiceCIDR = append(bad.Spec.ServiceCIDR, "not-a-cidr")
	overlapping := cluster("cluster-c", "172.110.128.0/17", "10.243.0.0/18")
	tests := []struct {
		name     string
		in       Input
		want     []string
		contains []string
	}{
		{name: "the seed's clusters", in: Input{Clusters: []submarinerv1.Cluster{clusterA, clusterB}, LocalCluster: "cluster-a"}},
		{name: "none", in: Input{}, want: []string{"Warn submariner-clusters-known -"}, contains: []string{"no Submariner Cluster objects found, alignment unchecked"}},
		{name: "local unknown", in: Input{Clusters: []submarinerv1.Cluster{clusterA, clusterB}, LocalCluster: "x"}, want: []string{"Warn submariner-clusters-known -"}},
		{
			name: "a CIDR that does not parse", in: Input{Clusters: []submarinerv1.Cluster{clusterA, bad}, LocalCluster: "cluster-a"},
			want: []string{"Deny cluster-cidrs-valid spec.service_cidr[1]"}, contains: []string{"cluster cluster-b's service_cidr is ignored"},
		},
		{
			name: "a cluster without cluster_cidr", in: Input{Clusters: []submarinerv1.Cluster{clusterA, cluster("cluster-b", "", "10.243.0.0/18")}, LocalCluster: "cluster-a"},
			want: []string{"Warn cluster-cidrs-valid spec.cluster_cidr"},
		},
		{
			name: "a remote overlapping the local pod CIDR", in: Input{Clusters: []submarinerv1.Cluster{clusterA, clusterB, overlapping}, LocalCluster: "cluster-a"},
			want:     []string{"Deny clusters-disjoint spec.cluster_cidr"},
			contains: []string{"172.110.128.0/17 (pod CIDR of cluster cluster-c) overlaps 172.110.0.0/16 (pod CIDR of the local cluster cluster-a)"},
		},
		{
			name: "globalnet allows overlaps",
			in: Input{Clusters: []submarinerv1.Cluster{cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18", "242.0.0.0/16"),
				cluster("cluster-b", "172.110.0.0/16", "10.233.0.0/18", "242.1.0.0/16")}, LocalCluster: "cluster-a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectViolations(t, CheckClusters(NewWorld(tt.in)), tt.want, tt.contains...)
		})
	}
	expectViolations(t, CheckClusters(nil), []string{"Warn submariner-clusters-known -"})
}

func TestCheckDefaultNetwork(t *testing.T) {
	w := func(def string) *World {
		return NewWorld(Input{DefaultNetwork: def, MultusConfigs: []spiderv2beta1.SpiderMultusConfig{seedConfig()}})
	}
	expectViolations(t, CheckDefaultNetwork(w("")), nil)
	expectViolations(t, CheckDefaultNetwork(w("kube-system/macvlan-conf")), nil)
	expectViolations(t, CheckDefaultNetwork(w("macvlan-conf")), nil)
	expectViolations(t, CheckDefaultNetwork(w("kube-system/macvlan-confg")), []string{"Deny default-network-exists -"}, "did you mean kube-system/macvlan-conf?")
	expectViolations(t, CheckDefaultNetwork(w("a,b")), []string{"Deny default-network-exists -"}, "must name one network")
	expectViolations(t, CheckDefaultNetwork(w("a/b/c")), []string{"Deny default-network-exists -"})
}

// The CLI finds the local cluster only where it is certain: a pool put by mistake in the remote
// cluster's CIDR must not make that cluster local (and the pool admitted), nor a lone Cluster object.
func TestNoLocalInferenceNeverGuesses(t *testing.T) {
	ab := []submarinerv1.Cluster{clusterA, clusterB}
	stray := []spiderv2beta1.SpiderIPPool{pool("b", "172.111.1.0/24", "", []string{"172.111.1.10"})}
	tests := []struct {
		name      string
		in        Input
		wantLocal string
		by        LocalChoice
	}{
		{"given", Input{Clusters: ab, LocalCluster: "cluster-a"}, "cluster-a", LocalGiven},
		{"by the API server's service IP", Input{Clusters: ab, APIServerServiceIP: "10.233.0.1", Pools: stray}, "cluster-a", LocalByServiceIP},
		{"not from the pools", Input{Clusters: ab, Pools: stray}, "", LocalUnknown},
		{"not the only cluster", Input{Clusters: []submarinerv1.Cluster{clusterB}, Pools: stray}, "", LocalUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.NoLocalInference = true
			w := NewWorld(in)
			got := ""
			if w.Local != nil {
				got = ClusterID(w.Local)
			}
			if got != tt.wantLocal || w.LocalBy != tt.by {
				t.Errorf("local %q by %q, want %q by %q (%s)", got, w.LocalBy, tt.wantLocal, tt.by, w.LocalReason)
			}
			if got == "" {
				vs := CheckPool(w, &stray[0], nil)
				if VerdictOf(vs) != VerdictWarn || len(vs) != 1 || vs[0].Rule != RuleClustersKnown || !strings.Contains(vs[0].Fix, "--local-cluster") {
					t.Errorf("without a local cluster the pool's alignment must be unchecked (a warning naming the fix): %v", vs)
				}
			}
			// Without the flag (the webhook) the inference still picks one, as before.
			if in.NoLocalInference = false; tt.by == LocalUnknown && NewWorld(in).Local == nil {
				t.Errorf("the webhook's inference changed: %s", NewWorld(in).LocalReason)
			}
		})
	}
}
