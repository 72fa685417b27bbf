package admit

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/webhook/snapshot"
)

// Kinds each validating path accepts.
var (
	// PoolKinds are served at registration.PathValidateSpiderIPPool.
	PoolKinds = []schema.GroupKind{{Group: spv2.GroupVersion.Group, Kind: "SpiderIPPool"}}
	// MultusConfigKinds are served at registration.PathValidateSpiderMultusConfig: the configs, and the
	// SpiderCoordinator whose defaults every config takes.
	MultusConfigKinds = []schema.GroupKind{{Group: spv2.GroupVersion.Group, Kind: "SpiderMultusConfig"}, {Group: spv2.GroupVersion.Group, Kind: "SpiderCoordinator"}}
	// WorkloadKinds are served at registration.PathValidateWorkload.
	WorkloadKinds = []schema.GroupKind{
		{Kind: "Pod"},
		{Group: "apps", Kind: "Deployment"}, {Group: "apps", Kind: "ReplicaSet"},
		{Group: "apps", Kind: "StatefulSet"}, {Group: "apps", Kind: "DaemonSet"},
		{Group: "batch", Kind: "Job"}, {Group: "batch", Kind: "CronJob"},
	}
)

// newObject returns an empty typed object of a kind the rules read.
func newObject(gk schema.GroupKind) (runtime.Object, bool) {
	switch gk {
	case schema.GroupKind{Group: spv2.GroupVersion.Group, Kind: "SpiderIPPool"}:
		return &spv2.SpiderIPPool{}, true
	case schema.GroupKind{Group: spv2.GroupVersion.Group, Kind: "SpiderMultusConfig"}:
		return &spv2.SpiderMultusConfig{}, true
	case schema.GroupKind{Group: spv2.GroupVersion.Group, Kind: "SpiderCoordinator"}:
		return &spv2.SpiderCoordinator{}, true
	case schema.GroupKind{Kind: "Pod"}:
		return &corev1.Pod{}, true
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		return &appsv1.Deployment{}, true
	case schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		return &appsv1.ReplicaSet{}, true
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		return &appsv1.StatefulSet{}, true
	case schema.GroupKind{Group: "apps", Kind: "DaemonSet"}:
		return &appsv1.DaemonSet{}, true
	case schema.GroupKind{Group: "batch", Kind: "Job"}:
		return &batchv1.Job{}, true
	case schema.GroupKind{Group: "batch", Kind: "CronJob"}:
		return &batchv1.CronJob{}, true
	}
	return nil, false
}

// Rules reads the world and applies the rules of pkg/rules to one object; both handlers use it,
// so a pod gets the same verdict from the injector as from the validator.
type Rules struct {
	// Reader is the manager's cache.
	Reader client.Reader
	// LiveReader, when set, reads the apiserver directly. Two things go through it:
	//   - A denial of a pod or workload is confirmed through it before it is answered: the cache may not
	//     yet hold a config created a moment earlier by the same `kubectl apply -f dir/`, and a false
	//     denial would stop a correct rollout. Denials are rare, so the extra reads cost nothing on the
	//     common path.
	//   - Pools and multus configs are judged on a live read only. Their verdicts guard exclusivity (no
	//     two pools share an address), and a cache that has not yet seen a pool created a moment earlier
	//     would admit an overlapping one: a false allow, which no later read can take back. These writes
	//     are rare, so the apiserver reads cost nothing that matters.
	LiveReader client.Reader
	// Snapshot says which cluster is local and the static clusters.
	Snapshot snapshot.Options
}

