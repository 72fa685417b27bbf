//go:build integration

package chart

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/underlink/underlink/api/scheme"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/poll"
)

// chartAgentNodeKey is the extra the apiserver adds to a token bound to a pod on a node
// (ServiceAccountTokenPodNodeInfo); the chart's agent policy keys on it.
const chartAgentNodeKey = "authentication.kubernetes.io/node-name"

// TestChartAgentPolicyHoldsAgainstTheAgentsOwnToken installs the chart's agent RBAC and its
// ValidatingAdmissionPolicy in a real apiserver, and writes as the agent does: with a token of the agent's
// ServiceAccount bound to an agent pod on node-a, as the kubelet mounts it. RBAC lets the agent patch every
// node and pool; the policy must narrow that to the underlay labels of node-a and to pool status, so a
// token stolen from one node can neither steer the scheduler on another nor rewrite a pool.
func TestChartAgentPolicyHoldsAgainstTheAgentsOwnToken(t *testing.T) {
	env := controlplane.StartEnv(t, controlplane.EnvOptions{})
	kc := env.Kubeconfig(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(env.Config)
	chartMustTool(t, "kubectl", "--kubeconfig", kc, "create", "namespace", chartNamespace)
	rendered := chartObjects(t, renderChart(t, chartCertModes["self-signed"]...))
	chartApplyRBAC(t, kc, rendered)
	chartApplyObjects(t, kc, []*unstructured.Unstructured{
		chartFind(t, rendered, "ValidatingAdmissionPolicy", "underlink-agent-writes"),
		chartFind(t, rendered, "ValidatingAdmissionPolicyBinding", "underlink-agent-writes"),
	})

	underlayLabel := underlay.LabelKey(underlay.LabelPrefix, "ens224")
	for _, name := range []string{"node-a", "node-b"} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"team": "red", underlayLabel: "down"}}}
		if _, err := admin.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pool := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "agent-pool"},
		Spec: spv2.IPPoolSpec{Subnet: "172.110.1.0/24", IPs: []string{"172.110.1.10-172.110.1.20"}, Gateway: ptr.To("172.110.1.254")}}
	if err := env.Client.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}

	agentCfg := chartAgentTokenOnNode(t, admin, env.Config, "node-a")
	agent := kubernetes.NewForConfigOrDie(agentCfg)
	agentPools, err := client.New(agentCfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	labelPatch := func(key, value string) []byte { return fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, key, value) }
	patchNode := func(node string, patch []byte) error {
		_, err := agent.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	}
	chartWaitAgentPolicy(t, admin, env.Config, "node-b")

	t.Run("its own node's underlay label", func(t *testing.T) {
		if err := patchNode("node-a", labelPatch(underlayLabel, "up")); err != nil {
			t.Fatalf("the agent on node-a may not set %s on node-a: %v", underlayLabel, err)
		}
		n, err := admin.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Labels[underlayLabel] != "up" {
			t.Errorf("node-a labels %v, want %s=up", n.Labels, underlayLabel)
		}
		if err := patchNode("node-a", fmt.Appendf(nil, `{"metadata":{"labels":{%q:null}}}`, underlayLabel)); err != nil {
			t.Errorf("the agent on node-a may not remove %s from node-a: %v", underlayLabel, err)
		}
		// The NIC's addresses, for matchMasterSubnet: an annotation under the same prefix.
		addrs := underlay.AddressesKey(underlay.LabelPrefix, "ens224")
		if err := patchNode("node-a", fmt.Appendf(nil, `{"metadata":{"annotations":{%q:"172.110.1.10/24"}}}`, addrs)); err != nil {
			t.Errorf("the agent on node-a may not set %s on node-a: %v", addrs, err)
		}
	})
	for _, tc := range []struct {
		name, node string
		patch      []byte
		message    string
	}{
		{"another node's underlay label", "node-b", labelPatch(underlayLabel, "up"), "may label only its own node, not node-b"},
		{"another label of its own node", "node-a", labelPatch("team", "blue"), "may change only the " + underlay.LabelPrefix + "* labels"},
		{"a new label outside the prefix", "node-a", labelPatch("node-role.kubernetes.io/control-plane", ""), "may change only the " + underlay.LabelPrefix + "* labels"},
		{"removing a label outside the prefix", "node-a", []byte(`{"metadata":{"labels":{"team":null}}}`), "may change only the " + underlay.LabelPrefix + "* labels"},
		{"its own node's spec", "node-a", []byte(`{"spec":{"unschedulable":true}}`), "not its spec, other annotations"},
		{"an annotation outside the prefix", "node-a", []byte(`{"metadata":{"annotations":{"node.alpha.kubernetes.io/ttl":"0"}}}`), "not its spec, other annotations"},
		// An owner that does not exist has the garbage collector delete the node.
		{"an owner of its own node", "node-a", chartGoneOwner, "owner references or finalizers"},
	} {
		t.Run(tc.name+" is denied", func(t *testing.T) {
			err := patchNode(tc.node, tc.patch)
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("got %v, want Forbidden by the agent policy with %q", err, tc.message)
			}
			n, err := admin.CoreV1().Nodes().Get(ctx, tc.node, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if n.Labels["team"] != "red" || n.Spec.Unschedulable {
				t.Errorf("%s changed anyway: labels %v, unschedulable %v", tc.node, n.Labels, n.Spec.Unschedulable)
			}
		})
	}

	t.Run("a pool's spec is denied", func(t *testing.T) {
		var p spv2.SpiderIPPool
		if err := agentPools.Get(ctx, client.ObjectKeyFromObject(pool), &p); err != nil {
			t.Fatal(err)
		}
		before := p.DeepCopy()
		p.Spec.IPs = []string{"172.110.1.10-172.110.1.250"}
		err := agentPools.Patch(ctx, &p, client.MergeFrom(before))
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "writes a SpiderIPPool's status only") {
			t.Errorf("widening the pool's spec.ips: got %v, want Forbidden by the agent policy", err)
		}
		err = agentPools.Patch(ctx, &p, client.RawPatch(types.MergePatchType, chartGoneOwner))
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "writes a SpiderIPPool's status only") {
			t.Errorf("an owner that does not exist, for the garbage collector to delete the pool: got %v, want Forbidden by the agent policy", err)
		}
		if err := agentPools.Update(ctx, &p); !apierrors.IsForbidden(err) {
			t.Errorf("replacing the pool: got %v, want Forbidden (RBAC grants no update of the pool itself)", err)
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pool), &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Spec.IPs) != 1 || p.Spec.IPs[0] != "172.110.1.10-172.110.1.20" {
			t.Errorf("pool spec.ips %v changed anyway", p.Spec.IPs)
		}
	})
	t.Run("a pool's annotations: removing the operator's clear-conflicts request only", func(t *testing.T) {
		var p spv2.SpiderIPPool
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pool), &p); err != nil {
			t.Fatal(err)
		}
		p.Annotations = map[string]string{spv2.AnnoClearIPConflicts: "true"}
		if err := env.Client.Update(ctx, &p); err != nil {
			t.Fatal(err)
		}
		patchPool := func(patch string) error {
			return agentPools.Patch(ctx, &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: pool.Name}}, client.RawPatch(types.MergePatchType, []byte(patch)))
		}
		err := patchPool(`{"metadata":{"annotations":{"example.com/steer":"yes"}}}`)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "may only remove an annotation") {
			t.Errorf("adding an annotation: got %v, want Forbidden by the agent policy", err)
		}
		if err := patchPool(fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, spv2.AnnoClearIPConflicts)); err != nil {
			t.Errorf("removing %s, as the garbage collector does: %v", spv2.AnnoClearIPConflicts, err)
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pool), &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Annotations) != 0 {
			t.Errorf("pool annotations %v, want none", p.Annotations)
		}
	})
	t.Run("a pool's status is allowed", func(t *testing.T) {
		var p spv2.SpiderIPPool
		if err := agentPools.Get(ctx, client.ObjectKeyFromObject(pool), &p); err != nil {
			t.Fatal(err)
		}
		allocated := `{"172.110.1.10":{"interface":"eth0","pod":"default/p","podUid":"u1"}}`
		p.Status.AllocatedIPs, p.Status.AllocatedIPCount = &allocated, ptr.To[int64](1)
		if err := agentPools.Status().Update(ctx, &p); err != nil {
			t.Fatalf("the agent may not write the pool's status: %v", err)
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pool), &p); err != nil {
			t.Fatal(err)
		}
		if p.Status.AllocatedIPs == nil || *p.Status.AllocatedIPs != allocated {
			t.Errorf("pool status.allocatedIPs %v, want %s", p.Status.AllocatedIPs, allocated)
		}
	})

	t.Run("a token bound to no pod cannot label even a node", func(t *testing.T) {
		unbound := kubernetes.NewForConfigOrDie(chartTokenConfig(env.Config, chartToken(t, admin, "underlink-agent", nil)))
		_, err := unbound.CoreV1().Nodes().Patch(ctx, "node-a", types.MergePatchType, labelPatch(underlayLabel, "up"), metav1.PatchOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "carries no node") {
			t.Errorf("got %v, want Forbidden because the token names no node", err)
		}
	})
}

