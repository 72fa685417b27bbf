package chartgen

import (
	"strings"
	"testing"

	"github.com/underlink/underlink/test"
)

// The chart's CRDs, scheduler configuration and webhook configurations are generated; a change to api/,
// deploy/scheduler or webhook/registration that was not carried into the chart fails here (and in
// `make verify`).
func TestChartIsInStepWithItsSources(t *testing.T) {
	files, err := Files(test.Path("deploy", "crds"), test.Path("deploy", "scheduler", "underlink-scheduler.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("generated %d files, want the CRDs, the scheduler configuration and the webhook configurations", len(files))
	}
	if d := Diff(test.Path("deploy", "helm", "underlink"), files); len(d) > 0 {
		t.Errorf("the chart is stale in %s: run `make generate-chart`", strings.Join(d, ", "))
	}
}

func TestWebhookTemplatePointsAtTheChartService(t *testing.T) {
	w, err := Webhooks()
	if err != nil {
		t.Fatal(err)
	}
	s := string(w)
	for _, want := range []string{
		"kind: MutatingWebhookConfiguration", "kind: ValidatingWebhookConfiguration",
		`name: {{ include "underlink.webhookServiceName" . }}`, "namespace: {{ .Release.Namespace }}",
		"path: /mutate-pod", "port: 443", "cert-manager.io/inject-ca-from",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("webhook template lacks %q", want)
		}
	}
	if strings.Contains(s, "PLACEHOLDER") {
		t.Error("webhook template still holds a placeholder")
	}
}
