package e2e

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/nodes"
	"github.com/underlink/underlink/test/poll"
)

// Spiderpool is the peer release the migration scenario installs: the chart of its release tree
// (charts/spiderpool) and its images (make spiderpool-images).
type Spiderpool struct {
	Chart  string
	Images []nodes.Image
}

// SpiderpoolImagesDir is where `make spiderpool-images` writes Spiderpool's image tarballs.
func SpiderpoolImagesDir() string { return test.Path("_output", "spiderpool-images") }

// The migration scenario's objects on cluster-a: a pool and a macvlan network as Spiderpool's underlay
// guide writes them, and a Deployment of the test app on that network.
const (
	migPool      = "mig-pool"
	migRange     = "172.110.230.10-172.110.230.59"
	migNet       = "mig-macvlan"
	migNetNS     = "kube-system"
	migApp       = "mig-app"
	migReplicas  = 24 // running when the other system takes over
	migScaled    = 34 // after the new system has started 10 more
	migDeleted   = 12 // pods of the old system deleted under the new one
	migGCTimeout = 4 * time.Minute
)

// Spiderpool's release on cluster-a.
const (
	spiderpoolRelease = "spiderpool"
	spiderpoolNS      = "kube-system"
)

// SpiderpoolValues are the values set on Spiderpool's chart, each for a reason of this bed
// (docs/migrate-from-spiderpool.md lists them for users).
var SpiderpoolValues = []string{
	// The nodes' underlay is IPv4; no KubeVirt; pools are written by hand, as in the seed.
	"ipam.enableIPv6=false", "ipam.enableKubevirtStaticIP=false", "ipam.spiderSubnet.enable=false",
	// One GC period of the test: 30 s instead of 600 s.
	"ipam.gc.gcAll.intervalInSecond=30",
	// Multus is installed already (its own thin DaemonSet), as Spiderpool's underlay guide allows.
	"multus.multusCNI.install=false",
	// Underlay pods; the clusters run no Calico, Cilium or kubeadm-config to read a pod CIDR from.
	"coordinator.mode=underlay", "coordinator.podCIDRType=none",
	// The plugins image (RDMA, OVS, SR-IOV, IPoIB, VLAN plugins) is not built here; macvlan is on the
	// nodes already.
	"plugins.installRdmaCNI=false", "plugins.installOvsCNI=false", "plugins.installibSriovCNI=false",
	"plugins.installIpoibCNI=false", "plugins.installVlanCNI=false",
}

// RunMigration moves cluster-a from Spiderpool v1.2.2 to underlink with pods running, and back: each
// time the running pods keep their addresses, the new system's pods never get one in use, the old
// system's pods can still be deleted, and every address is free again one GC period after the last
// pod is gone.
func RunMigration(ctx context.Context, t Target, sp Spiderpool) *Report {
	r := newRunner(ctx, t)
	if len(t.Clusters) == 0 {
		r.fail("migration", "no cluster")
		return r.report
	}
	r.a = t.Clusters[0]
	r.b = r.a
	r.testApp, _ = nodes.PickImage(t.Images, "underlink-testapp")
	m := &migration{runner: r, sp: sp}
	return r.run([]step{
		{"Install Multus (its own thin DaemonSet)", r.installMultus},
		{"Install Spiderpool v1.2.2 from its own chart", m.installSpiderpool},
		{"Spiderpool: a pool, a macvlan network and 24 pods on it", m.spiderpoolPods},
		{"Uninstall Spiderpool, keeping its CRDs and pools (helm uninstall --no-hooks)", m.uninstallSpiderpool},
		{"Install underlink", m.installUnderlink},
		{"underlink takes over: Spiderpool's pods keep their addresses and stay reachable", m.takenOver("underlink", "underlink-ipam")},
		{"underlink starts 10 more pods: no address in use is given again", m.scaleUp("underlink")},
		{"Pods Spiderpool started are deleted under underlink", m.deleteOld("Spiderpool")},
		{"Everything deleted: underlink's GC leaves no address allocated", m.deleteAll("underlink")},
		{"underlink: 24 pods on the same network", m.underlinkPods},
		{"Uninstall underlink, keeping its CRDs and pools", m.uninstallUnderlink},
		{"Install Spiderpool again", m.installSpiderpool},
		{"Spiderpool takes over: underlink's pods keep their addresses and stay reachable", m.takenOver("Spiderpool", `"spiderpool"`)},
		{"Spiderpool starts 10 more pods: no address in use is given again", m.scaleUp("Spiderpool")},
		{"Pods underlink started are deleted under Spiderpool", m.deleteOld("underlink")},
		{"Everything deleted: Spiderpool's GC leaves no address allocated", m.deleteAll("Spiderpool")},
	})
}

