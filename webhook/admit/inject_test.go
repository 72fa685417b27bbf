package admit

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	gomodjsonpatch "gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/underlink/underlink/webhook/registration"
	"github.com/underlink/underlink/webhook/snapshot"
)

func pod(annotations map[string]string, schedulerName string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "apps", Annotations: annotations, Labels: map[string]string{"app": "test-app"}},
		Spec:       corev1.PodSpec{SchedulerName: schedulerName, Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}
}

func op(operation, path string, value any) gomodjsonpatch.JsonPatchOperation {
	return gomodjsonpatch.NewOperation(operation, path, value)
}

// The patch adds exactly what is missing, with the annotation key escaped as a JSON pointer, and
// applying it then asking again yields nothing (safe under reinvocation).
func TestPatchesAddOnlyWhatIsMissing(t *testing.T) {
	const net = "kube-system/macvlan-conf"
	cases := []struct {
		name      string
		pod       *corev1.Pod
		scheduler string
		want      []gomodjsonpatch.JsonPatchOperation
	}{
		{"no annotations: the map is added", pod(nil, "default-scheduler"), "",
			[]gomodjsonpatch.JsonPatchOperation{op("add", "/metadata/annotations", map[string]string{"v1.multus-cni.io/default-network": net})}},
		{"other annotations kept: one key is added", pod(map[string]string{"team": "a"}, "default-scheduler"), "",
			[]gomodjsonpatch.JsonPatchOperation{op("add", "/metadata/annotations/v1.multus-cni.io~1default-network", net)}},
		{"network already named: nothing", pod(map[string]string{"v1.multus-cni.io/default-network": "kube-system/other"}, "default-scheduler"), "", nil},
		{"scheduler replaced when still the default", pod(map[string]string{"team": "a"}, "default-scheduler"), "underlink-scheduler",
			[]gomodjsonpatch.JsonPatchOperation{
				op("add", "/metadata/annotations/v1.multus-cni.io~1default-network", net),
				op("replace", "/spec/schedulerName", "underlink-scheduler")}},
		{"scheduler added when unset", pod(map[string]string{"v1.multus-cni.io/default-network": net}, ""), "underlink-scheduler",
			[]gomodjsonpatch.JsonPatchOperation{op("add", "/spec/schedulerName", "underlink-scheduler")}},
		{"a chosen scheduler is kept", pod(map[string]string{"v1.multus-cni.io/default-network": net}, "gpu-scheduler"), "underlink-scheduler", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Patches(c.pod, net, c.scheduler)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("patches\n got %#v\nwant %#v", got, c.want)
			}
			patched := applyPatch(t, c.pod, got)
			applied := c.pod.DeepCopy()
			Apply(applied, net, c.scheduler)
			if !reflect.DeepEqual(applied.Annotations, patched.Annotations) || applied.Spec.SchedulerName != patched.Spec.SchedulerName {
				t.Errorf("Apply and the patch disagree: %v %q vs %v %q", applied.Annotations, applied.Spec.SchedulerName, patched.Annotations, patched.Spec.SchedulerName)
			}
			if again := Patches(patched, net, c.scheduler); len(again) != 0 {
				t.Errorf("second invocation patches again: %#v", again)
			}
			if _, ok := patched.Annotations["v1.multus-cni.io/default-network"]; !ok {
				t.Errorf("patched pod has no network annotation: %v", patched.Annotations)
			}
			for k, v := range c.pod.Annotations {
				if patched.Annotations[k] != v {
					t.Errorf("annotation %s changed from %q to %q", k, v, patched.Annotations[k])
				}
			}
			if !reflect.DeepEqual(patched.Spec.Containers, c.pod.Spec.Containers) || !reflect.DeepEqual(patched.Labels, c.pod.Labels) {
				t.Errorf("patch touched more than it adds")
			}
		})
	}
}

