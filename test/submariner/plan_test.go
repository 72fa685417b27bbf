package submariner

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

func seedClusters() []Cluster {
	a := netip.MustParseAddr
	return []Cluster{
		{ID: "cluster-a", ClusterCIDR: netip.MustParsePrefix("172.110.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.233.0.0/18"),
			Gateway: Node{Name: "a-node1", IP: a("10.7.168.73"), PrivateIP: a("10.6.168.73")},
			Nodes:   []Node{{Name: "a-node2", IP: a("10.7.168.75")}}},
		{ID: "cluster-b", ClusterCIDR: netip.MustParsePrefix("172.111.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.243.0.0/18"),
			Gateway: Node{Name: "b-node1", IP: a("10.7.168.74"), PrivateIP: a("10.6.168.74")},
			Nodes:   []Node{{Name: "b-node2", IP: a("10.7.168.76")}}},
	}
}

func TestPlanOfTheSeed(t *testing.T) {
	p, err := NewPlan(seedClusters())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Endpoints) != 2 || p.Endpoints[0].Spec.CableName != "submariner-cable-cluster-a-10-6-168-73" ||
		p.Endpoints[0].Name != "cluster-a-submariner-cable-cluster-a-10-6-168-73" || p.Endpoints[1].Spec.Backend != "vxlan" ||
		strings.Join(p.Endpoints[1].Spec.Subnets, ",") != "10.243.0.0/18,172.111.0.0/16" {
		t.Errorf("endpoints: %+v", p.Endpoints)
	}
	got := map[string]string{}
	for _, n := range p.Nodes {
		var rs []string
		for _, r := range n.Routes {
			rs = append(rs, r.String())
		}
		s := strings.Join(rs, "; ")
		if n.Cable != nil {
			s = "cable " + n.Cable.Local.String() + " vtep " + n.Cable.VTEP.String() + " → " + n.Cable.Remotes[0].String() + "; " + s
		}
		got[n.Node] = s
	}
	want := map[string]string{
		"a-node1": "cable 10.6.168.73 vtep 241.6.168.73/8 → 10.6.168.74; 10.243.0.0/18 via 241.6.168.74 dev vxlan-tunnel onlink; 172.111.0.0/16 via 241.6.168.74 dev vxlan-tunnel onlink",
		"a-node2": "10.243.0.0/18 via 10.7.168.73 dev eth0; 172.111.0.0/16 via 10.7.168.73 dev eth0",
		"b-node1": "cable 10.6.168.74 vtep 241.6.168.74/8 → 10.6.168.73; 10.233.0.0/18 via 241.6.168.73 dev vxlan-tunnel onlink; 172.110.0.0/16 via 241.6.168.73 dev vxlan-tunnel onlink",
		"b-node2": "10.233.0.0/18 via 10.7.168.74 dev eth0; 172.110.0.0/16 via 10.7.168.74 dev eth0",
	}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s:\n got %s\nwant %s", n, got[n], w)
		}
	}
}

func TestPlanRefusesWhatSubmarinerRefuses(t *testing.T) {
	overlap := seedClusters()
	overlap[1].ClusterCIDR = netip.MustParsePrefix("172.110.128.0/17")
	dup := seedClusters()
	dup[1].ID = "cluster-a"
	noGW := seedClusters()
	noGW[0].Gateway.PrivateIP = netip.Addr{}
	for name, c := range map[string]struct {
		in   []Cluster
		want string
	}{
		"overlap": {overlap, "cluster cluster-b's 172.110.128.0/17 overlaps cluster cluster-a's 172.110.0.0/16: Submariner needs globalnet"},
		"dup":     {dup, `ID "cluster-a" is empty or repeated`},
		"no gw":   {noGW, "needs a node IP and a private (ens192) IP"},
		"one":     {seedClusters()[:1], "at least two clusters"},
	} {
		if _, err := NewPlan(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if _, err := VTEPAddr(netip.MustParseAddr("fd00::1")); err == nil {
		t.Error("an IPv6 VTEP was accepted")
	}
}

func TestShowLikeSubctl(t *testing.T) {
	p, err := NewPlan(seedClusters())
	if err != nil {
		t.Fatal(err)
	}
	clusters := []submarinerv1.Cluster{{Spec: submarinerv1.ClusterSpec{ClusterID: "cluster-a", ClusterCIDR: []string{"172.110.0.0/16"}, ServiceCIDR: []string{"10.233.0.0/18"}}}}
	eps := []submarinerv1.Endpoint{*p.Endpoints[0], *p.Endpoints[1]}
	var b strings.Builder
	ok := Show(&b, ShowInput{LocalClusterID: "cluster-a", Clusters: clusters, Endpoints: eps,
		Connections: []Connection{{RemoteClusterID: "cluster-b", Connected: true, RTT: 661938 * time.Nanosecond}}})
	out := b.String()
	for _, want := range []string{
		`Cluster "cluster-a"`, " ✓ Showing Connections", "a-node1   cluster-b   10.6.168.74   no    vxlan", "10.243.0.0/18, 172.111.0.0/16   connected   662µs",
		"cluster-a   10.6.168.73   10.6.168.73   vxlan          local", "a-node1   active      All connections (1) are established",
		"Service CIDRs:   [10.233.0.0/18]", "Cluster CIDRs:   [172.110.0.0/16]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if !ok {
		t.Errorf("a connected cluster showed a failure:\n%s", out)
	}
	b.Reset()
	if Show(&b, ShowInput{LocalClusterID: "cluster-a", Clusters: clusters, Endpoints: eps,
		Connections: []Connection{{RemoteClusterID: "cluster-b", Err: errTest("echo 1 of 1 not answered")}}}) ||
		!strings.Contains(b.String(), " ✗ Showing Connections") || !strings.Contains(b.String(), "error: echo 1 of 1 not answered") {
		t.Errorf("a broken cable showed fine:\n%s", b.String())
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }
