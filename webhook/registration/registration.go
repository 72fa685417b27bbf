// Package registration is the contract between underlink-webhook's HTTP paths and the
// MutatingWebhookConfiguration and ValidatingWebhookConfiguration that send requests to them: paths,
// rules, selectors, failure policies and timeouts, in one place. The integration tests register exactly
// these objects against a real apiserver; the Helm chart mirrors them (webhook/README.md and the golden
// file testdata/webhooks.yaml, which a test keeps equal to what this package builds).
package registration

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HTTP paths the webhook server serves.
const (
	PathMutatePod                  = "/mutate-pod"
	PathValidateSpiderIPPool       = "/validate-spiderippool"
	PathValidateSpiderMultusConfig = "/validate-spidermultusconfig"
	PathValidateWorkload           = "/validate-workload"
)

// ConfigurationName is the name of both the MutatingWebhookConfiguration and the
// ValidatingWebhookConfiguration.
const ConfigurationName = "underlink-webhook"

// Webhook names inside the configurations.
const (
	// WebhookInjectPods adds the default network to pods of opted-in namespaces.
	WebhookInjectPods = "inject.pods.underlink.io"
	// WebhookSpiderIPPools validates SpiderIPPools.
	WebhookSpiderIPPools = "spiderippools.underlink.io"
	// WebhookSpiderMultusConfigs validates SpiderMultusConfigs.
	WebhookSpiderMultusConfigs = "spidermultusconfigs.underlink.io"
	// WebhookWorkloadsOptedIn validates pods and workloads in opted-in namespaces (fails closed).
	WebhookWorkloadsOptedIn = "opted-in.workloads.underlink.io"
	// WebhookWorkloadsElsewhere validates pods and workloads in other namespaces (fails open).
	WebhookWorkloadsElsewhere = "workloads.underlink.io"
)

// Labels and annotations that steer the webhooks.
const (
	// InjectLabel on a namespace with value InjectEnabled opts its pods in to injection; on a pod or
	// workload with value InjectDisabled it keeps the object away from every pod webhook.
	InjectLabel = "underlink.io/inject"
	// InjectEnabled is the InjectLabel value that opts a namespace in.
	InjectEnabled = "enabled"
	// InjectDisabled is the InjectLabel label or PodInjectAnno annotation value that opts an object out.
	InjectDisabled = "false"
	// PodInjectAnno on a pod with value InjectDisabled leaves the pod alone.
	PodInjectAnno = "underlink.io/inject"
	// NamespaceDefaultNetworkAnno on a namespace overrides the configured default network for its pods.
	NamespaceDefaultNetworkAnno = "underlink.io/default-network"
)

// SystemNamespaces never reach a pod or workload webhook, whatever their labels: an outage of
// underlink-webhook must not stop the control plane's own pods.
var SystemNamespaces = []string{"kube-system", "kube-node-lease", "kube-public"}

// PodNetworkAnnotations are the pod annotations the validating webhook reads. Pods and templates without
// any of them are not sent to it at all (matchConditions), so unrelated workloads pay no latency.
var PodNetworkAnnotations = []string{
	"v1.multus-cni.io/default-network",
	"k8s.v1.cni.cncf.io/networks",
	"ipam.spidernet.io/ippool",
	"ipam.spidernet.io/ippools",
}

// Timeouts. Pod creation is on the critical path of every rollout in an opted-in namespace, so its
// webhooks answer within a few seconds or fail; pool and config edits are rare.
const (
	PodTimeoutSeconds      int32 = 5
	ResourceTimeoutSeconds int32 = 10
)

// Options say how the apiserver reaches the webhook server: through a Service (in a cluster) or a URL
// (tests, out-of-cluster runs), with the CA that signed its serving certificate.
type Options struct {
	// Service is the webhook's Service; Path is filled in per webhook.
	Service *admissionregistrationv1.ServiceReference
	// URL is the server's base URL, e.g. https://127.0.0.1:9443, when Service is nil.
	URL string
	// CABundle is the PEM CA the apiserver trusts for the serving certificate. The chart leaves it empty
	// and lets the certificate controller (certs/) or cert-manager inject it.
	CABundle []byte
	// Injection says who injects (empty: InjectionPolicy). With InjectionWebhook the opted-in validating
	// webhook leaves pods to the injector, which validates what it patches.
	Injection Injection
}

func (o Options) clientConfig(path string) admissionregistrationv1.WebhookClientConfig {
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: o.CABundle}
	if o.Service != nil {
		s := *o.Service
		s.Path = &path
		cc.Service = &s
	} else {
		u := o.URL + path
		cc.URL = &u
	}
	return cc
}

