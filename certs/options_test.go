package certs

import (
	"crypto/tls"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFlagsParseIntoOptions(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "underlink-system")
	t.Setenv("POD_NAME", "underlink-webhook-abc")
	var o Options
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	o.AddFlags(fs)
	err := fs.Parse([]string{
		"--cert-mode=self-signed", "--cert-lifetime=2m",
		"--cert-mutating-webhook-configuration=underlink-mutating",
		"--cert-validating-webhook-configuration=underlink-validating,underlink-validating-pods",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Options{
		Mode: ModeSelfSigned, SecretNamespace: "underlink-system", SecretName: DefaultSecretName, ServiceName: DefaultServiceName,
		ClusterDomain: "cluster.local", MutatingWebhookConfigurations: []string{"underlink-mutating"},
		ValidatingWebhookConfigurations: []string{"underlink-validating", "underlink-validating-pods"},
		Lifetime:                        2 * time.Minute, Propagation: DefaultPropagation, Resync: DefaultResync, Identity: "underlink-webhook-abc",
	}
	if o.Mode != want.Mode || o.SecretNamespace != want.SecretNamespace || o.SecretName != want.SecretName ||
		o.ServiceName != want.ServiceName || o.Lifetime != want.Lifetime || o.Propagation != want.Propagation ||
		o.Resync != want.Resync || o.Identity != want.Identity ||
		!slices.Equal(o.MutatingWebhookConfigurations, want.MutatingWebhookConfigurations) ||
		!slices.Equal(o.ValidatingWebhookConfigurations, want.ValidatingWebhookConfigurations) {
		t.Errorf("got %+v\nwant %+v", o, want)
	}
	wantHosts := []string{"underlink-webhook", "underlink-webhook.underlink-system", "underlink-webhook.underlink-system.svc", "underlink-webhook.underlink-system.svc.cluster.local"}
	if !slices.Equal(o.Hosts(), wantHosts) {
		t.Errorf("hosts %v, want %v", o.Hosts(), wantHosts)
	}
	if err := fs.Parse([]string{"--cert-mode=vault"}); err == nil || !strings.Contains(err.Error(), "want cert-manager or self-signed") {
		t.Errorf("--cert-mode=vault: got %v", err)
	}
}

func TestValidateNamesTheFlagToFix(t *testing.T) {
	ok := Options{Mode: ModeSelfSigned, SecretNamespace: "ns", SecretName: "s", ServiceName: "svc",
		ValidatingWebhookConfigurations: []string{"v"}, Lifetime: time.Hour, Propagation: time.Second, Resync: time.Minute}
	for _, tc := range []struct {
		name    string
		edit    func(*Options)
		wantErr string
	}{
		{"valid", func(*Options) {}, ""},
		{"cert-manager needs nothing else", func(o *Options) { *o = Options{Mode: ModeCertManager} }, ""},
		{"unknown mode", func(o *Options) { o.Mode = "vault" }, `--cert-mode="vault"`},
		{"no namespace", func(o *Options) { o.SecretNamespace = "" }, "--cert-namespace is empty"},
		{"no secret", func(o *Options) { o.SecretName = "" }, "--cert-secret is empty"},
		{"no webhook configurations", func(o *Options) { o.ValidatingWebhookConfigurations = nil }, "--cert-validating-webhook-configuration"},
		{"propagation too long", func(o *Options) { o.Lifetime = 30 * time.Second; o.Propagation = 10 * time.Second }, "a sixth of the lifetime"},
		{"no resync", func(o *Options) { o.Resync = 0 }, "--cert-resync=0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			err := o.Validate()
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestTLSOptsRequireTLS12InBothModes(t *testing.T) {
	for _, mode := range []Mode{ModeCertManager, ModeSelfSigned} {
		m := &Manager{opts: Options{Mode: mode}}
		c := &tls.Config{}
		for _, o := range m.TLSOpts() {
			o(c)
		}
		if c.MinVersion != tls.VersionTLS12 {
			t.Errorf("%s: MinVersion %x, want TLS 1.2", mode, c.MinVersion)
		}
		if (c.GetCertificate != nil) != (mode == ModeSelfSigned) {
			t.Errorf("%s: GetCertificate set=%v; only self-signed mode serves from the Secret (cert-manager mode uses --cert-dir)", mode, c.GetCertificate != nil)
		}
		if mode == ModeSelfSigned {
			if _, err := c.GetCertificate(nil); err == nil || !strings.Contains(err.Error(), "no serving certificate loaded yet") {
				t.Errorf("before the Secret is read: got %v, want a not-loaded error", err)
			}
		}
	}
}
