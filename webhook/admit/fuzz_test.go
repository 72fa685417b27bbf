package admit

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"

	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/webhook/registration"
	"github.com/underlink/underlink/webhook/snapshot"
)

// fuzzWorld is the seed's cluster-a with its corrected pool and its config, so fuzzed objects meet real
// rules (overlaps, alignment, did-you-mean) rather than an empty world.
func fuzzWorld(t testing.TB) (client.Reader, snapshot.Options) {
	objs := append(seedClusters(), fixedPool(t), seedConfig(t), namespace("default", nil, nil), namespace("apps", optedIn(), nil))
	return reader(t, objs...), snapshot.Options{LocalCluster: "cluster-a", DefaultNetwork: "kube-system/macvlan-conf"}
}

var fuzzKinds = []metav1.GroupVersionKind{podGVK, poolGVK, configGVK, deploymentGVK, cronJobGVK,
	{Group: "apps", Version: "v1", Kind: "StatefulSet"}, {Group: "batch", Version: "v1", Kind: "Job"}, {Version: "v1", Kind: "Service"}}

// review is an AdmissionReview body as the apiserver posts it.
func review(t testing.TB, op admissionv1.Operation, gvk metav1.GroupVersionKind, ns string, obj, old any) []byte {
	r := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "fuzz", Kind: gvk, Operation: op, Namespace: ns}}
	if obj != nil {
		r.Request.Object = runtime.RawExtension{Raw: mustJSON(t, obj)}
	}
	if old != nil {
		r.Request.OldObject = runtime.RawExtension{Raw: mustJSON(t, old)}
	}
	return mustJSON(t, r)
}

// FuzzAdmissionReview posts arbitrary bodies to every handler over HTTP, as the apiserver would. No body
// may panic a handler (panic recovery is off here), every answer must be a decodable review, and an
// "allowed" answer must be one the rules themselves give for that object: never allowed by accident.
func FuzzAdmissionReview(f *testing.F) {
	f.Add(review(f, admissionv1.Create, poolGVK, "", seedPool(f), nil))
	f.Add(review(f, admissionv1.Update, poolGVK, "", fixedPool(f), seedPool(f)))
	f.Add(review(f, admissionv1.Create, configGVK, "kube-system", seedConfig(f), nil))
	f.Add(review(f, admissionv1.Create, deploymentGVK, "default", seedDeployment(f), nil))
	f.Add(review(f, admissionv1.Create, podGVK, "apps", pod(nil, "default-scheduler"), nil))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":null}}`))
	f.Add([]byte(`{"request":{}}`))
	f.Add([]byte(`[]`))
	r, opts := fuzzWorld(f)
	handlers := map[string]admission.Handler{
		"inject":   &Injector{Rules: Rules{Reader: r, Snapshot: opts}, DefaultNetwork: "kube-system/macvlan-conf", SchedulerName: "underlink-scheduler"},
		"validate": &Validator{Rules: Rules{Reader: r, Snapshot: opts}, Kinds: append(append(append([]schema.GroupKind(nil), PoolKinds...), MultusConfigKinds...), WorkloadKinds...)},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for name, h := range handlers {
			wh := (&admission.Webhook{Handler: h}).WithRecoverPanic(false)
			rec := httptest.NewRecorder()
			httpReq := httptest.NewRequest(http.MethodPost, "/"+name, bytes.NewReader(body))
			httpReq.Header.Set("Content-Type", "application/json")
			wh.ServeHTTP(rec, httpReq)
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("%s: answer is not an AdmissionReview: %v: %s", name, err, rec.Body.String())
			}
			if !out.Response.Allowed {
				if out.Response.Result == nil || out.Response.Result.Message == "" && (out.Response.Result.Details == nil || len(out.Response.Result.Details.Causes) == 0) {
					t.Fatalf("%s: a refusal without a reason: %+v", name, out.Response)
				}
				continue
			}
			// Read the body as controller-runtime does (the apiserver's case-sensitive decoding), so the
			// oracle judges the request the handler was given.
			var in admissionv1.AdmissionReview
			if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &in); err != nil || in.Request == nil {
				t.Fatalf("%s: allowed a body that is not an AdmissionReview (%v): %q", name, err, body)
			}
			checkAllowedByRules(t, name, h, in.Request, out.Response, r, opts)
		}
	})
}

