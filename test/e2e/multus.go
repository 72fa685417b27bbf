package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/nodes"
	"github.com/underlink/underlink/test/poll"
	"github.com/underlink/underlink/webhook/registration"
)

// The Multus steps' own objects (besides the seed's).
const (
	// extraNetA and extraNetB are SpiderMultusConfigs for second and third interfaces: macvlan on ens224
	// from the cluster's pool, coordinated like the default network (each interface gets its own veth,
	// routing table and rule).
	extraNetA = "macvlan-extra-a"
	extraNetB = "macvlan-extra-b"
	// multiListPod and multiJSONPod carry them in the two formats of k8s.v1.cni.cncf.io/networks.
	multiListPod = "multi-net-list"
	multiJSONPod = "multi-net-json"
	// The bad-input pods, and the NAD Multus cannot parse.
	brokenNAD       = "broken-nad"
	badNADPod       = "bad-nad"
	badNADOptOutPod = "bad-nad-opted-out"
	missingNetPod   = "missing-net"
	missingNet      = "no-such-net"
	noRightsPod     = "multus-no-rights"
	// appNamespace is the test app's namespace (the seed's default), opted in to injection.
	appNamespace = "default"
)

// multusPods are every pod of the Multus steps, for the clean slate.
var multusPods = []string{multiListPod, multiJSONPod, badNADPod, badNADOptOutPod, missingNetPod, noRightsPod}

// installMultus applies Multus' own thin DaemonSet manifest to both clusters before underlink, as a user
// (or Spiderpool's chart) does, pointed at the image `make images` built, and waits until Multus has
// written its configuration on every node.
func (r *runner) installMultus() error {
	image, err := nodes.PickImage(r.t.Images, nodes.MultusImageName)
	if err != nil {
		return r.check(false, "Multus installed", err.Error())
	}
	if r.t.MultusTree == "" {
		return r.check(false, "Multus installed", "no Multus release tree: hack/build-peers.sh --tree multus")
	}
	manifest, changes, err := nodes.MultusManifest(r.t.MultusTree, image)
	if err != nil {
		return r.check(false, "Multus installed", err.Error())
	}
	_, version := splitRef(image)
	for _, c := range r.both() {
		fmt.Fprintf(r.out, "[%s]$ kubectl apply -f %s   # Multus' own thin DaemonSet, changed only in:\n%s\n", c.Name,
			filepath.Join(r.t.MultusTree, nodes.MultusManifestPath), indent(strings.Join(changes, "\n")))
		out, err := r.kubectlQuiet(c, manifest, "apply", "-f", "-")
		fmt.Fprintln(r.out, indent(strings.TrimRight(out, "\n")))
		if err != nil {
			return r.check(false, "Multus "+version+" installed on "+c.Name, out)
		}
		if out, err := r.kubectl(c, nil, "rollout", "status", "daemonset", nodes.MultusDaemonSet, "-n", nodes.MultusNamespace, "--timeout=3m"); err != nil {
			return r.check(false, "Multus "+version+" installed on "+c.Name, out)
		}
		// Running is not done: thin_entrypoint logs when it has written the kubeconfig and the
		// configuration that makes containerd run Multus.
		var last string
		err = poll.Wait(r.ctx, 60*time.Second, pollInterval, "Multus' configuration on every node of "+c.Name, func() (bool, string, error) {
			pods, err := r.multusPods(c)
			if err != nil {
				last = err.Error()
				return false, last, nil
			}
			var waiting []string
			for _, p := range pods {
				logs, _ := r.kubectlQuiet(c, nil, "logs", "-n", nodes.MultusNamespace, p, "-c", "kube-multus")
				if !strings.Contains(logs, nodes.MultusConfReady) {
					waiting = append(waiting, p)
				}
			}
			last = fmt.Sprintf("%d pods, waiting for %v", len(pods), waiting)
			return len(pods) == len(c.Nodes) && len(waiting) == 0, last, nil
		})
		if err := r.check(err == nil, "Multus "+version+" (thin) on every node of "+c.Name,
			fmt.Sprintf("DaemonSet %s/%s, %s in each node's %s (%s)", nodes.MultusNamespace, nodes.MultusDaemonSet, nodes.MultusConfFile, nodes.CNIConfDir, last)); err != nil {
			return err
		}
	}
	return nil
}

