// Package chartgen writes the parts of the underlink Helm chart that have another source of truth: the CRDs
// (copied verbatim from deploy/crds, which controller-gen writes from api/), the scheduler configuration
// (deploy/scheduler) and the webhook configurations (rendered from webhook/registration, the contract
// between the webhook's HTTP paths and the apiserver).
// `make generate-chart` runs it; its test fails when the chart has drifted from either source.
package chartgen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/webhook/registration"
)

// Paths inside the chart directory.
const (
	CRDDir           = "files/crds"
	WebhooksTemplate = "templates/webhook/webhookconfigurations.yaml"
	// SchedulerConfig is deploy/scheduler/underlink-scheduler.yaml, which the chart's ConfigMap renders with
	// the release's namespace, scheduler name and plugin arguments.
	SchedulerConfig = "files/scheduler/underlink-scheduler.yaml"
)

// Placeholders the webhook configurations are built with, replaced by template expressions.
const (
	namespacePlaceholder = "UNDERLINK-NAMESPACE-PLACEHOLDER"
	servicePlaceholder   = "UNDERLINK-SERVICE-PLACEHOLDER"
	networkPlaceholder   = "UNDERLINK-DEFAULT-NETWORK-PLACEHOLDER"
	schedulerPlaceholder = "UNDERLINK-SCHEDULER-NAME-PLACEHOLDER"
	// Lines that become the chart's choice between the two injection policies.
	schedulerIf   = "UNDERLINK-IF-SCHEDULER-PLACEHOLDER\n"
	schedulerElse = "UNDERLINK-ELSE-SCHEDULER-PLACEHOLDER\n"
	schedulerEnd  = "UNDERLINK-END-SCHEDULER-PLACEHOLDER\n"
)

