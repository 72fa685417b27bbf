//go:build integration

package chart

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kubeschedulerv1 "k8s.io/kube-scheduler/config/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/api/cniconf"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/cni/cniinstall"
	schedulerconfigv1 "github.com/underlink/underlink/scheduler/apis/config/v1"
	"github.com/underlink/underlink/webhook/registration"
)

// chartServesPolicy are the capabilities of a cluster whose apiserver serves the MutatingAdmissionPolicy API
// (Kubernetes 1.36 and later, as the tests' own apiserver): there webhook.injection=auto picks the policy.
// helm template has no cluster to ask, and without them it picks the webhook.
var chartServesPolicy = []string{"--kube-version", "1.36.0", "--api-versions", "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"}

// chartCertModes are the helm flags that render each certificate mode as an install on such a cluster;
// cert-manager mode needs cert-manager's API among the capabilities too.
var chartCertModes = map[string][]string{
	"self-signed":  append([]string{"--set", "certs.mode=self-signed"}, chartServesPolicy...),
	"cert-manager": append([]string{"--set", "certs.mode=cert-manager", "--api-versions", "cert-manager.io/v1"}, chartServesPolicy...),
}

func TestChartLintsAndRendersInBothCertModes(t *testing.T) {
	for mode, flags := range chartCertModes {
		t.Run(mode, func(t *testing.T) {
			out := chartMustTool(t, "helm", "lint", "--strict", chartDir(), "--set", "certs.mode="+mode)
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint: %s", out)
			}
			objs := chartObjects(t, renderChart(t, flags...))
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
			}
			want := map[string]int{
				"CustomResourceDefinition": 8, "Deployment": 2, "DaemonSet": 1, "Service": 1, "PodDisruptionBudget": 1,
				"MutatingAdmissionPolicy": 1, "MutatingAdmissionPolicyBinding": 1, "ValidatingWebhookConfiguration": 1,
				// The scheduler's configuration and the Grafana dashboard.
				"ServiceAccount": 3, "ConfigMap": 2,
			}
			if mode == "cert-manager" {
				want["Issuer"], want["Certificate"] = 2, 2
			}
			for k, n := range want {
				if kinds[k] != n {
					t.Errorf("%d %s rendered, want %d", kinds[k], k, n)
				}
			}
			if mode == "self-signed" && (kinds["Issuer"] != 0 || kinds["Certificate"] != 0) {
				t.Error("self-signed mode renders cert-manager objects")
			}
			if kinds["MutatingWebhookConfiguration"] != 0 {
				t.Error("the default injection on a cluster that serves the policy API (the policy) renders the mutating webhook too")
			}
		})
	}
}

func TestChartBadValuesFailNamingTheValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
		want string
	}{
		{"unknown key", []string{"webhook.replcias=3"}, "at '/webhook': additional properties 'replcias' not allowed"},
		{"unknown top-level key", []string{"sheduler.enabled=false"}, "additional properties 'sheduler' not allowed"},
		{"wrong type", []string{"webhook.replicas=two"}, "at '/webhook/replicas': got string, want integer"},
		{"invalid CIDR", []string{"submariner.staticClusters[0].id=cluster-b", "submariner.staticClusters[0].clusterCIDR[0]=172.111.0.0/33"}, "at '/submariner/staticClusters/0/clusterCIDR/0'"},
		{"not a CIDR", []string{"submariner.staticClusters[0].id=cluster-b", "submariner.staticClusters[0].serviceCIDR[0]=10.243.0.0"}, "at '/submariner/staticClusters/0/serviceCIDR/0'"},
		{"cluster without CIDRs", []string{"submariner.staticClusters[0].id=cluster-b"}, "at '/submariner/staticClusters/0': 'anyOf' failed"},
		{"cert mode typo", []string{"certs.mode=selfsigned"}, "at '/certs/mode': value must be one of 'self-signed', 'cert-manager'"},
		{"bad duration", []string{"certs.lifetime=90d"}, "at '/certs/lifetime'"},
		{"bad default network", []string{"network.defaultNetwork=kube-system/Macvlan_Conf"}, "at '/network/defaultNetwork'"},
		{"label prefix without slash", []string{"underlay.labelPrefix=underlay.underlink.io"}, "at '/underlay/labelPrefix'"},
		{"label prefix on the scheduler alone", []string{"scheduler.pluginArgs.labelPrefix=net.example.com/"}, "at '/scheduler/pluginArgs': additional properties 'labelPrefix' not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "underlink", chartDir()}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			_, errOut, err := chartRunTool(t, "helm", args...)
			if err == nil || !strings.Contains(errOut, tc.want) {
				t.Errorf("got err=%v\n%s\nwant a failure containing %q", err, errOut, tc.want)
			}
		})
	}
}

