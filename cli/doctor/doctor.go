// Package doctor checks a live cluster against every underlink rule and prints a checklist in the
// manner of `subctl diagnose`: one line per check (✓ holds, ! warning, ✗ broken), and under a broken
// check what is wrong, on which object and field, why, and the fix. It reads through a client.Reader and
// reuses the admission rules (pkg/rules) and the NAD generator (webhook/netconf), so its verdicts
// are the webhook's and the controller's.
//
// Doctor sees the cluster as the webhook does, local cluster included: given (--local-cluster), else
// found by the API server's service IP, else inferred as the webhook infers it. An inferred one is
// reported as a warning, since a misplaced pool can change it. The default network checked is the one
// the chart configured (cli/live.ReadDefaultNetwork) unless one is given.
package doctor

import (
	"context"
	"fmt"
	"sort"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/cli/live"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/webhook/netconf"
	"github.com/underlink/underlink/webhook/registration"
	"github.com/underlink/underlink/webhook/snapshot"
)

// Checks doctor runs besides the alignment rules.
const (
	// CheckNADsInSync: every SpiderMultusConfig has its NetworkAttachmentDefinition, owned by it and
	// holding the chain the controller generates (the controller runs and keeps up).
	CheckNADsInSync = "nads-in-sync"
	// CheckWebhooksRegistered: the validating webhooks and one way of injecting (policy or webhook) exist.
	CheckWebhooksRegistered = "webhooks-registered"
)

// What the doctor's own checks say when they pass.
const (
	whatNADsInSync         = "every SpiderMultusConfig owns a NetworkAttachmentDefinition holding its current CNI chain"
	whatWebhooksRegistered = "the underlink-webhook configurations and the injection are installed, so the cluster checks what it admits and pods get their network"
)

// Status of a check.
type Status string

// Statuses, with the marks Text prints.
const (
	Pass Status = "pass" // ✓
	Warn Status = "warn" // !
	Fail Status = "fail" // ✗
)

// Finding is one problem found by a check.
type Finding struct {
	// Severity is Deny (fails the check) or Warn.
	Severity rules.Severity `json:"severity"`
	// Subject is the object the problem is on, e.g. SpiderMultusConfig/kube-system/macvlan-conf.
	Subject string `json:"subject,omitempty"`
	// Field is the offending field's path, e.g. spec.coordinator.hijackCIDR.
	Field string `json:"field,omitempty"`
	// Value is the offending value.
	Value any `json:"value,omitempty"`
	// Cluster and Object are what the value conflicts with.
	Cluster string `json:"cluster,omitempty"`
	Object  string `json:"object,omitempty"`
	// Why says what is wrong; Fix says what to change.
	Why string `json:"why"`
	Fix string `json:"fix,omitempty"`
}

// Check is one line of the checklist.
type Check struct {
	// ID is the rule ID (pkg/rules) or a doctor check ID.
	ID string `json:"id"`
	// What says what holds when the check passes.
	What     string    `json:"what"`
	Status   Status    `json:"status"`
	Findings []Finding `json:"findings,omitempty"`
}

// Schema names the JSON form of the report; a change that is not additive gets a new name.
const Schema = "underlink.io/doctor/v1"

// Report is the whole checklist, and `underlink doctor -o json` (documented in cli/README.md).
type Report struct {
	Schema string `json:"schema"`
	// Server is the cluster's address.
	Server string `json:"server,omitempty"`
	// LocalCluster is the local Submariner cluster ID, empty when unknown; LocalBy says how it was found
	// (rules.LocalChoice), LocalReason says so in words, or why it is unknown.
	LocalCluster string   `json:"localCluster,omitempty"`
	LocalBy      string   `json:"localBy,omitempty"`
	LocalReason  string   `json:"localReason"`
	Remotes      []string `json:"remoteClusters"`
	// DefaultNetwork is the network checked by default-network-exists and where it was configured;
	// absent when none was given or found.
	DefaultNetwork *live.DefaultNetwork `json:"defaultNetwork,omitempty"`
	// Alignment is "checked", or "unchecked" when pools or configs exist and the local cluster is
	// unknown.
	Alignment string  `json:"alignment"`
	Checks    []Check `json:"checks"`
	Summary   Summary `json:"summary"`
}

