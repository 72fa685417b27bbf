// Package localenv runs underlink's local clusters (cluster-a and cluster-b of the user's scenario): for
// each, etcd + kube-apiserver + kube-controller-manager v1.37.2 on loopback ports, started detached with
// pid files and logs under .local/<cluster>/, so `make up`, `make status` and `make down` (and tests)
// share one implementation. The binaries come from the cache that hack/build-tools.sh fills.
package localenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/poll"
)

// Cluster is one local cluster: its Submariner identity and CIDRs and the loopback ports of its control
// plane.
type Cluster struct {
	Name        string
	ClusterCIDR string // pod CIDR as Submariner's Cluster object states it
	ServiceCIDR string // also the apiserver's --service-cluster-ip-range

	EtcdPort      int
	EtcdPeerPort  int
	APIServerPort int
	KCMPort       int // kube-controller-manager's secure (health/metrics) port
}

// Clusters returns the seed's two clusters. portBase 0 gives the documented ports (cluster-a
// 16443, cluster-b 26443); tests pass another base so they never collide with a running `make up`.
func Clusters(portBase int) []Cluster {
	if portBase == 0 {
		portBase = 10000
	}
	mk := func(i int, name, pods, svc string) Cluster {
		b := portBase + i*10000
		return Cluster{Name: name, ClusterCIDR: pods, ServiceCIDR: svc,
			APIServerPort: b + 6443, EtcdPort: b + 13790, EtcdPeerPort: b + 13800, KCMPort: b + 6257}
	}
	return []Cluster{
		mk(0, "cluster-a", "172.110.0.0/16", "10.233.0.0/18"),
		mk(1, "cluster-b", "172.111.0.0/16", "10.243.0.0/18"),
	}
}

// Env is a set of local clusters whose state lives under Dir (the repository's .local by default).
type Env struct {
	Dir      string
	Clusters []Cluster
	// Out receives progress lines; nil discards them.
	Out io.Writer
}

func (e *Env) out() io.Writer {
	if e.Out == nil {
		return io.Discard
	}
	return e.Out
}

func (e *Env) clusterDir(c Cluster) string { return filepath.Join(e.Dir, c.Name) }

// KubeconfigPath is where Up writes an admin kubeconfig for cluster c.
func (e *Env) KubeconfigPath(c Cluster) string { return filepath.Join(e.Dir, c.Name+".kubeconfig") }

func (e *Env) processes(c Cluster) ([]*process, error) {
	dir := e.clusterDir(c)
	p := pki{dir: filepath.Join(dir, "pki")}
	bins := map[string]string{}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		path, err := controlplane.Binary(b)
		if err != nil {
			return nil, err
		}
		bins[b] = path
	}
	proc := func(name string, port int, args ...string) *process {
		return &process{name: name, binary: bins[name], args: args, port: port,
			pidFile: filepath.Join(dir, "run", name+".pid"), logFile: filepath.Join(dir, "logs", name+".log")}
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", c.EtcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", c.EtcdPeerPort)
	return []*process{
		proc("etcd", c.EtcdPort,
			"--name", c.Name,
			"--data-dir", filepath.Join(dir, "etcd"),
			"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", c.Name+"="+peerURL,
			// A development cluster on one disk: durability across power loss is not worth the fsync latency.
			"--unsafe-no-fsync"),
		proc("kube-apiserver", c.APIServerPort,
			"--etcd-servers", etcdURL,
			"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
			"--secure-port", strconv.Itoa(c.APIServerPort),
			"--tls-cert-file", p.path(apiserverCert), "--tls-private-key-file", p.path(apiserverKey),
			"--client-ca-file", p.path(caCert),
			"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file", p.path(saPub),
			"--service-account-signing-key-file", p.path(saKey),
			"--service-cluster-ip-range", c.ServiceCIDR,
			"--authorization-mode", "Node,RBAC",
			// Kubelets (exec, logs) and Services (webhooks) live inside the nodes' network namespaces:
			// "cluster" traffic goes as HTTP CONNECT to a unix socket that test/nodes serves.
			"--egress-selector-config-file", filepath.Join(dir, egressSelectorFile),
			"--kubelet-client-certificate", p.path(kubeletClientCert), "--kubelet-client-key", p.path(kubeletClientKey),
			// Node names resolve nowhere here; dial kubelets at their node IPs, as kubeadm configures.
			"--kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname",
			"--allow-privileged=true",
			// The advertise address is loopback, which an Endpoints object may not hold; nodes reach the
			// apiserver through relays instead of the kubernetes Service's endpoints.
			"--endpoint-reconciler-type", "none"),
		proc("kube-controller-manager", c.KCMPort,
			"--kubeconfig", filepath.Join(dir, "kube-controller-manager.kubeconfig"),
			"--authentication-kubeconfig", filepath.Join(dir, "kube-controller-manager.kubeconfig"),
			"--authorization-kubeconfig", filepath.Join(dir, "kube-controller-manager.kubeconfig"),
			"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.KCMPort),
			"--cluster-name", c.Name,
			"--service-cluster-ip-range", c.ServiceCIDR,
			"--service-account-private-key-file", p.path(saKey),
			"--root-ca-file", p.path(caCert),
			"--cluster-signing-cert-file", p.path(caCert), "--cluster-signing-key-file", p.path(caKey),
			"--use-service-account-credentials",
			"--leader-elect=false"),
	}, nil
}