// Files returns every generated file of the chart, by path relative to the chart directory, from the CRD
// directory crdDir and the scheduler configuration schedulerConfig.
func Files(crdDir, schedulerConfig string) (map[string][]byte, error) {
	out := map[string][]byte{}
	entries, err := os.ReadDir(crdDir)
	if err != nil {
		return nil, fmt.Errorf("read CRDs: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(crdDir, e.Name()))
		if err != nil {
			return nil, err
		}
		out[filepath.Join(CRDDir, e.Name())] = b
	}
	sched, err := os.ReadFile(schedulerConfig)
	if err != nil {
		return nil, fmt.Errorf("read the scheduler configuration: %w", err)
	}
	out[SchedulerConfig] = sched
	w, err := Webhooks()
	if err != nil {
		return nil, err
	}
	out[WebhooksTemplate] = w
	return out, nil
}

// Write replaces the generated files under chartDir with files, removing generated CRDs no longer made.
func Write(chartDir string, files map[string][]byte) error {
	old, _ := filepath.Glob(filepath.Join(chartDir, CRDDir, "*.yaml"))
	for _, p := range old {
		rel, _ := filepath.Rel(chartDir, p)
		if _, keep := files[rel]; !keep {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	for rel, b := range files {
		p := filepath.Join(chartDir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Diff lists the generated files under chartDir that differ from files (missing, stale or extra).
func Diff(chartDir string, files map[string][]byte) []string {
	var out []string
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(chartDir, rel))
		if err != nil || !bytes.Equal(got, want) {
			out = append(out, rel)
		}
	}
	have, _ := filepath.Glob(filepath.Join(chartDir, CRDDir, "*.yaml"))
	for _, p := range have {
		rel, _ := filepath.Rel(chartDir, p)
		if _, ok := files[rel]; !ok {
			out = append(out, rel+" (not in deploy/crds)")
		}
	}
	slices.Sort(out)
	return out
}

// Webhooks renders the chart template of the admission objects from webhook/registration: the webhooks
// exactly as the package builds them, pointed at the chart's Service (port 443), with the chart's labels
// and, in cert-manager mode, cainjector's annotation; and by webhook.injection either the injection
// policy and its binding (policy) or the mutating webhook (webhook), as "underlink.injection" resolves
// webhook.injection (auto, the default: the policy where the apiserver serves it), with the validating
// webhooks of that injection.
func Webhooks() ([]byte, error) {
	var docs []string
	for _, inj := range []registration.Injection{registration.InjectionWebhook, registration.InjectionPolicy} {
		o := registration.Options{Service: &admissionregistrationv1.ServiceReference{
			Namespace: namespacePlaceholder, Name: servicePlaceholder, Port: ptr.To[int32](443),
		}, Injection: inj}
		v, err := yaml.Marshal(map[string]any{"webhooks": registration.Validating(o).Webhooks})
		if err != nil {
			return nil, err
		}
		type object struct {
			kind, name string
			caBundles  bool
			body       []byte
		}
		var objs []object
		if inj == registration.InjectionWebhook {
			m, err := yaml.Marshal(map[string]any{"webhooks": registration.Mutating(o).Webhooks})
			if err != nil {
				return nil, err
			}
			objs = append(objs, object{"MutatingWebhookConfiguration", registration.ConfigurationName, true, m})
		} else {
			// The policy holds the scheduler logic only when a scheduler is configured (it runs for every
			// pod of an opted-in namespace), so the chart renders one policy or the other.
			withScheduler, binding := registration.InjectPolicy(registration.Policy{DefaultNetwork: networkPlaceholder, SchedulerName: schedulerPlaceholder})
			networkOnly, _ := registration.InjectPolicy(registration.Policy{DefaultNetwork: networkPlaceholder})
			var specs [2][]byte
			for i, p := range []*admissionregistrationv1.MutatingAdmissionPolicy{withScheduler, networkOnly} {
				b, err := yaml.Marshal(map[string]any{"spec": p.Spec})
				if err != nil {
					return nil, err
				}
				specs[i] = b
			}
			ps := append(append(append(append([]byte(schedulerIf), specs[0]...), schedulerElse...), specs[1]...), schedulerEnd...)
			bs, err := yaml.Marshal(map[string]any{"spec": binding.Spec})
			if err != nil {
				return nil, err
			}
			objs = append(objs, object{"MutatingAdmissionPolicy", withScheduler.Name, false, ps}, object{"MutatingAdmissionPolicyBinding", binding.Name, false, bs})
		}
		objs = append(objs, object{"ValidatingWebhookConfiguration", registration.ConfigurationName, true, v})
		doc := ""
		for _, obj := range objs {
			text, err := configuration(obj.kind, obj.name, obj.caBundles, obj.body)
			if err != nil {
				return nil, err
			}
			doc += text
		}
		docs = append(docs, doc)
	}
	var b bytes.Buffer
	b.WriteString(`{{- /*
Generated by ` + "`make generate-chart`" + ` (hack/chartgen) from webhook/registration: paths, rules,
selectors, failure policies, timeouts and the injection policy are the webhook's contract. Do not edit;
change the package.
*/ -}}
{{- include "underlink.requireCertManager" . }}
{{- include "underlink.requireInjectionPolicy" . }}
{{- if eq (include "underlink.injection" .) "webhook" }}
`)
	b.WriteString(docs[0])
	b.WriteString("{{- else }}\n")
	b.WriteString(docs[1])
	b.WriteString("{{- end }}\n")
	out := strings.ReplaceAll(b.String(), namespacePlaceholder, "{{ .Release.Namespace }}")
	out = strings.ReplaceAll(out, servicePlaceholder, `{{ include "underlink.webhookServiceName" . }}`)
	out = strings.ReplaceAll(out, networkPlaceholder, `{{ .Values.network.defaultNetwork }}`)
	out = strings.ReplaceAll(out, schedulerPlaceholder, `{{ .Values.webhook.schedulerName }}`)
	out = strings.ReplaceAll(out, schedulerIf, "{{- if .Values.webhook.schedulerName }}\n")
	out = strings.ReplaceAll(out, schedulerElse, "{{- else }}\n")
	out = strings.ReplaceAll(out, schedulerEnd, "{{- end }}\n")
	return []byte(out), nil
}

// configuration is one admission object of the template: kind and name, the chart's labels, cainjector's
// annotation in cert-manager mode when caBundles is set, and body (the object's fields after metadata).
func configuration(kind, name string, caBundles bool, body []byte) (string, error) {
	if bytes.Contains(body, []byte("{{")) {
		return "", fmt.Errorf("webhook/registration output for %s contains '{{', which Helm would read as a template action", kind)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `---
apiVersion: admissionregistration.k8s.io/v1
kind: %s
metadata:
  name: %s
  labels:
    {{- include "underlink.labels" . | nindent 4 }}
    app.kubernetes.io/component: webhook
`, kind, name)
	if caBundles {
		b.WriteString(`  {{- if eq .Values.certs.mode "cert-manager" }}
  annotations:
    # cert-manager's cainjector copies the serving certificate's CA into every caBundle below.
    cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "underlink.webhookCertificate" . }}
  {{- end }}
`)
	}
	b.Write(body)
	return b.String(), nil
}