type migration struct {
	*runner
	sp Spiderpool
	// before are the pods of the system being replaced and their addresses.
	before map[string]string
}

func (m *migration) installSpiderpool() error {
	c := m.a
	for _, n := range c.Nodes {
		if _, err := nodes.SyncImages(m.ctx, n.ContainerdSocket, nodes.Tarballs(m.sp.Images)); err != nil {
			return m.check(false, "Spiderpool's images on "+n.Name, err.Error())
		}
	}
	// Spiderpool's controller reads the cluster's pod and service CIDRs from kubeadm's ConfigMap or from
	// a kube-controller-manager Pod, and leaves the SpiderCoordinator NotReady (every coordinator ADD
	// fails) without one. These control planes run neither kubeadm nor a kube-controller-manager Pod:
	// the ConfigMap gives it the cluster's own CIDRs, as kubeadm would have written them.
	kubeadm := fmt.Appendf(nil, `apiVersion: v1
kind: ConfigMap
metadata:
  name: kubeadm-config
  namespace: kube-system
data:
  ClusterConfiguration: |
    networking:
      podSubnet: %s
      serviceSubnet: %s
`, c.ClusterCIDR, c.ServiceCIDR)
	if out, err := m.showManifest(c, "apply", kubeadm); err != nil {
		return m.check(false, "kube-system/kubeadm-config written", out)
	}
	args := []string{"upgrade", "--install", spiderpoolRelease, m.sp.Chart, "--kubeconfig", c.Kubeconfig,
		"--namespace", spiderpoolNS, "--wait", "--timeout", "4m",
		// Helm 4 applies the chart's CRDs server-side: the NetworkAttachmentDefinition CRD, which Multus'
		// manifest created with kubectl, would conflict on its short names.
		"--force-conflicts"}
	for _, v := range SpiderpoolValues {
		args = append(args, "--set", v)
	}
	out, err := m.helm(c, args...)
	if err != nil {
		pods, _ := m.kubectlQuiet(c, nil, "get", "pods", "-n", spiderpoolNS, "-o", "wide")
		events, _ := m.kubectlQuiet(c, nil, "get", "events", "-n", spiderpoolNS, "--field-selector", "type=Warning")
		return m.check(false, "Spiderpool installed on "+c.Name, out+"\n"+pods+"\n"+lastLines(events, 10))
	}
	if _, err := m.kubectl(c, nil, "get", "pods", "-n", spiderpoolNS, "-l", "app.kubernetes.io/name=spiderpool", "-o", "wide"); err != nil {
		return err
	}
	m.pass("Spiderpool installed on "+c.Name, m.sp.Chart)
	return nil
}

// helm runs helm, printing the command and the end of its output.
func (m *migration) helm(c TargetCluster, args ...string) (string, error) {
	fmt.Fprintf(m.out, "[%s]$ helm %s\n", c.Name, strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, m.t.Helm, args...).CombinedOutput()
	fmt.Fprintln(m.out, indent(lastLines(string(out), 8)))
	return string(out), err
}

