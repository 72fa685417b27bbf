package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/cli/doctor"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// The underlay steps' objects (issue #20).
const (
	// storageNet is a network on the second underlay NIC; storagePool its pool, on the second
	// segment's own subnet (outside the cluster CIDR: a warning, since no config names it).
	storageNet  = "macvlan-ens256"
	storagePool = "storage-a"
	// multiNICPod has eth0 (the injected default network) and net1 on storageNet; parentProbePod asks
	// for storageNet on the node without ens256.
	multiNICPod    = "multi-nic"
	parentProbePod = "parent-probe"
	// detectNet turns on conflict and gateway detection, from detectPool, whose first address the
	// foreign host holds; conflictPod is the pod that meets it.
	detectNet   = "macvlan-detect"
	detectPool  = "detect-a"
	conflictPod = "conflict"
	// movePool has one address, which moves from movePods[0] on one node to movePods[1] on the other.
	movePool = "move-a"
)

var movePods = []string{"move-1", "move-2"}

// underlayPods and underlayObjects are what the underlay steps leave, for the clean slate.
var (
	underlayPods    = []string{multiNICPod, parentProbePod, conflictPod, movePods[0], movePods[1]}
	underlayConfigs = []string{storageNet, detectNet}
	underlayPools   = []string{storagePool, detectPool, movePool}
)

// cleanUnderlay deletes what an earlier run's underlay steps left on c.
func (r *runner) cleanUnderlay(c TargetCluster) error {
	return r.deleteLeftovers(c, [][]string{
		append([]string{"delete", "pod", "-n", appNamespace, "--ignore-not-found", "--wait=true", "--timeout=60s", "--grace-period=1"}, underlayPods...),
		append([]string{"delete", "spidermultusconfig", "-n", configNS, "--ignore-not-found"}, underlayConfigs...),
		append([]string{"delete", "spiderippool", "--ignore-not-found"}, underlayPools...),
	})
}

func poolManifest(name, subnet, gateway string, ips ...string) string {
	return fmt.Sprintf("apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata:\n  name: %s\nspec:\n  subnet: %s\n  gateway: %s\n  ips:\n  - %s\n",
		name, subnet, gateway, strings.Join(ips, "\n  - "))
}

// coordinatedNetwork is a SpiderMultusConfig of macvlan on master with the coordinator (the cluster's
// remote CIDRs hijacked), its pools and coordinator fields as given ("" for none).
func (r *runner) coordinatedNetwork(name, master, pool, extra string) string {
	pools := ""
	if pool != "" {
		pools = "    ippools:\n      ipv4:\n      - " + pool + "\n"
	}
	return fmt.Sprintf(`apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: %s
  namespace: %s
spec:
  cniType: macvlan
  macvlan:
    master:
    - %s
%s  coordinator:
    hijackCIDR:
    - %s
    - %s
%s`, name, configNS, master, pools, r.b.ServiceCIDR, r.b.ClusterCIDR, extra)
}

// applyNetwork applies a SpiderMultusConfig and waits for its NAD.
func (r *runner) applyNetwork(c TargetCluster, name, manifest, what string) error {
	out, err := r.showManifest(c, "apply", []byte(manifest))
	if err := r.check(err == nil, "SpiderMultusConfig "+name+" ("+what+") admitted", strings.TrimSpace(out)); err != nil {
		return err
	}
	nad, werr := r.waitNAD(c, name, "underlink-ipam")
	if werr != nil {
		return r.check(false, "NetworkAttachmentDefinition "+configNS+"/"+name+" on "+c.Name, werr.Error())
	}
	fmt.Fprintf(r.out, "[%s]$ kubectl get network-attachment-definition %s -n %s -o jsonpath='{.spec.config}'\n%s\n", c.Name, name, configNS, indent(nad))
	return nil
}

