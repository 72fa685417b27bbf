package controlplane

import (
	"sync"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/underlink/underlink/api/scheme"
	"github.com/underlink/underlink/test"
)

// Env is a real etcd + kube-apiserver with underlink's CRDs installed, for one test (package).
type Env struct {
	Config *rest.Config
	Client client.Client
	env    *envtest.Environment
}

// EnvOptions tune StartEnv.
type EnvOptions struct {
	// ServiceCIDR is the apiserver's --service-cluster-ip-range; default 10.233.0.0/18 (the seed's cluster-a).
	ServiceCIDR string
	// APIServerFlags are extra kube-apiserver flags ("--flag", "value").
	APIServerFlags map[string]string
}

// StartEnv starts a control plane for t and stops it when t ends. It fails t, with how to fix it, when
// the binaries are not built.
func StartEnv(t testing.TB, opts EnvOptions) *Env {
	t.Helper()
	e, err := NewEnv(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	return e
}

// NewEnv starts a control plane; the caller stops it with Stop (TestMain users).
func NewEnv(opts EnvOptions) (*Env, error) {
	quietControllerRuntime()
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if _, err := Binary(b); err != nil {
			return nil, err
		}
	}
	if opts.ServiceCIDR == "" {
		opts.ServiceCIDR = "10.233.0.0/18"
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: BinDir(),
		CRDDirectoryPaths:     []string{test.Path("deploy", "crds")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme.New(),
	}
	args := env.ControlPlane.GetAPIServer().Configure()
	args.Set("service-cluster-ip-range", opts.ServiceCIDR)
	for k, v := range opts.APIServerFlags {
		args.Set(k, v)
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, env: env}, nil
}

// Stop stops the control plane and removes its state.
func (e *Env) Stop() error { return e.env.Stop() }

// Kubeconfig writes a kubeconfig for an admin user of the control plane and returns its path.
func (e *Env) Kubeconfig(t testing.TB) string {
	t.Helper()
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "underlink-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	p := t.TempDir() + "/kubeconfig"
	if err := writeFile(p, kc); err != nil {
		t.Fatal(err)
	}
	return p
}

var quietOnce sync.Once

// quietControllerRuntime gives controller-runtime a logger when the test has not, so envtest does not
// print a stack trace about a missing one; tests that want its logs set their own first.
func quietControllerRuntime() {
	quietOnce.Do(func() {
		if !ctrllog.Log.Enabled() {
			ctrllog.SetLogger(logr.Discard())
		}
	})
}
