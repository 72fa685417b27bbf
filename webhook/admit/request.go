package admit

import (
	"bytes"
	"errors"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"
)

// checkRequest rejects requests the apiserver never sends: a request without a UID or a kind cannot be
// answered meaningfully, and answering it "allowed" would be an accident.
func checkRequest(req admission.Request) error {
	if req.UID == "" {
		return errors.New("malformed admission request: no uid")
	}
	if req.Kind.Kind == "" || req.Kind.Version == "" {
		return errors.New("malformed admission request: no kind")
	}
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect:
	default:
		return fmt.Errorf("malformed admission request: operation %q is none of CREATE, UPDATE, DELETE, CONNECT", req.Operation)
	}
	return nil
}

// requestName is the object's name, or "(generated)" while the apiserver has not named it yet
// (metadata.generateName).
func requestName(req admission.Request) string {
	if req.Name != "" {
		return req.Name
	}
	return "(generated)"
}

func gvkString(req admission.Request) string {
	g := req.Kind.Group
	if g == "" {
		g = "core"
	}
	return fmt.Sprintf("%s/%s %s", g, req.Kind.Version, req.Kind.Kind)
}

// decodeStrict decodes JSON into obj; an empty or non-object body is an error, not a zero object. Field
// names match case-sensitively, as in the apiserver's own decoding, so the object judged is the object
// stored: encoding/json would read {"speC":{...}} as the spec the apiserver ignores.
func decodeStrict(raw []byte, obj any) error {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return fmt.Errorf("the request carries no object")
	}
	if trimmed[0] != '{' {
		return fmt.Errorf("the object is not a JSON object")
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(trimmed, obj); err != nil {
		return err
	}
	return nil
}

// objectKey is namespace/name of the request's object, for messages.
func objectKey(req admission.Request) string {
	if req.Namespace == "" {
		return requestName(req)
	}
	return req.Namespace + "/" + requestName(req)
}

// nameOf is the name of the object as decoded (its generateName while the apiserver has not named it).
func nameOf(obj runtime.Object, req admission.Request) string {
	if m, ok := obj.(metav1.Object); ok {
		if m.GetName() != "" {
			return m.GetName()
		}
		if m.GetGenerateName() != "" {
			return m.GetGenerateName()
		}
	}
	return req.Name
}
