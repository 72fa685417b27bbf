package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/nodes"
	"github.com/underlink/underlink/test/poll"
)

// The node-failure step's objects on cluster-a: a pool of three addresses, so that the address kept for
// the failed node's pod is the one every new pod would otherwise get.
const (
	nfNet  = "nodefail-net"
	nfPool = "nodefail-a"
	nfOld  = "nodefail-old"
	nfNew  = "nodefail-new-"
	// nfKeptReason is the pool Event of an address kept for a pod of a down node (cni/agent/gc).
	nfKeptReason = "AddressKeptForDownNode"
	// agentComm is the agent's command name on a node (its hostNetwork pod).
	agentComm = "underlink-agent"
)

var nfRange = []string{"172.110.212.10-172.110.212.12"}

// cleanNodeFail deletes what an earlier run's node-failure step left on c.
func (r *runner) cleanNodeFail(c TargetCluster) error {
	return r.deleteLeftovers(c, [][]string{
		{"delete", "pod", "-n", appNamespace, "-l", "underlink-e2e=" + nfNet, "--ignore-not-found", "--wait=true", "--timeout=60s", "--grace-period=1"},
		{"delete", "spidermultusconfig", nfNet, "-n", configNS, "--ignore-not-found"},
		{"delete", "spiderippool", nfPool, "--ignore-not-found", "--timeout=60s"},
	})
}

// nfPod is a pod of the test app with net1 on the node-failure network, placed on node.
func (r *runner) nfPod(name, node string) []byte {
	return r.pinnedPod(name, node, nfNet, nadv1.NetworksAnnotation, configNS+"/"+nfNet+"@net1")
}

// pinnedPod is a pod of the test app on node, labelled underlink-e2e=<label>, with one network
// annotation.
func (r *runner) pinnedPod(name, node, label, annotation, value string) []byte {
	return fmt.Appendf(nil, `apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  namespace: %[2]s
  labels:
    underlink-e2e: %[3]s
  annotations:
    %[4]s: %[5]s
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector:
    kubernetes.io/hostname: %[6]s
  containers:
  - name: test-app
    image: %[7]s
    imagePullPolicy: Never
`, name, appNamespace, label, annotation, value, node, r.testApp)
}