// Up starts every cluster that is not already running and prepares it (CRDs, Submariner Cluster objects).
// It is idempotent: running clusters are left running and re-prepared. A cluster that fails to start is
// stopped again, so Up never leaves an orphan process.
func (e *Env) Up(ctx context.Context) error {
	// Clusters start in parallel: each waits mostly on its own apiserver's start-up.
	errs := make([]error, len(e.Clusters))
	var wg sync.WaitGroup
	for i, c := range e.Clusters {
		wg.Go(func() {
			start := time.Now()
			if err := e.upCluster(ctx, c); err != nil {
				errs[i] = fmt.Errorf("%s: %w", c.Name, err)
				return
			}
			fmt.Fprintf(e.out(), "%s: control plane ready in %s (kubeconfig %s)\n", c.Name, time.Since(start).Round(100*time.Millisecond), e.KubeconfigPath(c))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, c := range e.Clusters {
		if err := e.prepare(ctx, c); err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
	}
	return nil
}

func (e *Env) upCluster(ctx context.Context, c Cluster) error {
	procs, err := e.processes(c)
	if err != nil {
		return err
	}
	var up, down []string
	for _, p := range procs {
		if pid, ok := p.running(); ok {
			up = append(up, fmt.Sprintf("%s (pid %d)", p.name, pid))
		} else {
			down = append(down, p.name)
		}
	}
	if len(down) == 0 {
		if err := e.waitReady(ctx, c, 10*time.Second); err == nil {
			fmt.Fprintf(e.out(), "%s: already running\n", c.Name)
			return nil
		}
		fmt.Fprintf(e.out(), "%s: processes run but the apiserver is not ready; restarting the cluster\n", c.Name)
	} else if len(up) > 0 {
		fmt.Fprintf(e.out(), "%s: half started: %s running, %s not (logs in %s); restarting the cluster\n",
			c.Name, strings.Join(up, ", "), strings.Join(down, ", "), filepath.Join(e.clusterDir(c), "logs"))
	}
	if err := e.stopCluster(c, procs); err != nil {
		return err
	}
	for _, p := range procs {
		if err := portFree(p.port); err != nil {
			return fmt.Errorf("cannot start %s: %w; stop that process, or run `make down` if it is a leftover of an earlier `make up`, or pick other ports with UNDERLINK_PORT_BASE", p.name, err)
		}
	}
	if err := e.writeFiles(c); err != nil {
		return err
	}
	for i, p := range procs {
		if _, err := p.start(); err != nil {
			return errors.Join(err, e.stopCluster(c, procs))
		}
		if err := waitServing(ctx, p, c, e, 60*time.Second); err != nil {
			err = fmt.Errorf("%s did not become ready: %w\nlast lines of %s:\n%s", p.name, err, p.logFile, tail(p.logFile, 15))
			return errors.Join(err, e.stopCluster(c, procs[:i+1]))
		}
	}
	return nil
}

// waitServing waits until a just-started process serves, or until it dies (then fails at once).
func waitServing(ctx context.Context, p *process, c Cluster, e *Env, timeout time.Duration) error {
	return poll.Wait(ctx, timeout, 200*time.Millisecond, fmt.Sprintf("serving on port %d", p.port), func() (bool, string, error) {
		if _, ok := p.running(); !ok {
			return false, "", errors.New("the process exited")
		}
		var err error
		switch p.name {
		case "kube-apiserver":
			err = e.probe(ctx, c, "/readyz")
		default:
			var conn net.Conn
			conn, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.port), time.Second)
			if err == nil {
				conn.Close()
			}
		}
		if err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
}

func (e *Env) waitReady(ctx context.Context, c Cluster, timeout time.Duration) error {
	return poll.Wait(ctx, timeout, 200*time.Millisecond, "apiserver /readyz", func() (bool, string, error) {
		if err := e.probe(ctx, c, "/readyz"); err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
}

// probe GETs an apiserver path as the admin user.
func (e *Env) probe(ctx context.Context, c Cluster, path string) error {
	p := pki{dir: filepath.Join(e.clusterDir(c), "pki")}
	cert, err := tls.LoadX509KeyPair(p.path(adminCert), p.path(adminKey))
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(p.path(caCert))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s", c.APIServerPort, path), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// writeFiles creates the PKI and the kubeconfigs of the admin user and kube-controller-manager.
func (e *Env) writeFiles(c Cluster) error {
	dir := e.clusterDir(c)
	p := pki{dir: filepath.Join(dir, "pki")}
	pfx, err := netip.ParsePrefix(c.ServiceCIDR)
	if err != nil {
		return fmt.Errorf("service CIDR %q: %w", c.ServiceCIDR, err)
	}
	// The first address of the service range is the kubernetes Service's ClusterIP.
	if err := p.ensure(net.IP(pfx.Addr().Next().AsSlice())); err != nil {
		return fmt.Errorf("generate certificates in %s: %w", p.dir, err)
	}
	if err := writeKubeconfig(filepath.Join(dir, "kube-controller-manager.kubeconfig"), c, p, kcmCert, kcmKey, "kube-controller-manager"); err != nil {
		return err
	}
	egress := fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, e.EgressSocket(c))
	if err := os.WriteFile(filepath.Join(dir, egressSelectorFile), []byte(egress), 0o644); err != nil {
		return err
	}
	return writeKubeconfig(e.KubeconfigPath(c), c, p, adminCert, adminKey, "admin")
}

func writeKubeconfig(path string, c Cluster, p pki, certFile, keyFile, user string) error {
	read := func(f string) ([]byte, error) { return os.ReadFile(p.path(f)) }
	ca, err := read(caCert)
	if err != nil {
		return err
	}
	crt, err := read(certFile)
	if err != nil {
		return err
	}
	key, err := read(keyFile)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: fmt.Sprintf("https://127.0.0.1:%d", c.APIServerPort), CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: user}
	cfg.CurrentContext = c.Name
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, path)
}

// egressSelectorFile is the apiserver's egress selector configuration, in the cluster's directory.
const egressSelectorFile = "egress-selector.yaml"

// EgressSocket is the unix socket where cluster c's apiserver sends traffic for the cluster's network
// (kubelets, Services) as HTTP CONNECT requests; the nodes of test/nodes serve it. Until they run, exec,
// logs and Service-referenced webhooks fail with a dial error naming this socket.
func (e *Env) EgressSocket(c Cluster) string {
	return filepath.Join(e.clusterDir(c), "run", "egress.sock")
}

// PKIDir is cluster c's PKI directory (ca.crt, ca.key, ...), for signing node certificates.
func (e *Env) PKIDir(c Cluster) string { return filepath.Join(e.clusterDir(c), "pki") }

// RESTConfig is an admin client config for cluster c.
func (e *Env) RESTConfig(c Cluster) (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", e.KubeconfigPath(c))
}

func (e *Env) stopCluster(c Cluster, procs []*process) error {
	var errs []error
	// Reverse order: clients before the apiserver, the apiserver before etcd.
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Down stops exactly the processes Up started (by pid file) and removes their state and kubeconfigs.
func (e *Env) Down() error {
	var errs []error
	for _, c := range e.Clusters {
		procs, err := e.processes(c)
		if err != nil {
			// Without the binaries we cannot verify pids belong to us; refuse to kill blindly.
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
			continue
		}
		stopped := 0
		for _, p := range procs {
			if _, ok := p.running(); ok {
				stopped++
			}
		}
		if err := e.stopCluster(c, procs); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
			continue
		}
		if err := os.RemoveAll(e.clusterDir(c)); err != nil {
			errs = append(errs, err)
		}
		if err := os.Remove(e.KubeconfigPath(c)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		fmt.Fprintf(e.out(), "%s: stopped %d process(es), removed %s\n", c.Name, stopped, e.clusterDir(c))
	}
	return errors.Join(errs...)
}

// ProcessStatus is one line of Status.
type ProcessStatus struct {
	Cluster, Name string
	PID           int
	Running       bool
	Port          int
	Log           string
}

// Status lists every process of every cluster with its pid and whether it runs.
func (e *Env) Status() ([]ProcessStatus, error) {
	var out []ProcessStatus
	for _, c := range e.Clusters {
		procs, err := e.processes(c)
		if err != nil {
			return nil, err
		}
		for _, p := range procs {
			pid, ok := p.running()
			out = append(out, ProcessStatus{Cluster: c.Name, Name: p.name, PID: pid, Running: ok, Port: p.port, Log: p.logFile})
		}
	}
	return out, nil
}
