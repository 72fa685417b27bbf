//go:build integration

package nodes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/underlink/underlink/api/cniconf"
	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/api/scheme"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/localenv"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/nodes"
	"github.com/underlink/underlink/test/poll"
)

// testPortBase keeps this test's control plane off `make up`'s ports and other tests'.
const testPortBase = 4000

func binaries(t *testing.T, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		p, err := controlplane.Binary(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = p
	}
	return out
}

// TestNodesRunPods: two real nodes join a real control plane and become Ready on their primary network;
// Multus' own thin DaemonSet (hostNetwork, so it starts before any CNI but the primary) installs Multus
// into each node's /opt/cni/bin and /etc/cni/net.d; a pod then gets its network from its
// NetworkAttachmentDefinition (macvlan on ens224 + host-local) through the real Multus, which writes
// network-status; `kubectl logs` reaches kubelet through the apiserver's egress; teardown leaves no
// process, namespace, mount or cgroup behind.
func TestNodesRunPods(t *testing.T) {
	images, err := nodes.FindImages(nodes.ImagesDir())
	if err != nil {
		t.Fatal(err)
	}
	pause, err := nodes.PickImage(images, "pause")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	cp := &localenv.Env{Dir: t.TempDir(), Clusters: localenv.Clusters(testPortBase)[:1]}
	t.Cleanup(func() {
		if err := cp.Down(); err != nil {
			t.Error(err)
		}
	})
	if err := cp.Up(ctx); err != nil {
		t.Fatal(err)
	}
	c := cp.Clusters[0]

	var prefix string
	var cgroupRoots []string
	t.Run("bed", func(t *testing.T) {
		// The test's temporary directory first: cleanups run last-registered first, so its removal then
		// waits for the bed's teardown, which stops the kubelets and containerds still writing there.
		t.TempDir()
		bed := netbed.New(t)
		prefix = bed.Prefix()
		tree, err := nodes.MultusTree()
		if err != nil {
			t.Fatal(err)
		}
		multusImage, err := nodes.PickImage(images, nodes.MultusImageName)
		if err != nil {
			t.Fatal(err)
		}
		plugins := binaries(t, "macvlan", "host-local", "loopback", "bridge")
		env, err := nodes.Start(ctx, bed, nodes.Options{
			Dir: filepath.Join(t.TempDir(), "nodes"), Images: nodes.Tarballs(images), SandboxImage: pause,
			CNIPlugins: plugins, Binaries: binaries(t, "kubelet", "kube-proxy", "kube-scheduler"),
			Out: testWriter{t}, KeepLogs: t.Failed,
		}, nodes.Cluster{
			Name: c.Name, APIServer: fmt.Sprintf("127.0.0.1:%d", c.APIServerPort), PKIDir: cp.PKIDir(c),
			EgressSocket: cp.EgressSocket(c), Underlay: netbed.ClusterA,
			Nodes: []nodes.NodeSpec{
				{Name: "a-node1", IP: netip.MustParsePrefix("10.7.168.73/24"), UnderlayIP: netip.MustParsePrefix("172.110.168.73/16"), PodSubnet: netip.MustParsePrefix("10.244.73.0/24")},
				{Name: "a-node2", IP: netip.MustParsePrefix("10.7.168.75/24"), UnderlayIP: netip.MustParsePrefix("172.110.168.75/16"), PodSubnet: netip.MustParsePrefix("10.244.75.0/24")},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		cn := env.Cluster(c.Name)
		for _, n := range cn.Nodes {
			cgroupRoots = append(cgroupRoots, n.CgroupRoot)
		}
		cl, err := client.New(cn.Config, client.Options{Scheme: scheme.New()})
		if err != nil {
			t.Fatal(err)
		}
		installMultus(ctx, t, cn, cp.KubeconfigPath(c), tree, multusImage)
		nad := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: "underlay", Namespace: "default"},
			Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"` + cniconf.CNIVersion + `","name":"underlay","plugins":[
				{"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"host-local","subnet":"172.110.0.0/16",
				 "rangeStart":"172.110.9.10","rangeEnd":"172.110.9.20","gateway":"172.110.0.1"}}]}`}}
		if err := cl.Create(ctx, nad); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p1", Namespace: "default",
			Annotations: map[string]string{nadv1.DefaultNetworkAnnotation: "default/underlay"}},
			Spec: corev1.PodSpec{NodeName: "a-node2", TerminationGracePeriodSeconds: ptr.To[int64](1), Containers: []corev1.Container{{
				Name: "pause", Image: pause, ImagePullPolicy: corev1.PullNever}}}}
		if err := cl.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		err = poll.Wait(ctx, 60*time.Second, 300*time.Millisecond, "pod p1 running with an IP", func() (bool, string, error) {
			if err := cl.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
				return false, "", err
			}
			return pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "", "phase " + string(pod.Status.Phase), nil
		})
		if err != nil {
			out, _ := kubectl(cp.KubeconfigPath(c), "describe", "pod", "p1")
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.HasPrefix(pod.Status.PodIP, "172.110.9.") {
			t.Errorf("pod IP %s is not from the NAD's host-local range 172.110.9.10-20", pod.Status.PodIP)
		}
		// What Multus wrote back: the default network, its interface and the pod's IP.
		if st := pod.Annotations["k8s.v1.cni.cncf.io/network-status"]; !strings.Contains(st, `"name": "default/underlay"`) ||
			!strings.Contains(st, `"interface": "eth0"`) || !strings.Contains(st, `"`+pod.Status.PodIP+`"`) || !strings.Contains(st, `"default": true`) {
			t.Errorf("network-status %s, want default/underlay on eth0 with %s", st, pod.Status.PodIP)
		}
		// The node that hosts the pod reaches it over the underlay (its own ens224 address).
		if err := netbed.Ping(cn.Nodes[0].Net.NS, netip.MustParseAddr(pod.Status.PodIP), 2, 5*time.Second); err != nil {
			t.Errorf("node a-node1 → pod %s over the underlay: %v", pod.Status.PodIP, err)
		}
		if out, err := kubectl(cp.KubeconfigPath(c), "logs", "p1"); err != nil {
			t.Errorf("kubectl logs through the apiserver's egress to kubelet: %v\n%s", err, out)
		}
		if err := cl.Delete(ctx, pod); err != nil {
			t.Fatal(err)
		}
		// As long as the pod had to run, and 30s more.
		poll.UntilEvery(t, 90*time.Second, 300*time.Millisecond, "pod p1 deleted", func() (bool, string) {
			if err := cl.Get(ctx, client.ObjectKeyFromObject(pod), pod); err == nil {
				return false, "phase " + string(pod.Status.Phase)
			}
			return true, ""
		})
	})

	// Nothing of the bed is left.
	entries, _ := os.ReadDir(netbed.RunDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, strings.TrimSuffix(prefix, "-")) || strings.Contains(l, "underlink-node-run") {
			t.Errorf("mount left behind: %s", l)
		}
	}
	for _, cg := range cgroupRoots {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/pids", cg)); err == nil {
			t.Errorf("cgroup %s left behind", cg)
		}
	}
	left, err := nodes.LeftProcesses("containerd-shim", "kubelet")
	if err != nil {
		t.Error(err)
	}
	for _, l := range left {
		if strings.Contains(l, "containerd-shim") || strings.Contains(l, "a-node") {
			t.Errorf("process left behind: %s", l)
		}
	}
}

// installMultus applies Multus' thin DaemonSet as a user would and waits until every node's Multus has
// written its configuration.
func installMultus(ctx context.Context, t *testing.T, cn *nodes.ClusterNodes, kubeconfig, tree, image string) {
	t.Helper()
	manifest, changes, err := nodes.MultusManifest(tree, image)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Multus' %s, changed: %s", nodes.MultusManifestPath, strings.Join(changes, "; "))
	if out, err := kubectlIn(kubeconfig, manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply Multus: %v\n%s", err, out)
	}
	err = poll.Wait(ctx, 2*time.Minute, 500*time.Millisecond, "Multus configured on every node", func() (bool, string, error) {
		pods, err := cn.Client.CoreV1().Pods(nodes.MultusNamespace).List(ctx, metav1.ListOptions{LabelSelector: "name=multus"})
		if err != nil {
			return false, err.Error(), nil
		}
		done := 0
		for _, p := range pods.Items {
			logs, err := cn.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: "kube-multus"}).DoRaw(ctx)
			if err == nil && strings.Contains(string(logs), nodes.MultusConfReady) {
				done++
			}
		}
		return done == len(cn.Nodes), fmt.Sprintf("%d of %d pods configured", done, len(pods.Items)), nil
	})
	if err != nil {
		out, _ := kubectlIn(kubeconfig, nil, "describe", "pods", "-n", nodes.MultusNamespace, "-l", "name=multus")
		t.Fatalf("%v\n%s", err, out)
	}
}

func kubectl(kubeconfig string, args ...string) (string, error) {
	return kubectlIn(kubeconfig, nil, args...)
}

func kubectlIn(kubeconfig string, stdin []byte, args ...string) (string, error) {
	bin, err := controlplane.Binary("kubectl")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestMultusSpeaksTheNADVersion: the CNI library pinned in the Multus that `make multus` built lists the
// version of the configuration lists underlink's controller writes among those it supports (the
// plugin's VERSION command), so Multus parses them.
func TestMultusSpeaksTheNADVersion(t *testing.T) {
	bin, err := controlplane.Binary("multus")
	if err != nil {
		t.Fatalf("%v (make multus)", err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "CNI_COMMAND=VERSION")
	cmd.Stdin = strings.NewReader(`{"cniVersion":"` + cniconf.CNIVersion + `"}`)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("multus VERSION: %v", err)
	}
	var v struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("multus VERSION printed %s: %v", out, err)
	}
	if !slices.Contains(v.SupportedVersions, cniconf.CNIVersion) {
		t.Errorf("multus supports %v, not the NADs' %s", v.SupportedVersions, cniconf.CNIVersion)
	}
}
