package snapshot

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

func TestParseClusterFlag(t *testing.T) {
	c, err := ParseClusterFlag("id=cluster-b,cluster-cidr=172.111.0.0/16,service-cidr=10.243.0.0/18,service-cidr=10.244.0.0/18")
	if err != nil {
		t.Fatal(err)
	}
	want := submarinerv1.ClusterSpec{ClusterID: "cluster-b", ClusterCIDR: []string{"172.111.0.0/16"}, ServiceCIDR: []string{"10.243.0.0/18", "10.244.0.0/18"}}
	if !reflect.DeepEqual(c.Spec, want) || c.Name != "cluster-b" {
		t.Errorf("got %+v", c)
	}
	for in, wantErr := range map[string]string{
		"cluster-cidr=172.111.0.0/16":                  "no cluster ID",
		"id=b,cluster-cidr=172.111.0.1/16":             "has host bits set; write 172.111.0.0/16",
		"id=b,cluster-cidr=172.111.0.0":                "is not a CIDR",
		"id=b,pods=172.111.0.0/16":                     `unknown key "pods"`,
		"id=b":                                         "neither a cluster CIDR nor a service CIDR",
		"id=b,,cluster-cidr=1.0.0.0/8":                 "is not key=value",
		"id=b,cluster-cidr=172.111.0.0/16,global-cidr": "is not key=value",
	} {
		if _, err := ParseClusterFlag(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: error %v, want one containing %q", in, err, wantErr)
		}
	}
}

func TestParseClusters(t *testing.T) {
	cs, err := ParseClusters([]byte("- cluster_id: cluster-b\n  cluster_cidr: [172.111.0.0/16]\n  service_cidr: [10.243.0.0/18]\n"))
	if err != nil || len(cs) != 1 || cs[0].Spec.ClusterID != "cluster-b" {
		t.Fatalf("%+v %v", cs, err)
	}
	for in, wantErr := range map[string]string{
		"- cluster_id: b\n  clustercidr: [1.0.0.0/8]\n":                                                "not a YAML list",
		"- cluster_id: b\n  cluster_cidr: [1.0.0.0/8]\n- cluster_id: b\n  cluster_cidr: [2.0.0.0/8]\n": "appears twice",
		"- cluster_cidr: [1.0.0.0/8]\n":                                                                "entry 0: no cluster ID",
	} {
		if _, err := ParseClusters([]byte(in)); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: error %v, want one containing %q", in, err, wantErr)
		}
	}
}

// A Cluster object wins over a static entry of the same ID; static entries fill the gaps.
func TestMergeObjectsWin(t *testing.T) {
	obj := submarinerv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "cluster-b"}, Spec: submarinerv1.ClusterSpec{ClusterID: "cluster-b", ClusterCIDR: []string{"172.111.0.0/16"}}}
	staticB, _ := ParseClusterFlag("id=cluster-b,cluster-cidr=10.0.0.0/8")
	staticC, _ := ParseClusterFlag("id=cluster-c,cluster-cidr=172.112.0.0/16")
	got := Merge([]submarinerv1.Cluster{obj}, []submarinerv1.Cluster{staticB, staticC})
	if len(got) != 2 || got[0].Spec.ClusterCIDR[0] != "172.111.0.0/16" || got[1].Spec.ClusterID != "cluster-c" {
		t.Errorf("merge: %+v", got)
	}
}