func TestChartInjectionPolicyOnAnOldClusterFailsWithAdvice(t *testing.T) {
	_, errOut, err := chartRunTool(t, "helm", "template", "underlink", chartDir(), "--kube-version", "1.35.4", "--set", "webhook.injection=policy")
	if err == nil || !strings.Contains(errOut, "Kubernetes has from 1.36; this cluster is v1.35.4") || !strings.Contains(errOut, "webhook.injection=auto") {
		t.Errorf("got err=%v\n%s\nwant advice to set webhook.injection=auto or webhook", err, errOut)
	}
	out := chartMustTool(t, "helm", "template", "underlink", chartDir(), "--kube-version", "1.35.4", "--set", "webhook.injection=webhook")
	if !strings.Contains(out, "kind: MutatingWebhookConfiguration") || strings.Contains(out, "kind: MutatingAdmissionPolicy") {
		t.Error("webhook.injection=webhook on Kubernetes 1.35 should render the mutating webhook and no policy")
	}
}

// With default values (webhook.injection=auto) the chart renders on every supported Kubernetes, as a new
// user tries it with `helm template --kube-version`: the mutating webhook, with the RBAC and the flag that
// let the webhook patch its caBundle, wherever the apiserver does not serve the MutatingAdmissionPolicy API
// (before 1.36, or turned off with --runtime-config), and the policy alone where it does.
func TestChartDefaultInjectionFollowsTheServedAPI(t *testing.T) {
	for _, tc := range []struct {
		name   string
		flags  []string
		policy bool
	}{
		{"1.33", []string{"--kube-version", "1.33.0"}, false},
		{"1.34", []string{"--kube-version", "1.34.0"}, false},
		{"1.35", []string{"--kube-version", "1.35.0"}, false},
		{"1.36 with the API turned off", []string{"--kube-version", "1.36.0"}, false},
		{"1.36 serving the API", chartServesPolicy, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := chartObjects(t, renderChart(t, tc.flags...))
			chartAssertInjection(t, objs, tc.policy)
		})
	}
}

// chartAssertInjection checks that the rendered chart injects with the policy (policy) or with the
// mutating webhook, and carries exactly what that mode needs.
func chartAssertInjection(t *testing.T, objs []*unstructured.Unstructured, policy bool) {
	t.Helper()
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	wantPolicies, wantWebhooks := 0, 1
	if policy {
		wantPolicies, wantWebhooks = 1, 0
	}
	if kinds["MutatingAdmissionPolicy"] != wantPolicies || kinds["MutatingAdmissionPolicyBinding"] != wantPolicies ||
		kinds["MutatingWebhookConfiguration"] != wantWebhooks {
		t.Errorf("rendered %d MutatingAdmissionPolicy, %d bindings, %d MutatingWebhookConfiguration; want %d, %d, %d",
			kinds["MutatingAdmissionPolicy"], kinds["MutatingAdmissionPolicyBinding"], kinds["MutatingWebhookConfiguration"],
			wantPolicies, wantPolicies, wantWebhooks)
	}
	var dep appsv1.Deployment
	chartDecodeStrict(t, chartFind(t, objs, "Deployment", "underlink-webhook"), &dep)
	got := chartFlagValues(dep.Spec.Template.Spec.Containers[0].Args)["cert-mutating-webhook-configuration"]
	if policy != (len(got) == 0) {
		t.Errorf("--cert-mutating-webhook-configuration=%v with the policy %v: the webhook must patch the caBundle of the mutating webhook exactly when the chart installs one", got, policy)
	}
	if patch := chartWebhookMayPatchMutating(t, objs); patch == policy {
		t.Errorf("the webhook's RBAC lets it patch the mutating webhook configuration: %v, with the policy %v", patch, policy)
	}
}

