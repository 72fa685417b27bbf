package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// The matchMasterSubnet step's objects on cluster-a: node i's ens224 is on subnet 172.110.(216+i).0/24
// for the step, a pool per subnet, and a pool of a subnet no node is on. The network lists the pools
// with matchMasterSubnet, the pool of the other node's subnet first.
const (
	mmNet = "mm-net"
	// mmLabel labels the step's pods.
	mmLabel = "mm"
)

// mmSubnet is the subnet of node i's ens224 (i 0 or 1), or of no node (i 2).
func mmSubnet(i int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("172.110.%d.0/24", 216+i))
}

func mmPool(i int) string { return fmt.Sprintf("mm-%d", 216+i) }

// mmNodeAddr is node i's address on ens224 for the step.
func mmNodeAddr(i int) netip.Prefix {
	return netip.PrefixFrom(mmSubnet(i).Addr().Next().Next().Next().Next().Next(), 24)
}

// nodeUnderlayAddr adds (or, with add false, removes) node i's address on its underlay NIC.
func nodeUnderlayAddr(n TargetNode, i int, add bool) error {
	return onNodeLink(n, netbed.UnderlayNIC, func(h netlinksafe.Handle, l netlink.Link) error {
		return nodeAddr(h, l, n.Name, mmNodeAddr(i), add)
	})
}

// cleanMasterSubnet deletes what an earlier run's step left on c, and the nodes' addresses.
func (r *runner) cleanMasterSubnet(c TargetCluster) error {
	err := r.deleteLeftovers(c, [][]string{
		{"delete", "pod", "-n", appNamespace, "-l", "underlink-e2e=" + mmLabel, "--ignore-not-found", "--wait=true", "--timeout=60s", "--grace-period=1"},
		{"delete", "spidermultusconfig", mmNet, "-n", configNS, "--ignore-not-found"},
		{"delete", "spiderippool", mmPool(0), mmPool(1), mmPool(2), "--ignore-not-found", "--timeout=60s"},
	})
	for i, n := range c.Nodes {
		if n.Net != nil && i < 2 {
			err = errors.Join(err, nodeUnderlayAddr(n, i, false))
		}
	}
	return err
}

// mmPod is a pod of mmNet; node pins it ("" lets the scheduler choose) and pool, when not empty, is
// its ipam.spidernet.io/ippool annotation's one IPv4 pool.
func (r *runner) mmPod(name, node, pool string) []byte {
	m := string(r.pinnedPod(name, node, mmLabel, nadv1.DefaultNetworkAnnotation, configNS+"/"+mmNet))
	if pool != "" {
		m = strings.Replace(m, "  annotations:\n", fmt.Sprintf("  annotations:\n    %s: '{\"ipv4\":[%q]}'\n", spv2.AnnoPodIPPool, pool), 1)
	}
	if node == "" {
		m = strings.Replace(m, "  nodeSelector:\n    kubernetes.io/hostname: \n", "", 1)
	}
	return []byte(m)
}