// chartGoneOwner is a merge patch that gives an object an owner that does not exist.
var chartGoneOwner = []byte(`{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"gone","uid":"6b1d3c52-0000-4000-8000-000000000001"}]}}`)

// chartWaitAgentPolicy waits until the chart's agent policy is in force: the apiserver compiles a policy
// some time after it is created. It probes with a dry run, which runs admission but writes nothing, of an
// agent token bound to no pod labelling node.
func chartWaitAgentPolicy(t *testing.T, admin kubernetes.Interface, base *rest.Config, node string) {
	t.Helper()
	unbound := kubernetes.NewForConfigOrDie(chartTokenConfig(base, chartToken(t, admin, "underlink-agent", nil)))
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:"up"}}}`, underlay.LabelKey(underlay.LabelPrefix, "probe"))
	poll.UntilEvery(t, 30*time.Second, 250*time.Millisecond, "the agent policy to take effect", func() (bool, string) {
		_, err := unbound.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, patch,
			metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "underlink-agent-writes"), fmt.Sprintf("dry-run label of %s: %v", node, err)
	})
}

// chartAgentTokenOnNode returns a client configuration that authenticates as the agent's ServiceAccount
// with the token the kubelet would mount into an agent pod on node: bound to a pod of that node. It checks
// that the apiserver really reports the node in the token's user, since the policy stands on it.
func chartAgentTokenOnNode(t *testing.T, admin kubernetes.Interface, base *rest.Config, node string) *rest.Config {
	t.Helper()
	cfg := chartTokenConfig(base, chartToken(t, admin, "underlink-agent", chartAgentPodOn(t, admin, node)))
	who, err := kubernetes.NewForConfigOrDie(cfg).AuthenticationV1().SelfSubjectReviews().Create(context.Background(),
		&authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u := who.Status.UserInfo
	if want := "system:serviceaccount:" + chartNamespace + ":underlink-agent"; u.Username != want {
		t.Fatalf("the bound token authenticates as %q, want %q", u.Username, want)
	}
	if got := u.Extra[chartAgentNodeKey]; len(got) != 1 || got[0] != node {
		t.Fatalf("the bound token's user has %s=%v, want [%s] (extra %v)", chartAgentNodeKey, got, node, u.Extra)
	}
	return cfg
}

// chartAgentPodOn creates an agent pod already bound to node, as the DaemonSet controller would (no
// kubelet runs it; only its binding to the node matters to the token).
func chartAgentPodOn(t *testing.T, cs kubernetes.Interface, node string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: chartNamespace, Name: "underlink-agent-" + node},
		Spec: corev1.PodSpec{ServiceAccountName: "underlink-agent", NodeName: node,
			Containers: []corev1.Container{{Name: "agent", Image: "underlink-agent"}}},
	}
	pod, err := cs.CoreV1().Pods(chartNamespace).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// chartTokenConfig is base's server and CA with a bearer token and nothing else of the admin's identity.
func chartTokenConfig(base *rest.Config, token string) *rest.Config {
	return &rest.Config{Host: base.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: base.CAData}}
}