// chartWebhookMayPatchMutating reports whether a rendered webhook ClusterRole grants patch on the chart's
// own MutatingWebhookConfiguration.
func chartWebhookMayPatchMutating(t *testing.T, objs []*unstructured.Unstructured) bool {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() != "ClusterRole" || !strings.HasPrefix(o.GetName(), "underlink-webhook") {
			continue
		}
		var r rbacv1.ClusterRole
		chartDecodeStrict(t, o, &r)
		for _, rule := range r.Rules {
			if slices.Contains(rule.Resources, "mutatingwebhookconfigurations") && slices.Contains(rule.Verbs, "patch") &&
				(len(rule.ResourceNames) == 0 || slices.Contains(rule.ResourceNames, registration.ConfigurationName)) {
				return true
			}
		}
	}
	return false
}

func TestChartCertManagerModeWithoutCertManagerFailsWithAdvice(t *testing.T) {
	_, errOut, err := chartRunTool(t, "helm", "template", "underlink", chartDir(), "--set", "certs.mode=cert-manager")
	if err == nil || !strings.Contains(errOut, "cert-manager is not installed") || !strings.Contains(errOut, "certs.mode=self-signed") {
		t.Errorf("got err=%v\n%s\nwant advice to install cert-manager or use certs.mode=self-signed", err, errOut)
	}
}

