package prealloc

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

func ptr[T any](v T) *T { return &v }

func boundPod(mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "u1",
			Annotations: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"}},
		Spec:   corev1.PodSpec{NodeName: "a-node1"},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func TestEligibleOnlyPodsNotYetAttached(t *testing.T) {
	now := metav1.Now()
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.Pod)
		want   bool
	}{
		{"bound and pending", nil, true},
		{"no phase yet", func(p *corev1.Pod) { p.Status.Phase = "" }, true},
		{"another node's", func(p *corev1.Pod) { p.Spec.NodeName = "a-node2" }, false},
		{"not bound", func(p *corev1.Pod) { p.Spec.NodeName = "" }, false},
		{"host network", func(p *corev1.Pod) { p.Spec.HostNetwork = true }, false},
		{"being deleted", func(p *corev1.Pod) { p.DeletionTimestamp = &now }, false},
		{"running", func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }, false},
		{"has its IP", func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "172.110.1.11"}} }, false},
		{"sandbox ready", func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue}}
		}, false},
		{"sandbox not ready", func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionFalse}}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Eligible(boundPod(tc.mutate), "a-node1"); got != tc.want {
				t.Errorf("Eligible = %v, want %v", got, tc.want)
			}
		})
	}
}

func seedConfig(mutate func(*spv2.SpiderMultusConfig)) *spv2.SpiderMultusConfig {
	c := &spv2.SpiderMultusConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "macvlan-conf"},
		Spec: spv2.MultusCNIConfigSpec{CniType: ptr("macvlan"), MacvlanConfig: &spv2.SpiderMacvlanCniConfig{
			Master: []string{"ens224"}, SpiderpoolConfigPools: &spv2.SpiderpoolPools{IPv4IPPool: []string{"cluster-a"}},
		}},
	}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func TestConfIsTheDefaultNetworksPools(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pod    *corev1.Pod
		config *spv2.SpiderMultusConfig
		ok     bool
		ipv4   []string
	}{
		{"the seed's config", boundPod(nil), seedConfig(nil), true, []string{"cluster-a"}},
		{"config without pools: the default pools", boundPod(nil), seedConfig(func(c *spv2.SpiderMultusConfig) { c.Spec.MacvlanConfig.SpiderpoolConfigPools = nil }), true, nil},
		// Multus reads a default network without a namespace in its own namespace, whatever the pod's.
		{"bare name, pod elsewhere: Multus' namespace", boundPod(func(p *corev1.Pod) {
			p.Annotations[nadv1.DefaultNetworkAnnotation] = "macvlan-conf"
			p.Namespace = "team-a"
		}), seedConfig(nil), true, []string{"cluster-a"}},
		{"no annotation: the cluster's primary CNI", boundPod(func(p *corev1.Pod) { p.Annotations = nil }), seedConfig(nil), false, nil},
		{"a network that does not exist", boundPod(func(p *corev1.Pod) { p.Annotations[nadv1.DefaultNetworkAnnotation] = "kube-system/macvlan-confg" }), seedConfig(nil), false, nil},
		{"unreadable annotation", boundPod(func(p *corev1.Pod) { p.Annotations[nadv1.DefaultNetworkAnnotation] = "a/b/c" }), seedConfig(nil), false, nil},
		{"IPAM disabled", boundPod(nil), seedConfig(func(c *spv2.SpiderMultusConfig) { c.Spec.DisableIPAM = ptr(true) }), false, nil},
		{"macvlan without master", boundPod(nil), seedConfig(func(c *spv2.SpiderMultusConfig) { c.Spec.MacvlanConfig.Master = nil }), false, nil},
		{"not an underlay type", boundPod(nil), seedConfig(func(c *spv2.SpiderMultusConfig) { c.Spec.CniType = ptr("ipvlan") }), false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(ns, name string) (*spv2.SpiderMultusConfig, bool) {
				if ns == tc.config.Namespace && name == tc.config.Name {
					return tc.config, true
				}
				return nil, false
			}
			atts := Conf(tc.pod, lookup)
			if (len(atts) == 1) != tc.ok || (tc.ok && (atts[0].Interface != "eth0" || !slices.Equal(atts[0].Pools.IPv4, tc.ipv4))) {
				t.Errorf("Conf = %+v, want eth0 with ipv4 %v: %v", atts, tc.ipv4, tc.ok)
			}
		})
	}
}

// Every interface the pod's annotations name on an underlink network is pre-allocated, each with its
// own network's pools: the default network on eth0 and the extra ones on net1, storage0; an extra
// network of another kind or unknown is left to its ADD.
func TestConfCoversEveryInterface(t *testing.T) {
	storage := seedConfig(func(c *spv2.SpiderMultusConfig) {
		c.Name = "macvlan-ens256"
		c.Spec.MacvlanConfig.Master = []string{"ens256"}
		c.Spec.MacvlanConfig.SpiderpoolConfigPools.IPv4IPPool = []string{"storage"}
	})
	other := seedConfig(func(c *spv2.SpiderMultusConfig) { c.Name = "sriov-net"; c.Spec.CniType = ptr("sriov") })
	configs := map[string]*spv2.SpiderMultusConfig{"kube-system/macvlan-conf": seedConfig(nil), "kube-system/macvlan-ens256": storage, "kube-system/sriov-net": other}
	lookup := func(ns, name string) (*spv2.SpiderMultusConfig, bool) { c, ok := configs[ns+"/"+name]; return c, ok }
	pod := boundPod(func(p *corev1.Pod) {
		p.Annotations[nadv1.NetworksAnnotation] = "kube-system/macvlan-ens256, kube-system/sriov-net, kube-system/nope, kube-system/macvlan-ens256@storage0"
	})
	atts := Conf(pod, lookup)
	var got []string
	for _, a := range atts {
		got = append(got, a.Interface+"="+strings.Join(a.Pools.IPv4, ","))
	}
	if want := "eth0=cluster-a net1=storage storage0=storage"; strings.Join(got, " ") != want {
		t.Errorf("Conf = %v, want %s", got, want)
	}
	// Only extra networks (the cluster's primary CNI on eth0): those are still pre-allocated.
	pod.Annotations = map[string]string{nadv1.NetworksAnnotation: "kube-system/macvlan-ens256"}
	if atts := Conf(pod, lookup); len(atts) != 1 || atts[0].Interface != "net1" {
		t.Errorf("Conf without a default network = %+v, want net1 only", atts)
	}
}
