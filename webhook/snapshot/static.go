package snapshot

import (
	"fmt"
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

// ParseClusterFlag reads one static cluster as given on the command line:
//
//	id=cluster-b,cluster-cidr=172.111.0.0/16,service-cidr=10.243.0.0/18
//
// cluster-cidr, service-cidr and global-cidr may repeat for clusters with several CIDRs.
func ParseClusterFlag(s string) (submarinerv1.Cluster, error) {
	var c submarinerv1.Cluster
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || v == "" {
			return c, fmt.Errorf("static cluster %q: %q is not key=value; write id=cluster-b,cluster-cidr=172.111.0.0/16,service-cidr=10.243.0.0/18", s, kv)
		}
		switch k {
		case "id":
			c.Spec.ClusterID = v
		case "cluster-cidr":
			c.Spec.ClusterCIDR = append(c.Spec.ClusterCIDR, v)
		case "service-cidr":
			c.Spec.ServiceCIDR = append(c.Spec.ServiceCIDR, v)
		case "global-cidr":
			c.Spec.GlobalCIDR = append(c.Spec.GlobalCIDR, v)
		default:
			return c, fmt.Errorf("static cluster %q: unknown key %q; use id, cluster-cidr, service-cidr or global-cidr", s, k)
		}
	}
	if err := checkStatic(&c); err != nil {
		return c, fmt.Errorf("static cluster %q: %w", s, err)
	}
	return c, nil
}

// ParseClusters reads a YAML list of Submariner cluster specs, the format of the static clusters
// ConfigMap:
//
//   - cluster_id: cluster-b
//     cluster_cidr: [172.111.0.0/16]
//     service_cidr: [10.243.0.0/18]
func ParseClusters(raw []byte) ([]submarinerv1.Cluster, error) {
	var specs []submarinerv1.ClusterSpec
	if err := yaml.UnmarshalStrict(raw, &specs); err != nil {
		return nil, fmt.Errorf("not a YAML list of {cluster_id, cluster_cidr, service_cidr, global_cidr}: %w", err)
	}
	out := make([]submarinerv1.Cluster, 0, len(specs))
	seen := map[string]bool{}
	for i, s := range specs {
		c := submarinerv1.Cluster{Spec: s}
		if err := checkStatic(&c); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if seen[s.ClusterID] {
			return nil, fmt.Errorf("entry %d: cluster_id %s appears twice; keep one entry per cluster", i, s.ClusterID)
		}
		seen[s.ClusterID] = true
		out = append(out, c)
	}
	return out, nil
}

// checkStatic rejects what an operator mistyped; Cluster objects from Submariner are checked by the
// rules instead, since the webhook cannot refuse to start over another product's object.
func checkStatic(c *submarinerv1.Cluster) error {
	if c.Spec.ClusterID == "" {
		return fmt.Errorf("no cluster ID; give the ID the cluster has in Submariner (subctl join --clusterid)")
	}
	c.ObjectMeta = metav1.ObjectMeta{Name: c.Spec.ClusterID}
	for _, group := range []struct {
		name  string
		cidrs []string
	}{{"cluster-cidr", c.Spec.ClusterCIDR}, {"service-cidr", c.Spec.ServiceCIDR}, {"global-cidr", c.Spec.GlobalCIDR}} {
		for _, s := range group.cidrs {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("cluster %s: %s %q is not a CIDR such as 172.111.0.0/16: %w", c.Spec.ClusterID, group.name, s, err)
			}
			if p.Masked() != p {
				return fmt.Errorf("cluster %s: %s %q has host bits set; write %s", c.Spec.ClusterID, group.name, s, p.Masked())
			}
		}
	}
	if len(c.Spec.ClusterCIDR) == 0 && len(c.Spec.ServiceCIDR) == 0 {
		return fmt.Errorf("cluster %s has neither a cluster CIDR nor a service CIDR", c.Spec.ClusterID)
	}
	return nil
}