// The admission objects the chart renders are exactly webhook/registration's, pointed at the chart's
// Service, for each injection (the policy by default, with the configured network and scheduler in it),
// and the webhook Deployment, its Service and its flags agree on names and ports.
func TestChartWebhookConfigurationsAreTheWebhooksContract(t *testing.T) {
	for _, inj := range []registration.Injection{registration.InjectionWebhook, registration.InjectionPolicy} {
		objs := chartObjects(t, renderChart(t, "--set", "webhook.injection="+string(inj), "--set", "webhook.schedulerName=underlay-sched",
			"--set", "network.defaultNetwork=kube-system/other-conf"))
		var svc corev1.Service
		chartDecodeStrict(t, chartFind(t, objs, "Service", "underlink-webhook"), &svc)
		ref := registration.Options{Service: &admissionregistrationv1.ServiceReference{Namespace: chartNamespace, Name: svc.Name, Port: ptr.To[int32](443)}, Injection: inj}
		if inj == registration.InjectionWebhook {
			var mw admissionregistrationv1.MutatingWebhookConfiguration
			chartDecodeStrict(t, chartFind(t, objs, "MutatingWebhookConfiguration", registration.ConfigurationName), &mw)
			if want := registration.Mutating(ref).Webhooks; !reflect.DeepEqual(mw.Webhooks, want) {
				t.Errorf("mutating webhooks differ from webhook/registration:\n got %+v\nwant %+v", mw.Webhooks, want)
			}
		} else {
			wantPolicy, wantBinding := registration.InjectPolicy(registration.Policy{DefaultNetwork: "kube-system/other-conf", SchedulerName: "underlay-sched"})
			var policy admissionregistrationv1.MutatingAdmissionPolicy
			chartDecodeStrict(t, chartFind(t, objs, "MutatingAdmissionPolicy", registration.PolicyName), &policy)
			if !reflect.DeepEqual(policy.Spec, wantPolicy.Spec) {
				t.Errorf("injection policy differs from webhook/registration:\n got %+v\nwant %+v", policy.Spec, wantPolicy.Spec)
			}
			var binding admissionregistrationv1.MutatingAdmissionPolicyBinding
			chartDecodeStrict(t, chartFind(t, objs, "MutatingAdmissionPolicyBinding", registration.PolicyName), &binding)
			if !reflect.DeepEqual(binding.Spec, wantBinding.Spec) {
				t.Errorf("injection policy binding differs from webhook/registration:\n got %+v\nwant %+v", binding.Spec, wantBinding.Spec)
			}
		}
		var vw admissionregistrationv1.ValidatingWebhookConfiguration
		chartDecodeStrict(t, chartFind(t, objs, "ValidatingWebhookConfiguration", registration.ConfigurationName), &vw)
		if want := registration.Validating(ref).Webhooks; !reflect.DeepEqual(vw.Webhooks, want) {
			t.Errorf("injection %s: validating webhooks differ from webhook/registration:\n got %+v\nwant %+v", inj, vw.Webhooks, want)
		}
		var dep appsv1.Deployment
		chartDecodeStrict(t, chartFind(t, objs, "Deployment", "underlink-webhook"), &dep)
		flags := chartFlagValues(dep.Spec.Template.Spec.Containers[0].Args)
		want := map[string]string{"fast-path-webhook-configuration": vw.Name, "cert-validating-webhook-configuration": vw.Name}
		if inj == registration.InjectionWebhook {
			want["cert-mutating-webhook-configuration"] = registration.ConfigurationName
		} else if got := flags["cert-mutating-webhook-configuration"]; len(got) != 0 {
			t.Errorf("injection policy: --cert-mutating-webhook-configuration=%v names a configuration the chart does not install", got)
		}
		for flag, w := range want {
			if got := flags[flag]; len(got) != 1 || got[0] != w {
				t.Errorf("injection %s: --%s=%v, want %s", inj, flag, got, w)
			}
		}
	}
	objs := chartObjects(t, renderChart(t, chartServesPolicy...))
	// With the default values (no scheduler name) the chart renders the policy without scheduler logic.
	wantPolicy, _ := registration.InjectPolicy(registration.Policy{DefaultNetwork: "kube-system/macvlan-conf"})
	var policy admissionregistrationv1.MutatingAdmissionPolicy
	chartDecodeStrict(t, chartFind(t, objs, "MutatingAdmissionPolicy", registration.PolicyName), &policy)
	if !reflect.DeepEqual(policy.Spec, wantPolicy.Spec) {
		t.Errorf("default injection policy differs from webhook/registration's without a scheduler:\n got %+v\nwant %+v", policy.Spec, wantPolicy.Spec)
	}
	var svc corev1.Service
	chartDecodeStrict(t, chartFind(t, objs, "Service", "underlink-webhook"), &svc)
	var dep appsv1.Deployment
	chartDecodeStrict(t, chartFind(t, objs, "Deployment", "underlink-webhook"), &dep)
	c := dep.Spec.Template.Spec.Containers[0]
	flags := chartFlagValues(c.Args)
	for flag, want := range map[string]string{
		"cert-service": svc.Name, "cert-namespace": chartNamespace, "cert-mode": "self-signed",
	} {
		if got := flags[flag]; len(got) != 1 || got[0] != want {
			t.Errorf("--%s=%v, want %s", flag, got, want)
		}
	}
	port := map[string]int32{}
	for _, p := range c.Ports {
		port[p.Name] = p.ContainerPort
	}
	if svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort.StrVal != "webhook" || port["webhook"] == 0 ||
		flags["webhook-port"][0] != strconv.Itoa(int(port["webhook"])) {
		t.Errorf("Service 443 → %v, container ports %v, --webhook-port=%v: they must agree", svc.Spec.Ports[0].TargetPort, port, flags["webhook-port"])
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("Service selects %s=%s, the webhook pods have %q", k, v, dep.Spec.Template.Labels[k])
		}
	}
	if dep.Spec.Template.Labels[registration.InjectLabel] != registration.InjectDisabled {
		t.Errorf("webhook pods must carry %s=%s to stay out of their own webhooks", registration.InjectLabel, registration.InjectDisabled)
	}
	if *dep.Spec.Replicas != 2 || dep.Spec.Template.Spec.Affinity == nil || dep.Spec.Template.Spec.Affinity.PodAntiAffinity == nil {
		t.Errorf("webhook: %d replicas, affinity %+v; want 2 spread by anti-affinity", *dep.Spec.Replicas, dep.Spec.Template.Spec.Affinity)
	}
	// Admission fails closed without the webhook: it must not be the first pod evicted, nor all its
	// replicas in one zone.
	if got := dep.Spec.Template.Spec.PriorityClassName; got != "system-cluster-critical" {
		t.Errorf("webhook priorityClassName %q, want system-cluster-critical", got)
	}
	if tsc := dep.Spec.Template.Spec.TopologySpreadConstraints; len(tsc) != 1 || tsc[0].TopologyKey != corev1.LabelTopologyZone ||
		tsc[0].WhenUnsatisfiable != corev1.ScheduleAnyway || tsc[0].LabelSelector == nil ||
		!labels.SelectorFromSet(tsc[0].LabelSelector.MatchLabels).Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("webhook topology spread %+v, want its own pods spread over %s, ScheduleAnyway", tsc, corev1.LabelTopologyZone)
	}
	if c.ReadinessProbe == nil || c.LivenessProbe == nil {
		t.Error("webhook container lacks readiness or liveness probe")
	}
}

