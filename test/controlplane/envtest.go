package controlplane

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

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
	// certDir holds the apiserver's certificates when the Env is Restartable.
	certDir string
}

// EnvOptions tune StartEnv.
type EnvOptions struct {
	// ServiceCIDR is the apiserver's --service-cluster-ip-range; default 10.233.0.0/18 (the seed's cluster-a).
	ServiceCIDR string
	// APIServerFlags are extra kube-apiserver flags ("--flag", "value").
	APIServerFlags map[string]string
	// Restartable keeps the apiserver's certificates in a directory of the Env, so RestartAPIServer
	// brings it back on the same port with the same serving CA and clients keep working.
	Restartable bool
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
	var certDir string
	if opts.Restartable {
		d, err := os.MkdirTemp("", "ul-apiserver-")
		if err != nil {
			return nil, err
		}
		certDir = d
		env.ControlPlane.GetAPIServer().CertDir = d
	}
	args := env.ControlPlane.GetAPIServer().Configure()
	args.Set("service-cluster-ip-range", opts.ServiceCIDR)
	for k, v := range opts.APIServerFlags {
		args.Set(k, v)
	}
	cfg, err := env.Start()
	if err != nil {
		if certDir != "" {
			_ = os.RemoveAll(certDir)
		}
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, env: env, certDir: certDir}, nil
}

// Stop stops the control plane and removes its state.
func (e *Env) Stop() error {
	err := e.env.Stop()
	if e.certDir != "" {
		_ = os.RemoveAll(e.certDir)
	}
	return err
}

// RestartAPIServer stops kube-apiserver and starts it again on the same etcd, port and certificates, as
// an apiserver upgrade or crash would; etcd and every object survive. The Env must be Restartable.
func (e *Env) RestartAPIServer() error {
	if e.certDir == "" {
		return errors.New("controlplane: RestartAPIServer needs EnvOptions.Restartable")
	}
	s := e.env.ControlPlane.GetAPIServer()
	if err := s.Stop(); err != nil {
		// envtest SIGKILLs an apiserver that does not stop in time and reports it; a crash is a
		// restart too, once the killed process has let go of its port.
		if !strings.Contains(err.Error(), "timeout waiting for process") {
			return fmt.Errorf("stop kube-apiserver: %w", err)
		}
		time.Sleep(time.Second)
	}
	// On a loaded machine a restart with every CRD takes longer than envtest's first start allows.
	s.StartTimeout = 3 * time.Minute
	if err := s.Start(); err != nil {
		return fmt.Errorf("start kube-apiserver again: %w", err)
	}
	return nil
}

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