// multusPods lists the Multus DaemonSet's pods of a cluster.
func (r *runner) multusPods(c TargetCluster) ([]string, error) {
	out, err := r.kubectlQuiet(c, nil, "get", "pods", "-n", nodes.MultusNamespace, "-l", "name=multus", "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	return strings.Fields(out), nil
}

// podView is what the Multus steps read of a pod.
type podView struct {
	Name, Node, Phase string
	UID               string
	Annotations       map[string]string
}

func (r *runner) getPod(c TargetCluster, name string) (podView, error) {
	out, err := r.kubectlQuiet(c, nil, "get", "pod", name, "-o", "json")
	if err != nil {
		return podView{}, fmt.Errorf("%v: %s", err, out)
	}
	var p struct {
		Metadata struct {
			Name, UID   string
			Annotations map[string]string
		}
		Spec struct {
			NodeName string `json:"nodeName"`
		}
		Status struct{ Phase string }
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return podView{}, err
	}
	return podView{Name: p.Metadata.Name, UID: p.Metadata.UID, Node: p.Spec.NodeName, Phase: p.Status.Phase, Annotations: p.Metadata.Annotations}, nil
}

// poolAllocations reads a pool's status.allocatedIPs through the one parser of it.
func (r *runner) poolAllocations(c TargetCluster, pool string) (spv2.PoolIPAllocations, error) {
	out, err := r.kubectlQuiet(c, nil, "get", "spiderippool", pool, "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	var p spv2.SpiderIPPool
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return nil, err
	}
	return spv2.ParseAllocations(p.Status)
}

// networkStatus checks what Multus wrote back on every test-app pod: its default network, on eth0,
// with the address that its pool holds for it and that `kubectl get po -o wide` shows.
func (r *runner) networkStatus() error {
	want := []Attachment{{Network: configNS + "/" + configName, Interface: "eth0", Default: true}}
	for _, c := range r.both() {
		if err := r.checkNetworkStatus(c, "app="+appName, r.pods[c.Name], want); err != nil {
			return err
		}
	}
	return nil
}

// checkNetworkStatus prints the pods' network-status and checks it against want, the pool and
// `kubectl get pods -o wide` (selected by selector, or the pods by name).
func (r *runner) checkNetworkStatus(c TargetCluster, selector string, pods []podInfo, want []Attachment) error {
	args := []string{"get", "pods", "-o", "wide"}
	if selector != "" {
		args = append(args, "-l", selector)
	} else {
		for _, p := range pods {
			args = append(args, p.Name)
		}
	}
	wide, err := r.kubectl(c, nil, args...)
	if err != nil {
		return r.check(false, "kubectl get pods -o wide on "+c.Name, wide)
	}
	shown := WideIPs(wide)
	allocs, err := r.poolAllocations(c, c.Name)
	if err != nil {
		return r.check(false, "pool "+c.Name+" status", err.Error())
	}
	for _, p := range pods {
		v, err := r.getPod(c, p.Name)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.out, "[%s]$ kubectl get pod %s -o jsonpath='{.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/network-status}'\n%s\n",
			c.Name, p.Name, indent(v.Annotations[NetworkStatusAnnotation]))
		sts, err := ParseNetworkStatus(v.Annotations[NetworkStatusAnnotation])
		var problems []string
		if err != nil {
			problems = []string{err.Error()}
		} else {
			problems = NetworkStatusProblems(sts, want, appNamespace+"/"+p.Name, []string{shown[p.Name]}, allocs, r.pools[c.Name])
		}
		var got []string
		for _, s := range sts {
			if len(s.IPs) > 0 {
				got = append(got, fmt.Sprintf("%s %s %s", s.Interface, strings.Join(s.IPs, ","), s.Name))
			}
		}
		if err := r.check(len(problems) == 0, "network-status of "+p.Name+" ("+c.Name+") agrees with pool and -o wide",
			strings.Join(got, "; ")+" "+strings.Join(problems, "; ")); err != nil {
			return err
		}
	}
	return nil
}