// Check returns the violations of obj (old is the stored object on update, else nil) in namespace ns
// ("" for cluster-scoped objects). handled is false for kinds no rule reads.
func (r *Rules) Check(ctx context.Context, obj, old runtime.Object, ns string) (vs []rules.Violation, handled bool, err error) {
	scope := snapshot.Scope{Namespaces: []string{}}
	if ns != "" {
		scope.Namespaces = []string{ns}
	}
	first := r.Reader
	// An update that changes nothing a rule reads cannot be denied (rules.Ratchet), so its warnings come
	// from the cache: a controller's status or replica update never turns into an apiserver read.
	readLive := r.LiveReader != nil && judgedLive(obj) && (old == nil || !rules.SameReads(obj, old))
	if readLive {
		first = r.LiveReader
	}
	w, err := snapshot.Read(ctx, first, r.Snapshot, scope)
	if err != nil {
		return nil, false, fmt.Errorf("underlink cannot read the cluster state it validates against: %w", err)
	}
	vs, handled = rules.Check(w, obj, old)
	if handled && !readLive && rules.Denied(vs) && r.LiveReader != nil {
		live, err := snapshot.Read(ctx, r.LiveReader, r.Snapshot, scope)
		if err != nil {
			return nil, false, fmt.Errorf("underlink cannot confirm its verdict against the apiserver: %w", err)
		}
		vs, _ = rules.Check(live, obj, old)
	}
	return vs, handled, nil
}

// judgedLive says whether obj is judged on a live read (see Rules.LiveReader).
func judgedLive(obj runtime.Object) bool {
	switch obj.(type) {
	case *spv2.SpiderIPPool, *spv2.SpiderMultusConfig:
		return true
	}
	return false
}

// Validator is the validating handler: it decodes the object and lets Rules decide. Denying violations
// become one field error each (apierrors.NewInvalid, which kubectl prints one line per field); warning
// violations become admission warnings.
type Validator struct {
	Rules
	// Kinds are the kinds this handler accepts; a request of another kind is an error, so a wrong
	// webhook configuration is noticed instead of silently allowing.
	Kinds []schema.GroupKind
}

var _ admission.Handler = &Validator{}

// Handle answers one validation request.
func (v *Validator) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp, verdict, rule := v.handle(ctx, req)
	observe("validate", kindLabel(req.Kind.Kind), start, verdict, rule)
	log := logf.FromContext(ctx).WithValues("kind", req.Kind.Kind, "namespace", req.Namespace, "name", requestName(req), "operation", req.Operation, "verdict", verdict, "rule", rule)
	if verdict == VerdictDenied || verdict == VerdictErrored {
		msg := ""
		if resp.Result != nil {
			msg = resp.Result.Message
		}
		log.Info("admission decision", "message", msg)
	} else {
		log.V(1).Info("admission decision", "warnings", len(resp.Warnings))
	}
	return resp
}

func (v *Validator) handle(ctx context.Context, req admission.Request) (admission.Response, string, string) {
	if err := checkRequest(req); err != nil {
		return admission.Errored(http.StatusBadRequest, err), VerdictErrored, RuleError
	}
	gk := schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
	if !v.accepts(gk) {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("this webhook path does not validate %s; fix the rules of the ValidatingWebhookConfiguration", gvkString(req))), VerdictErrored, RuleError
	}
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	case admissionv1.Delete:
		if gk == PoolKinds[0] {
			return v.handlePoolDelete(ctx, req)
		}
		return admission.Allowed(fmt.Sprintf("underlink validates deletion of pools only, not of %s", gk.Kind)), VerdictAllowed, RuleNone
	default:
		return admission.Allowed(fmt.Sprintf("underlink validates create and update, not %s", req.Operation)), VerdictAllowed, RuleNone
	}
	obj, _ := newObject(gk)
	if err := decodeStrict(req.Object.Raw, obj); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("%s %s does not decode: %w", gvkString(req), objectKey(req), err)), VerdictErrored, RuleError
	}
	var old runtime.Object
	if req.Operation == admissionv1.Update {
		old, _ = newObject(gk)
		if err := decodeStrict(req.OldObject.Raw, old); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("the stored %s %s does not decode: %w", gvkString(req), objectKey(req), err)), VerdictErrored, RuleError
		}
	}
	if m, ok := obj.(metav1.Object); ok && m.GetNamespace() == "" {
		// On create the namespace is often only in the request.
		m.SetNamespace(req.Namespace)
	}
	vs, handled, err := v.Rules.Check(ctx, obj, old, req.Namespace)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("%s %s: %w", gvkString(req), objectKey(req), err)), VerdictErrored, RuleError
	}
	if !handled {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("no underlink rule reads %s", gvkString(req))), VerdictErrored, RuleError
	}
	return Decide(gk, nameOf(obj, req), vs)
}