// migManifests are the pool and the macvlan network, as Spiderpool's underlay guide writes them.
func (m *migration) migManifests(ipRange string) []byte {
	return []byte(poolManifest(migPool, "172.110.0.0/16", "172.110.0.1", ipRange) + "---\n" + fmt.Sprintf(`apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: %s
  namespace: %s
spec:
  cniType: macvlan
  macvlan:
    master: [ens224]
    ippools:
      ipv4: [%s]
  coordinator:
    mode: underlay
`, migNet, migNetNS, migPool))
}

func (m *migration) deployment(replicas int) []byte {
	return m.appDeployment(migApp, replicas, "v1.multus-cni.io/default-network", migNetNS+"/"+migNet)
}

func (m *migration) spiderpoolPods() error {
	c := m.a
	if out, err := m.showManifest(c, "apply", m.migManifests(migRange)); err != nil {
		return m.check(false, "pool and network created", out)
	}
	if err := m.nadNames(`"spiderpool"`); err != nil {
		return err
	}
	return m.startPods("Spiderpool")
}

func (m *migration) underlinkPods() error {
	if err := m.nadNames("underlink-ipam"); err != nil {
		return err
	}
	return m.startPods("underlink")
}

// startPods creates the Deployment and records its pods' addresses as those of system.
func (m *migration) startPods(system string) error {
	c := m.a
	if out, err := m.showManifest(c, "apply", m.deployment(migReplicas)); err != nil {
		return m.check(false, "Deployment "+migApp+" created", out)
	}
	start := time.Now()
	pods, err := m.waitApp(c, migReplicas, 4*time.Minute)
	if err != nil {
		return m.check(false, fmt.Sprintf("%d pods Running on %s's addresses", migReplicas, system), err.Error())
	}
	took := time.Since(start)
	if err := m.consistent(system + "'s pods"); err != nil {
		return err
	}
	m.before = map[string]string{}
	for _, p := range pods {
		m.before[p.Name] = p.IP
	}
	m.pass(fmt.Sprintf("%d pods Running on %s's addresses", migReplicas, system), fmt.Sprintf("in %s: %s", took.Round(100*time.Millisecond), podSummary(pods[:3])+"…"))
	return nil
}

// nadNames waits until the network's NetworkAttachmentDefinition holds a chain that names plugin.
func (m *migration) nadNames(plugin string) error {
	var last string
	err := poll.Wait(m.ctx, 60*time.Second, pollInterval, "the network's NAD", func() (bool, string, error) {
		out, err := m.kubectlQuiet(m.a, nil, "get", "network-attachment-definitions", migNet, "-n", migNetNS, "-o", "jsonpath={.spec.config}")
		last = out
		return err == nil && strings.Contains(out, plugin), last, nil
	})
	return m.check(err == nil, "NetworkAttachmentDefinition "+migNetNS+"/"+migNet+" names "+plugin, last)
}

// waitApp waits until the Deployment has n Running, ready pods with addresses.
func (m *migration) waitApp(c TargetCluster, n int, timeout time.Duration) ([]podInfo, error) {
	return m.waitLabeled(c, "app="+migApp, n, timeout)
}

// consistent checks the pool against the pods: every Running pod of the Deployment holds exactly one
// allocation, the address the pod's own eth0 has in its network namespace; no address is held twice;
// the pool holds nothing for any other pod.
func (m *migration) consistent(what string) error {
	pods, allocs, problems := m.problems()
	return m.check(len(problems) == 0, fmt.Sprintf("%s: %d pods, %d addresses in the pool, each on one pod's eth0, none twice", what, pods, allocs),
		strings.Join(problems, "; "))
}

// consistentWithin waits up to migGCTimeout for consistent: the addresses of deleted pods that no DEL
// frees (Spiderpool's records name no interface, cni/IPAM.md) come back with garbage collection.
func (m *migration) consistentWithin(what string) error {
	start := time.Now()
	var pods, allocs int
	var problems []string
	err := poll.Wait(m.ctx, migGCTimeout, 2*time.Second, what, func() (bool, string, error) {
		pods, allocs, problems = m.problems()
		return len(problems) == 0, strings.Join(problems, "; "), nil
	})
	return m.check(err == nil, fmt.Sprintf("%s: %d pods, %d addresses in the pool, each on one pod's eth0, none twice", what, pods, allocs),
		fmt.Sprintf("after %s %s", time.Since(start).Round(time.Second), strings.Join(problems, "; ")))
}

