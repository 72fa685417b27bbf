// Package admit holds underlink's admission handlers: the pod injector (mutating) and the validator of
// pools, multus configs, pods and workloads. Handlers hold only a cached reader and call the pure rules
// of pkg/rules; every decision is counted in the metrics of this package.
package admit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/webhook/registration"
	"github.com/underlink/underlink/webhook/snapshot"
)

// DefaultSchedulerName is what the apiserver sets spec.schedulerName to when a pod names none.
const DefaultSchedulerName = corev1.DefaultSchedulerName

// Injector is the mutating handler for pods: in namespaces labelled underlink.io/inject=enabled, a pod
// that names no Multus default network gets the namespace's underlink.io/default-network annotation, else
// DefaultNetwork; and, when SchedulerName is set, a pod still on the default scheduler gets it.
//
// It also validates the pod as patched, with the same Rules as the Validator, and denies it when they
// deny: the validating webhook of opted-in namespaces leaves these pods to it (registration's match
// conditions), so each pod costs the apiserver one webhook call instead of two. A later webhook that
// rewrites the pod's network annotations makes the apiserver call the injector again
// (reinvocationPolicy IfNeeded), which validates again.
type Injector struct {
	// Rules read the world (Rules.Reader also serves namespace metadata) and judge the patched pod.
	Rules
	// DefaultNetwork is injected when the namespace names none, e.g. kube-system/macvlan-conf.
	DefaultNetwork string
	// SchedulerName, when not empty, replaces the default scheduler of injected pods.
	SchedulerName string
}

var _ admission.Handler = &Injector{}

// Handle answers one pod admission request. Whatever goes wrong is an error response, never an
// allowed pod without the network it asked for (the webhook fails closed).
func (i *Injector) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	log := logf.FromContext(ctx).WithValues("namespace", req.Namespace, "name", requestName(req))
	resp, verdict, rule := i.handle(ctx, log, req)
	observe("mutate", kindLabel(req.Kind.Kind), start, verdict, rule)
	if verdict == VerdictDenied || verdict == VerdictErrored {
		msg := ""
		if resp.Result != nil {
			msg = resp.Result.Message
		}
		log.Info("admission decision", "verdict", verdict, "rule", rule, "message", msg)
	}
	return resp
}

func (i *Injector) handle(ctx context.Context, log logr.Logger, req admission.Request) (admission.Response, string, string) {
	if err := checkRequest(req); err != nil {
		return admission.Errored(http.StatusBadRequest, err), VerdictErrored, RuleError
	}
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("the pod injector got a %s request: only core/v1 Pods are mutated; fix the rules of MutatingWebhookConfiguration %s", gvkString(req), registration.ConfigurationName)), VerdictErrored, RuleError
	}
	if req.Operation != admissionv1.Create {
		return admission.Allowed("underlink injects only at pod creation"), VerdictAllowed, RuleNone
	}
	pod := &corev1.Pod{}
	if err := decodeStrict(req.Object.Raw, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("pod %s/%s does not decode as a core/v1 Pod: %w", req.Namespace, requestName(req), err)), VerdictErrored, RuleError
	}
	if pod.Annotations[registration.PodInjectAnno] == registration.InjectDisabled {
		// Not injected, and validated by the validating webhook, whose match conditions take opted-out pods.
		return admission.Allowed("pod opted out with " + registration.PodInjectAnno + "=" + registration.InjectDisabled), VerdictAllowed, RuleNone
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	ns, err := snapshot.Namespace(ctx, i.Reader, req.Namespace)
	if err != nil {
		log.Error(err, "cannot read the pod's namespace; refusing the pod rather than admitting it without its network")
		return admission.Errored(http.StatusInternalServerError, err), VerdictErrored, RuleError
	}
	var patches []jsonpatch.JsonPatchOperation
	if ns.Labels[registration.InjectLabel] == registration.InjectEnabled {
		network := i.DefaultNetwork
		if v := strings.TrimSpace(ns.Annotations[registration.NamespaceDefaultNetworkAnno]); v != "" {
			network = v
		}
		patches = Patches(pod, network, i.SchedulerName)
		Apply(pod, network, i.SchedulerName)
	}
	// A namespace the cache does not see opted in (a stale or hand-made configuration) gets no injection,
	// but the pod is still validated: the validating webhook leaves pods sent here to this handler.
	vs, _, err := i.Rules.Check(ctx, pod, nil, req.Namespace)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("pod %s/%s: %w", req.Namespace, requestName(req), err)), VerdictErrored, RuleError
	}
	resp, verdict, rule := Decide(schema.GroupKind{Kind: "Pod"}, nameOf(pod, req), vs)
	if verdict == VerdictDenied || len(patches) == 0 {
		return resp, verdict, rule
	}
	if err := patchable(req.Object.Raw); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("pod %s/%s: %w", req.Namespace, requestName(req), err)), VerdictErrored, RuleError
	}
	log.V(1).Info("injecting", "patches", len(patches), "warnings", len(resp.Warnings))
	resp.Patches = patches
	return resp, VerdictPatched, RuleInject
}

// Apply makes on pod the changes Patches describes, so the pod can be validated as the apiserver will
// store it.
func Apply(pod *corev1.Pod, network, schedulerName string) {
	if _, ok := pod.Annotations[nadv1.DefaultNetworkAnnotation]; !ok && network != "" {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[nadv1.DefaultNetworkAnnotation] = network
	}
	if schedulerName != "" && (pod.Spec.SchedulerName == "" || pod.Spec.SchedulerName == DefaultSchedulerName) {
		pod.Spec.SchedulerName = schedulerName
	}
}

// Patches returns the JSON patch that gives pod its network and scheduler: it adds only what is missing,
// so a second invocation on the patched pod returns nothing.
func Patches(pod *corev1.Pod, network, schedulerName string) []jsonpatch.JsonPatchOperation {
	var ops []jsonpatch.JsonPatchOperation
	if _, ok := pod.Annotations[nadv1.DefaultNetworkAnnotation]; !ok && network != "" {
		if pod.Annotations == nil {
			ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", map[string]string{nadv1.DefaultNetworkAnnotation: network}))
		} else {
			ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+registration.JSONPointerToken(nadv1.DefaultNetworkAnnotation), network))
		}
	}
	if schedulerName != "" {
		switch pod.Spec.SchedulerName {
		case "":
			ops = append(ops, jsonpatch.NewOperation("add", "/spec/schedulerName", schedulerName))
		case DefaultSchedulerName:
			ops = append(ops, jsonpatch.NewOperation("replace", "/spec/schedulerName", schedulerName))
		}
	}
	return ops
}

// patchable checks that the object has the metadata and spec objects the patch adds to; the apiserver
// always sends both, so a pod without them is a malformed request, not one to patch blindly. Keys are
// matched case-sensitively, as the patch's paths are: {"Metadata":{}} has no /metadata.
func patchable(raw []byte) error {
	var parts struct {
		Metadata json.RawMessage `json:"metadata"`
		Spec     json.RawMessage `json:"spec"`
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &parts); err != nil {
		return err
	}
	for name, part := range map[string]json.RawMessage{"metadata": parts.Metadata, "spec": parts.Spec} {
		if t := bytes.TrimSpace(part); len(t) == 0 || t[0] != '{' {
			return fmt.Errorf("malformed pod: no %s object to add the network to", name)
		}
	}
	return nil
}
