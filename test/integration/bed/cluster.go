package bed

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	agentclient "github.com/underlink/underlink/cni/agent/client"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// Cluster is a control plane, a network test bed with cluster-a's underlay, and underlink-agent on the
// bed's nodes, built from this repository.
type Cluster struct {
	Env        *controlplane.Env
	Bed        *netbed.Bed
	Kubeconfig string
	// Agent and Plugin are the underlink-agent and underlink-ipam binaries.
	Agent    string
	Plugin   string
	Underlay *netbed.Cluster
	Nodes    []*Node
	// Scratch is a pod namespace for plugin calls that configure nothing (CNI_NETNS must not be the
	// plugin's own namespace).
	Scratch *netbed.Netns
}

// Node is a node of the bed with its Node object, apiserver relay and agent.
type Node struct {
	*netbed.Node
	// Socket is the agent's IPAM socket.
	Socket string
	// Agent is the running agent process, replaced by each (re)start.
	Agent *netbed.Process
	args  []string
}

// NewCluster starts a control plane with opts and a bed with cluster-a's underlay.
func NewCluster(t *testing.T, opts controlplane.EnvOptions) *Cluster {
	t.Helper()
	dir := Commands(t, "underlink-agent", "underlink-ipam")
	env := controlplane.StartEnv(t, opts)
	b := netbed.New(t)
	return &Cluster{
		Env: env, Bed: b, Kubeconfig: env.Kubeconfig(t),
		Agent: filepath.Join(dir, "underlink-agent"), Plugin: filepath.Join(dir, "underlink-ipam"),
		Underlay: b.Cluster(netbed.ClusterA), Scratch: b.Pod("scratch"),
	}
}

// AddNode makes a node namespace on cluster-a's underlay, its Node object and its apiserver relay.
func (c *Cluster) AddNode(t *testing.T, name string, labels map[string]string) *Node {
	t.Helper()
	n := c.Bed.Node(netbed.NodeSpec{Name: name, Cluster: c.Underlay})
	if _, err := c.Bed.Relay(n.NS, "", c.Env.Config.Host); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Env.Client.Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	// Ready, as its kubelet would report it: garbage collection keeps the addresses of a node that is not.
	if err := c.SetNodeReady(name, corev1.ConditionTrue); err != nil {
		t.Fatal(err)
	}
	in := &Node{Node: n, Socket: filepath.Join(c.Bed.Dir(), name, "agent.sock")}
	c.Nodes = append(c.Nodes, in)
	return in
}

// StartAgent runs underlink-agent inside the node namespace, reaching the apiserver over the relay, and
// waits until it serves.
func (c *Cluster) StartAgent(t testing.TB, n *Node, extra ...string) {
	t.Helper()
	n.args = append([]string{
		"--kubeconfig", c.Kubeconfig, "--node-name", n.Spec.Name, "--socket", n.Socket,
		"--metrics-bind-address", "127.0.0.1:9711", "--health-probe-bind-address", "127.0.0.1:9712",
		"--lease-namespace", "kube-system", "-v", "1",
	}, extra...)
	if err := c.RestartAgent(n); err != nil {
		t.Fatal(err)
	}
}

// RestartAgent starts the node's agent again with the same arguments (after a kill) and waits for it.
func (c *Cluster) RestartAgent(n *Node) error {
	if n.Agent != nil {
		if err := n.Agent.Kill(); err != nil { // a start that is still coming up is replaced
			return err
		}
	}
	p, err := c.Bed.Start(n.NS, "agent-"+n.Spec.Name, exec.Command(c.Agent, n.args...))
	if err != nil {
		return err
	}
	n.Agent = p
	return WaitAgent(n, 60*time.Second)
}

// WaitAgent waits until the node's agent answers on its socket; an agent that exits ends the wait.
func WaitAgent(n *Node, timeout time.Duration) error {
	cl := agentclient.New(n.Socket, 2*time.Second)
	err := poll.Wait(context.Background(), timeout, 50*time.Millisecond, "agent on "+n.Spec.Name+" serving", func() (bool, string, error) {
		err := cl.Health(context.Background())
		if err == nil {
			return true, "", nil
		}
		select {
		case <-n.Agent.Done():
			return false, "", fmt.Errorf("agent exited: %v", n.Agent.Wait())
		default:
		}
		return false, err.Error(), nil
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, n.Agent.Logs())
	}
	return nil
}

// CreatePool creates a SpiderIPPool.
func (c *Cluster) CreatePool(t testing.TB, name, subnet, gateway string, ips []string, mut ...func(*spv2.SpiderIPPool)) *spv2.SpiderIPPool {
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

// CreatePod creates a pod bound to node (no kubelet runs it: the test plays the runtime), and its
// namespace when missing.
func (c *Cluster) CreatePod(t testing.TB, namespace, name, node string, annotations map[string]string) *corev1.Pod {
	t.Helper()
	pod, err := c.NewPod(context.Background(), namespace, name, node, annotations)
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// NewPod is CreatePod for a goroutine other than the test's: it returns the error.
func (c *Cluster) NewPod(ctx context.Context, namespace, name, node string, annotations map[string]string) (*corev1.Pod, error) {
	if err := EnsureNamespace(ctx, c.Env.Client, namespace, nil, nil); err != nil {
		return nil, err
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations, Labels: map[string]string{"app": "ipam-test"}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if err := c.Env.Client.Create(ctx, pod); err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", namespace, name, err)
	}
	return pod, nil
}

// PoolAllocations reads a pool from the apiserver and decodes its status.
func (c *Cluster) PoolAllocations(t testing.TB, name string) (spv2.PoolIPAllocations, *spv2.SpiderIPPool) {
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

// SetNodeReady writes node's Ready condition, as its kubelet (True) or the node controller (Unknown) does.
func (c *Cluster) SetNodeReady(name string, status corev1.ConditionStatus) error {
	ctx := context.Background()
	node := &corev1.Node{}
	if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return err
	}
	now := metav1.Now()
	cond := corev1.NodeCondition{Type: corev1.NodeReady, Status: status, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "underlinkTestBed"}
	node.Status.Conditions = []corev1.NodeCondition{cond}
	return c.Env.Client.Status().Update(ctx, node)
}