// The agent runs in the host network with no capability, and its init container installs exactly the
// plugins a NAD chain names (api/cniconf), its own copy of the reference macvlan among them, so it never
// overwrites a macvlan binary another package owns in the host's CNI bin dir.
func TestChartAgentIsMinimal(t *testing.T) {
	objs := chartObjects(t, renderChart(t, "--set", "agent.cniBinDir=/opt/cni/bin"))
	var ds appsv1.DaemonSet
	chartDecodeStrict(t, chartFind(t, objs, "DaemonSet", "underlink-agent"), &ds)
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork {
		t.Error("the agent must run in the host network (it watches the node's NICs)")
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.Capabilities == nil || len(sc.Capabilities.Add) != 0 || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
			sc.Privileged != nil && *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: security context %+v, want all capabilities dropped, none added, no escalation", c.Name, sc)
		}
	}
	if len(spec.InitContainers) != 1 {
		t.Fatalf("%d init containers, want the CNI installer", len(spec.InitContainers))
	}
	init := chartFlagValues(spec.InitContainers[0].Args)
	// The relay's plugin process first (cniinstall refuses the relay without it, or after it).
	want := []string{cniinstall.Companions[cniconf.IPAMType], cniconf.IPAMType, cniconf.CoordinatorType, cniconf.MacvlanType}
	if got := init["plugins"]; len(got) != 1 || got[0] != strings.Join(want, ",") {
		t.Errorf("installs %v", got)
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	if hostPaths["cni-bin"] != "/opt/cni/bin" || hostPaths["run-underlink"] != "/run/underlink" || hostPaths["spiderpool-socket"] != "/var/run/spidernet" {
		t.Errorf("host paths %v, want the CNI bin dir, the agent socket directory and Spiderpool's socket directory", hostPaths)
	}
	if got := chartFlagValues(spec.Containers[0].Args)["spiderpool-socket"]; len(got) != 1 || got[0] != "/var/run/spidernet/spiderpool.sock" {
		t.Errorf("--spiderpool-socket %v, want Spiderpool's socket", got)
	}
}

// TestChartWebhookRollsWithoutAnAdmissionGap: a replica drains (preStop sleep) before it stops, and on
// the host network the Deployment replaces one replica at a time instead of surging, since a surge
// replica would find its ports taken on every node that runs one (the e2e upgrade step rolls it under
// load).
func TestChartWebhookRollsWithoutAnAdmissionGap(t *testing.T) {
	for _, c := range []struct {
		hostNetwork              bool
		maxSurge, maxUnavailable string
	}{{false, "1", "0"}, {true, "0", "1"}} {
		objs := chartObjects(t, renderChart(t, "--set", fmt.Sprintf("webhook.hostNetwork=%t", c.hostNetwork)))
		var d appsv1.Deployment
		chartDecodeStrict(t, chartFind(t, objs, "Deployment", "underlink-webhook"), &d)
		ru := d.Spec.Strategy.RollingUpdate
		if ru == nil || ru.MaxSurge.String() != c.maxSurge || ru.MaxUnavailable.String() != c.maxUnavailable {
			t.Errorf("hostNetwork=%t: rolling update %+v, want maxSurge %s, maxUnavailable %s", c.hostNetwork, ru, c.maxSurge, c.maxUnavailable)
		}
		ctr := d.Spec.Template.Spec.Containers[0]
		if ctr.Lifecycle == nil || ctr.Lifecycle.PreStop == nil || ctr.Lifecycle.PreStop.Sleep == nil || ctr.Lifecycle.PreStop.Sleep.Seconds != 5 {
			t.Errorf("hostNetwork=%t: preStop %+v, want a 5 s sleep", c.hostNetwork, ctr.Lifecycle)
		}
	}
}

// underlayNetworkPlugin is scheduler/underlaynetwork.Name, spelt out so this package does not compile the
// scheduler framework.
const underlayNetworkPlugin = "UnderlayNetwork"