// waitNAD waits until the controller wrote the NetworkAttachmentDefinition of configNS/name with a
// config containing want, and returns the config.
func (r *runner) waitNAD(c TargetCluster, name, want string) (string, error) {
	var nad string
	err := poll.Wait(r.ctx, 30*time.Second, pollInterval, "NetworkAttachmentDefinition "+configNS+"/"+name, func() (bool, string, error) {
		o, err := r.kubectlQuiet(c, nil, "get", "network-attachment-definitions", name, "-n", configNS, "-o", "jsonpath={.spec.config}")
		nad = o
		return err == nil && strings.Contains(o, want), o, nil
	})
	if err != nil {
		return nad, fmt.Errorf("underlink's controller did not write it within 30s: %s", strings.TrimSpace(nad))
	}
	return nad, nil
}

// podNetns finds, among the namespaces of the machine's processes, the one holding ip on an interface:
// a pod's sandbox, as `nsenter -t <pause pid> -n` would enter it. The test app's own tools read only the
// main table; the checks here read the pod's rules, tables and counters themselves.
func podNetns(ip netip.Addr) (*netbed.Netns, error) {
	entries, err := filepath.Glob("/proc/[0-9]*/ns/net")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, p := range entries {
		target, err := os.Readlink(p)
		if err != nil || seen[target] {
			continue
		}
		seen[target] = true
		h, err := ns.GetNS(p)
		if err != nil {
			continue
		}
		n := &netbed.Netns{NetNS: h, Name: target, Role: "pod " + ip.String()}
		if holds(n, ip) {
			return n, nil
		}
		h.Close()
	}
	return nil, fmt.Errorf("no network namespace on this machine holds %s", ip)
}

func holds(n *netbed.Netns, ip netip.Addr) bool {
	h, err := n.Netlink()
	if err != nil {
		return false
	}
	defer h.Close()
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
			return true
		}
	}
	return false
}

// host is a foreign host of c's bed (NodePlan), or the failed check that says it is missing.
func (r *runner) host(c TargetCluster, name string) (*netbed.Netns, error) {
	if h := c.Hosts[name]; h != nil {
		return h, nil
	}
	return nil, r.check(false, "host "+name+" on "+c.Name, "the bed has no host "+name+": start the nodes again (make down; make demo)")
}

// statusOf reads a pod's network-status, by interface.
func (r *runner) statusOf(c TargetCluster, pod string) (map[string]NetworkStatus, podView, error) {
	v, err := r.getPod(c, pod)
	if err != nil {
		return nil, v, err
	}
	sts, err := ParseNetworkStatus(v.Annotations[NetworkStatusAnnotation])
	if err != nil {
		return nil, v, err
	}
	out := map[string]NetworkStatus{}
	for _, s := range sts {
		out[s.Interface] = s
	}
	return out, v, nil
}