// extraNetwork is a SpiderMultusConfig for an extra interface: macvlan on ens224 from the cluster's
// pool, with the coordinator and the cluster's remote CIDRs.
func (r *runner) extraNetwork(name, pool string) string {
	return r.coordinatedNetwork(name, netbed.UnderlayNIC, pool, "")
}

// testPod is a pod of the test app in the default namespace with the given labels and annotations.
func (r *runner) testPod(name string, labels, annotations map[string]string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\n", name, appNamespace)
	for _, m := range []struct {
		key  string
		vals map[string]string
	}{{"labels", labels}, {"annotations", annotations}} {
		if len(m.vals) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  %s:\n", m.key)
		keys := make([]string, 0, len(m.vals))
		for k := range m.vals {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "    %s: '%s'\n", k, strings.ReplaceAll(m.vals[k], "'", "''"))
		}
	}
	fmt.Fprintf(&b, "spec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: test-app\n    image: %s\n    imagePullPolicy: Never\n", r.testApp)
	return []byte(b.String())
}

// severalNetworks gives a pod two extra networks on top of its injected default network, through
// Multus, once with each format of k8s.v1.cni.cncf.io/networks: each interface gets its own address of
// the pool (the extra interfaces without a default route: cleangateway), Multus lists every interface
// in network-status, and the pod's own routes show each address on its interface. Deleting the pods
// gives every address back.
func (r *runner) severalNetworks() error {
	c := r.a
	for _, n := range []string{extraNetA, extraNetB} {
		if err := r.applyNetwork(c, n, r.extraNetwork(n, c.Name), "coordinated"); err != nil {
			return err
		}
	}
	ippools := fmt.Sprintf(`[{"interface":"eth0","ipv4":["%[1]s"]},{"interface":"net1","ipv4":["%[1]s"],"cleangateway":true},{"interface":"net2","ipv4":["%[1]s"],"cleangateway":true}]`, c.Name)
	pods := []struct{ name, networks, format string }{
		{multiListPod, fmt.Sprintf("%s/%s@net1, %s/%s", configNS, extraNetA, configNS, extraNetB), "comma list with namespace/name@interface"},
		{multiJSONPod, fmt.Sprintf(`[{"name":%q,"namespace":%q,"interface":"net1"},{"name":%q,"namespace":%q,"interface":"net2"}]`, extraNetA, configNS, extraNetB, configNS), "JSON"},
	}
	want := []Attachment{
		{Network: configNS + "/" + configName, Interface: "eth0", Default: true},
		{Network: configNS + "/" + extraNetA, Interface: "net1"},
		{Network: configNS + "/" + extraNetB, Interface: "net2"},
	}
	var infos []podInfo
	for _, p := range pods {
		m := r.testPod(p.name, nil, map[string]string{nadv1.NetworksAnnotation: p.networks, "ipam.spidernet.io/ippools": ippools})
		out, err := r.showManifest(c, "create", m)
		if err := r.check(err == nil, "pod "+p.name+" admitted", p.format+": "+strings.TrimSpace(out)); err != nil {
			return err
		}
		infos = append(infos, podInfo{Name: p.name})
	}
	for _, p := range infos {
		if err := r.waitRunning(c, p.Name, 90*time.Second); err != nil {
			desc, _ := r.kubectlQuiet(c, nil, "describe", "pod", p.Name)
			return r.check(false, "pod "+p.Name+" Running with three interfaces", err.Error()+"\n"+lastLines(desc, 15))
		}
	}
	if err := r.checkNetworkStatus(c, "", infos, want); err != nil {
		return err
	}
	for _, p := range infos {
		v, err := r.getPod(c, p.Name)
		if err != nil {
			return err
		}
		sts, _ := ParseNetworkStatus(v.Annotations[NetworkStatusAnnotation])
		out, err := r.kubectl(c, nil, "exec", p.Name, "--", "ip", "route")
		if err != nil {
			return r.check(false, "routes in "+p.Name, out)
		}
		addrs := InterfaceAddrs(out)
		var problems, got []string
		for _, w := range want {
			for _, s := range sts {
				if s.Interface == w.Interface && len(s.IPs) == 1 {
					got = append(got, w.Interface+" "+addrs[w.Interface])
					if addrs[w.Interface] != s.IPs[0] {
						problems = append(problems, fmt.Sprintf("%s has %q in the pod, network-status says %s", w.Interface, addrs[w.Interface], s.IPs[0]))
					}
				}
			}
		}
		if err := r.check(len(problems) == 0 && len(got) == len(want), p.Name+"'s interfaces hold the reported addresses", strings.Join(got, ", ")+" "+strings.Join(problems, "; ")); err != nil {
			return err
		}
	}
	for _, p := range infos {
		if _, err := r.kubectl(c, nil, "delete", "pod", p.Name, "--wait=true", "--timeout=60s"); err != nil {
			return err
		}
	}
	return r.noAllocations(c, "deleting them frees all six addresses", multiListPod, multiJSONPod)
}