// The scheduler's configuration is deploy/scheduler's second-scheduler configuration with the release's
// namespace and names: it decodes strictly as kube-scheduler v1.37 reads it, the UnderlayNetwork arguments
// decode and validate as the plugin does, and the Lease and profile carry scheduler.name.
func TestChartSchedulerConfigurationIsDeploySchedulers(t *testing.T) {
	objs := chartObjects(t, renderChart(t, "--set", "scheduler.name=underlay-sched", "--set", "scheduler.pluginArgs.defaultNetwork=kube-system/macvlan-conf"))
	var cm corev1.ConfigMap
	chartDecodeStrict(t, chartFind(t, objs, "ConfigMap", "underlink-scheduler"), &cm)
	var cfg kubeschedulerv1.KubeSchedulerConfiguration
	if err := yaml.UnmarshalStrict([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatalf("the chart's KubeSchedulerConfiguration does not decode strictly: %v", err)
	}
	le := cfg.LeaderElection
	if le.LeaderElect == nil || !*le.LeaderElect || le.ResourceName != "underlay-sched" || le.ResourceNamespace != chartNamespace {
		t.Errorf("leader election %+v, want its own Lease underlay-sched in %s", le, chartNamespace)
	}
	if len(cfg.Profiles) != 1 || ptr.Deref(cfg.Profiles[0].SchedulerName, "") != "underlay-sched" {
		t.Fatalf("profiles %+v, want one named underlay-sched", cfg.Profiles)
	}
	p := cfg.Profiles[0]
	if p.Plugins == nil || len(p.Plugins.MultiPoint.Enabled) != 1 || p.Plugins.MultiPoint.Enabled[0].Name != underlayNetworkPlugin {
		t.Errorf("plugins %+v, want %s at every extension point", p.Plugins, underlayNetworkPlugin)
	}
	if len(p.PluginConfig) != 1 {
		t.Fatalf("pluginConfig %+v", p.PluginConfig)
	}
	args, err := schedulerconfigv1.Decode(&runtime.Unknown{Raw: p.PluginConfig[0].Args.Raw})
	if err != nil {
		t.Fatal(err)
	}
	if args.DefaultNetwork != "kube-system/macvlan-conf" || args.LabelPrefix != underlay.LabelPrefix {
		t.Errorf("plugin args %+v, want scheduler.pluginArgs over deploy/scheduler's", args)
	}
	// The node-label contract (api/underlay): the agent writes the labels the scheduler reads, both from
	// the chart's one underlay.labelPrefix.
	for _, prefix := range []string{"", "net.example.com/"} {
		set := []string{"--set", "scheduler.name=underlay-sched"}
		want := underlay.LabelPrefix
		if prefix != "" {
			set, want = append(set, "--set", "underlay.labelPrefix="+prefix), prefix
		}
		objs := chartObjects(t, renderChart(t, set...))
		var cm corev1.ConfigMap
		chartDecodeStrict(t, chartFind(t, objs, "ConfigMap", "underlink-scheduler"), &cm)
		var cfg kubeschedulerv1.KubeSchedulerConfiguration
		if err := yaml.UnmarshalStrict([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
			t.Fatal(err)
		}
		args, err := schedulerconfigv1.Decode(&runtime.Unknown{Raw: cfg.Profiles[0].PluginConfig[0].Args.Raw})
		if err != nil {
			t.Fatal(err)
		}
		var ds appsv1.DaemonSet
		chartDecodeStrict(t, chartFind(t, objs, "DaemonSet", "underlink-agent"), &ds)
		agent := chartFlagValues(ds.Spec.Template.Spec.Containers[0].Args)["label-prefix"]
		if args.LabelPrefix != want || len(agent) != 1 || agent[0] != want {
			t.Errorf("underlay.labelPrefix=%q: scheduler labelPrefix %q, agent --label-prefix %v; want both %q", prefix, args.LabelPrefix, agent, want)
		}
	}
	var dep appsv1.Deployment
	chartDecodeStrict(t, chartFind(t, objs, "Deployment", "underlink-scheduler"), &dep)
	if dep.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("a changed configuration would not roll the scheduler")
	}
}

// With the Prometheus Operator's API served and the NetworkPolicy on, every ServiceMonitor endpoint reaches
// a container port through exactly one Service of its component, and the NetworkPolicy selects the webhook's
// pods and admits exactly their ports: the webhook port from the apiserver's CIDRs, the metrics port from
// the configured peers, the probe port. A selector or port name that drifted would silently scrape or admit
// nothing, which no install error would show.
func TestChartMonitoringAndNetworkPolicyReachTheComponents(t *testing.T) {
	objs := chartObjects(t, renderChart(t, "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
		"--set", "webhook.networkPolicy.enabled=true", "--set", "webhook.networkPolicy.apiServerCIDRs[0]=10.0.0.0/8",
		"--set-json", `webhook.networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]`))
	pods := map[string]corev1.PodTemplateSpec{}
	for _, o := range objs {
		switch o.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			chartDecodeStrict(t, o, &d)
			pods[d.Name] = d.Spec.Template
		case "DaemonSet":
			var d appsv1.DaemonSet
			chartDecodeStrict(t, o, &d)
			pods[d.Name] = d.Spec.Template
		}
	}
	monitors := 0
	for _, o := range objs {
		if o.GetKind() != "ServiceMonitor" {
			continue
		}
		monitors++
		selector, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
		endpoints, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
		svc := chartOneSelected(t, objs, o.GetName(), selector)
		for _, e := range endpoints {
			port, _ := e.(map[string]any)["port"].(string)
			if !chartServiceReachesPort(svc, pods, port) {
				t.Errorf("ServiceMonitor %s scrapes port %q, which Service %s does not take to a container port of its pods", o.GetName(), port, svc.Name)
			}
		}
	}
	if monitors != 2 {
		t.Errorf("%d ServiceMonitors rendered with the Prometheus Operator's API, want the webhook's and the agent's", monitors)
	}

	var np networkingv1.NetworkPolicy
	chartDecodeStrict(t, chartFind(t, objs, "NetworkPolicy", "underlink-webhook"), &np)
	webhook := pods["underlink-webhook"]
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || !sel.Matches(labels.Set(webhook.Labels)) {
		t.Errorf("NetworkPolicy selects %v, not the webhook's pods %v (%v)", np.Spec.PodSelector, webhook.Labels, err)
	}
	from := map[int32]string{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			b, _ := yaml.Marshal(rule.From)
			from[p.Port.IntVal] = strings.TrimSpace(string(b))
		}
	}
	ports := map[string]int32{}
	for _, p := range webhook.Spec.Containers[0].Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, want := range map[string]string{
		"webhook": "- ipBlock:\n    cidr: 10.0.0.0/8",
		"metrics": "- namespaceSelector:\n    matchLabels:\n      kubernetes.io/metadata.name: monitoring",
		"probes":  "null", // any source: the kubelet probes from the node
	} {
		got, ok := from[ports[name]]
		if !ok || got != want {
			t.Errorf("NetworkPolicy admits %s port %d from %q (present %v), want from %q", name, ports[name], got, ok, want)
		}
	}
	if len(from) != len(ports) {
		t.Errorf("NetworkPolicy admits ports %v; the webhook's container ports are %v", from, ports)
	}

	for _, o := range chartObjects(t, renderChart(t)) {
		if o.GetKind() == "ServiceMonitor" || o.GetKind() == "NetworkPolicy" {
			t.Errorf("default values without the Prometheus Operator's API render %s %s", o.GetKind(), o.GetName())
		}
	}
}

