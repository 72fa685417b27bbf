//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	agentclient "github.com/underlink/underlink/cni/agent/client"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/netbed"
)

var (
	ipamBuildOnce sync.Once
	ipamBuildDir  string
	ipamBuildErr  error
)

// ipamBinaries builds underlink-agent and underlink-ipam from this repository once per test binary into
// the shared cache ($UNDERLINK_CACHE/build/ipam-<pid>), so every test runs the real binaries.
func ipamBinaries(t testing.TB) (agent, plugin string) {
	t.Helper()
	ipamBuildOnce.Do(func() {
		ipamBuildDir = filepath.Join(controlplane.CacheDir(), "build", fmt.Sprintf("ipam-%d", os.Getpid()))
		if ipamBuildErr = os.MkdirAll(ipamBuildDir, 0o755); ipamBuildErr != nil {
			return
		}
		ipamBuildErr = netbed.BuildCommands(ipamBuildDir, "underlink-agent", "underlink-ipam")
		// Builds of earlier runs are removed here, since a test binary has no hook after its last test.
		old, _ := filepath.Glob(filepath.Join(controlplane.CacheDir(), "build", "ipam-*"))
		for _, d := range old {
			if d != ipamBuildDir {
				_ = os.RemoveAll(d)
			}
		}
	})
	if ipamBuildErr != nil {
		t.Fatal(ipamBuildErr)
	}
	return filepath.Join(ipamBuildDir, "underlink-agent"), filepath.Join(ipamBuildDir, "underlink-ipam")
}

// ipamNode is a node of the bed with its Node object, apiserver relay and agent.
type ipamNode struct {
	*netbed.Node
	Socket string
	agent  *netbed.Process
	args   []string
	bed    *netbed.Bed
	starts int
}

// ipamCluster is a control plane, a bed and the agents on its nodes.
type ipamCluster struct {
	Env        *controlplane.Env
	Bed        *netbed.Bed
	Kubeconfig string
	Agent      string
	Plugin     string
	Underlay   *netbed.Cluster
	Nodes      []*ipamNode
	// Scratch is a pod namespace for plugin calls that configure nothing (CNI_NETNS must not be the
	// plugin's own namespace).
	Scratch *netbed.Netns
}

func newIPAMCluster(t *testing.T, restartable bool) *ipamCluster {
	t.Helper()
	agent, plugin := ipamBinaries(t)
	env := controlplane.StartEnv(t, controlplane.EnvOptions{Restartable: restartable})
	bed := netbed.New(t)
	return &ipamCluster{
		Env: env, Bed: bed, Kubeconfig: env.Kubeconfig(t), Agent: agent, Plugin: plugin,
		Underlay: bed.Cluster(netbed.ClusterA), Scratch: bed.Pod("scratch"),
	}
}

// addNode makes a node namespace on cluster-a's underlay, its Node object and its apiserver relay.
func (c *ipamCluster) addNode(t *testing.T, name string, labels map[string]string) *ipamNode {
	t.Helper()
	n := c.Bed.Node(netbed.NodeSpec{Name: name, Cluster: c.Underlay})
	if _, err := c.Bed.Relay(n.NS, "", c.Env.Config.Host); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Env.Client.Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	in := &ipamNode{Node: n, Socket: filepath.Join(c.Bed.Dir(), name, "agent.sock"), bed: c.Bed}
	c.Nodes = append(c.Nodes, in)
	return in
}

// startAgent runs underlink-agent inside the node namespace, reaching the apiserver over the relay, and
// waits until it serves.
func (c *ipamCluster) startAgent(t testing.TB, n *ipamNode, extra ...string) {
	t.Helper()
	n.args = append([]string{
		"--kubeconfig", c.Kubeconfig, "--node-name", n.Spec.Name, "--socket", n.Socket,
		"--metrics-bind-address", "127.0.0.1:9711", "--health-probe-bind-address", "127.0.0.1:9712",
		"--lease-namespace", "kube-system", "-v", "1",
	}, extra...)
	if err := c.restartAgent(n); err != nil {
		t.Fatal(err)
	}
}

// restartAgent starts the node's agent again with the same arguments (after a kill) and waits for it.
func (c *ipamCluster) restartAgent(n *ipamNode) error {
	if n.agent != nil {
		if err := n.agent.Kill(); err != nil { // a start that is still coming up is replaced
			return err
		}
	}
	n.starts++
	p, err := c.Bed.Start(n.NS, "agent-"+n.Spec.Name, exec.Command(c.Agent, n.args...))
	if err != nil {
		return err
	}
	n.agent = p
	return waitAgent(n, 60*time.Second)
}