// matchMasterSubnet: the two nodes' ens224 are on two subnets; a network lists both subnets' pools
// with matchMasterSubnet. The agents publish each NIC's addresses; a pod on each node gets the pool of
// its node's subnet although the other is listed first; a pod limited to one pool is placed on the node
// of that pool's subnet, and one limited to a pool of no node's subnet stays Pending with the reason.
func (r *runner) matchMasterSubnet() error {
	c := r.a
	if len(c.Nodes) < 2 {
		return r.check(false, "two nodes on "+c.Name, fmt.Sprint(len(c.Nodes)))
	}
	if err := r.cleanMasterSubnet(c); err != nil {
		return r.check(false, "leftovers of an earlier run removed", err.Error())
	}
	for i, n := range c.Nodes[:2] {
		if err := nodeUnderlayAddr(n, i, true); err != nil {
			return r.check(false, "an address on the nodes' "+netbed.UnderlayNIC, err.Error())
		}
		fmt.Fprintf(r.out, "[%s]# ip addr add %s dev %s nodad   # on %s\n", c.Name, mmNodeAddr(i), netbed.UnderlayNIC, n.Name)
	}
	defer func() { _ = r.cleanMasterSubnet(c) }()

	key := underlay.AddressesKey(underlay.LabelPrefix, netbed.UnderlayNIC)
	for i, n := range c.Nodes[:2] {
		var got string
		start := time.Now()
		err := poll.Wait(r.ctx, 30*time.Second, pollInterval, "the agent publishes "+key, func() (bool, string, error) {
			got, _ = r.kubectlQuiet(c, nil, "get", "node", n.Name, "-o", "go-template={{index .metadata.annotations \""+key+"\"}}")
			return strings.Contains(got, mmNodeAddr(i).String()), got, nil
		})
		if err := r.check(err == nil, fmt.Sprintf("%s: underlink-agent publishes %s=%s (after %s)", n.Name, key, mmNodeAddr(i), time.Since(start).Round(10*time.Millisecond)), got); err != nil {
			return err
		}
	}

	var pools []string
	for i := range 3 {
		s := mmSubnet(i)
		base := s.Addr().As4()
		pools = append(pools, poolManifest(mmPool(i), s.String(), s.Addr().Next().String(), fmt.Sprintf("%d.%d.%d.10-%d.%d.%d.19", base[0], base[1], base[2], base[0], base[1], base[2])))
	}
	if out, err := r.showManifest(c, "apply", []byte(strings.Join(pools, "---\n"))); err != nil {
		return r.check(false, "SpiderIPPools "+mmPool(0)+", "+mmPool(1)+", "+mmPool(2)+" admitted", out)
	}
	network := strings.Replace(r.coordinatedNetwork(mmNet, netbed.UnderlayNIC, mmPool(1), ""),
		"    ippools:\n      ipv4:\n      - "+mmPool(1)+"\n",
		"    ippools:\n      matchMasterSubnet: true\n      ipv4:\n      - "+mmPool(1)+"\n      - "+mmPool(0)+"\n", 1)
	if err := r.applyNetwork(c, mmNet, network, "pools "+mmPool(1)+", "+mmPool(0)+" with matchMasterSubnet"); err != nil {
		return err
	}

	// One pod pinned to each node: each gets its node's subnet, whatever the order of the list.
	for i, n := range c.Nodes[:2] {
		name := fmt.Sprintf("mm-%c", 'a'+i)
		if out, err := r.showManifest(c, "apply", r.mmPod(name, n.Name, "")); err != nil {
			return r.check(false, name+" admitted", out)
		}
	}
	for i, n := range c.Nodes[:2] {
		name := fmt.Sprintf("mm-%c", 'a'+i)
		if err := r.waitRunning(c, name, 2*time.Minute); err != nil {
			return r.check(false, name+" Running on "+n.Name, err.Error())
		}
		ip, _ := r.kubectlQuiet(c, nil, "get", "pod", name, "-o", "jsonpath={.status.podIP}")
		a, err := netip.ParseAddr(strings.TrimSpace(ip))
		if err := r.check(err == nil && mmSubnet(i).Contains(a), fmt.Sprintf("%s on %s (ens224 %s) got %s, of pool %s, not of %s listed first", name, n.Name, mmNodeAddr(i), ip, mmPool(i), mmPool(1)), ip); err != nil {
			return err
		}
	}

	// Limited to the pool of node 0's subnet, the scheduler places the pod there.
	if out, err := r.showManifest(c, "apply", r.mmPod("mm-c", "", mmPool(0))); err != nil {
		return r.check(false, "mm-c admitted", out)
	}
	if err := r.waitRunning(c, "mm-c", 2*time.Minute); err != nil {
		return r.check(false, "mm-c Running", err.Error())
	}
	out, _ := r.kubectlQuiet(c, nil, "get", "pod", "mm-c", "-o", "jsonpath={.spec.nodeName} {.status.podIP}")
	f := strings.Fields(out)
	ok := len(f) == 2 && f[0] == c.Nodes[0].Name
	if ok {
		a, err := netip.ParseAddr(f[1])
		ok = err == nil && mmSubnet(0).Contains(a)
	}
	if err := r.check(ok, "mm-c, limited to "+mmPool(0)+", placed by the scheduler on "+c.Nodes[0].Name+" (the node on its subnet) with an address of it", out); err != nil {
		return err
	}

	// Limited to a pool of no node's subnet: Pending, and the Event says why.
	if out, err := r.showManifest(c, "apply", r.mmPod("mm-d", "", mmPool(2))); err != nil {
		return r.check(false, "mm-d admitted", out)
	}
	ev, err := r.podFailure(c, "mm-d", schedulerEvents, "no address of master NIC "+netbed.UnderlayNIC+" in the subnet of pool "+mmPool(2))
	node, _ := r.kubectlQuiet(c, nil, "get", "pod", "mm-d", "-o", "jsonpath={.spec.nodeName}")
	if err := r.check(err == nil && node == "", "mm-d, limited to "+mmPool(2)+" ("+mmSubnet(2).String()+", no node's), stays Pending; its Event says why", ev.Message); err != nil {
		return err
	}

	if out, err := r.kubectl(c, nil, "delete", "pod", "-l", "underlink-e2e="+mmLabel, "--wait=true", "--timeout=60s"); err != nil {
		return r.check(false, "the step's pods deleted", out)
	}
	var held []string
	err = poll.Wait(r.ctx, time.Minute, pollInterval, "the pools empty", func() (bool, string, error) {
		held = held[:0]
		for i := range 3 {
			allocs, err := r.poolAllocations(c, mmPool(i))
			if err != nil {
				return false, err.Error(), nil
			}
			for ip := range allocs {
				held = append(held, mmPool(i)+"="+ip)
			}
		}
		return len(held) == 0, strings.Join(held, ", "), nil
	})
	return r.check(err == nil, "the step's pods deleted: their pools' addresses released", strings.Join(held, ", "))
}