// secondNIC: a pod with eth0 on the default network (ens224) and net1 on a network of the first node's
// second underlay NIC ens256 (its own segment and subnet), both coordinated through the real Multus.
// The pod lands on the only node with ens256; each interface has its pool's address; net1 has a routing
// table and a rule of its own; a peer behind the second segment's gateway reaches net1 and the replies
// leave by net1; hijacked destinations leave by veth0 from eth0's address and by net1's own veth from
// net1's; the node reaches both addresses.
func (r *runner) secondNIC() error {
	c := r.a
	out, err := r.showManifest(c, "apply", []byte(poolManifest(storagePool, "192.168.56.0/24", StorageSegment.Gateway.Addr().String(), "192.168.56.10-192.168.56.20")))
	if err := r.check(err == nil, "SpiderIPPool "+storagePool+" on the second segment admitted", firstLine(out, "spiderippool")); err != nil {
		return err
	}
	if err := r.applyNetwork(c, storageNet, r.coordinatedNetwork(storageNet, SecondNIC, "", ""), "macvlan on "+SecondNIC+", coordinated"); err != nil {
		return err
	}
	label := underlay.LabelKey(underlay.LabelPrefix, SecondNIC)
	want := map[string]string{c.Nodes[0].Name: underlay.LinkUp, c.Nodes[1].Name: underlay.LinkDown}
	var got string
	err = poll.Wait(r.ctx, 30*time.Second, pollInterval, "agents label "+label, func() (bool, string, error) {
		var parts []string
		ok := true
		for node, v := range want {
			l, _ := r.kubectlQuiet(c, nil, "get", "node", node, "-o", "jsonpath={.metadata.labels."+strings.NewReplacer(".", `\.`, "/", `\/`).Replace(label)+"}")
			parts = append(parts, node+"="+strings.TrimSpace(l))
			ok = ok && strings.TrimSpace(l) == v
		}
		got = strings.Join(parts, " ")
		return ok, got, nil
	})
	if _, kerr := r.kubectl(c, nil, "get", "nodes", "-L", label); kerr != nil {
		return kerr
	}
	if err := r.check(err == nil, "the agents follow the new network's parent "+SecondNIC+": up on "+c.Nodes[0].Name+", down (missing) on "+c.Nodes[1].Name, got); err != nil {
		return err
	}

	ippools := fmt.Sprintf(`[{"interface":"eth0","ipv4":["%s"]},{"interface":"net1","ipv4":["%s"]}]`, c.Name, storagePool)
	m := r.testPod(multiNICPod, nil, map[string]string{nadv1.NetworksAnnotation: configNS + "/" + storageNet + "@net1", spv2.AnnoPodIPPools: ippools})
	if out, err := r.showManifest(c, "create", m); err != nil {
		return r.check(false, "pod "+multiNICPod+" admitted", out)
	}
	if err := r.waitRunning(c, multiNICPod, 90*time.Second); err != nil {
		desc, _ := r.kubectlQuiet(c, nil, "describe", "pod", multiNICPod)
		return r.check(false, "pod "+multiNICPod+" Running with eth0 and net1 coordinated", err.Error()+"\n"+lastLines(desc, 20))
	}
	if _, err := r.kubectl(c, nil, "get", "pod", multiNICPod, "-o", "wide"); err != nil {
		return err
	}
	sts, v, err := r.statusOf(c, multiNICPod)
	if err != nil {
		return r.check(false, "network-status of "+multiNICPod, err.Error())
	}
	fmt.Fprintf(r.out, "[%s]$ kubectl get pod %s -o jsonpath='{.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/network-status}'\n%s\n", c.Name, multiNICPod, indent(v.Annotations[NetworkStatusAnnotation]))
	eth0, net1 := sts["eth0"], sts["net1"]
	var problems []string
	if v.Node != c.Nodes[0].Name {
		problems = append(problems, "placed on "+v.Node)
	}
	if len(eth0.IPs) != 1 || !InRange(eth0.IPs[0], r.pools[c.Name]) {
		problems = append(problems, fmt.Sprintf("eth0 has %v, not one address of %s", eth0.IPs, c.Name))
	}
	if len(net1.IPs) != 1 || !InRange(net1.IPs[0], "192.168.56.10-192.168.56.20") || net1.Name != configNS+"/"+storageNet {
		problems = append(problems, fmt.Sprintf("net1 is %+v, not one address of %s from %s", net1, storagePool, storageNet))
	}
	for _, veth := range []string{"veth0", "veth-net1"} {
		if _, ok := sts[veth]; !ok {
			problems = append(problems, "network-status lacks the coordinator's "+veth)
		}
	}
	if err := r.check(len(problems) == 0, multiNICPod+" on "+c.Nodes[0].Name+": eth0 and net1 with their pools' addresses, a veth each",
		fmt.Sprintf("eth0 %v (%s), net1 %v (%s) %s", eth0.IPs, c.Name, net1.IPs, storagePool, strings.Join(problems, "; "))); err != nil {
		return err
	}
	if _, err := r.kubectl(c, nil, "exec", multiNICPod, "--", "ip", "route"); err != nil {
		return err
	}
	eth0IP, net1IP := netip.MustParseAddr(eth0.IPs[0]), netip.MustParseAddr(net1.IPs[0])
	pod, err := podNetns(net1IP)
	if err != nil {
		return r.check(false, "the pod's network namespace found", err.Error())
	}
	defer pod.Close()
	if out, err := netbed.Run(pod, exec.Command("ip", "rule")); err == nil {
		fmt.Fprintf(r.out, "[%s]# nsenter -t <%s's pause> -n ip rule; ip route show table 100\n%s", c.Name, multiNICPod, indent(string(out)))
	}
	if out, err := netbed.Run(pod, exec.Command("ip", "route", "show", "table", "100")); err == nil {
		fmt.Fprintln(r.out, indent(string(out)))
	}
	remote := netip.MustParsePrefix(r.b.ClusterCIDR).Addr().Next()
	var via []string
	problems = nil
	for _, tc := range []struct {
		dst, src netip.Addr
		want     string
	}{{remote, netip.Addr{}, "veth0"}, {remote, eth0IP, "veth0"}, {remote, net1IP, "veth-net1"}, {StoragePeerIP.Addr(), net1IP, "net1"}} {
		dev, err := pod.RouteVia(tc.dst, tc.src)
		if err != nil {
			return err
		}
		from := "no source"
		if tc.src.IsValid() {
			from = "from " + tc.src.String()
		}
		via = append(via, fmt.Sprintf("%s %s → %s", tc.dst, from, dev))
		if dev != tc.want {
			problems = append(problems, fmt.Sprintf("%s from %v leaves by %s, want %s", tc.dst, tc.src, dev, tc.want))
		}
	}
	if err := r.check(len(problems) == 0, "hijack routes by each interface's veth; net1's traffic by its own table", strings.Join(via, ", ")+" "+strings.Join(problems, "; ")); err != nil {
		return err
	}
	peer, err := r.host(c, StoragePeer)
	if err != nil {
		return err
	}
	txBefore, err := pod.Link("net1")
	if err != nil {
		return err
	}
	fmt.Fprintf(r.out, "[%s]# ping -c3 %s   # from %s (%s), behind the second segment's gateway %s\n", StoragePeer, net1IP, StoragePeer, StoragePeerIP.Addr(), StorageSegment.Gateway.Addr())
	perr := netbed.Ping(peer, net1IP, 3, 5*time.Second)
	txAfter, err := pod.Link("net1")
	if err != nil {
		return err
	}
	sent := txAfter.Attrs().Statistics.TxPackets - txBefore.Attrs().Statistics.TxPackets
	if err := r.check(perr == nil && sent >= 3, "a peer on the second segment reaches net1; the replies leave through net1",
		fmt.Sprintf("3 echoes answered: %v; net1 sent %d packets", perr == nil, sent)); err != nil {
		return err
	}
	node := c.Nodes[0]
	var nerrs []string
	for _, dst := range []netip.Addr{eth0IP, net1IP} {
		if err := netbed.Ping(node.Net, dst, 2, 5*time.Second); err != nil {
			nerrs = append(nerrs, err.Error())
		}
	}
	return r.check(len(nerrs) == 0, node.Name+" reaches eth0 and net1 over their veths", strings.Join(nerrs, "; "))
}

