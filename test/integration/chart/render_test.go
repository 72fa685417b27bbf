//go:build integration

package chart

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubeschedulerv1 "k8s.io/kube-scheduler/config/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/api/underlay"
	schedulerconfigv1 "github.com/underlink/underlink/scheduler/apis/config/v1"
	"github.com/underlink/underlink/webhook/registration"
)

// chartCertModes are the helm flags that render each certificate mode as an install; cert-manager mode needs
// cert-manager's API among the capabilities (helm template has no cluster to ask).
var chartCertModes = map[string][]string{
	"self-signed":  {"--set", "certs.mode=self-signed"},
	"cert-manager": {"--set", "certs.mode=cert-manager", "--api-versions", "cert-manager.io/v1"},
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
				"CustomResourceDefinition": 5, "Deployment": 2, "DaemonSet": 1, "Service": 1, "PodDisruptionBudget": 1,
				"MutatingAdmissionPolicy": 1, "MutatingAdmissionPolicyBinding": 1, "ValidatingWebhookConfiguration": 1,
				"ServiceAccount": 3, "ConfigMap": 1,
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
				t.Error("the default injection (policy) renders the mutating webhook too")
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
	_, errOut, err := chartRunTool(t, "helm", "template", "underlink", chartDir(), "--kube-version", "1.35.4")
	if err == nil || !strings.Contains(errOut, "Kubernetes has from 1.36; this cluster is v1.35.4") || !strings.Contains(errOut, "webhook.injection=webhook") {
		t.Errorf("got err=%v\n%s\nwant advice to set webhook.injection=webhook", err, errOut)
	}
	out := chartMustTool(t, "helm", "template", "underlink", chartDir(), "--kube-version", "1.35.4", "--set", "webhook.injection=webhook")
	if !strings.Contains(out, "kind: MutatingWebhookConfiguration") || strings.Contains(out, "kind: MutatingAdmissionPolicy") {
		t.Error("webhook.injection=webhook on Kubernetes 1.35 should render the mutating webhook and no policy")
	}
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
	objs := chartObjects(t, renderChart(t))
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
	if c.ReadinessProbe == nil || c.LivenessProbe == nil {
		t.Error("webhook container lacks readiness or liveness probe")
	}
}

// The agent runs in the host network with no capability, and its init container installs exactly the
// plugins a NAD chain names (api/cniconf) plus the reference macvlan into the host's CNI bin dir.
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
	if got := init["plugins"]; len(got) != 1 || got[0] != "underlink-ipam,underlink-coordinator,macvlan" {
		t.Errorf("installs %v", got)
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	if hostPaths["cni-bin"] != "/opt/cni/bin" || hostPaths["run-underlink"] != "/run/underlink" {
		t.Errorf("host paths %v, want the CNI bin dir and the agent socket directory", hostPaths)
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
