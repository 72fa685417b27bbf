//go:build integration

package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/underlink/underlink/cni/coordinator"
	"github.com/underlink/underlink/test/netbed"
)

// floorConf is macvlan + host-local: no cluster IPAM, no route hijacking (shared/PEERS.md).
const floorConf = `{"cniVersion":"1.1.0","name":"floor","plugins":[
 {"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"host-local","dataDir":%q,
  "ranges":[[{"subnet":"172.110.2.0/24","gateway":"172.110.0.1"}]]}}]}`

// fullConf is the seed's cluster-a chain with host-local in place of underlink-ipam:
// macvlan + host-local + underlink-coordinator.
const fullConf = `{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","plugins":[
 {"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"host-local","dataDir":%q,
  "ranges":[[{"subnet":"172.110.1.0/24","gateway":"172.110.0.1"}]]}},
 {"type":"underlink-coordinator","mode":"underlay","hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],
  "serviceCIDR":["10.233.0.0/18"],"clusterCIDR":["172.110.0.0/16"],"podRPFilter":0}]}`

// BenchmarkCNIAdd times ADD of both chains, interleaved pod by pod on the same node so both see the same
// machine load, and reports p50/p99 of each and the full/floor ratios. DEL and namespace creation are
// not timed. Run with a fixed count, e.g. -benchtime=200x.
func BenchmarkCNIAdd(b *testing.B) {
	bed := netbed.New(b)
	bin := bed.PluginDir("underlink-coordinator")
	node := bed.Node(netbed.NodeSpec{Name: "a-node1", Cluster: bed.Cluster(netbed.ClusterA), IP: netip.MustParsePrefix("10.7.168.73/24")})
	cni := bed.CNI(node.NS, bin)
	ctx := context.Background()
	parse := func(format, name string) *libcni.NetworkConfigList {
		l, err := netbed.ParseConfList(fmt.Appendf(nil, format, bed.Dir()+"/host-local-"+name))
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	chains := []struct {
		name string
		list *libcni.NetworkConfigList
		took []time.Duration
	}{
		{name: "floor", list: parse(floorConf, "floor")},
		{name: "full", list: parse(fullConf, "full")},
	}

	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		for c := range chains {
			ch := &chains[c]
			pod, err := bed.NewNetns(fmt.Sprintf("bench-%s-%d", ch.name, i))
			if err != nil {
				b.Fatal(err)
			}
			rt := netbed.Attachment(fmt.Sprintf("bench-%s-%d", ch.name, i), pod, "eth0")
			b.StartTimer()
			start := time.Now()
			_, err = cni.Add(ctx, ch.list, rt)
			took := time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatalf("%s ADD #%d: %v", ch.name, i, err)
			}
			ch.took = append(ch.took, took)
			if err := cni.Del(ctx, ch.list, rt); err != nil {
				b.Fatalf("%s DEL #%d: %v", ch.name, i, err)
			}
		}
	}
	p := percentile
	floor, full := chains[0].took, chains[1].took
	b.ReportMetric(p(floor, 0.50), "floor-p50-ms")
	b.ReportMetric(p(floor, 0.99), "floor-p99-ms")
	b.ReportMetric(p(full, 0.50), "full-p50-ms")
	b.ReportMetric(p(full, 0.99), "full-p99-ms")
	b.ReportMetric(p(full, 0.50)/p(floor, 0.50), "p50-ratio")
	b.ReportMetric(p(full, 0.99)/p(floor, 0.99), "p99-ratio")
}

// BenchmarkCoordinatorAddInProcess times underlink-coordinator's own ADD work (netlink and sysctl calls,
// no process start) on a pod that macvlan + host-local attached beforehand, untimed. Next to
// BenchmarkCNIAdd it tells the coordinator's work from the cost of starting one more plugin process.
func BenchmarkCoordinatorAddInProcess(b *testing.B) {
	bed := netbed.New(b)
	bin := bed.PluginDir()
	node := bed.Node(netbed.NodeSpec{Name: "a-node1", Cluster: bed.Cluster(netbed.ClusterA), IP: netip.MustParsePrefix("10.7.168.73/24")})
	cni := bed.CNI(node.NS, bin)
	ctx := context.Background()
	floor, err := netbed.ParseConfList(fmt.Appendf(nil, floorConf, bed.Dir()+"/host-local-floor"))
	if err != nil {
		b.Fatal(err)
	}
	plugin := &coordinator.Plugin{HostNS: node.NS}
	var took []time.Duration
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		pod, err := bed.NewNetns(fmt.Sprintf("inproc-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		rt := netbed.Attachment(fmt.Sprintf("inproc-%d", i), pod, "eth0")
		prev, err := cni.Add(ctx, floor, rt)
		if err != nil {
			b.Fatal(err)
		}
		prevJSON, err := json.Marshal(prev)
		if err != nil {
			b.Fatal(err)
		}
		args := &skel.CmdArgs{ContainerID: rt.ContainerID, Netns: pod.Path(), IfName: "eth0", StdinData: fmt.Appendf(nil,
			`{"cniVersion":"1.1.0","name":"floor","type":"underlink-coordinator","hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],
			  "serviceCIDR":["10.233.0.0/18"],"clusterCIDR":["172.110.0.0/16"],"podRPFilter":0,"prevResult":%s}`, prevJSON)}
		b.StartTimer()
		start := time.Now()
		_, err = plugin.Add(args)
		took = append(took, time.Since(start))
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if err := plugin.Del(args); err != nil {
			b.Fatal(err)
		}
		if err := cni.Del(ctx, floor, rt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(percentile(took, 0.50), "p50-ms")
	b.ReportMetric(percentile(took, 0.99), "p99-ms")
}

// percentile of durations, in milliseconds (nearest rank).
func percentile(d []time.Duration, q float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	idx := max(0, min(int(q*float64(len(s))+0.5)-1, len(s)-1))
	return float64(s[idx].Microseconds()) / 1000
}
