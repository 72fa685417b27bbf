//go:build integration

package chart

import (
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
)

// TestChartCertManagerChain decodes cert-manager mode's objects into cert-manager v1.21.2's typed API
// (strictly: a misspelt field fails) and follows the chain: self-signed Issuer → CA Certificate → CA
// Issuer → serving Certificate for the webhook Service's DNS names → the Secret the webhook mounts at
// --cert-dir, and the Certificate cainjector reads for both webhook configurations' caBundle.
func TestChartCertManagerChain(t *testing.T) {
	objs := chartObjects(t, renderChart(t, append(chartCertModes["cert-manager"], "--set", "certs.lifetime=720h", "--set", "certs.certManager.caDuration=43800h")...))
	issuers := map[string]*cmapi.Issuer{}
	certs := map[string]*cmapi.Certificate{}
	for _, o := range objs {
		switch o.GetKind() {
		case "Issuer":
			var i cmapi.Issuer
			chartDecodeStrict(t, o, &i)
			issuers[i.Name] = &i
		case "Certificate":
			var c cmapi.Certificate
			chartDecodeStrict(t, o, &c)
			certs[c.Name] = &c
		}
	}
	issuerOf := func(c *cmapi.Certificate) *cmapi.Issuer {
		t.Helper()
		ref := c.Spec.IssuerRef
		if ref.Kind != "Issuer" || ref.Group != "cert-manager.io" || issuers[ref.Name] == nil {
			t.Fatalf("Certificate %s refers to %s %s (group %q), which the chart does not render", c.Name, ref.Kind, ref.Name, ref.Group)
		}
		return issuers[ref.Name]
	}

	serving := certs["underlink-webhook-serving"]
	if serving == nil {
		t.Fatalf("no serving Certificate; rendered %v", chartKeys(certs))
	}
	caIssuer := issuerOf(serving)
	if caIssuer.Spec.CA == nil {
		t.Fatalf("serving Certificate's Issuer %s is not a CA Issuer: %+v", caIssuer.Name, caIssuer.Spec)
	}
	var caCert *cmapi.Certificate
	for _, c := range certs {
		if c.Spec.SecretName == caIssuer.Spec.CA.SecretName {
			caCert = c
		}
	}
	if caCert == nil || !caCert.Spec.IsCA {
		t.Fatalf("CA Issuer %s signs with Secret %s, which no isCA Certificate writes", caIssuer.Name, caIssuer.Spec.CA.SecretName)
	}
	if root := issuerOf(caCert); root.Spec.SelfSigned == nil {
		t.Errorf("CA Certificate %s is issued by %s, want a self-signed Issuer", caCert.Name, root.Name)
	}
	if caCert.Spec.Duration == nil || caCert.Spec.Duration.Duration != 43800*time.Hour {
		t.Errorf("CA duration %v, want certs.certManager.caDuration", caCert.Spec.Duration)
	}

	if serving.Spec.IsCA {
		t.Error("serving Certificate is a CA")
	}
	svc := "underlink-webhook"
	for _, name := range []string{svc + "." + chartNamespace + ".svc", svc + "." + chartNamespace + ".svc.cluster.local"} {
		if !slices.Contains(serving.Spec.DNSNames, name) {
			t.Errorf("serving Certificate lacks DNS name %s (the apiserver calls the Service by it): %v", name, serving.Spec.DNSNames)
		}
	}
	if !slices.Contains(serving.Spec.Usages, cmapi.UsageServerAuth) {
		t.Errorf("serving Certificate usages %v lack server auth", serving.Spec.Usages)
	}
	if serving.Spec.Duration == nil || serving.Spec.Duration.Duration != 720*time.Hour ||
		serving.Spec.RenewBeforePercentage == nil || *serving.Spec.RenewBeforePercentage != 33 {
		t.Errorf("serving duration %v, renewBeforePercentage %v; want certs.lifetime, renewed after two thirds", serving.Spec.Duration, serving.Spec.RenewBeforePercentage)
	}

	// The webhook serves that Secret from --cert-dir.
	var dep appsv1.Deployment
	chartDecodeStrict(t, chartFind(t, objs, "Deployment", "underlink-webhook"), &dep)
	c := dep.Spec.Template.Spec.Containers[0]
	certDir := chartFlagValues(c.Args)["cert-dir"]
	var mounted string
	for _, m := range c.VolumeMounts {
		if len(certDir) == 1 && m.MountPath == certDir[0] {
			for _, v := range dep.Spec.Template.Spec.Volumes {
				if v.Name == m.Name && v.Secret != nil {
					mounted = v.Secret.SecretName
				}
			}
		}
	}
	if mounted != serving.Spec.SecretName {
		t.Errorf("--cert-dir=%v mounts Secret %q, the serving Certificate writes %q", certDir, mounted, serving.Spec.SecretName)
	}
	if mode := chartFlagValues(c.Args)["cert-mode"]; len(mode) != 1 || mode[0] != "cert-manager" {
		t.Errorf("--cert-mode=%v, want cert-manager", mode)
	}

	// cainjector fills every webhook configuration's caBundle from the serving Certificate: the validating
	// one, and the mutating one where the chart renders it (webhook.injection=webhook).
	want := chartNamespace + "/" + serving.Name
	withMutating := chartObjects(t, renderChart(t, append(chartCertModes["cert-manager"], "--set", "webhook.injection=webhook")...))
	for _, kc := range []struct {
		objs []*unstructured.Unstructured
		kind string
	}{{objs, "ValidatingWebhookConfiguration"}, {withMutating, "MutatingWebhookConfiguration"}, {withMutating, "ValidatingWebhookConfiguration"}} {
		o := chartFind(t, kc.objs, kc.kind, "")
		if got := o.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != want {
			t.Errorf("%s cert-manager.io/inject-ca-from=%q, want %q", kc.kind, got, want)
		}
	}
	// Self-signed mode has none of it.
	for _, o := range chartObjects(t, renderChart(t, chartCertModes["self-signed"]...)) {
		if o.GetAnnotations()["cert-manager.io/inject-ca-from"] != "" {
			t.Errorf("self-signed mode: %s %s carries inject-ca-from", o.GetKind(), o.GetName())
		}
		if o.GetKind() == "Deployment" && o.GetName() == "underlink-webhook" {
			var d appsv1.Deployment
			chartDecodeStrict(t, o, &d)
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Secret != nil {
					t.Errorf("self-signed mode mounts Secret %s; the webhook reads its Secret through the API", v.Secret.SecretName)
				}
			}
		}
	}
}

func chartKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