// Mutating returns the MutatingWebhookConfiguration: pod injection in opted-in namespaces.
func Mutating(o Options) *admissionregistrationv1.MutatingWebhookConfiguration {
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	ifNeeded := admissionregistrationv1.IfNeededReinvocationPolicy
	equivalent := admissionregistrationv1.Equivalent
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         WebhookInjectPods,
			ClientConfig: o.clientConfig(PathMutatePod),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       rule("", "v1", "pods"),
			}},
			// Fail: a pod must never start without the network its namespace asked for.
			FailurePolicy:           &fail,
			MatchPolicy:             &equivalent,
			NamespaceSelector:       optedIn(),
			ObjectSelector:          notOptedOut(),
			MatchConditions:         []admissionregistrationv1.MatchCondition{podNotOptedOut()},
			SideEffects:             &none,
			TimeoutSeconds:          ptr(PodTimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
			// The patch is idempotent, so a later webhook that rewrites annotations may call us again.
			ReinvocationPolicy: &ifNeeded,
		}},
	}
}

// Validating returns the ValidatingWebhookConfiguration: pools, multus configs, and pods and workload
// pod templates that carry network annotations.
func Validating(o Options) *admissionregistrationv1.ValidatingWebhookConfiguration {
	fail := admissionregistrationv1.Fail
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	equivalent := admissionregistrationv1.Equivalent
	createUpdate := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	workloadRules := []admissionregistrationv1.RuleWithOperations{
		{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: rule("", "v1", "pods")},
		{Operations: createUpdate, Rule: rule("apps", "v1", "deployments", "replicasets", "statefulsets", "daemonsets")},
		{Operations: createUpdate, Rule: rule("batch", "v1", "jobs", "cronjobs")},
	}
	workload := func(name string, policy *admissionregistrationv1.FailurePolicyType, ns *metav1.LabelSelector, conds ...admissionregistrationv1.MatchCondition) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name:                    name,
			ClientConfig:            o.clientConfig(PathValidateWorkload),
			Rules:                   workloadRules,
			FailurePolicy:           policy,
			MatchPolicy:             &equivalent,
			NamespaceSelector:       ns,
			ObjectSelector:          notOptedOut(),
			MatchConditions:         append([]admissionregistrationv1.MatchCondition{carriesNetworkAnnotations(), updateReviewed("(request.kind.kind == 'CronJob' ? object.spec.jobTemplate != oldObject.spec.jobTemplate : object.spec.template != oldObject.spec.template)")}, conds...),
			SideEffects:             &none,
			TimeoutSeconds:          ptr(PodTimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
		}
	}
	resource := func(name, path string, res []string, ops []admissionregistrationv1.OperationType, conds ...admissionregistrationv1.MatchCondition) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name:         name,
			ClientConfig: o.clientConfig(path),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: ops,
				Rule:       rule("spiderpool.spidernet.io", "v2beta1", res...),
			}},
			MatchConditions: append([]admissionregistrationv1.MatchCondition{updateReviewed("object.spec != oldObject.spec")}, conds...),
			// Fail: a pool or config admitted unchecked is the silent misconfiguration underlink exists to stop.
			FailurePolicy:           &fail,
			MatchPolicy:             &equivalent,
			SideEffects:             &none,
			TimeoutSeconds:          ptr(ResourceTimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
		}
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			// DELETE: a pool whose addresses pods hold is not deleted (rules.CheckPoolDelete).
			resource(WebhookSpiderIPPools, PathValidateSpiderIPPool, []string{"spiderippools"},
				append(createUpdate, admissionregistrationv1.Delete), deleteOfPoolInUse()),
			// The SpiderCoordinator's fields are every config's defaults: judged with the configs.
			resource(WebhookSpiderMultusConfigs, PathValidateSpiderMultusConfig, []string{"spidermultusconfigs", "spidercoordinators"}, createUpdate),
			// Opted-in namespaces fail closed, like injection: their pods depend on the underlay.
			workload(WebhookWorkloadsOptedIn, &fail, optedIn(), optedInConditions(o.Injection)...),
			// Elsewhere a webhook outage must not stop unrelated rollouts; a typo is still denied when up.
			workload(WebhookWorkloadsElsewhere, &ignore, notOptedIn()),
		},
	}
}

// optedInConditions: with the injection webhook, the injector validates the pods it is sent (one webhook
// call per pod); with the injection policy, every pod is validated here unless the fast path (added by
// the controller, see FastPathConditionName) skips it.
func optedInConditions(i Injection) []admissionregistrationv1.MatchCondition {
	if i == InjectionWebhook {
		return []admissionregistrationv1.MatchCondition{notSentToInjector()}
	}
	return nil
}

func rule(group, version string, resources ...string) admissionregistrationv1.Rule {
	scope := admissionregistrationv1.AllScopes
	return admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources, Scope: &scope}
}