// waitRunning waits until a pod is Running.
func (r *runner) waitRunning(c TargetCluster, name string, timeout time.Duration) error {
	err := poll.Wait(r.ctx, timeout, pollInterval, name+" Running", func() (bool, string, error) {
		out, _ := r.kubectlQuiet(c, nil, "get", "pod", name, "-o", "jsonpath={.status.phase}")
		return out == "Running", "phase " + out, nil
	})
	if err != nil {
		// The pod's own Events say why (FailedScheduling, FailedCreatePodSandBox, …).
		evs, _ := r.kubectlQuiet(c, nil, "get", "events", "--field-selector", "involvedObject.name="+name,
			"-o", `jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`)
		return fmt.Errorf("%w; its Events: %s", err, lastLines(evs, 3))
	}
	return nil
}

// noAllocations waits until the cluster's pool holds no address for the pods, and records the check.
func (r *runner) noAllocations(c TargetCluster, check string, pods ...string) error {
	var held []string
	err := poll.Wait(r.ctx, 30*time.Second, pollInterval, "no address held for "+strings.Join(pods, ", "), func() (bool, string, error) {
		allocs, err := r.poolAllocations(c, c.Name)
		if err != nil {
			return false, err.Error(), nil
		}
		held = heldBy(allocs, pods...)
		return len(held) == 0, strings.Join(held, ", "), nil
	})
	return r.check(err == nil, check, fmt.Sprintf("pool %s holds nothing for them %s", c.Name, strings.Join(held, ", ")))
}

// heldBy lists the addresses a pool holds for the named pods of the app namespace, as "ip (pod iface)".
func heldBy(allocs spv2.PoolIPAllocations, pods ...string) []string {
	var out []string
	for ip, a := range allocs {
		for _, p := range pods {
			if a.NamespacedName == appNamespace+"/"+p {
				out = append(out, fmt.Sprintf("%s (%s %s)", ip, p, a.NIC))
			}
		}
	}
	slices.Sort(out)
	return out
}

// nodeVeths lists every veth on the cluster's nodes (node/link), for "no veth is left".
func nodeVeths(c TargetCluster) (map[string]bool, error) {
	out := map[string]bool{}
	for _, n := range c.Nodes {
		h, err := n.Net.Netlink()
		if err != nil {
			return nil, err
		}
		links, err := h.LinkList()
		h.Close()
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		for _, l := range links {
			if _, ok := l.(*netlink.Veth); ok {
				out[n.Name+"/"+l.Attrs().Name] = true
			}
		}
	}
	return out, nil
}