// Summary counts the checks by status.
type Summary struct {
	Checks int `json:"checks"`
	Failed int `json:"failed"`
	Warned int `json:"warned"`
	Passed int `json:"passed"`
}

// Unaligned reports whether alignment could not be checked.
func (r *Report) Unaligned() bool { return r.Alignment == "unchecked" }

// Failed reports whether a check failed; the CLI exits non-zero then.
func (r *Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Options tune Run.
type Options struct {
	// Snapshot says which cluster is local, the static clusters and the default network; an empty
	// DefaultNetwork is read from the cluster (the chart's).
	Snapshot snapshot.Options
	// Server is the cluster's address, for the report.
	Server string
	// LabelPrefix starts the node labels of the underlay links (underlink-agent's --label-prefix, the
	// chart's underlay.labelPrefix); empty means api/underlay.LabelPrefix.
	LabelPrefix string
}

// Run reads the cluster through r and checks everything. It fails when the cluster cannot be read, and
// with a *rules.UnknownLocalClusterError when the local cluster given names none of its clusters.
func Run(ctx context.Context, r client.Reader, o Options) (*Report, error) {
	if o.Snapshot.APIServerServiceIP == "" {
		if ip, err := snapshot.APIServerServiceIP(ctx, r); err == nil {
			o.Snapshot.APIServerServiceIP = ip
		}
	}
	rep := &Report{Schema: Schema, Server: o.Server, Remotes: []string{}, Alignment: "checked"}
	if o.Snapshot.DefaultNetwork != "" {
		rep.DefaultNetwork = &live.DefaultNetwork{Name: o.Snapshot.DefaultNetwork, Source: "--default-network"}
	} else {
		dn, err := live.ReadDefaultNetwork(ctx, r)
		if err != nil {
			return nil, err
		}
		if dn.Name != "" {
			rep.DefaultNetwork, o.Snapshot.DefaultNetwork = &dn, dn.Name
		}
	}
	w, err := snapshot.Read(ctx, r, o.Snapshot, snapshot.Scope{})
	if err != nil {
		return nil, err
	}
	if o.Snapshot.LocalCluster != "" && w.Local == nil {
		return nil, rules.CheckLocalCluster(o.Snapshot.LocalCluster, w.Remotes)
	}
	vs := rules.AuditViolations(w)
	if w.LocalBy.Inferred() {
		vs = append(vs, rules.Violation{Rule: rules.RuleClustersKnown, Subject: "Submariner clusters", Cluster: rules.ClusterID(w.Local), Severity: rules.Warn,
			Message: w.LocalReason + "; the webhook infers it the same way, and a pool put in another cluster's CIDR would change it",
			Fix:     "set the chart's submariner.localCluster (the webhook's --local-cluster), and pass --local-cluster here"})
	}
	if rep.DefaultNetwork == nil {
		vs = append(vs, rules.Violation{Rule: rules.RuleDefaultNetworkExists, Subject: "default network", Severity: rules.Warn,
			Message: "no default network is configured: no underlink-webhook Deployment with --default-network, nor injection policy " + registration.PolicyName,
			Fix:     "install underlink with its Helm chart (network.defaultNetwork), or pass --default-network to check one"})
	}
	workloads, err := workloadViolations(ctx, r, w)
	if err != nil {
		return nil, err
	}
	vs = append(vs, workloads...)

	rep.LocalReason, rep.LocalBy = w.LocalReason, string(w.LocalBy)
	if w.Local != nil {
		rep.LocalCluster = rules.ClusterID(w.Local)
	} else if len(w.Pools)+len(w.MultusConfigs) > 0 {
		rep.Alignment = "unchecked"
	}
	for i := range w.Remotes {
		rep.Remotes = append(rep.Remotes, rules.ClusterID(&w.Remotes[i]))
	}
	for _, res := range rules.GroupByRule(vs) {
		c := Check{ID: res.Rule.ID, What: res.Rule.Description}
		for _, v := range res.Violations {
			c.Findings = append(c.Findings, findingOf(v))
		}
		rep.Checks = append(rep.Checks, finish(c))
	}
	nads, err := checkNADs(ctx, r, w)
	if err != nil {
		return nil, err
	}
	hooks, err := checkWebhooks(ctx, r)
	if err != nil {
		return nil, err
	}
	writer, _ := r.(client.Writer) // a reader from live.Connect is a full client
	inject, err := checkInjection(ctx, r, writer, o.Snapshot.DefaultNetwork)
	if err != nil {
		return nil, err
	}
	prefix := o.LabelPrefix
	if prefix == "" {
		prefix = underlay.LabelPrefix
	}
	parents, err := checkParents(ctx, r, w, prefix)
	if err != nil {
		return nil, err
	}
	rep.Checks = append(rep.Checks, nads, hooks, inject, parents, checkConflicts(w))
	for _, c := range rep.Checks {
		switch c.Status {
		case Fail:
			rep.Summary.Failed++
		case Warn:
			rep.Summary.Warned++
		default:
			rep.Summary.Passed++
		}
	}
	rep.Summary.Checks = len(rep.Checks)
	return rep, nil
}

func findingOf(v rules.Violation) Finding {
	f := Finding{Severity: v.Severity, Subject: v.Subject, Value: v.Value, Cluster: v.Cluster, Object: v.Object, Why: v.Message, Fix: v.Fix}
	if v.Field != nil {
		f.Field = v.Field.String()
	}
	return f
}

// finish sets a check's status from its findings.
func finish(c Check) Check {
	c.Status = Pass
	for _, f := range c.Findings {
		switch f.Severity {
		case rules.Deny:
			c.Status = Fail
		case rules.Warn:
			if c.Status == Pass {
				c.Status = Warn
			}
		}
	}
	return c
}

// workloadViolations checks the pods and workloads that carry network annotations, as the webhook would
// on their creation. ReplicaSets and Jobs owned by another workload are skipped: their owner is checked.
func workloadViolations(ctx context.Context, r client.Reader, w *rules.World) ([]rules.Violation, error) {
	lists := []client.ObjectList{&corev1.PodList{}, &appsv1.DeploymentList{}, &appsv1.ReplicaSetList{}, &appsv1.StatefulSetList{},
		&appsv1.DaemonSetList{}, &batchv1.JobList{}, &batchv1.CronJobList{}}
	var out []rules.Violation
	for _, l := range lists {
		if err := r.List(ctx, l); err != nil {
			return nil, fmt.Errorf("list %T: %w", l, err)
		}
		items, err := meta.ExtractList(l)
		if err != nil {
			return nil, err
		}
		for _, item := range items {
			if skipWorkload(item) {
				continue
			}
			vs, _ := rules.Check(w, item, nil)
			out = append(out, vs...)
		}
	}
	return out, nil
}

func skipWorkload(obj runtime.Object) bool {
	t, ok := rules.PodTemplateOf(obj)
	if !ok {
		return true
	}
	if (t.Kind == "ReplicaSet" || t.Kind == "Job") && metav1.GetControllerOf(t.Object) != nil {
		return true
	}
	for _, a := range registration.PodNetworkAnnotations {
		if _, ok := t.Meta.Annotations[a]; ok {
			return false
		}
	}
	return true
}

// checkNADs compares every config's NAD with what the controller would write.
func checkNADs(ctx context.Context, r client.Reader, w *rules.World) (Check, error) {
	c := Check{ID: CheckNADsInSync, What: whatNADsInSync}
	cc, sc := snapshot.LocalCIDRs(w)
	for i := range w.MultusConfigs {
		smc := &w.MultusConfigs[i]
		subject := rules.ObjectRef("SpiderMultusConfig", smc.Namespace, smc.Name)
		want, err := netconf.Build(smc, netconf.Local{ClusterCIDR: cc, ServiceCIDR: sc})
		if err != nil {
			c.Findings = append(c.Findings, Finding{Severity: rules.Deny, Subject: subject, Field: "spec", Why: err.Error(),
				Fix: "fix the config so underlink can generate its network"})
			continue
		}
		nad := &nadv1.NetworkAttachmentDefinition{}
		err = r.Get(ctx, client.ObjectKeyFromObject(smc), nad)
		ref := rules.ObjectRef("NetworkAttachmentDefinition", smc.Namespace, smc.Name)
		switch {
		case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
			c.Findings = append(c.Findings, Finding{Severity: rules.Deny, Subject: subject, Object: ref,
				Why: "its NetworkAttachmentDefinition does not exist, so pods naming this network fail at sandbox creation",
				Fix: "check that underlink-webhook runs and holds the leader lease (kubectl -n <namespace> logs deploy/underlink-webhook)"})
		case err != nil:
			return c, fmt.Errorf("read %s: %w", ref, err)
		case !metav1.IsControlledBy(nad, smc):
			c.Findings = append(c.Findings, Finding{Severity: rules.Warn, Subject: subject, Object: ref,
				Why: ref + " is not owned by the config, so underlink does not keep it up to date",
				Fix: "delete the NetworkAttachmentDefinition and let underlink generate it"})
		case nad.Spec.Config != want:
			c.Findings = append(c.Findings, Finding{Severity: rules.Deny, Subject: subject, Object: ref, Field: "spec.config", Value: nad.Spec.Config,
				Why: "holds a different chain than the config asks for: " + want,
				Fix: "check that underlink-webhook's controller runs; it rewrites the NAD within seconds"})
		}
	}
	sort.SliceStable(c.Findings, func(i, j int) bool { return c.Findings[i].Subject < c.Findings[j].Subject })
	return finish(c), nil
}

// checkWebhooks checks that the validating webhooks and one way of injecting are installed: the
// injection policy (MutatingAdmissionPolicy and binding, the chart's default) or the mutating webhook.
func checkWebhooks(ctx context.Context, r client.Reader) (Check, error) {
	c := Check{ID: CheckWebhooksRegistered, What: whatWebhooksRegistered}
	present := func(kind, name string, obj client.Object) (bool, error) {
		err := r.Get(ctx, client.ObjectKey{Name: name}, obj)
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
			return false, nil
		case apierrors.IsForbidden(err):
			c.Findings = append(c.Findings, Finding{Severity: rules.Warn, Subject: kind + "/" + name,
				Why: "cannot be read with these credentials", Fix: "run doctor with a kubeconfig that may read " + kind + "s"})
			return true, nil // unknown, and already reported
		}
		return false, fmt.Errorf("read %s %s: %w", kind, name, err)
	}
	ok, err := present("ValidatingWebhookConfiguration", registration.ConfigurationName, &admissionregistrationv1.ValidatingWebhookConfiguration{})
	if err != nil {
		return c, err
	}
	if !ok {
		c.Findings = append(c.Findings, Finding{Severity: rules.Warn, Subject: "ValidatingWebhookConfiguration/" + registration.ConfigurationName,
			Why: "is not installed, so pools, configs and pods are admitted unchecked", Fix: "install underlink with its Helm chart"})
	}
	policy, err := present("MutatingAdmissionPolicy", registration.PolicyName, &admissionregistrationv1.MutatingAdmissionPolicy{})
	if err != nil {
		return c, err
	}
	binding, err := present("MutatingAdmissionPolicyBinding", registration.PolicyName, &admissionregistrationv1.MutatingAdmissionPolicyBinding{})
	if err != nil {
		return c, err
	}
	webhook, err := present("MutatingWebhookConfiguration", registration.ConfigurationName, &admissionregistrationv1.MutatingWebhookConfiguration{})
	if err != nil {
		return c, err
	}
	switch {
	case policy && !binding:
		c.Findings = append(c.Findings, Finding{Severity: rules.Warn, Subject: "MutatingAdmissionPolicy/" + registration.PolicyName,
			Why: "has no MutatingAdmissionPolicyBinding " + registration.PolicyName + ", so the apiserver never applies it and pods get no network",
			Fix: "reinstall underlink with its Helm chart, which installs both"})
	case !policy && !webhook:
		c.Findings = append(c.Findings, Finding{Severity: rules.Warn, Subject: "MutatingAdmissionPolicy/" + registration.PolicyName,
			Why: "is not installed, nor MutatingWebhookConfiguration " + registration.ConfigurationName + ", so pods of opted-in namespaces get no default network",
			Fix: "install underlink with its Helm chart (webhook.injection=policy, or webhook on clusters older than 1.36)"})
	}
	sort.Slice(c.Findings, func(i, j int) bool { return c.Findings[i].Subject < c.Findings[j].Subject })
	return finish(c), nil
}