// problems compares the pool with the Deployment's Running pods and their eth0 addresses.
func (m *migration) problems() (pods, allocs int, problems []string) {
	c := m.a
	running, err := m.waitApp(c, -1, 30*time.Second)
	if err != nil {
		return 0, 0, []string{"pods listed: " + err.Error()}
	}
	held, err := m.poolAllocations(c, migPool)
	if err != nil {
		return len(running), 0, []string{"pool " + migPool + " read: " + err.Error()}
	}
	byPod := map[string][]string{}
	for ip, a := range held {
		name := strings.TrimPrefix(a.NamespacedName, appNamespace+"/")
		byPod[name] = append(byPod[name], ip)
	}
	seen := map[string]string{}
	for _, p := range running {
		inPod, err := m.eth0Address(p.Name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p.Name, err))
			continue
		}
		if other, dup := seen[inPod]; dup {
			problems = append(problems, fmt.Sprintf("%s and %s both have %s on eth0", other, p.Name, inPod))
		}
		seen[inPod] = p.Name
		if inPod != p.IP {
			problems = append(problems, fmt.Sprintf("%s: eth0 has %s, the pod's status %s", p.Name, inPod, p.IP))
		}
		if h := byPod[p.Name]; len(h) != 1 || h[0] != inPod {
			problems = append(problems, fmt.Sprintf("%s: the pool holds %v for it, eth0 has %s", p.Name, h, inPod))
		}
		delete(byPod, p.Name)
	}
	for name, ips := range byPod {
		problems = append(problems, fmt.Sprintf("the pool holds %v for %s, which is not a Running pod", ips, name))
	}
	slices.Sort(problems)
	return len(running), len(held), problems
}

// eth0Address is the IPv4 address on the pod's eth0, read in its network namespace (the source of the
// kernel's route for eth0's subnet).
func (m *migration) eth0Address(pod string) (string, error) {
	out, err := m.kubectlQuiet(m.a, nil, "exec", pod, "--", "ip", "route")
	if err != nil {
		return "", fmt.Errorf("ip route: %v: %s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if i := slices.Index(f, "src"); i >= 0 && i+1 < len(f) && slices.Contains(f, "eth0") {
			return f[i+1], nil
		}
	}
	return "", fmt.Errorf("no route with a source address on eth0:\n%s", out)
}

func (m *migration) uninstallSpiderpool() error {
	c := m.a
	// --no-hooks: the chart's pre-delete hook (spiderpool-controller clean) deletes every pool, config
	// and CRD of Spiderpool.
	if out, err := m.helm(c, "uninstall", spiderpoolRelease, "--kubeconfig", c.Kubeconfig, "--namespace", spiderpoolNS, "--no-hooks", "--wait", "--timeout", "3m"); err != nil {
		return m.check(false, "Spiderpool uninstalled", out)
	}
	return m.stillThere("Spiderpool")
}

func (m *migration) uninstallUnderlink() error {
	c := m.a
	if out, err := m.helm(c, "uninstall", releaseName, "--kubeconfig", c.Kubeconfig, "--namespace", releaseNS, "--wait", "--timeout", "3m"); err != nil {
		return m.check(false, "underlink uninstalled", out)
	}
	return m.stillThere("underlink")
}

