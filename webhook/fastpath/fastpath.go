// Package fastpath keeps the apiserver from calling underlink-webhook for pods it would admit anyway.
//
// This controller, run by the elected leader, gives both workload webhooks of the
// ValidatingWebhookConfiguration the match condition registration.FastPathConditionName, set to
// registration.FastPath(networks that exist), so the apiserver skips the webhook for a pod whose one
// network annotation names an existing SpiderMultusConfig or NetworkAttachmentDefinition. The chart does
// not render the condition, so a `helm upgrade` never conflicts with what this controller wrote. Every
// other pod still goes to the webhook, and so does every pod while the condition is missing or "true" (a
// fresh install, no network yet): the fast path only ever skips
// calls, never admits what the webhook would deny, except in the moment between a network's deletion and
// this controller's next write (the webhook's own cache is behind by the same kind of moment).
package fastpath

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/webhook/registration"
)

// Name is the controller's name in logs and metrics.
const Name = "fastpath"

// Webhooks are the webhooks whose fast-path condition the controller keeps.
var Webhooks = []string{registration.WebhookWorkloadsOptedIn, registration.WebhookWorkloadsElsewhere}

// Networks returns the default-network values that resolve to an existing network: "namespace/name" of
// every SpiderMultusConfig and NAD, and the bare name of those in multusNamespace, sorted and unique.
func Networks(configs []spv2.SpiderMultusConfig, nads []nadv1.NetworkAttachmentDefinition, multusNamespace string) []string {
	if multusNamespace == "" {
		multusNamespace = rules.DefaultMultusNamespace
	}
	var out []string
	add := func(ns, name string) {
		out = append(out, ns+"/"+name)
		if ns == multusNamespace {
			out = append(out, name)
		}
	}
	for i := range configs {
		add(configs[i].Namespace, configs[i].Name)
	}
	for i := range nads {
		add(nads[i].Namespace, nads[i].Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Patch returns the strategic merge patch that sets the fast-path condition of the Webhooks in cfg to
// cond, adding it where they lack it (the chart does not render it), or nil when they already carry it.
// Other webhooks are left alone. A missing condition that would be "true" is not added: it changes
// nothing.
func Patch(cfg *admissionregistrationv1.ValidatingWebhookConfiguration, cond admissionregistrationv1.MatchCondition) ([]byte, error) {
	type hook struct {
		Name            string                                   `json:"name"`
		MatchConditions []admissionregistrationv1.MatchCondition `json:"matchConditions"`
	}
	var hooks []hook
	for _, w := range cfg.Webhooks {
		if !slices.Contains(Webhooks, w.Name) {
			continue
		}
		i := slices.IndexFunc(w.MatchConditions, func(c admissionregistrationv1.MatchCondition) bool { return c.Name == cond.Name })
		if (i >= 0 && w.MatchConditions[i].Expression != cond.Expression) || (i < 0 && cond.Expression != "true") {
			// matchConditions merge by name: the patch sets or adds this one and keeps the others.
			hooks = append(hooks, hook{Name: w.Name, MatchConditions: []admissionregistrationv1.MatchCondition{cond}})
		}
	}
	if len(hooks) == 0 {
		return nil, nil
	}
	return json.Marshal(map[string]any{"webhooks": hooks})
}

// Reconciler keeps the fast-path condition of one ValidatingWebhookConfiguration.
type Reconciler struct {
	// Client reads from the manager's cache (which must cache the configuration) and patches.
	Client client.Client
	// Configuration is the ValidatingWebhookConfiguration's name.
	Configuration string
	// MultusNamespace resolves bare network names; empty is kube-system.
	MultusNamespace string
}

// SetupWithManager watches the configuration, SpiderMultusConfigs and NADs; every event is one request
// for the configuration.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	key := reconcile.Request{NamespacedName: types.NamespacedName{Name: r.Configuration}}
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request { return []reconcile.Request{key} })
	return ctrl.NewControllerManagedBy(mgr).
		Named(Name).
		For(&admissionregistrationv1.ValidatingWebhookConfiguration{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetName() == r.Configuration
		}))).
		Watches(&spv2.SpiderMultusConfig{}, one).
		Watches(&nadv1.NetworkAttachmentDefinition{}, one).
		Complete(r)
}

// Reconcile writes the condition for the networks that exist now.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: r.Configuration}, cfg); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var configs spv2.SpiderMultusConfigList
	if err := r.Client.List(ctx, &configs); err != nil {
		return reconcile.Result{}, fmt.Errorf("list SpiderMultusConfigs: %w", err)
	}
	var nads nadv1.NetworkAttachmentDefinitionList
	if err := r.Client.List(ctx, &nads); err != nil && !meta.IsNoMatchError(err) {
		return reconcile.Result{}, fmt.Errorf("list NetworkAttachmentDefinitions: %w", err)
	}
	networks := Networks(configs.Items, nads.Items, r.MultusNamespace)
	patch, err := Patch(cfg, registration.FastPath(networks))
	if err != nil || patch == nil {
		return reconcile.Result{}, err
	}
	if err := r.Client.Patch(ctx, cfg, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return reconcile.Result{}, fmt.Errorf("set the fast-path condition of ValidatingWebhookConfiguration %s: %w", r.Configuration, err)
	}
	logf.FromContext(ctx).Info("fast path updated", "networks", len(networks), "skipsWebhook", len(networks) > 0 && len(networks) <= registration.MaxFastPathNetworks)
	return reconcile.Result{}, nil
}
