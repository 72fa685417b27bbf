package rules

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

func deploymentOn(network string, replicas int32, labels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app", Labels: labels},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"v1.multus-cni.io/default-network": network}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
		}},
	}
}

// TestUpdatesRatchet pins when an update is denied: only for a violation the stored object did not have,
// or for a change of what the rule reads; otherwise the denial is a warning that still names the problem.
func TestUpdatesRatchet(t *testing.T) {
	noNetwork := seedWorld([]spiderv2beta1.SpiderIPPool{fixedPool()})
	withC := NewWorld(Input{Clusters: []submarinerv1.Cluster{clusterA, clusterB, cluster("cluster-c", "172.110.1.0/24", "10.253.0.0/18")},
		LocalCluster: "cluster-a", Pools: []spiderv2beta1.SpiderIPPool{fixedPool()}, MultusConfigs: []spiderv2beta1.SpiderMultusConfig{seedConfig()}})
	labelled := fixedPool()
	labelled.Labels = map[string]string{"site": "dc1"}
	shrunk := fixedPool()
	shrunk.Spec.IPs = []string{"172.110.1.1-172.110.1.100"}
	fixed := fixedPool()
	cases := []struct {
		name     string
		w        *World
		obj, old any
		verdict  Verdict
		contains string
	}{
		{"scaled on a deleted network", noNetwork, deploymentOn("kube-system/gone", 0, nil), deploymentOn("kube-system/gone", 2, nil), VerdictWarn, RatchetNote},
		{"labelled on a deleted network", noNetwork, deploymentOn("kube-system/gone", 2, map[string]string{"a": "b"}), deploymentOn("kube-system/gone", 2, nil), VerdictWarn, "does not exist"},
		{"created on a deleted network", noNetwork, deploymentOn("kube-system/gone", 2, nil), nil, VerdictDeny, "does not exist"},
		{"network changed to another missing one", noNetwork, deploymentOn("kube-system/other", 2, nil), deploymentOn("kube-system/gone", 2, nil), VerdictDeny, "kube-system/other"},
		{"pool labelled after cluster-c joined", withC, &labelled, &fixed, VerdictWarn, "cluster-c"},
		{"pool's addresses changed after cluster-c joined", withC, &shrunk, &fixed, VerdictDeny, "cluster-c"},
		{"deployment scaled on a misaligned network", withC, deploymentOn("kube-system/macvlan-conf", 3, nil), deploymentOn("kube-system/macvlan-conf", 2, nil), VerdictWarn, "is misaligned with the Submariner clusters"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var vs []Violation
			switch obj := c.obj.(type) {
			case *appsv1.Deployment:
				var old *appsv1.Deployment
				if c.old != nil {
					old = c.old.(*appsv1.Deployment)
				}
				if old == nil {
					vs, _ = Check(c.w, obj, nil)
				} else {
					vs, _ = Check(c.w, obj, old)
				}
			case *spiderv2beta1.SpiderIPPool:
				vs, _ = Check(c.w, obj, c.old.(*spiderv2beta1.SpiderIPPool))
			}
			var lines []string
			for _, v := range vs {
				lines = append(lines, v.String())
			}
			text := strings.Join(lines, "\n")
			if got := VerdictOf(vs); got != c.verdict {
				t.Errorf("verdict %s, want %s:\n%s", got, c.verdict, text)
			}
			if !strings.Contains(text, c.contains) {
				t.Errorf("no line contains %q:\n%s", c.contains, text)
			}
		})
	}
}

func TestPoolDeleteNamesTheHolders(t *testing.T) {
	p := fixedPool()
	if vs := CheckPoolDelete(&p, nil); len(vs) != 0 {
		t.Fatalf("an empty pool: %v", vs)
	}
	allocs := spiderv2beta1.PoolIPAllocations{
		"172.110.1.1": {NIC: "eth0", NamespacedName: "default/a", PodUID: "u1"},
		"172.110.1.2": {NIC: "net1", NamespacedName: "default/a", PodUID: "u1"},
		"172.110.1.3": {NIC: "eth0", NamespacedName: "team/b", PodUID: "u2"},
		"172.110.1.9": {NIC: "eth0", NamespacedName: "team/gone", IPConflict: spiderv2beta1.IPConflict{MAC: "02:00:00:00:00:01"}},
	}
	s, _ := allocs.Encode()
	p.Status.AllocatedIPs = s
	vs := CheckPoolDelete(&p, nil)
	if len(vs) != 1 || vs[0].Severity != Deny || vs[0].Rule != RulePoolInUse {
		t.Fatalf("got %v", vs)
	}
	want := "SpiderIPPool cluster-a still gives addresses to 2 pod(s): default/a (172.110.1.1 eth0, 172.110.1.2 net1); team/b (172.110.1.3 eth0)"
	if !strings.Contains(vs[0].Detail(), want) {
		t.Errorf("got %q, want it to contain %q", vs[0].Detail(), want)
	}

	// team/b is gone (or is another pod now): only default/a holds the pool.
	live := func(name, uid string) bool { return name == "default/a" && uid == "u1" }
	vs = CheckPoolDelete(&p, live)
	if len(vs) != 1 || vs[0].Severity != Deny || !strings.Contains(vs[0].Detail(), "gives addresses to 1 pod(s): default/a (") {
		t.Fatalf("with team/b gone: %v", vs)
	}
	// Every holder gone: the deletion is admitted with a warning; the finalizer waits for garbage collection.
	vs = CheckPoolDelete(&p, func(string, string) bool { return false })
	if len(vs) != 1 || vs[0].Severity != Warn || !strings.Contains(vs[0].Detail(), "records addresses of 2 pod(s) that no longer exist") ||
		!strings.Contains(vs[0].Detail(), "garbage collection releases them") {
		t.Fatalf("with every holder gone: %v", vs)
	}
}