// nodeFailure is a node that fails under a running pod, on cluster-a's real nodes. The pod's node stops
// its kubelet and its agent; the pod is force-deleted, as an operator does to a pod stuck on a lost node,
// while its container still runs there. New pods on the other node get the pool's other addresses, and
// the failed pod's address is not handed out: the pool records it as kept for the down node. Once the
// kubelet is back (and the agent with it), the old sandbox is torn down, its DEL frees the address, and
// the pod that waited for it gets it. Before the failure, a process on the node that is not root tries
// to allocate and to release over the agent's socket, and cannot.
func (r *runner) nodeFailure() error {
	c := r.a
	var victim, survivor TargetNode
	for _, n := range c.Nodes {
		if n.Gateway {
			survivor = n
		} else {
			victim = n
		}
	}
	if victim.Kubelet == nil || survivor.Name == "" {
		return r.check(false, "a node fails", "the target cannot stop a non-gateway node's kubelet")
	}
	gw := netip.MustParsePrefix(c.ClusterCIDR).Addr().Next()
	out, err := r.showManifest(c, "apply", []byte(poolManifest(nfPool, c.ClusterCIDR, gw.String(), nfRange...)))
	if err := r.check(err == nil, "SpiderIPPool "+nfPool+" (three addresses) admitted", firstLine(out, "spiderippool")); err != nil {
		return err
	}
	if err := r.applyNetwork(c, nfNet, r.coordinatedNetwork(nfNet, netbed.UnderlayNIC, nfPool, ""), "the node-failure network"); err != nil {
		return err
	}
	if out, err := r.showManifest(c, "apply", r.nfPod(nfOld, victim.Name)); err != nil {
		return r.check(false, nfOld+" admitted", out)
	}
	if err := r.waitRunning(c, nfOld, 2*time.Minute); err != nil {
		return r.check(false, nfOld+" Running on "+victim.Name, err.Error())
	}
	allocs, err := r.poolAllocations(c, nfPool)
	if err != nil {
		return r.check(false, "pool "+nfPool+" read", err.Error())
	}
	oldIP, old := allocationOf(allocs, nfOld)
	if err := r.check(oldIP != "" && old.Node == victim.Name, nfOld+" holds an address of "+nfPool+" recorded on "+victim.Name,
		fmt.Sprintf("%s on %s (container %.12s)", oldIP, old.Node, old.ContainerID)); err != nil {
		return err
	}
	if err := r.nonRootSocket(c, victim, old); err != nil {
		return err
	}

	// The node fails: its kubelet and its agent stop; the pod's container keeps running.
	fmt.Fprintf(r.out, "[%s]# kubelet on %s %s; underlink-agent on %s killed (SIGKILL)\n", c.Name, victim.Name, victim.Kubelet.How(), victim.Name)
	if err := victim.Kubelet.Stop(); err != nil {
		return r.check(false, "kubelet of "+victim.Name+" stopped", err.Error())
	}
	// From here on the kubelet comes back whatever happens, or the steps after this one run on a cluster
	// with a node down.
	started := false
	defer func() {
		if !started {
			_ = victim.Kubelet.Start()
		}
	}()
	failedAt := time.Now()
	if _, err := nodes.SignalByName(victim.Net.Path(), agentComm, syscall.SIGKILL); err != nil {
		return r.check(false, "underlink-agent of "+victim.Name+" killed", err.Error())
	}
	if out, err := r.kubectl(c, nil, "delete", "pod", nfOld, "--force", "--grace-period=0"); err != nil {
		return r.check(false, nfOld+" force-deleted", out)
	}
	var news []string
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("%s%d", nfNew, i)
		news = append(news, name)
		if out, err := r.showManifest(c, "apply", r.nfPod(name, survivor.Name)); err != nil {
			return r.check(false, name+" admitted", out)
		}
	}
	// Two new pods get the pool's other two addresses; the third finds none free, because the failed
	// pod's address is still the pool's.
	var running []string
	err = poll.Wait(r.ctx, 2*time.Minute, pollInterval, "two new pods Running", func() (bool, string, error) {
		running = running[:0]
		for _, n := range news {
			if p, err := r.getPod(c, n); err == nil && p.Phase == "Running" {
				running = append(running, n)
			}
		}
		return len(running) >= 2, strings.Join(running, ", "), nil
	})
	if err := r.check(err == nil && len(running) == 2, "two of three new pods run on "+survivor.Name, strings.Join(running, ", ")); err != nil {
		return err
	}
	// The agents' garbage collection sees the pod gone and its node down, and keeps the address.
	var kept string
	err = poll.Wait(r.ctx, 3*time.Minute, time.Second, "an "+nfKeptReason+" Event on "+nfPool+" for "+oldIP, func() (bool, string, error) {
		out, _ := r.kubectlQuiet(c, nil, "get", "events", "-A", "--field-selector", "involvedObject.name="+nfPool+",reason="+nfKeptReason, "-o", "json")
		var evs corev1.EventList
		if err := json.Unmarshal([]byte(out), &evs); err != nil {
			return false, out, nil
		}
		for _, e := range evs.Items {
			// Only this failure's: an earlier run's Event of the same pool may still be listed.
			at := e.LastTimestamp.Time
			if at.IsZero() {
				at = e.EventTime.Time
			}
			if strings.Contains(e.Message, oldIP) && !at.Before(failedAt.Truncate(time.Second)) {
				kept = e.Message
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d earlier Events", len(evs.Items)), nil
	})
	if err := r.check(err == nil, "garbage collection keeps "+oldIP+" for the down node "+victim.Name, fmt.Sprintf("%.0fs after the failure: %s", time.Since(failedAt).Seconds(), kept)); err != nil {
		return err
	}
	allocs, err = r.poolAllocations(c, nfPool)
	if err != nil {
		return r.check(false, "pool "+nfPool+" read", err.Error())
	}
	holder, a := allocationAt(allocs, oldIP)
	var given []string
	reused := false
	for _, n := range news {
		if ip, _ := allocationOf(allocs, n); ip != "" {
			given = append(given, n+"="+ip)
			reused = reused || ip == oldIP
		}
	}
	if err := r.check(holder == nfOld && a.Node == victim.Name && len(given) == 2 && !reused,
		oldIP+" is not handed out while "+victim.Name+" is down",
		fmt.Sprintf("%.0fs after the failure %s still holds it; the new pods got %s", time.Since(failedAt).Seconds(), holder, strings.Join(given, ", "))); err != nil {
		return err
	}

	// The node comes back: the kubelet tears the old sandbox down and its DEL frees the address (the
	// agent's own pod restarts with it).
	fmt.Fprintf(r.out, "[%s]# kubelet on %s started again\n", c.Name, victim.Name)
	started = true
	back := time.Now()
	if err := victim.Kubelet.Start(); err != nil {
		return r.check(false, "kubelet of "+victim.Name+" back", err.Error())
	}
	err = poll.Wait(r.ctx, 3*time.Minute, pollInterval, oldIP+" released by "+nfOld, func() (bool, string, error) {
		allocs, err := r.poolAllocations(c, nfPool)
		if err != nil {
			return false, err.Error(), nil
		}
		h, _ := allocationAt(allocs, oldIP)
		return h != nfOld, "held by " + h, nil
	})
	if err := r.check(err == nil, "with the kubelet and the agent back, "+oldIP+" is released", fmt.Sprintf("%.1fs after the kubelet started", time.Since(back).Seconds())); err != nil {
		return err
	}
	var third string
	err = poll.Wait(r.ctx, 3*time.Minute, pollInterval, "the third new pod Running", func() (bool, string, error) {
		for _, n := range news {
			if p, err := r.getPod(c, n); err == nil && p.Phase == "Running" && !strings.Contains(strings.Join(running, " "), n) {
				third = n
				return true, "", nil
			}
		}
		return false, "", nil
	})
	if err == nil {
		allocs, _ = r.poolAllocations(c, nfPool)
	}
	ip, _ := allocationOf(allocs, third)
	if err := r.check(err == nil && ip == oldIP, "the pod that waited gets "+oldIP, fmt.Sprintf("%s has %s, %.1fs after the kubelet started", third, ip, time.Since(back).Seconds())); err != nil {
		return err
	}
	if out, err := r.kubectl(c, nil, "rollout", "status", "daemonset", "-n", releaseNS, "--timeout=3m"); err != nil {
		return r.check(false, "underlink-agent back on "+victim.Name, out)
	}
	if err := r.cleanNodeFail(c); err != nil {
		return err
	}
	r.pass("the node-failure step's pods, network and pool deleted", "")
	return nil
}

// nonRootSocket runs underlink-ipam on node as uid 65534 inside the node's namespaces: an ADD for a pod
// that does not exist and a DEL of the address the running pod a holds. Both fail with the agent's or
// the socket's refusal, and the pool is as it was.
func (r *runner) nonRootSocket(c TargetCluster, node TargetNode, a spv2.PoolIPAllocation) error {
	pids, err := nodes.PIDsByName(node.Net.Path(), "kubelet")
	if err != nil {
		return r.check(false, "the mount namespace of "+node.Name, err.Error())
	}
	conf, err := r.kubectlQuiet(c, nil, "get", "network-attachment-definitions", nfNet, "-n", configNS, "-o", "jsonpath={.spec.config}")
	if err != nil {
		return r.check(false, "NAD "+nfNet+" read", conf)
	}
	// The IPAM plugin runs as its main plugin runs it: with the main plugin's configuration (the NAD's first
	// plugin, with the list's name and version).
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(conf), &list); err != nil || len(list.Plugins) == 0 {
		return r.check(false, "NAD "+nfNet+" read", fmt.Sprintf("%v: %s", err, conf))
	}
	main := list.Plugins[0]
	main["cniVersion"], main["name"] = list.CNIVersion, list.Name
	stdin, err := json.Marshal(main)
	if err != nil {
		return r.check(false, "NAD "+nfNet+" read", err.Error())
	}
	ns, name, _ := strings.Cut(a.NamespacedName, "/")
	before, err := r.poolAllocations(c, nfPool)
	if err != nil {
		return r.check(false, "pool "+nfPool+" read", err.Error())
	}
	for _, call := range []struct{ cmd, pod, container string }{
		{"ADD", "not-a-pod", "0123456789abcdef"},
		{"DEL", name, a.ContainerID},
	} {
		ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
		cmd := exec.CommandContext(ctx, "nsenter", "--target", fmt.Sprint(pids[0]), "--mount", "--net",
			"--setuid", "65534", "--setgid", "65534", "--", "/opt/cni/bin/underlink-ipam")
		cmd.Env = []string{"CNI_COMMAND=" + call.cmd, "CNI_CONTAINERID=" + call.container, "CNI_NETNS=/proc/self/ns/net", "CNI_IFNAME=net1",
			"CNI_PATH=/opt/cni/bin", fmt.Sprintf("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s", ns, call.pod)}
		cmd.Stdin = bytes.NewReader(stdin)
		var outb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &outb, &outb
		err := cmd.Run()
		cancel()
		out := strings.TrimSpace(outb.String())
		fmt.Fprintf(r.out, "[%s/%s]$ CNI_COMMAND=%s ... nsenter --setuid 65534 /opt/cni/bin/underlink-ipam\n%s\n", c.Name, node.Name, call.cmd, indent(out))
		refused := err != nil && (strings.Contains(out, "permission denied") || strings.Contains(out, "only root"))
		if err := r.check(refused, "a process on "+node.Name+" that is not root cannot "+strings.ToLower(call.cmd)+" over the agent's socket", firstLine(out, "msg")); err != nil {
			return err
		}
	}
	after, err := r.poolAllocations(c, nfPool)
	if err != nil {
		return r.check(false, "pool "+nfPool+" read", err.Error())
	}
	return r.check(reflect.DeepEqual(after, before), "pool "+nfPool+" is as it was", fmt.Sprintf("%d addresses held", len(after)))
}

// allocationOf returns the address a pool gives pod (of the app namespace) and its record.
func allocationOf(allocs spv2.PoolIPAllocations, pod string) (string, spv2.PoolIPAllocation) {
	for ip, a := range allocs {
		if a.NamespacedName == appNamespace+"/"+pod {
			return ip, a
		}
	}
	return "", spv2.PoolIPAllocation{}
}

// allocationAt returns the pod (of the app namespace) that holds ip, and its record.
func allocationAt(allocs spv2.PoolIPAllocations, ip string) (string, spv2.PoolIPAllocation) {
	a, ok := allocs[ip]
	if !ok {
		return "", a
	}
	return strings.TrimPrefix(a.NamespacedName, appNamespace+"/"), a
}