// parentMissing: a pod of the ens256 network that may run only on the node without ens256 stays Pending,
// with underlink-scheduler's reason in its Event, and `underlink doctor` lists that node.
func (r *runner) parentMissing() error {
	c := r.a
	victim := c.Nodes[1].Name
	m := strings.Replace(string(r.testPod(parentProbePod, nil, map[string]string{nadv1.NetworksAnnotation: configNS + "/" + storageNet + "@net1",
		spv2.AnnoPodIPPools: fmt.Sprintf(`[{"interface":"eth0","ipv4":["%s"]},{"interface":"net1","ipv4":["%s"]}]`, c.Name, storagePool)})),
		"spec:\n", "spec:\n  nodeSelector:\n    kubernetes.io/hostname: "+victim+"\n", 1)
	if out, err := r.showManifest(c, "create", []byte(m)); err != nil {
		return r.check(false, "pod "+parentProbePod+" admitted", out)
	}
	ev, err := r.podFailure(c, parentProbePod, schedulerEvents, SecondNIC)
	node, _ := r.kubectlQuiet(c, nil, "get", "pod", parentProbePod, "-o", "jsonpath={.spec.nodeName}")
	if err := r.check(err == nil && node == "", "a pod of "+storageNet+" is never placed on "+victim+", which lacks "+SecondNIC+"; its Event says why",
		ev.Reason+": "+ev.Message+" "+node); err != nil {
		return err
	}
	cl, err := r.client(c)
	if err != nil {
		return err
	}
	rep, err := doctor.Run(r.ctx, cl, doctor.Options{})
	if err != nil {
		return r.check(false, "underlink doctor on "+c.Name, err.Error())
	}
	fmt.Fprintf(r.out, "[%s]$ underlink doctor --quiet   # its %s check\n", c.Name, doctor.CheckParentsOnNodes)
	var finding string
	for _, ch := range rep.Checks {
		if ch.ID != doctor.CheckParentsOnNodes {
			continue
		}
		for _, f := range ch.Findings {
			fmt.Fprintf(r.out, "    %s %s %s: %s\n      fix: %s\n", map[bool]string{true: "✗", false: "!"}[ch.Status == doctor.Fail], f.Subject, f.Field, f.Why, f.Fix)
			if strings.Contains(f.Subject, storageNet) {
				finding = f.Why
			}
		}
	}
	if err := r.check(strings.Contains(finding, victim), "underlink doctor lists "+victim+" as missing "+SecondNIC, finding); err != nil {
		return err
	}
	// The same run proves the injection: a dry-run pod in the opted-in namespace came back with the
	// default network, set by the cluster's own admission (the policy or the webhook, as installed).
	inj := doctor.Check{Status: "not run"}
	for _, ch := range rep.Checks {
		if ch.ID == doctor.CheckInjectionWorks {
			inj = ch
		}
	}
	if err := r.check(inj.Status == doctor.Pass && len(inj.Findings) == 0, "underlink doctor proves the injection with a server-side dry run",
		fmt.Sprintf("%s %v", inj.Status, inj.Findings)); err != nil {
		return err
	}
	_, err = r.kubectl(c, nil, "delete", "pod", parentProbePod, "--wait=false")
	return err
}

