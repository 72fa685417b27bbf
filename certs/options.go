// Package certs gives the webhook its serving certificates in either of the chart's two modes.
//
//   - cert-manager: cert-manager issues the certificate into a Secret the Deployment mounts at --cert-dir;
//     controller-runtime's certwatcher reloads it, and cert-manager's cainjector fills the caBundle.
//   - self-signed: Manager creates a CA and a serving certificate, stores them in a Secret, patches the
//     caBundle of the webhook configurations, rotates both after two thirds of their lifetime (leader
//     only), and every replica serves the Secret's current pair without a restart.
//
// See README.md for how cmd/underlink-webhook wires it.
package certs

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/underlink/underlink/certs/rotation"
)

// Mode is how the webhook gets its serving certificate.
type Mode string

// The modes of the chart's certs.mode value.
const (
	ModeCertManager Mode = "cert-manager"
	ModeSelfSigned  Mode = "self-signed"
)

// Defaults, the same as the chart's.
const (
	DefaultLifetime    = 90 * 24 * time.Hour
	DefaultPropagation = 5 * time.Second
	DefaultResync      = time.Minute
	DefaultSecretName  = "underlink-webhook-tls"
	DefaultServiceName = "underlink-webhook"
)

// Options configure the webhook's certificates. Only Mode matters in cert-manager mode.
type Options struct {
	Mode Mode
	// SecretNamespace and SecretName locate the Secret holding the CA and serving pair; the namespace is
	// also the Service's.
	SecretNamespace, SecretName string
	// ServiceName is the webhook Service; the certificate is issued for its in-cluster DNS names.
	ServiceName string
	// ClusterDomain completes the Service's fully qualified name (default cluster.local).
	ClusterDomain string
	// ExtraHosts are further DNS names or IPs for the certificate (e.g. 127.0.0.1 for a URL webhook).
	ExtraHosts []string
	// MutatingWebhookConfigurations and ValidatingWebhookConfigurations get the caBundle patched in,
	// in every webhook they hold.
	MutatingWebhookConfigurations, ValidatingWebhookConfigurations []string
	// Lifetime of the CA and the serving certificate; both are renewed after two thirds of it.
	Lifetime time.Duration
	// Propagation is how long a new CA must sit in every caBundle before a certificate it signed is served.
	Propagation time.Duration
	// Resync bounds how long a caBundle changed by someone else stays wrong.
	Resync time.Duration
	// Identity names this replica in logs and on the Secret it writes (the pod name).
	Identity string
}

// AddFlags registers the options as --cert-* flags with the chart's defaults; the namespace defaults to
// $POD_NAMESPACE. The flags and the chart's deployment template are kept in step by the chart tests.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	if o.Mode == "" {
		o.Mode = ModeSelfSigned
	}
	if o.SecretNamespace == "" {
		o.SecretNamespace = os.Getenv("POD_NAMESPACE")
	}
	if o.Identity == "" {
		o.Identity = os.Getenv("POD_NAME")
	}
	fs.Var(modeFlag{&o.Mode}, "cert-mode", "how the webhook gets its serving certificate: cert-manager (mounted at --cert-dir) or self-signed (generated, stored in --cert-secret, rotated)")
	fs.StringVar(&o.SecretNamespace, "cert-namespace", o.SecretNamespace, "self-signed: namespace of the certificate Secret and the webhook Service (default $POD_NAMESPACE)")
	fs.StringVar(&o.SecretName, "cert-secret", DefaultSecretName, "self-signed: Secret that holds the CA and serving certificate")
	fs.StringVar(&o.ServiceName, "cert-service", DefaultServiceName, "self-signed: webhook Service the certificate is issued for")
	fs.StringVar(&o.ClusterDomain, "cert-cluster-domain", "cluster.local", "self-signed: cluster DNS domain for the Service's fully qualified name")
	fs.Var(listFlag{&o.MutatingWebhookConfigurations}, "cert-mutating-webhook-configuration", "self-signed: MutatingWebhookConfiguration to patch the caBundle into (repeatable or comma-separated)")
	fs.Var(listFlag{&o.ValidatingWebhookConfigurations}, "cert-validating-webhook-configuration", "self-signed: ValidatingWebhookConfiguration to patch the caBundle into (repeatable or comma-separated)")
	fs.DurationVar(&o.Lifetime, "cert-lifetime", DefaultLifetime, "self-signed: lifetime of the CA and serving certificate; both are renewed after two thirds of it")
	fs.DurationVar(&o.Propagation, "cert-propagation", DefaultPropagation, "self-signed: how long a new CA sits in the caBundle before a certificate it signed is served")
	fs.DurationVar(&o.Resync, "cert-resync", DefaultResync, "self-signed: how often the leader re-checks the Secret and caBundles without a change event")
}

// Hosts are the serving certificate's SANs: the Service's in-cluster names and ExtraHosts.
func (o Options) Hosts() []string {
	svc, ns := o.ServiceName, o.SecretNamespace
	domain := o.ClusterDomain
	if domain == "" {
		domain = "cluster.local"
	}
	var hosts []string
	if svc != "" {
		hosts = []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc." + domain}
	}
	return append(hosts, o.ExtraHosts...)
}

// Validate checks the options of the chosen mode; errors name the flag and the fix.
func (o Options) Validate() error {
	switch o.Mode {
	case ModeCertManager:
		return nil
	case ModeSelfSigned:
	default:
		return fmt.Errorf("--cert-mode=%q: want cert-manager or self-signed", o.Mode)
	}
	var errs []error
	if o.SecretNamespace == "" {
		errs = append(errs, errors.New("--cert-namespace is empty: set it or $POD_NAMESPACE (the chart sets both)"))
	}
	if o.SecretName == "" {
		errs = append(errs, errors.New("--cert-secret is empty: name the Secret to keep the certificates in"))
	}
	if len(o.MutatingWebhookConfigurations)+len(o.ValidatingWebhookConfigurations) == 0 {
		errs = append(errs, errors.New("no --cert-mutating-webhook-configuration or --cert-validating-webhook-configuration: name the configurations whose caBundle the webhook keeps"))
	}
	if o.Resync <= 0 {
		errs = append(errs, fmt.Errorf("--cert-resync=%v must be positive", o.Resync))
	}
	if err := o.policy().Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (o Options) policy() rotation.Policy {
	return rotation.Policy{Hosts: o.Hosts(), Lifetime: o.Lifetime, Propagation: o.Propagation, CommonName: o.ServiceName + "-ca"}
}

// RequireTLS12 is a webhook.Options.TLSOpts entry that refuses TLS below 1.2, for both modes.
func RequireTLS12(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }

type modeFlag struct{ m *Mode }

func (f modeFlag) String() string {
	if f.m == nil || *f.m == "" {
		return string(ModeSelfSigned)
	}
	return string(*f.m)
}

func (f modeFlag) Set(s string) error {
	switch Mode(s) {
	case ModeCertManager, ModeSelfSigned:
		*f.m = Mode(s)
		return nil
	}
	return fmt.Errorf("want cert-manager or self-signed, got %q", s)
}

type listFlag struct{ l *[]string }

func (f listFlag) String() string {
	if f.l == nil {
		return ""
	}
	return strings.Join(*f.l, ",")
}

func (f listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*f.l = append(*f.l, v)
		}
	}
	return nil
}