func waitAgent(n *ipamNode, timeout time.Duration) error {
	cl := agentclient.New(n.Socket, 2*time.Second)
	deadline := time.Now().Add(timeout)
	for {
		err := cl.Health(context.Background())
		if err == nil {
			return nil
		}
		select {
		case <-n.agent.Done():
			return fmt.Errorf("agent on %s exited: %v\n%s", n.Spec.Name, n.agent.Wait(), n.agent.Logs())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent on %s not serving after %s: %v\n%s", n.Spec.Name, timeout, err, n.agent.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// createPool creates a SpiderIPPool.
func (c *ipamCluster) createPool(t testing.TB, name, subnet, gateway string, ips []string, mut ...func(*spv2.SpiderIPPool)) *spv2.SpiderIPPool {
	t.Helper()
	p := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spv2.IPPoolSpec{Subnet: subnet, IPs: ips}}
	if gateway != "" {
		p.Spec.Gateway = &gateway
	}
	for _, m := range mut {
		m(p)
	}
	if err := c.Env.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// createPod creates a pod bound to node (no kubelet runs it: the test plays the runtime).
func (c *ipamCluster) createPod(t testing.TB, namespace, name, node string, annotations map[string]string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := c.Env.Client.Create(ctx, nsObj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations, Labels: map[string]string{"app": "ipam-test"}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if err := c.Env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// poolAllocations reads a pool from the apiserver and decodes its status.
func (c *ipamCluster) poolAllocations(t testing.TB, name string) (spv2.PoolIPAllocations, *spv2.SpiderIPPool) {
	t.Helper()
	var p spv2.SpiderIPPool
	if err := c.Env.Client.Get(context.Background(), k8stypes.NamespacedName{Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	a, err := spv2.ParseAllocations(p.Status)
	if err != nil {
		t.Fatalf("pool %s status: %v", name, err)
	}
	return a, &p
}

// ipamConf is a network config whose ipam is underlink-ipam on the node's socket.
func ipamConf(version, socket string, timeout int, v4pools ...string) []byte {
	pools, _ := json.Marshal(v4pools)
	return []byte(fmt.Sprintf(`{"cniVersion":%q,"name":"kube-system-macvlan-conf","type":"macvlan","master":"ens224","mode":"bridge",
	 "ipam":{"type":"underlink-ipam","socket":%q,"timeoutSeconds":%d,"ipv4Pools":%s}}`, version, socket, timeout, pools))
}

// pluginCall runs the underlink-ipam binary as a runtime (or macvlan) execs an IPAM plugin: CNI_* in
// the environment, the network config on stdin, the result or a CNI error on stdout.
type pluginCall struct {
	Plugin      string
	Command     string
	ContainerID string
	Netns       string
	IfName      string
	Pod         *corev1.Pod
	Conf        []byte
}

func (pc pluginCall) run(ctx context.Context) (stdout []byte, cniErr *types.Error, err error) {
	cmd := exec.CommandContext(ctx, pc.Plugin)
	if pc.IfName == "" {
		pc.IfName = "eth0"
	}
	args := "IgnoreUnknown=1"
	if pc.Pod != nil {
		args += fmt.Sprintf(";K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_UID=%s;K8S_POD_INFRA_CONTAINER_ID=%s", pc.Pod.Namespace, pc.Pod.Name, pc.Pod.UID, pc.ContainerID)
	}
	cmd.Env = []string{
		"CNI_COMMAND=" + pc.Command, "CNI_CONTAINERID=" + pc.ContainerID, "CNI_NETNS=" + pc.Netns,
		"CNI_IFNAME=" + pc.IfName, "CNI_PATH=" + filepath.Dir(pc.Plugin), "CNI_ARGS=" + args,
	}
	cmd.Stdin = bytes.NewReader(pc.Conf)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	if runErr != nil {
		var e types.Error
		if json.Unmarshal(out.Bytes(), &e) == nil && e.Code != 0 {
			return out.Bytes(), &e, nil
		}
		return out.Bytes(), nil, fmt.Errorf("%s %s: %w (stdout %q stderr %q)", pc.Plugin, pc.Command, runErr, out.String(), errOut.String())
	}
	return out.Bytes(), nil, nil
}

// add runs ADD and parses the result as the current CNI version.
func (pc pluginCall) add(ctx context.Context) (*current.Result, *types.Error, error) {
	pc.Command = "ADD"
	out, cniErr, err := pc.run(ctx)
	if err != nil || cniErr != nil {
		return nil, cniErr, err
	}
	var res current.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, nil, fmt.Errorf("ADD result %q: %w", out, err)
	}
	return &res, nil, nil
}

// httpInNetns is an HTTP client whose connections are made from inside a namespace (the agent's
// metrics and health addresses are on the node's loopback).
func httpInNetns(n *netbed.Netns) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := n.Do(func(ns.NetNS) error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}}
}

func getBody(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