// handlePoolDelete refuses the deletion of a pool whose addresses pods hold, naming them (the stored
// pool is the request's oldObject). The pool's finalizer (webhook/controller) holds a pool whose
// deletion was admitted until its last address is released; this denial says why at the moment of
// `kubectl delete`, instead of a pool that hangs in Terminating.
func (v *Validator) handlePoolDelete(ctx context.Context, req admission.Request) (admission.Response, string, string) {
	pool := &spv2.SpiderIPPool{}
	if len(req.OldObject.Raw) == 0 {
		// An apiserver older than 1.15 sends no oldObject on DELETE; the finalizer still holds the pool.
		return admission.Allowed("no stored pool in the request; the finalizer holds it while addresses are allocated"), VerdictAllowed, RuleNone
	}
	if err := decodeStrict(req.OldObject.Raw, pool); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("the stored SpiderIPPool %s does not decode: %w", objectKey(req), err)), VerdictErrored, RuleError
	}
	vs := rules.CheckPoolDelete(pool, v.podsHolding(ctx, pool))
	for _, x := range vs {
		violations.WithLabelValues(kindLabel("SpiderIPPool"), x.Rule, string(x.Severity)).Inc()
	}
	if !rules.Denied(vs) {
		if w := rules.Warnings(vs); len(w) > 0 {
			return admission.Allowed("").WithWarnings(w...), VerdictWarned, vs[0].Rule
		}
		return admission.Allowed(""), VerdictAllowed, RuleNone
	}
	status := apierrors.NewForbidden(schema.GroupResource{Group: spv2.GroupVersion.Group, Resource: "spiderippools"}, pool.Name,
		fmt.Errorf("%s", vs[0].Detail())).Status()
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}, VerdictDenied, vs[0].Rule
}

// podsHolding reads, from the apiserver, the pods of the namespaces the pool's records name, so that a
// deletion is refused only for pods that still exist: a record whose pod is gone waits for garbage
// collection under the pool's finalizer. If the pods cannot be read, every record holds the pool (nil).
func (v *Validator) podsHolding(ctx context.Context, pool *spv2.SpiderIPPool) rules.PodExists {
	allocs, err := spv2.ParseAllocations(pool.Status)
	if err != nil || len(allocs) == 0 {
		return nil
	}
	reader := v.LiveReader
	if reader == nil {
		reader = v.Reader
	}
	uids := map[string]string{}
	seen := map[string]bool{}
	for _, a := range allocs {
		ns, _, ok := strings.Cut(a.NamespacedName, "/")
		if !ok || seen[ns] {
			continue
		}
		seen[ns] = true
		var pods corev1.PodList
		if err := reader.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			logf.FromContext(ctx).Info("cannot read the pods holding a pool's addresses; every record holds it", "pool", pool.Name, "namespace", ns, "err", err.Error())
			return nil
		}
		for _, p := range pods.Items {
			uids[p.Namespace+"/"+p.Name] = string(p.UID)
		}
	}
	return func(name, uid string) bool {
		got, ok := uids[name]
		return ok && (uid == "" || got == uid)
	}
}

// Decide turns violations into the admission response, its verdict and the deciding rule, and counts the
// violations. It is the single place where violations become an answer.
func Decide(gk schema.GroupKind, name string, vs []rules.Violation) (admission.Response, string, string) {
	for _, x := range vs {
		violations.WithLabelValues(kindLabel(gk.Kind), x.Rule, string(x.Severity)).Inc()
	}
	warnings := rules.Warnings(vs)
	if rules.Denied(vs) {
		status := apierrors.NewInvalid(gk, name, rules.ToErrorList(vs)).Status()
		resp := admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
		return resp.WithWarnings(warnings...), VerdictDenied, firstRule(vs, rules.Deny)
	}
	if len(warnings) > 0 {
		return admission.Allowed("").WithWarnings(warnings...), VerdictWarned, firstRule(vs, rules.Warn)
	}
	return admission.Allowed(""), VerdictAllowed, RuleNone
}

func firstRule(vs []rules.Violation, s rules.Severity) string {
	for _, x := range vs {
		if x.Severity == s {
			return x.Rule
		}
	}
	return RuleNone
}

func (v *Validator) accepts(gk schema.GroupKind) bool {
	for _, k := range v.Kinds {
		if k == gk {
			return true
		}
	}
	return false
}
