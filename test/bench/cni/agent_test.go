//go:build integration

package cni

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	agentclient "github.com/underlink/underlink/cni/agent/client"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// podNamespace holds the benchmark's pods.
const podNamespace = "bench"

// detectNetwork (kube-system) and detectPool are the detection rows' network and pool.
const (
	detectNetwork = "macvlan-detect"
	detectPool    = "bench-detect"
)

// ipamNode is the control plane and the node's underlink-agent behind the full chain.
type ipamNode struct {
	env *controlplane.Env
	// socket is the agent's IPAM socket, named by the chain's ipam.socket.
	socket string
	agent  *netbed.Process
}

// answeredFromPreallocation returns how long the agent took (its own "took", from reading the request
// to the answer) for each ADD of pods named prefix<number> that it answered from a pre-allocation, from
// its log (klog text: "allocated" pod="bench/<name>" ... preallocated=true took="1.2ms").
func (n *ipamNode) answeredFromPreallocation(prefix string) []time.Duration {
	var took []time.Duration
	for line := range strings.Lines(n.agent.Logs()) {
		if !strings.Contains(line, `"allocated"`) || !strings.Contains(line, "preallocated=true") {
			continue
		}
		_, rest, ok := strings.Cut(line, `pod="`+podNamespace+"/"+prefix)
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, `"`)
		if num == "" || strings.Trim(num, "0123456789") != "" {
			continue
		}
		_, t, _ := strings.Cut(rest, `took="`)
		t, _, _ = strings.Cut(t, `"`)
		d, err := time.ParseDuration(t)
		if err != nil {
			d = -1 // counted, with no time
		}
		took = append(took, d)
	}
	return took
}

// startIPAM fills env with the seed's cluster-a SpiderIPPool (172.110.1.0/24, gateway 172.110.0.1, 200
// addresses), its SpiderMultusConfig kube-system/macvlan-conf and the Node object of node, starts underlink-agent inside node's namespace, reaching the
// apiserver only through the bed's loopback relay, and waits until the agent serves. env must be
// started before bed, so that the bed (the agent, the relay) is torn down before the apiserver stops.
func startIPAM(b *testing.B, env *controlplane.Env, bed *netbed.Bed, node *netbed.Node) *ipamNode {
	b.Helper()
	ctx := context.Background()
	var pool spv2.SpiderIPPool
	var smc spv2.SpiderMultusConfig
	for name, obj := range map[string]any{"cluster-a-ippool.yaml": &pool, "cluster-a-multusconfig.yaml": &smc} {
		test.DecodeSeed(b, name, obj)
	}
	// The detection rows' network and pool: the seed's, with detection on and room for their pods.
	gw, yes := "172.110.0.1", true
	detect := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: detectPool}, Spec: spv2.IPPoolSpec{
		Subnet: "172.110.16.0/20", Gateway: &gw, IPs: []string{"172.110.16.1-172.110.31.254"}}}
	detectSMC := smc.DeepCopy()
	detectSMC.Name = detectNetwork
	detectSMC.Spec.MacvlanConfig.SpiderpoolConfigPools.IPv4IPPool = []string{detectPool}
	detectSMC.Spec.CoordinatorConfig.DetectIPConflict, detectSMC.Spec.CoordinatorConfig.DetectGateway = &yes, &yes
	for _, obj := range []client.Object{&pool, &smc, detect, detectSMC, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node.Spec.Name}}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: podNamespace}}} {
		if err := env.Client.Create(ctx, obj); err != nil {
			b.Fatalf("create %s: %v", obj.GetName(), err)
		}
	}
	if _, err := bed.Relay(node.NS, "", env.Config.Host); err != nil {
		b.Fatal(err)
	}
	if err := netbed.BuildCommands(bed.Dir(), "underlink-agent"); err != nil {
		b.Fatal(err)
	}
	n := &ipamNode{env: env, socket: filepath.Join(bed.Dir(), node.Spec.Name, "agent.sock")}
	// The benchmark's ADD and DEL rate on one node is far above a real node's: the client's rate limit
	// (50/s by default) would otherwise shape what is measured.
	agent, err := bed.Start(node.NS, "agent", exec.Command(filepath.Join(bed.Dir(), "underlink-agent"),
		"--kubeconfig", env.Kubeconfig(b), "--node-name", node.Spec.Name, "--socket", n.socket,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--lease-namespace", "kube-system",
		"--kube-api-qps", "1000", "--kube-api-burst", "2000"))
	if err != nil {
		b.Fatal(err)
	}
	n.agent = agent
	health := agentclient.New(n.socket, 2*time.Second)
	poll.UntilEvery(b, 60*time.Second, 50*time.Millisecond, "underlink-agent on "+node.Spec.Name+" serving", func() (bool, string) {
		if err := health.Health(ctx); err != nil {
			return false, fmt.Sprintf("%v\n%s", err, agent.Logs())
		}
		return true, ""
	})
	return n
}

// pods creates count pods bound to node (no kubelet runs them: the benchmark plays the runtime), before
// anything is timed, so the agent's pod cache holds them as it would for scheduled pods. They carry no
// network annotation, so the agent does not pre-allocate for them: their ADD allocates.
func (n *ipamNode) pods(b *testing.B, prefix, node string, count int) []*corev1.Pod {
	b.Helper()
	out := make([]*corev1.Pod, count)
	for i := range out {
		out[i] = n.pod(b, fmt.Sprintf("%s-%d", prefix, i), node, nil)
	}
	return out
}

// pod creates one pod bound to node with annotations.
func (n *ipamNode) pod(b *testing.B, name, node string, annotations map[string]string) *corev1.Pod {
	b.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: podNamespace, Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if err := n.env.Client.Create(context.Background(), p); err != nil {
		b.Fatal(err)
	}
	return p
}

// scheduledPod is a pod as admission leaves it in an opted-in namespace: its default network is the
// seed's kube-system/macvlan-conf, so the agent pre-allocates its address when it sees it bound.
func (n *ipamNode) scheduledPod(b *testing.B, name, node string) *corev1.Pod {
	return n.pod(b, name, node, map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"})
}
