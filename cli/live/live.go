// Package live is how the underlink command reads a live cluster: it connects with a kubeconfig, bounds
// every request by a timeout, and finds the default network the chart configured. It only reads.
package live

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/underlink/underlink/api/scheme"
	"github.com/underlink/underlink/webhook/registration"
)

// DefaultTimeout bounds each request to the cluster when --request-timeout is not given, so a server
// that never answers fails the command instead of hanging it.
const DefaultTimeout = 10 * time.Second

// Options say which cluster to read and how long to wait for it.
type Options struct {
	// Kubeconfig is the kubeconfig file; empty means $KUBECONFIG, then ~/.kube/config.
	Kubeconfig string
	// Context is the kubeconfig context; empty means its current context.
	Context string
	// Timeout bounds each request; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Connect returns a reader of the cluster and its server's address. Nothing is requested yet.
func Connect(o Options) (client.Reader, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.Context}).ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.Timeout = o.Timeout
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, cfg.Host, fmt.Errorf("connect to %s: %w", cfg.Host, err)
	}
	return c, cfg.Host, nil
}

// DefaultNetwork is the network the chart configured as the one injected into pods that name none.
type DefaultNetwork struct {
	// Name is namespace/name, or "" when no configuration was found.
	Name string `json:"name"`
	// Source says where it was read, one word: "Deployment/underlink/underlink-webhook:--default-network",
	// "MutatingAdmissionPolicy/underlink-inject:network", or "--default-network" when given.
	Source string `json:"source"`
}

// WebhookSelector finds the chart's webhook Deployment (deploy/helm/underlink: the labels of every
// object and the webhook's component label).
var WebhookSelector = client.MatchingLabels{"app.kubernetes.io/part-of": "underlink", "app.kubernetes.io/component": "webhook"}

// ReadDefaultNetwork finds the configured default network: the --default-network argument of the
// chart's webhook Deployment, else the literal the injection policy (MutatingAdmissionPolicy
// underlink-inject) falls back to. Neither present is no error: the Name is then empty.
func ReadDefaultNetwork(ctx context.Context, r client.Reader) (DefaultNetwork, error) {
	var deps appsv1.DeploymentList
	err := r.List(ctx, &deps, WebhookSelector)
	if err != nil && !absent(err) {
		return DefaultNetwork{}, fmt.Errorf("list the underlink-webhook Deployment: %w", err)
	}
	for _, d := range deps.Items {
		for _, c := range d.Spec.Template.Spec.Containers {
			if v, ok := flagValue(c.Args, "--default-network"); ok {
				return DefaultNetwork{Name: v, Source: fmt.Sprintf("Deployment/%s/%s:--default-network", d.Namespace, d.Name)}, nil
			}
		}
	}
	var policy admissionregistrationv1.MutatingAdmissionPolicy
	err = r.Get(ctx, client.ObjectKey{Name: registration.PolicyName}, &policy)
	switch {
	case absent(err):
		return DefaultNetwork{}, nil
	case err != nil:
		return DefaultNetwork{}, fmt.Errorf("read MutatingAdmissionPolicy %s: %w", registration.PolicyName, err)
	}
	for _, v := range policy.Spec.Variables {
		if v.Name != "network" {
			continue
		}
		if name, ok := lastCELString(v.Expression); ok && name != "" {
			return DefaultNetwork{Name: name, Source: fmt.Sprintf("MutatingAdmissionPolicy/%s:network", registration.PolicyName)}, nil
		}
	}
	return DefaultNetwork{}, nil
}

// absent is an object or API that is not there, or one these credentials may not read: the
// configuration is then unknown, which the caller reports, not a failure.
func absent(err error) bool {
	return apierrors.IsNotFound(err) || meta.IsNoMatchError(err) || apierrors.IsForbidden(err)
}

// flagValue reads --name=value or --name value from a container's arguments.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// lastCELString unquotes the last single-quoted CEL string literal of an expression: the injection
// policy's network variable ends with the configured default network as one (registration.CELString).
func lastCELString(expr string) (string, bool) {
	expr = strings.TrimSpace(expr)
	if !strings.HasSuffix(expr, "'") {
		return "", false
	}
	// Walk back to the opening quote: a quote preceded by an odd number of backslashes is escaped.
	for i := len(expr) - 2; i >= 0; i-- {
		if expr[i] != '\'' {
			continue
		}
		n := 0
		for j := i - 1; j >= 0 && expr[j] == '\\'; j-- {
			n++
		}
		if n%2 == 1 {
			continue
		}
		s, err := unquoteCEL(expr[i+1 : len(expr)-1])
		return s, err == nil
	}
	return "", false
}

// unquoteCEL undoes registration.CELString's escapes (\\, \', \n, \r).
func unquoteCEL(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i++; i == len(s) {
			return "", errors.New("trailing backslash")
		}
		switch s[i] {
		case '\\', '\'':
			b.WriteByte(s[i])
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", errors.New("escape \\" + strconv.QuoteRune(rune(s[i])))
		}
	}
	return b.String(), nil
}