// chartOneSelected returns the one rendered Service whose labels match selector.
func chartOneSelected(t *testing.T, objs []*unstructured.Unstructured, monitor string, selector map[string]string) corev1.Service {
	t.Helper()
	var hits []corev1.Service
	for _, o := range objs {
		if o.GetKind() == "Service" && labels.SelectorFromSet(selector).Matches(labels.Set(o.GetLabels())) {
			var s corev1.Service
			chartDecodeStrict(t, o, &s)
			hits = append(hits, s)
		}
	}
	if len(hits) != 1 {
		t.Fatalf("ServiceMonitor %s selects %d Services, want 1", monitor, len(hits))
	}
	return hits[0]
}

// chartServiceReachesPort reports whether svc has a port named port whose target is a named container port
// of a pod template the Service selects.
func chartServiceReachesPort(svc corev1.Service, pods map[string]corev1.PodTemplateSpec, port string) bool {
	for _, sp := range svc.Spec.Ports {
		if sp.Name != port {
			continue
		}
		for _, tmpl := range pods {
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(tmpl.Labels)) {
				continue
			}
			for _, c := range tmpl.Spec.Containers {
				for _, cp := range c.Ports {
					if cp.Name == sp.TargetPort.StrVal {
						return true
					}
				}
			}
		}
	}
	return false
}