func applyPatch(t *testing.T, p *corev1.Pod, ops []gomodjsonpatch.JsonPatchOperation) *corev1.Pod {
	t.Helper()
	doc := mustJSON(t, p)
	if len(ops) > 0 {
		patch, err := jsonpatch.DecodePatch(mustJSON(t, ops))
		if err != nil {
			t.Fatal(err)
		}
		if doc, err = patch.Apply(doc); err != nil {
			t.Fatalf("patch does not apply: %v", err)
		}
	}
	out := &corev1.Pod{}
	if err := json.Unmarshal(doc, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInjectorHandle(t *testing.T) {
	teamConfig := seedConfig(t)
	teamConfig.Namespace, teamConfig.Name = "team-b", "underlay"
	r := reader(t, append(seedClusters(), fixedPool(t), seedConfig(t), teamConfig,
		namespace("apps", optedIn(), nil),
		namespace("team-b", optedIn(), map[string]string{registration.NamespaceDefaultNetworkAnno: "team-b/underlay"}),
		namespace("typo", optedIn(), map[string]string{registration.NamespaceDefaultNetworkAnno: "kube-system/macvlan-confg"}),
		namespace("plain", nil, nil),
	)...)
	opts := snapshot.Options{LocalCluster: "cluster-a", DefaultNetwork: "kube-system/macvlan-conf"}
	inj := &Injector{Rules: Rules{Reader: r, Snapshot: opts}, DefaultNetwork: "kube-system/macvlan-conf", SchedulerName: "underlink-scheduler"}
	podIn := func(ns string, annotations map[string]string) *corev1.Pod {
		p := pod(annotations, "default-scheduler")
		p.Namespace = ns
		return p
	}
	cases := []struct {
		name    string
		req     admissionRequest
		allowed bool
		code    int32
		patches []gomodjsonpatch.JsonPatchOperation
		cause   string // a denial's field
	}{
		{name: "opted-in namespace: configured default", req: admissionRequest{admissionv1.Create, podGVK, "apps", podIn("apps", nil)}, allowed: true,
			patches: []gomodjsonpatch.JsonPatchOperation{
				op("add", "/metadata/annotations", map[string]string{"v1.multus-cni.io/default-network": "kube-system/macvlan-conf"}),
				op("replace", "/spec/schedulerName", "underlink-scheduler")}},
		{name: "namespace annotation wins", req: admissionRequest{admissionv1.Create, podGVK, "team-b", podIn("team-b", map[string]string{"x": "y"})}, allowed: true,
			patches: []gomodjsonpatch.JsonPatchOperation{
				op("add", "/metadata/annotations/v1.multus-cni.io~1default-network", "team-b/underlay"),
				op("replace", "/spec/schedulerName", "underlink-scheduler")}},
		{name: "injected network that does not exist: denied on the annotation", req: admissionRequest{admissionv1.Create, podGVK, "typo", podIn("typo", nil)},
			code: http.StatusUnprocessableEntity, cause: "metadata.annotations[v1.multus-cni.io/default-network]"},
		{name: "own network that does not exist: denied", req: admissionRequest{admissionv1.Create, podGVK, "apps", podIn("apps", map[string]string{"v1.multus-cni.io/default-network": "kube-system/macvlan-confg"})},
			code: http.StatusUnprocessableEntity, cause: "metadata.annotations[v1.multus-cni.io/default-network]"},
		{name: "namespace not opted in in the cache: validated, not injected", req: admissionRequest{admissionv1.Create, podGVK, "plain", podIn("plain", map[string]string{"v1.multus-cni.io/default-network": "kube-system/macvlan-confg"})},
			code: http.StatusUnprocessableEntity, cause: "metadata.annotations[v1.multus-cni.io/default-network]"},
		{name: "pod opted out", req: admissionRequest{admissionv1.Create, podGVK, "apps", podIn("apps", map[string]string{registration.PodInjectAnno: "false"})}, allowed: true},
		{name: "namespace not opted in", req: admissionRequest{admissionv1.Create, podGVK, "plain", podIn("plain", nil)}, allowed: true},
		{name: "update is not mutated", req: admissionRequest{admissionv1.Update, podGVK, "apps", podIn("apps", nil)}, allowed: true},
		{name: "unknown namespace fails closed", req: admissionRequest{admissionv1.Create, podGVK, "gone", podIn("gone", nil)}, code: http.StatusInternalServerError},
		{name: "not a pod", req: admissionRequest{admissionv1.Create, deploymentGVK, "apps", podIn("apps", nil)}, code: http.StatusBadRequest},
		{name: "object does not decode", req: admissionRequest{admissionv1.Create, podGVK, "apps", []byte(`{"metadata":{"annotations":[1]}}`)}, code: http.StatusBadRequest},
		{name: "object is null", req: admissionRequest{admissionv1.Create, podGVK, "apps", []byte(`null`)}, code: http.StatusBadRequest},
		{name: "no object", req: admissionRequest{admissionv1.Create, podGVK, "apps", nil}, code: http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := inj.Handle(context.Background(), c.req.build(t))
			if resp.Allowed != c.allowed {
				t.Fatalf("allowed = %v, want %v (result %+v)", resp.Allowed, c.allowed, resp.Result)
			}
			if !c.allowed && (resp.Result == nil || resp.Result.Code != c.code || resp.Result.Message == "") {
				t.Fatalf("result %+v, want code %d with a message", resp.Result, c.code)
			}
			if c.cause != "" {
				if got := fieldsOf(resp.AdmissionResponse); !containsString(got, c.cause) || !strings.Contains(causeText(resp.AdmissionResponse), "did you mean kube-system/macvlan-conf?") {
					t.Errorf("denial causes %v, want %s with the did-you-mean:\n%s", got, c.cause, causeText(resp.AdmissionResponse))
				}
			}
			if !reflect.DeepEqual(resp.Patches, c.patches) {
				t.Errorf("patches\n got %#v\nwant %#v", resp.Patches, c.patches)
			}
		})
	}
}

// A request without a UID or kind is never answered "allowed".
func TestInjectorRejectsMalformedRequests(t *testing.T) {
	inj := &Injector{Rules: Rules{Reader: reader(t, namespace("apps", optedIn(), nil))}, DefaultNetwork: "kube-system/macvlan-conf"}
	good := admissionRequest{admissionv1.Create, podGVK, "apps", pod(nil, "")}.build(t)
	noUID := good
	noUID.UID = ""
	noKind := good
	noKind.Kind = metav1.GroupVersionKind{}
	for name, req := range map[string]admissionRequestValue{"no uid": noUID, "no kind": noKind} {
		if resp := inj.Handle(context.Background(), req); resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest {
			t.Errorf("%s: %+v, want a 400 error", name, resp.AdmissionResponse)
		}
	}
}