// stillThere checks that the uninstalled system left the pool, its allocations and the pods alone.
func (m *migration) stillThere(system string) error {
	c := m.a
	if _, err := m.kubectl(c, nil, "get", "crd", "spiderippools.spiderpool.spidernet.io", "spidermultusconfigs.spiderpool.spidernet.io"); err != nil {
		return m.check(false, system+" uninstalled; the CRDs stay", "")
	}
	now, err := m.podIPs(c, "app="+migApp)
	if err != nil {
		return m.check(false, system+"'s pods after its uninstall", err.Error())
	}
	return m.check(maps.Equal(now, m.before), system+" uninstalled: the CRDs, the pool and its "+fmt.Sprint(len(m.before))+" pods stay, each on its address", diffIPs(m.before, now))
}

func diffIPs(before, now map[string]string) string {
	var d []string
	for k, v := range before {
		if now[k] != v {
			d = append(d, fmt.Sprintf("%s %s→%q", k, v, now[k]))
		}
	}
	for k := range now {
		if _, ok := before[k]; !ok {
			d = append(d, k+" is new")
		}
	}
	slices.Sort(d)
	return strings.Join(d, ", ")
}

func (m *migration) installUnderlink() error {
	c := m.a
	webhookRef, err := nodes.PickImage(m.t.Images, "underlink-webhook")
	if err != nil {
		return m.check(false, "underlink installed", err.Error())
	}
	repo, tag := splitRef(webhookRef)
	if out, err := m.helmUpgrade(c, m.t.Chart, repo, tag, nil); err != nil {
		pods, _ := m.kubectlQuiet(c, nil, "get", "pods", "-n", releaseNS, "-o", "wide")
		return m.check(false, "underlink installed on "+c.Name, out+"\n"+pods)
	}
	m.pass("underlink installed on "+c.Name, fmt.Sprintf("chart %s, images %s:%s", m.t.Chart, repo, tag))
	return nil
}

// takenOver checks, once system runs, that the other system's pods kept their addresses and answer a
// ping from a pod on the other node, and that the network's NAD now names system's plugin.
func (m *migration) takenOver(system, plugin string) func() error {
	return func() error {
		if err := m.nadNames(plugin); err != nil {
			return err
		}
		pods, err := m.waitApp(m.a, migReplicas, 2*time.Minute)
		if err != nil {
			return m.check(false, "the pods run", err.Error())
		}
		now := map[string]string{}
		for _, p := range pods {
			now[p.Name] = p.IP
		}
		if err := m.check(maps.Equal(now, m.before), fmt.Sprintf("%d running pods kept their addresses under %s", len(now), system), diffIPs(m.before, now)); err != nil {
			return err
		}
		from, to, ok := acrossNodes(pods)
		if !ok {
			return m.check(false, "pods on two nodes", podSummary(pods))
		}
		if err := m.pingPod(from, to); err != nil {
			return err
		}
		return m.consistent("under " + system)
	}
}

// acrossNodes picks two pods on different nodes.
func acrossNodes(pods []podInfo) (podInfo, podInfo, bool) {
	for _, p := range pods[1:] {
		if p.Node != pods[0].Node {
			return pods[0], p, true
		}
	}
	return podInfo{}, podInfo{}, false
}

func (m *migration) pingPod(from, to podInfo) error {
	out, err := m.kubectl(m.a, nil, "exec", from.Name, "--", "ping", "-c2", to.IP)
	return m.check(err == nil && strings.Contains(out, "2 packets received"),
		fmt.Sprintf("ping %s (%s) → %s (%s) on the underlay", from.Name, from.Node, to.Name, to.Node), firstLine(out, "packets transmitted"))
}

