package admit

import (
	"errors"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
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

// knownKinds bounds the kind label of the metrics, so malformed requests cannot grow its cardinality.
var knownKinds = map[string]bool{
	"Pod": true, "Deployment": true, "ReplicaSet": true, "StatefulSet": true, "DaemonSet": true, "Job": true,
	"CronJob": true, "SpiderIPPool": true, "SpiderMultusConfig": true,
}

func kindLabel(kind string) string {
	if knownKinds[kind] {
		return kind
	}
	return "unknown"
}