// FuzzAdmissionObject fuzzes the object and stored object of well-formed requests of every kind, the
// part of a request an author controls.
func FuzzAdmissionObject(f *testing.F) {
	add := func(kind int, op admissionv1.Operation, obj, old any) {
		var o, p []byte
		if obj != nil {
			o = mustJSON(f, obj)
		}
		if old != nil {
			p = mustJSON(f, old)
		}
		f.Add(uint8(kind), op == admissionv1.Update, o, p)
	}
	add(1, admissionv1.Create, seedPool(f), nil)
	add(1, admissionv1.Update, fixedPool(f), seedPool(f))
	add(2, admissionv1.Create, seedConfig(f), nil)
	add(3, admissionv1.Create, seedDeployment(f), nil)
	add(0, admissionv1.Create, pod(map[string]string{"ipam.spidernet.io/ippool": `{"ipv4":["cluster-a"]}`}, ""), nil)
	add(0, admissionv1.Create, pod(map[string]string{"k8s.v1.cni.cncf.io/networks": `[{"name":"macvlan-conf","namespace":"kube-system"}]`}, ""), nil)
	r, opts := fuzzWorld(f)
	v := &Validator{Rules: Rules{Reader: r, Snapshot: opts}, Kinds: append(append(append([]schema.GroupKind(nil), PoolKinds...), MultusConfigKinds...), WorkloadKinds...)}
	inj := &Injector{Rules: Rules{Reader: r, Snapshot: opts}, DefaultNetwork: "kube-system/macvlan-conf", SchedulerName: "underlink-scheduler"}
	f.Fuzz(func(t *testing.T, kind uint8, update bool, obj, old []byte) {
		gvk := fuzzKinds[int(kind)%len(fuzzKinds)]
		req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: types.UID("fuzz"), Kind: gvk, Operation: admissionv1.Create,
			Namespace: "apps", Object: runtime.RawExtension{Raw: obj}}}
		if gvk.Kind == "SpiderIPPool" {
			req.Namespace = ""
		}
		if update {
			req.Operation = admissionv1.Update
			req.OldObject = runtime.RawExtension{Raw: old}
		}
		for name, h := range map[string]admission.Handler{"validate": v, "inject": inj} {
			resp := h.Handle(context.Background(), req)
			if !resp.Allowed {
				if resp.Result == nil || (resp.Result.Message == "" && (resp.Result.Details == nil || len(resp.Result.Details.Causes) == 0)) {
					t.Fatalf("%s: a refusal without a reason: %+v", name, resp.AdmissionResponse)
				}
				continue
			}
			if err := resp.Complete(req); err != nil {
				t.Fatalf("%s: response does not encode: %v", name, err)
			}
			checkAllowedByRules(t, name, h, &req.AdmissionRequest, &resp.AdmissionResponse, r, opts)
		}
	})
}

// checkAllowedByRules is the oracle: an allowed request was decodable and the rules, asked directly,
// deny nothing; an allowed pod mutation applies to the pod.
func checkAllowedByRules(t *testing.T, name string, h admission.Handler, req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse, r client.Reader, opts snapshot.Options) {
	t.Helper()
	if req.UID == "" || req.Kind.Kind == "" {
		t.Fatalf("%s: allowed a request without uid or kind: %+v", name, req)
	}
	switch h.(type) {
	case *Injector:
		if req.Operation != admissionv1.Create {
			return
		}
		raw := req.Object.Raw
		if len(resp.Patch) > 0 {
			patch, err := jsonpatch.DecodePatch(resp.Patch)
			if err != nil {
				t.Fatalf("inject: patch does not decode: %v", err)
			}
			if raw, err = patch.Apply(raw); err != nil {
				t.Fatalf("inject: patch %s does not apply to the pod %s: %v", resp.Patch, req.Object.Raw, err)
			}
		}
		pod := &corev1.Pod{}
		if err := decodeStrict(raw, pod); err != nil {
			t.Fatalf("inject: allowed a pod that does not decode (%v): %q", err, raw)
		}
		if pod.Annotations[registration.PodInjectAnno] == registration.InjectDisabled {
			return // left to the validating webhook
		}
		if pod.Namespace == "" {
			pod.Namespace = req.Namespace
		}
		w, err := snapshot.Read(context.Background(), r, opts, snapshot.Scope{Namespaces: []string{req.Namespace}})
		if err != nil {
			t.Fatal(err)
		}
		if vs, _ := rules.Check(w, pod, nil); rules.Denied(vs) {
			t.Fatalf("inject: allowed a pod the rules deny: %v", rules.ToErrorList(vs))
		}
	case *Validator:
		if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
			return
		}
		obj, ok := newObject(schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind})
		if !ok {
			t.Fatalf("validate: allowed kind %v that no rule reads", req.Kind)
		}
		if err := decodeStrict(req.Object.Raw, obj); err != nil {
			t.Fatalf("validate: allowed an object that does not decode (%v): %q", err, req.Object.Raw)
		}
		var old runtime.Object
		if req.Operation == admissionv1.Update {
			old, _ = newObject(schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind})
			if err := decodeStrict(req.OldObject.Raw, old); err != nil {
				t.Fatalf("validate: allowed an update whose stored object does not decode (%v)", err)
			}
		}
		if m, ok := obj.(metav1.Object); ok && m.GetNamespace() == "" {
			m.SetNamespace(req.Namespace)
		}
		scope := snapshot.Scope{Namespaces: []string{}}
		if req.Namespace != "" {
			scope.Namespaces = []string{req.Namespace}
		}
		w, err := snapshot.Read(context.Background(), r, opts, scope)
		if err != nil {
			t.Fatal(err)
		}
		if vs, _ := rules.Check(w, obj, old); rules.Denied(vs) {
			t.Fatalf("validate: allowed %s although the rules deny it: %v", req.Kind.Kind, rules.ToErrorList(vs))
		}
	}
}
