package admit

import (
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/underlink/underlink/api/scheme"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/webhook/registration"
)

func ptr[T any](v T) *T { return &v }

func namespace(name string, labels, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
}

func optedIn() map[string]string {
	return map[string]string{registration.InjectLabel: registration.InjectEnabled}
}

func submarinerCluster(id, pods, services string) *submarinerv1.Cluster {
	return &submarinerv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: "submariner-operator", Name: id},
		Spec: submarinerv1.ClusterSpec{ClusterID: id, ClusterCIDR: []string{pods}, ServiceCIDR: []string{services}}}
}

// seedClusters are cluster-a and cluster-b of the seed, as Submariner's broker syncs them.
func seedClusters() []client.Object {
	return []client.Object{
		submarinerCluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18"),
		submarinerCluster("cluster-b", "172.111.0.0/16", "10.243.0.0/18"),
	}
}

func seedPool(t testing.TB) *spv2.SpiderIPPool {
	p := &spv2.SpiderIPPool{}
	test.DecodeSeed(t, "cluster-a-ippool.yaml", p)
	return p
}

// fixedPool is the seed's pool with its gateway moved inside the subnet.
func fixedPool(t testing.TB) *spv2.SpiderIPPool {
	p := seedPool(t)
	p.Spec.Gateway = ptr("172.110.1.254")
	return p
}

func seedConfig(t testing.TB) *spv2.SpiderMultusConfig {
	c := &spv2.SpiderMultusConfig{}
	test.DecodeSeed(t, "cluster-a-multusconfig.yaml", c)
	return c
}

func reader(t testing.TB, objs ...client.Object) client.Reader {
	t.Helper()
	return fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(objs...).Build()
}

// request is an admission request as the apiserver sends it for obj.
func request(t testing.TB, op admissionv1.Operation, gvk metav1.GroupVersionKind, namespace, name string, obj, old any) admission.Request {
	t.Helper()
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: types.UID("uid-1"), Kind: gvk, Operation: op, Namespace: namespace, Name: name,
		Resource: metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version},
	}}
	if obj != nil {
		req.Object = runtime.RawExtension{Raw: mustJSON(t, obj)}
	}
	if old != nil {
		req.OldObject = runtime.RawExtension{Raw: mustJSON(t, old)}
	}
	return req
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	if b, ok := v.([]byte); ok {
		return b
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	podGVK        = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	poolGVK       = metav1.GroupVersionKind{Group: "spiderpool.spidernet.io", Version: "v2beta1", Kind: "SpiderIPPool"}
	configGVK     = metav1.GroupVersionKind{Group: "spiderpool.spidernet.io", Version: "v2beta1", Kind: "SpiderMultusConfig"}
	deploymentGVK = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	cronJobGVK    = metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}
)

func testScheme() *runtime.Scheme { return scheme.New() }

// admissionRequest is a create or update request for obj (a typed object, or raw JSON bytes).
type admissionRequest struct {
	op  admissionv1.Operation
	gvk metav1.GroupVersionKind
	ns  string
	obj any
}

func (r admissionRequest) build(t testing.TB) admission.Request {
	name := ""
	if m, ok := r.obj.(metav1.Object); ok {
		name = m.GetName()
	}
	var old any
	if r.op == admissionv1.Update {
		old = r.obj
	}
	return request(t, r.op, r.gvk, r.ns, name, r.obj, old)
}

type admissionRequestValue = admission.Request