// scaleUp has system start migScaled-migReplicas more pods: none gets an address the running pods
// hold, and the pool stays consistent.
func (m *migration) scaleUp(system string) func() error {
	return func() error {
		c := m.a
		if out, err := m.kubectl(c, nil, "scale", "deployment", migApp, fmt.Sprintf("--replicas=%d", migScaled)); err != nil {
			return m.check(false, "scaled", out)
		}
		pods, err := m.waitApp(c, migScaled, 3*time.Minute)
		if err != nil {
			return m.check(false, fmt.Sprintf("%d pods Running", migScaled), err.Error())
		}
		inUse := map[string]string{}
		for name, ip := range m.before {
			inUse[ip] = name
		}
		var reused []string
		for _, p := range pods {
			if _, old := m.before[p.Name]; old {
				continue
			}
			if holder, ok := inUse[p.IP]; ok {
				reused = append(reused, fmt.Sprintf("%s got %s, held by %s", p.Name, p.IP, holder))
			}
		}
		if err := m.check(len(reused) == 0, fmt.Sprintf("%d new pods under %s, none on an address of the %d running before", migScaled-migReplicas, system, len(m.before)), strings.Join(reused, "; ")); err != nil {
			return err
		}
		return m.consistent("after the scale-up")
	}
}

// deleteOld deletes migDeleted of the pods the old system started: their DEL (the old system's
// plugins, from Multus' cache) completes, the Deployment replaces them, and the others keep their
// addresses.
func (m *migration) deleteOld(old string) func() error {
	return func() error {
		c := m.a
		names := slices.Sorted(maps.Keys(m.before))[:migDeleted]
		start := time.Now()
		out, err := m.kubectl(c, nil, append([]string{"delete", "pod", "-n", appNamespace, "--wait=true", "--timeout=90s"}, names...)...)
		if err := m.check(err == nil, fmt.Sprintf("%d pods %s started deleted (their DEL runs %s's plugins)", len(names), old, old),
			fmt.Sprintf("in %s %s", time.Since(start).Round(100*time.Millisecond), lastLines(out, 1))); err != nil {
			return err
		}
		pods, err := m.waitApp(c, migScaled, 3*time.Minute)
		if err != nil {
			return m.check(false, fmt.Sprintf("%d pods Running again", migScaled), err.Error())
		}
		var moved []string
		kept := 0
		for _, p := range pods {
			if ip, ok := m.before[p.Name]; ok {
				kept++
				if ip != p.IP {
					moved = append(moved, fmt.Sprintf("%s %s→%s", p.Name, ip, p.IP))
				}
			}
		}
		if err := m.check(len(moved) == 0 && kept == len(m.before)-migDeleted, fmt.Sprintf("the other %d pods %s started kept their addresses", kept, old), strings.Join(moved, ", ")); err != nil {
			return err
		}
		return m.consistentWithin("after the deletes and one GC period")
	}
}

// deleteAll deletes the Deployment and waits, up to migGCTimeout (a GC period and its grace, with
// room), until the pool holds nothing.
func (m *migration) deleteAll(system string) func() error {
	return func() error {
		c := m.a
		if out, err := m.kubectl(c, nil, "delete", "deployment", migApp, "-n", appNamespace, "--wait=true"); err != nil {
			return m.check(false, "Deployment deleted", out)
		}
		start := time.Now()
		if err := poll.Wait(m.ctx, 2*time.Minute, pollInterval, "pods gone", func() (bool, string, error) {
			out, err := m.kubectlQuiet(c, nil, "get", "pods", "-n", appNamespace, "-l", "app="+migApp, "-o", "name")
			return err == nil && strings.TrimSpace(out) == "", out, nil
		}); err != nil {
			return m.check(false, "every pod of "+migApp+" gone", err.Error())
		}
		gone := time.Since(start)
		var last string
		err := poll.Wait(m.ctx, migGCTimeout, time.Second, "the pool empty", func() (bool, string, error) {
			allocs, err := m.poolAllocations(c, migPool)
			if err != nil {
				last = err.Error()
				return false, last, nil
			}
			last = fmt.Sprintf("%d addresses still allocated: %v", len(allocs), slices.Sorted(maps.Keys(allocs)))
			return len(allocs) == 0, last, nil
		})
		return m.check(err == nil, fmt.Sprintf("pool %s empty under %s", migPool, system),
			fmt.Sprintf("pods gone in %s, the pool empty %s after (%s)", gone.Round(100*time.Millisecond), time.Since(start).Round(time.Second)-gone.Round(time.Second), last))
	}
}
