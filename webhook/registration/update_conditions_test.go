package registration

import (
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authentication/user"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

func attrs(obj, old runtime.Object, gvk schema.GroupVersionKind, resource string, op admission.Operation, username string) *admission.VersionedAttributes {
	gvr := schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: resource}
	a := admission.NewAttributesRecord(obj, old, gvk, "default", "x", gvr, "", op, nil, false, &user.DefaultInfo{Name: username})
	va := &admission.VersionedAttributes{Attributes: a, VersionedKind: gvk}
	if obj != nil {
		va.VersionedObject = admission.NewLazyObject(obj)
	}
	if old != nil {
		va.VersionedOldObject = admission.NewLazyObject(old)
	}
	return va
}

func deployment(replicas int32, network string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "x"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"v1.multus-cni.io/default-network": network}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
		}},
	}
}

// TestUpdateConditionsKeepControllersOffTheWebhook evaluates the workload and pool webhooks' match
// conditions with the apiserver's matcher: an update that changes nothing a rule reads, by a
// control-plane controller or of an object being deleted, never reaches the webhook; a person's update
// and every change of what the rules read do.
func TestUpdateConditionsKeepControllersOffTheWebhook(t *testing.T) {
	hooks := map[string]admissionregistrationv1.ValidatingWebhook{}
	for _, w := range Validating(Options{URL: "https://127.0.0.1:9443"}).Webhooks {
		hooks[w.Name] = w
	}
	const (
		rsController = "system:serviceaccount:kube-system:replicaset-controller"
		gc           = "system:serviceaccount:kube-system:generic-garbage-collector"
		person       = "alice"
	)
	deployGVK := appsv1.SchemeGroupVersion.WithKind("Deployment")
	poolGVK := spv2.GroupVersion.WithKind("SpiderIPPool")
	deleting := deployment(0, "kube-system/gone")
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	pool := func(allocated int64, labels map[string]string, ips ...string) *spv2.SpiderIPPool {
		p := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: labels}, Spec: spv2.IPPoolSpec{Subnet: "172.110.1.0/24", IPs: ips}}
		p.Status.AllocatedIPCount = &allocated
		return p
	}
	cases := []struct {
		name  string
		hook  string
		attrs *admission.VersionedAttributes
		want  bool
	}{
		{"controller scales a deployment", WebhookWorkloadsOptedIn,
			attrs(deployment(0, "kube-system/gone"), deployment(2, "kube-system/gone"), deployGVK, "deployments", admission.Update, rsController), false},
		{"garbage collector, object being deleted", WebhookWorkloadsElsewhere,
			attrs(deleting, deployment(0, "kube-system/gone"), deployGVK, "deployments", admission.Update, gc), false},
		{"a person finishing a deletion", WebhookWorkloadsElsewhere,
			attrs(deleting, deployment(0, "kube-system/gone"), deployGVK, "deployments", admission.Update, person), false},
		{"a person scales: warnings", WebhookWorkloadsOptedIn,
			attrs(deployment(0, "kube-system/gone"), deployment(2, "kube-system/gone"), deployGVK, "deployments", admission.Update, person), true},
		{"controller changes the network", WebhookWorkloadsOptedIn,
			attrs(deployment(2, "kube-system/other"), deployment(2, "kube-system/gone"), deployGVK, "deployments", admission.Update, rsController), true},
		{"create", WebhookWorkloadsOptedIn,
			attrs(deployment(2, "kube-system/gone"), nil, deployGVK, "deployments", admission.Create, rsController), true},
		{"pool labelled by a person", WebhookSpiderIPPools,
			attrs(pool(1, map[string]string{"a": "b"}, "172.110.1.1"), pool(1, nil, "172.110.1.1"), poolGVK, "spiderippools", admission.Update, person), true},
		{"pool labelled by a controller", WebhookSpiderIPPools,
			attrs(pool(1, map[string]string{"a": "b"}, "172.110.1.1"), pool(1, nil, "172.110.1.1"), poolGVK, "spiderippools", admission.Update, gc), false},
		{"pool's addresses changed by a controller", WebhookSpiderIPPools,
			attrs(pool(1, nil, "172.110.1.2"), pool(1, nil, "172.110.1.1"), poolGVK, "spiderippools", admission.Update, gc), true},
		{"delete of a pool in use", WebhookSpiderIPPools,
			attrs(nil, pool(1, nil, "172.110.1.1"), poolGVK, "spiderippools", admission.Delete, person), true},
		{"delete of an empty pool", WebhookSpiderIPPools,
			attrs(nil, pool(0, nil, "172.110.1.1"), poolGVK, "spiderippools", admission.Delete, person), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var conds []admissionregistrationv1.MatchCondition
			for _, mc := range hooks[c.hook].MatchConditions {
				if mc.Name != FastPathConditionName && mc.Name != "carries-network-annotations" {
					conds = append(conds, mc)
				}
			}
			r := apiserverMatcher(t, conds).Match(context.Background(), c.attrs, nil, nil)
			if r.Error != nil {
				t.Fatal(r.Error)
			}
			if r.Matches != c.want {
				t.Errorf("matches = %v, want %v (failed condition %q)", r.Matches, c.want, r.FailedConditionName)
			}
		})
	}
}