// newVeths are the veths of after that before did not have.
func newVeths(before, after map[string]bool) []string {
	var out []string
	for v := range after {
		if !before[v] {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// podEvent is an Event of a pod.
type podEvent struct{ Reason, Message string }

// Reasons of the Events that say why a pod's network failed: kubelet's, when the sandbox's CNI ADD
// (Multus) failed; Multus' own, when a network it looks up is not there or not readable; the
// scheduler's, when underlink-scheduler finds the pod's network unusable.
var (
	sandboxEvents   = []string{"FailedCreatePodSandBox", "NoNetworkFound"}
	schedulerEvents = []string{"FailedScheduling"}
)

// podFailure waits for an Event of the pod with one of reasons whose message contains every string of
// want, and prints it.
func (r *runner) podFailure(c TargetCluster, pod string, reasons []string, want ...string) (podEvent, error) {
	var found podEvent
	var seen []string
	err := poll.Wait(r.ctx, 90*time.Second, pollInterval, "an Event of "+pod+" naming "+strings.Join(want, " and "), func() (bool, string, error) {
		out, err := r.kubectlQuiet(c, nil, "get", "events", "-n", appNamespace, "--field-selector", "involvedObject.name="+pod, "-o", "json")
		if err != nil {
			return false, out, nil
		}
		var list struct {
			Items []podEvent `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return false, "", err
		}
		seen = seen[:0]
		for _, e := range list.Items {
			seen = append(seen, e.Reason)
			if !slices.Contains(reasons, e.Reason) {
				continue
			}
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(e.Message, w)
			}
			if ok {
				found = e
				return true, "", nil
			}
		}
		return false, "events: " + strings.Join(seen, ", "), nil
	})
	if err == nil {
		fmt.Fprintf(r.out, "[%s]$ kubectl get events --field-selector involvedObject.name=%s\n%s\n", c.Name, pod, indent(found.Reason+": "+found.Message))
	}
	return found, err
}

// brokenNADManifest is a NetworkAttachmentDefinition whose spec.config the apiserver stores (a string)
// but Multus cannot parse: its JSON ends early.
func brokenNADManifest() string {
	return fmt.Sprintf(`apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: %s
  namespace: %s
spec:
  config: '{"cniVersion":"1.0.0","name":"%s","plugins":[{"type":"macvlan","master":"ens224"}'
`, brokenNAD, appNamespace, brokenNAD)
}

// badInput: mistakes that admission cannot or does not stop each end in an Event of the pod that names
// the cause (and the network, where the message's author knows it), and leave no address in the pool
// and no veth on the nodes.
//   - a NAD that cannot be parsed, as the pod's second network: on an injected pod underlink-scheduler
//     keeps the pod Pending; on a pod labelled underlink.io/inject=false, which every underlink webhook
//     leaves alone and injection sends to no scheduler of underlink's (webhook/registration: the
//     documented opt-out), Multus fails the sandbox;
//   - a second network that does not exist, on an opted-out pod;
//   - Multus' kubeconfig without the right to read NADs (its ClusterRole loses the rule): the pod's
//     default network cannot be read; once the right is back, the pod starts on the address it was given.
func (r *runner) badInput() error {
	c := r.a
	if err := r.settled(c); err != nil {
		return err
	}
	before, err := nodeVeths(c)
	if err != nil {
		return err
	}
	if out, err := r.showManifest(c, "apply", []byte(brokenNADManifest())); err != nil {
		return r.check(false, "NAD "+appNamespace+"/"+brokenNAD+" created", out)
	}
	optOut := map[string]string{registration.InjectLabel: registration.InjectDisabled}
	cases := []struct {
		pod         string
		labels, ann map[string]string
		reasons     []string
		want        []string
		what        string
	}{
		{pod: badNADPod, ann: map[string]string{nadv1.NetworksAnnotation: brokenNAD + "@net1"},
			reasons: schedulerEvents, want: []string{appNamespace + "/" + brokenNAD, "unexpected end of JSON input"},
			what: "unparsable NAD: underlink-scheduler's Event"},
		// Multus' message names the cause, not the NAD (its parse error omits the name).
		{pod: badNADOptOutPod, labels: optOut, ann: map[string]string{nadv1.DefaultNetworkAnnotation: configNS + "/" + configName, nadv1.NetworksAnnotation: brokenNAD + "@net1"},
			reasons: sandboxEvents, want: []string{"Spec.Config", "unexpected end of JSON input"},
			what: "unparsable NAD, pod opted out: Multus' Event"},
		{pod: missingNetPod, labels: optOut, ann: map[string]string{nadv1.DefaultNetworkAnnotation: configNS + "/" + configName, nadv1.NetworksAnnotation: missingNet + "@net1"},
			reasons: sandboxEvents, want: []string{missingNet, "not found"},
			what: "missing network, pod opted out: Multus' Event"},
	}
	for _, k := range cases {
		out, err := r.showManifest(c, "create", r.testPod(k.pod, k.labels, k.ann))
		if err != nil {
			return r.check(false, "pod "+k.pod+" created", out)
		}
	}
	for _, k := range cases {
		ev, err := r.podFailure(c, k.pod, k.reasons, k.want...)
		if err := r.check(err == nil, k.what+" on "+k.pod+" names "+strings.Join(k.want, ", "), ev.Reason+": "+firstLine(ev.Message, k.want[0])); err != nil {
			return err
		}
	}
	if err := r.noAllocations(c, "no address held for the failing pods (DEL freed the pre-allocations)", badNADPod, badNADOptOutPod, missingNetPod); err != nil {
		return err
	}

	if err := r.withoutNADRights(c); err != nil {
		return err
	}

	for _, p := range []string{badNADPod, badNADOptOutPod, missingNetPod, noRightsPod} {
		if out, err := r.kubectl(c, nil, "delete", "pod", p, "--ignore-not-found", "--wait=true", "--timeout=60s"); err != nil {
			return r.check(false, "pod "+p+" deleted", out)
		}
	}
	if out, err := r.kubectl(c, nil, "delete", "network-attachment-definition", brokenNAD, "-n", appNamespace); err != nil {
		return r.check(false, "NAD "+brokenNAD+" deleted", out)
	}
	if err := r.noAllocations(c, "no address left in the pool for the bad-input pods", badNADPod, badNADOptOutPod, missingNetPod, noRightsPod); err != nil {
		return err
	}
	after, err := nodeVeths(c)
	if err != nil {
		return err
	}
	left := newVeths(before, after)
	return r.check(len(left) == 0, "no veth left by the bad-input pods", fmt.Sprintf("%d veths before, %d after %s", len(before), len(after), strings.Join(left, " ")))
}

// withoutNADRights takes the NAD rule out of Multus' ClusterRole, shows the pod's Event, gives the rule
// back and sees the pod start on the address its pool gave it.
func (r *runner) withoutNADRights(c TargetCluster) error {
	saved, err := r.kubectlQuiet(c, nil, "get", "clusterrole", nodes.MultusClusterRole, "-o", "json")
	if err != nil {
		return r.check(false, "ClusterRole "+nodes.MultusClusterRole+" read", saved)
	}
	reduced, err := withoutRulesFor([]byte(saved), "k8s.cni.cncf.io")
	if err != nil {
		return err
	}
	// The saved object goes back unconditionally: its resourceVersion is the one the change replaced.
	original, err := withoutResourceVersion([]byte(saved))
	if err != nil {
		return err
	}
	fmt.Fprintf(r.out, "[%s]$ kubectl edit clusterrole %s   # remove the rule for k8s.cni.cncf.io (network-attachment-definitions)\n", c.Name, nodes.MultusClusterRole)
	if out, err := r.kubectlQuiet(c, reduced, "replace", "-f", "-"); err != nil {
		return r.check(false, "ClusterRole "+nodes.MultusClusterRole+" without NAD rights", out)
	}
	restored := false
	restore := func() error {
		if restored {
			return nil
		}
		restored = true
		out, err := r.kubectlQuiet(c, original, "replace", "-f", "-")
		if err != nil {
			return fmt.Errorf("restore ClusterRole %s: %v: %s", nodes.MultusClusterRole, err, out)
		}
		return nil
	}
	defer func() { _ = restore() }()
	if out, err := r.showManifest(c, "create", r.testPod(noRightsPod, nil, nil)); err != nil {
		return r.check(false, "pod "+noRightsPod+" created", out)
	}
	want := []string{configName, "forbidden"}
	ev, err := r.podFailure(c, noRightsPod, sandboxEvents, want...)
	if err := r.check(err == nil, "Multus without NAD rights: Event on "+noRightsPod+" names "+strings.Join(want, ", "), ev.Reason+": "+firstLine(ev.Message, "forbidden")); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "[%s]$ kubectl replace -f clusterrole-%s.json   # the rule back\n", c.Name, nodes.MultusClusterRole)
	if err := restore(); err != nil {
		return err
	}
	start := time.Now()
	err = r.waitRunning(c, noRightsPod, 90*time.Second)
	if err := r.check(err == nil, noRightsPod+" starts once the rule is back", fmt.Sprintf("Running after %s", time.Since(start).Round(100*time.Millisecond))); err != nil {
		return err
	}
	return r.checkNetworkStatus(c, "", []podInfo{{Name: noRightsPod}}, []Attachment{{Network: configNS + "/" + configName, Interface: "eth0", Default: true}})
}

// withoutRulesFor returns an object (JSON) with the rules that name apiGroup removed from its rules.
func withoutRulesFor(obj []byte, apiGroup string) ([]byte, error) {
	var o map[string]any
	if err := json.Unmarshal(obj, &o); err != nil {
		return nil, err
	}
	rules, _ := o["rules"].([]any)
	var kept []any
	for _, r := range rules {
		m, _ := r.(map[string]any)
		groups, _ := m["apiGroups"].([]any)
		if !slices.Contains(groups, any(apiGroup)) {
			kept = append(kept, r)
		}
	}
	if len(kept) == len(rules) {
		return nil, fmt.Errorf("no rule for %s to take away", apiGroup)
	}
	o["rules"] = kept
	return json.Marshal(o)
}

// withoutResourceVersion returns an object (JSON) without metadata.resourceVersion, for a replace that
// is not conditional on it.
func withoutResourceVersion(obj []byte) ([]byte, error) {
	var o map[string]any
	if err := json.Unmarshal(obj, &o); err != nil {
		return nil, err
	}
	if m, ok := o["metadata"].(map[string]any); ok {
		delete(m, "resourceVersion")
	}
	return json.Marshal(o)
}

// settled waits until the scenario's earlier pods have settled (the fault step's extra replicas and
// probe pod gone), so the veths counted before the bad-input pods are those that stay.
func (r *runner) settled(c TargetCluster) error {
	err := poll.Wait(r.ctx, 90*time.Second, pollInterval, "only the test-app replicas left", func() (bool, string, error) {
		out, err := r.kubectlQuiet(c, nil, "get", "pods", "-n", appNamespace, "-o", "jsonpath={.items[*].metadata.name}")
		if err != nil {
			return false, out, nil
		}
		names := strings.Fields(out)
		return len(names) == 2, strings.Join(names, " "), nil
	})
	if err != nil {
		return r.check(false, "the pods of the earlier steps settled on "+c.Name, err.Error())
	}
	return nil
}
