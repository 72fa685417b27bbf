package fastpath

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/webhook/registration"
)

func TestNetworksAreWhatPodsWrite(t *testing.T) {
	configs := []spv2.SpiderMultusConfig{{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "macvlan-conf"}}}
	nads := []nadv1.NetworkAttachmentDefinition{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "macvlan-conf"}}, // the config's own NAD
		{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "sriov"}},
	}
	got := Networks(configs, nads, "")
	want := []string{"apps/sriov", "kube-system/macvlan-conf", "macvlan-conf"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Networks = %v, want %v (bare names only for the Multus namespace)", got, want)
	}
	if got := Networks(configs, nil, "multus"); !reflect.DeepEqual(got, []string{"kube-system/macvlan-conf"}) {
		t.Errorf("with Multus in namespace multus: %v", got)
	}
}

// TestPatchAddsOrSetsTheCondition: the chart renders no fast-path condition; the patch adds it to the two
// workload webhooks, then sets it when the networks change, and writes nothing once it is current.
func TestPatchAddsOrSetsTheCondition(t *testing.T) {
	cfg := registration.Validating(registration.Options{URL: "https://127.0.0.1:9443"})
	cond := registration.FastPath([]string{"kube-system/macvlan-conf"})
	patch, err := Patch(cfg, cond)
	if err != nil || patch == nil {
		t.Fatalf("Patch = %s, %v; want a patch of the two workload webhooks", patch, err)
	}
	var got struct {
		Webhooks []struct {
			Name            string                                   `json:"name"`
			MatchConditions []admissionregistrationv1.MatchCondition `json:"matchConditions"`
		} `json:"webhooks"`
	}
	if err := json.Unmarshal(patch, &got); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range got.Webhooks {
		names = append(names, w.Name)
		if len(w.MatchConditions) != 1 || w.MatchConditions[0] != cond {
			t.Errorf("%s: patch sets %+v, want only the fast-path condition", w.Name, w.MatchConditions)
		}
	}
	if !reflect.DeepEqual(names, Webhooks) {
		t.Errorf("patch touches %v, want %v", names, Webhooks)
	}

	// Once applied, there is nothing more to write.
	for i := range cfg.Webhooks {
		if slices.Contains(Webhooks, cfg.Webhooks[i].Name) {
			cfg.Webhooks[i].MatchConditions = registration.SetMatchCondition(cfg.Webhooks[i].MatchConditions, cond)
		}
	}
	if patch, err := Patch(cfg, cond); err != nil || patch != nil {
		t.Errorf("up to date: Patch = %s, %v; want none", patch, err)
	}
	// The networks change: the existing condition is set again (the patch merges by name).
	if patch, err := Patch(cfg, registration.FastPath(nil)); err != nil || patch == nil {
		t.Errorf("networks gone: Patch = %s, %v; want the condition set to true", patch, err)
	}
	// A missing condition that would be "true" is not added; no other webhook is ever given one.
	bare := &admissionregistrationv1.ValidatingWebhookConfiguration{Webhooks: []admissionregistrationv1.ValidatingWebhook{
		{Name: registration.WebhookWorkloadsOptedIn}, {Name: registration.WebhookSpiderIPPools}}}
	if patch, err := Patch(bare, registration.FastPath(nil)); err != nil || patch != nil {
		t.Errorf("missing and true: Patch = %s, %v; want none", patch, err)
	}
	patch, err = Patch(bare, cond)
	if err != nil || strings.Contains(string(patch), registration.WebhookSpiderIPPools) || !strings.Contains(string(patch), registration.WebhookWorkloadsOptedIn) {
		t.Errorf("Patch = %s, %v; want the workload webhook only", patch, err)
	}
}