// ipConflict: the foreign host, outside Kubernetes, holds the first address of a pool whose network
// detects conflicts. The ADD that gets it fails with the foreign host's MAC named (the agent's Event
// and the runtime's), the pool records the conflict, the runtime's next ADD gets the next address, and
// `underlink doctor` lists the conflict with how to clear it.
func (r *runner) ipConflict() error {
	c := r.a
	foreign, err := r.host(c, ForeignHost)
	if err != nil {
		return err
	}
	fl, err := foreign.Link(netbed.HostNIC)
	if err != nil {
		return err
	}
	mac := fl.Attrs().HardwareAddr.String()
	first := ForeignHostIP
	second := first.Next()
	gw := netip.MustParsePrefix(c.ClusterCIDR).Addr().Next() // the segment's gateway, 172.110.0.1 for cluster-a
	fmt.Fprintf(r.out, "[%s]# ip addr show %s   # a host outside Kubernetes on %s's underlay\n    %s %s/%d\n", ForeignHost, netbed.HostNIC, c.Name, mac, first, netip.MustParsePrefix(c.ClusterCIDR).Bits())
	out, err := r.showManifest(c, "apply", []byte(poolManifest(detectPool, c.ClusterCIDR, gw.String(), fmt.Sprintf("%s-%s", first, second.Next()))))
	if err := r.check(err == nil, "SpiderIPPool "+detectPool+" admitted", firstLine(out, "spiderippool")); err != nil {
		return err
	}
	if err := r.applyNetwork(c, detectNet, r.coordinatedNetwork(detectNet, netbed.UnderlayNIC, detectPool, "    detectIPConflict: true\n    detectGateway: true\n"), "detectIPConflict, detectGateway"); err != nil {
		return err
	}
	start := time.Now()
	m := r.testPod(conflictPod, nil, map[string]string{nadv1.DefaultNetworkAnnotation: configNS + "/" + detectNet})
	if out, err := r.showManifest(c, "create", m); err != nil {
		return r.check(false, "pod "+conflictPod+" admitted", out)
	}
	ev, err := r.podFailure(c, conflictPod, []string{"IPConflict"}, first.String(), mac)
	if err := r.check(err == nil, "the agent's Event on "+conflictPod+" names "+first.String()+" and the foreign host's MAC", ev.Reason+": "+firstSentence(ev.Message)); err != nil {
		return err
	}
	ev, err = r.podFailure(c, conflictPod, sandboxEvents, first.String(), mac)
	if err := r.check(err == nil, "the failed ADD's CNI error names "+first.String()+" and "+mac, ev.Reason+": "+firstLine(ev.Message, "underlink-ipam")); err != nil {
		return err
	}
	if err := r.waitRunning(c, conflictPod, 90*time.Second); err != nil {
		desc, _ := r.kubectlQuiet(c, nil, "describe", "pod", conflictPod)
		return r.check(false, "the next ADD of "+conflictPod+" gets another address", err.Error()+"\n"+lastLines(desc, 15))
	}
	sts, _, err := r.statusOf(c, conflictPod)
	if err != nil {
		return err
	}
	got := sts["eth0"].IPs
	if err := r.check(len(got) == 1 && got[0] == second.String(), "the next ADD of "+conflictPod+" gets another address",
		fmt.Sprintf("eth0 %v after %s", got, time.Since(start).Round(100*time.Millisecond))); err != nil {
		return err
	}
	allocs, err := r.poolAllocations(c, detectPool)
	if err != nil {
		return err
	}
	rec := allocs[first.String()]
	js, _ := json.Marshal(rec)
	fmt.Fprintf(r.out, "[%s]$ kubectl get spiderippool %s -o jsonpath='{.status.allocatedIPs}'   # %s's record\n    %s\n", c.Name, detectPool, first, js)
	if err := r.check(rec.IPConflict.MAC == mac && rec.PodUID == "", "the pool records the conflict: "+first.String()+" set aside with the holder's MAC", string(js)); err != nil {
		return err
	}
	cl, err := r.client(c)
	if err != nil {
		return err
	}
	rep, err := doctor.Run(r.ctx, cl, doctor.Options{})
	if err != nil {
		return err
	}
	var listed string
	for _, ch := range rep.Checks {
		if ch.ID == doctor.CheckIPConflicts {
			for _, f := range ch.Findings {
				fmt.Fprintf(r.out, "[%s]$ underlink doctor   # %s\n    ! %s %s: %s\n      fix: %s\n", c.Name, ch.ID, f.Subject, f.Field, f.Why, f.Fix)
				if strings.Contains(f.Field, first.String()) {
					listed = f.Fix
				}
			}
		}
	}
	return r.check(strings.Contains(listed, spv2.AnnoClearIPConflicts), "underlink doctor lists the conflict and how to clear it", listed)
}

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i > 0 {
		return s[:i+1]
	}
	return s
}

