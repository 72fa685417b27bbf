package chartgen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/api/underlay"
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

// The node-label prefix is one contract (api/underlay): the chart's default is the package's, and
// deploy/scheduler's configurations leave it to the plugin's default, which is the agent's, so the chart's
// one value underlay.labelPrefix, which renders both the agent's --label-prefix and the scheduler's
// labelPrefix, is the only place to change it.
func TestLabelPrefixIsTheAPIDefault(t *testing.T) {
	var values struct {
		Underlay struct {
			LabelPrefix string `json:"labelPrefix"`
		} `json:"underlay"`
	}
	raw, err := os.ReadFile(test.Path("deploy", "helm", "underlink", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	if values.Underlay.LabelPrefix != underlay.LabelPrefix {
		t.Errorf("values.yaml underlay.labelPrefix is %q, want api/underlay.LabelPrefix %q", values.Underlay.LabelPrefix, underlay.LabelPrefix)
	}

	configs, _ := filepath.Glob(test.Path("deploy", "scheduler", "*.yaml"))
	if len(configs) == 0 {
		t.Fatal("no scheduler configurations in deploy/scheduler")
	}
	for _, path := range configs {
		var cfg struct {
			Profiles []struct {
				PluginConfig []struct {
					Name string         `json:"name"`
					Args map[string]any `json:"args"`
				} `json:"pluginConfig"`
			} `json:"profiles"`
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, p := range cfg.Profiles {
			for _, pc := range p.PluginConfig {
				if v, ok := pc.Args["labelPrefix"]; ok && pc.Name == "UnderlayNetwork" {
					t.Errorf("%s sets labelPrefix %v; leave it to api/underlay.LabelPrefix, which the agent shares (the chart sets both from underlay.labelPrefix)", filepath.Base(path), v)
				}
			}
		}
	}
}