func optedIn() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: InjectLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{InjectEnabled}},
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: SystemNamespaces},
	}}
}

func notOptedIn() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: InjectLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{InjectEnabled}},
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: SystemNamespaces},
	}}
}

// notOptedOut keeps objects labelled underlink.io/inject=false out; the chart labels the webhook's own
// pods so, which keeps them out of the webhook they serve.
func notOptedOut() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: InjectLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{InjectDisabled}},
	}}
}

// podNotOptedOut keeps pods annotated underlink.io/inject: "false" away from the mutating webhook, so an
// opted-out pod starts even while the webhook is down.
func podNotOptedOut() admissionregistrationv1.MatchCondition {
	return admissionregistrationv1.MatchCondition{
		Name: "pod-not-opted-out",
		Expression: `!has(object.metadata.annotations) || !('` + PodInjectAnno + `' in object.metadata.annotations) || ` +
			`object.metadata.annotations['` + PodInjectAnno + `'] != '` + InjectDisabled + `'`,
	}
}

// notSentToInjector matches workloads, and pods the mutating webhook does not see (annotated
// underlink.io/inject: "false"): the injector validates every pod it is sent, so validating them again
// here would only double the pod's admission latency.
func notSentToInjector() admissionregistrationv1.MatchCondition {
	return admissionregistrationv1.MatchCondition{
		Name: "not-validated-by-the-injector",
		Expression: `request.kind.kind != 'Pod' || (has(object.metadata.annotations) && '` + PodInjectAnno + `' in object.metadata.annotations && ` +
			`object.metadata.annotations['` + PodInjectAnno + `'] == '` + InjectDisabled + `')`,
	}
}

// ControlPlaneController is the CEL test for a request of Kubernetes' own controllers: the
// kube-controller-manager's (under its own name, or each controller's kube-system ServiceAccount with
// --use-service-account-credentials). Nobody reads their admission warnings.
const ControlPlaneController = `(request.userInfo.username.startsWith('system:serviceaccount:kube-system:') || request.userInfo.username == 'system:kube-controller-manager')`

// UpdateReviewedName is the match condition that keeps the webhook out of updates no rule can deny.
const UpdateReviewedName = "update-can-change-a-verdict"

// updateReviewed matches every request but an UPDATE that leaves the fields the rules read as they were
// (changed is the CEL test that they changed: the spec, or the pod template) and that comes from a
// control-plane controller or sets or keeps a deletionTimestamp. Such an update is never denied
// (rules.Ratchet), so the apiserver decides it alone: a Deployment controller scaling a ReplicaSet, the
// garbage collector dropping an owner reference or a finalizer removed during deletion never waits for,
// or fails on, the webhook. A person's update of that kind still reaches the webhook, which admits it
// with warnings naming what was already wrong.
func updateReviewed(changed string) admissionregistrationv1.MatchCondition {
	return admissionregistrationv1.MatchCondition{
		Name: UpdateReviewedName,
		Expression: `request.operation != 'UPDATE' || ` + changed + ` || ` +
			`!(` + ControlPlaneController + ` || has(object.metadata.deletionTimestamp))`,
	}
}

// deleteOfPoolInUse matches every request but the DELETE of a pool that holds no address
// (status.allocatedIPCount absent or 0), which nothing refuses.
func deleteOfPoolInUse() admissionregistrationv1.MatchCondition {
	return admissionregistrationv1.MatchCondition{
		Name: "delete-of-pool-in-use",
		Expression: `request.operation != 'DELETE' || ` +
			`(has(oldObject.status) && has(oldObject.status.allocatedIPCount) && oldObject.status.allocatedIPCount > 0)`,
	}
}

// carriesNetworkAnnotations matches a Pod, or a workload whose pod template, carries one of
// PodNetworkAnnotations. It guards every step with has(), because an error in a match condition counts
// as a webhook failure.
func carriesNetworkAnnotations() admissionregistrationv1.MatchCondition {
	list := "["
	for i, a := range PodNetworkAnnotations {
		if i > 0 {
			list += ", "
		}
		list += "'" + a + "'"
	}
	list += "]"
	anyOf := func(meta string) string {
		return "(has(" + meta + ") && has(" + meta + ".annotations) && " + list + ".exists(k, k in " + meta + ".annotations))"
	}
	return admissionregistrationv1.MatchCondition{
		Name: "carries-network-annotations",
		Expression: "request.kind.kind == 'Pod' ? " + anyOf("object.metadata") + " : " +
			"request.kind.kind == 'CronJob' ? " +
			"(has(object.spec.jobTemplate.spec) && " + anyOf("object.spec.jobTemplate.spec.template.metadata") + ") : " +
			anyOf("object.spec.template.metadata"),
	}
}

func ptr[T any](v T) *T { return &v }