// addressMove: an address moves from a pod on one node to a pod on the other. The foreign host talked to
// the first pod; once the second pod runs, its ARP entry holds the second pod's MAC (STALE: learnt from
// the announcement, not from a request of its own) within a second, although it sent nothing.
func (r *runner) addressMove() error {
	c := r.a
	foreign, err := r.host(c, ForeignHost)
	if err != nil {
		return err
	}
	moved := MovedIP
	gw := netip.MustParsePrefix(c.ClusterCIDR).Addr().Next()
	if out, err := r.showManifest(c, "apply", []byte(poolManifest(movePool, c.ClusterCIDR, gw.String(), moved.String()))); err != nil {
		return r.check(false, "SpiderIPPool "+movePool+" admitted", out)
	}
	ann := map[string]string{spv2.AnnoPodIPPool: fmt.Sprintf(`{"ipv4":["%s"]}`, movePool)}
	podOn := func(name, node string) ([]byte, string) {
		return []byte(strings.Replace(string(r.testPod(name, nil, ann)), "spec:\n", "spec:\n  nodeSelector:\n    kubernetes.io/hostname: "+node+"\n", 1)), node
	}
	macOf := func() (string, error) {
		n, err := podNetns(moved)
		if err != nil {
			return "", err
		}
		defer n.Close()
		l, err := n.Link("eth0")
		if err != nil {
			return "", err
		}
		return l.Attrs().HardwareAddr.String(), nil
	}
	entry := func() (string, string) {
		e, err := foreign.Neighbour(moved)
		switch {
		case err != nil:
			return "", err.Error()
		case e == nil:
			return "", "none"
		}
		return e.HardwareAddr.String(), neighState(e.State)
	}
	m, node1 := podOn(movePods[0], c.Nodes[0].Name)
	if out, err := r.showManifest(c, "create", m); err != nil {
		return r.check(false, "pod "+movePods[0], out)
	}
	if err := r.waitRunning(c, movePods[0], 90*time.Second); err != nil {
		return r.check(false, movePods[0]+" Running on "+node1, err.Error())
	}
	mac1, err := macOf()
	if err != nil {
		return err
	}
	fmt.Fprintf(r.out, "[%s]# ping -c2 %s\n", ForeignHost, moved)
	if err := netbed.Ping(foreign, moved, 2, 5*time.Second); err != nil {
		return r.check(false, ForeignHost+" reaches "+movePods[0], err.Error())
	}
	e1, st1 := entry()
	if err := r.check(e1 == mac1, ForeignHost+"'s ARP entry for "+moved.String()+" is "+movePods[0]+"'s MAC", e1+" "+st1); err != nil {
		return err
	}
	if _, err := r.kubectl(c, nil, "delete", "pod", movePods[0], "--wait=true", "--timeout=60s"); err != nil {
		return err
	}
	if err := r.noAllocationsIn(c, movePool, movePods[0]); err != nil {
		return err
	}
	fl, err := foreign.Link(netbed.HostNIC)
	if err != nil {
		return err
	}
	txBefore := fl.Attrs().Statistics.TxPackets
	m, node2 := podOn(movePods[1], c.Nodes[1].Name)
	if out, err := r.showManifest(c, "create", m); err != nil {
		return r.check(false, "pod "+movePods[1], out)
	}
	if err := r.waitRunning(c, movePods[1], 90*time.Second); err != nil {
		return r.check(false, movePods[1]+" Running on "+node2, err.Error())
	}
	seen := time.Now()
	mac2, err := macOf()
	if err != nil {
		return err
	}
	var e2, st2 string
	err = poll.Wait(r.ctx, time.Second, 10*time.Millisecond, ForeignHost+"'s entry at "+movePods[1]+"'s MAC", func() (bool, string, error) {
		e2, st2 = entry()
		return e2 == mac2, e2 + " " + st2, nil
	})
	fl, lerr := foreign.Link(netbed.HostNIC)
	if lerr != nil {
		return lerr
	}
	tx := fl.Attrs().Statistics.TxPackets - txBefore
	fmt.Fprintf(r.out, "[%s]# ip neigh show %s   # after %s started on %s; %s sent %d packets meanwhile\n    %s lladdr %s %s\n", ForeignHost, moved, movePods[1], node2, ForeignHost, tx, moved, e2, st2)
	return r.check(err == nil && st2 == "STALE", fmt.Sprintf("%s moved from %s (%s) to %s (%s): the foreign host's ARP cache follows within a second, unasked", moved, node1, mac1, node2, mac2),
		fmt.Sprintf("entry %s %s %s after %s was seen Running", e2, st2, time.Since(seen).Round(time.Millisecond), movePods[1]))
}

// noAllocationsIn waits until pool holds no address for the pods.
func (r *runner) noAllocationsIn(c TargetCluster, pool string, pods ...string) error {
	var held []string
	err := poll.Wait(r.ctx, 30*time.Second, pollInterval, "no address of "+pool+" held for "+strings.Join(pods, ", "), func() (bool, string, error) {
		allocs, err := r.poolAllocations(c, pool)
		if err != nil {
			return false, err.Error(), nil
		}
		held = heldBy(allocs, pods...)
		return len(held) == 0, strings.Join(held, ", "), nil
	})
	if err != nil {
		return r.check(false, "pool "+pool+" freed "+strings.Join(pods, ", "), strings.Join(held, ", "))
	}
	return nil
}

// neighState names a neighbour entry's state as `ip neigh` does.
func neighState(s int) string {
	for _, st := range []struct {
		bit  int
		name string
	}{{netlink.NUD_PERMANENT, "PERMANENT"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"}, {netlink.NUD_DELAY, "DELAY"},
		{netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_FAILED, "FAILED"}, {netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_NOARP, "NOARP"}} {
		if s&st.bit != 0 {
			return st.name
		}
	}
	return fmt.Sprintf("state %#x", s)
}
