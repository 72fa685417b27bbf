package rules

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// The rules run on every admission request; these report their cost per call.
func BenchmarkCheckPodSeedTypo(b *testing.B) {
	w := podWorld()
	meta := metav1.ObjectMeta{Name: "p", Namespace: "default", Annotations: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-confg"}}
	spec := corev1.PodSpec{}
	for b.Loop() {
		CheckPod(w, "default", &meta, &spec, nil)
	}
}

func BenchmarkCheckPodAllowed(b *testing.B) {
	w := podWorld()
	meta := metav1.ObjectMeta{Name: "p", Namespace: "default", Annotations: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"}}
	spec := corev1.PodSpec{}
	for b.Loop() {
		CheckPod(w, "default", &meta, &spec, nil)
	}
}

func BenchmarkCheckPoolSeed(b *testing.B) {
	w := seedWorld([]spiderv2beta1.SpiderIPPool{fixedPool()}, seedConfig())
	p := seedPool()
	for b.Loop() {
		CheckPool(w, &p, nil)
	}
}

func BenchmarkCheckMultusConfigSeed(b *testing.B) {
	w := seedWorld([]spiderv2beta1.SpiderIPPool{fixedPool()})
	c := seedConfig()
	for b.Loop() {
		CheckMultusConfig(w, &c)
	}
}
