package nodes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/underlink/underlink/test/netbed"
)

// KubeletPort is where every kubelet serves its API, on its node IP inside its node namespace.
const KubeletPort = 10250

// Timing of the nodes' kubelets: quick enough for a demo that watches node labels and pods change.
const (
	nodeStatusEvery = 4 * time.Second
	syncEvery       = 10 * time.Second
)

// Cluster is what a cluster's nodes need of its control plane, and the nodes to give it.
type Cluster struct {
	// Name is the cluster's name, e.g. "cluster-a".
	Name string
	// APIServer is the apiserver's address on the root namespace's loopback, e.g. "127.0.0.1:16443".
	APIServer string
	// PKIDir holds the cluster CA (ca.crt, ca.key) that signs the nodes' certificates.
	PKIDir string
	// EgressSocket is the unix socket the apiserver's egress selector dials for cluster traffic
	// (kubelets, Services); empty means the apiserver cannot reach kubelets (no exec, no logs).
	EgressSocket string
	// Underlay is the cluster's underlay segment (pool gateway) that the nodes' ens224 plug into.
	Underlay netbed.ClusterSpec
	// Nodes are the cluster's nodes; the first is the Submariner gateway.
	Nodes []NodeSpec
	// Hosts are machines on the cluster's segments that Kubernetes does not know (foreign hosts).
	Hosts []HostSpec
}

// HostSpec is a foreign host: a namespace on a segment with addresses, outside Kubernetes.
type HostSpec struct {
	// Name is unique across the bed, e.g. "a-foreign".
	Name string
	// Segment is the segment it plugs into (the cluster's underlay, or a node's extra NIC's).
	Segment netbed.ClusterSpec
	Addrs   []netip.Prefix
}

// ExtraNIC is a node's further underlay NIC on a segment of its own (a second underlay NIC such as
// ens256), up, without an address: the master of a second network.
type ExtraNIC struct {
	Name    string
	Segment netbed.ClusterSpec
}

// NodeSpec is one node of a cluster.
type NodeSpec struct {
	// Name is the Node name, unique across the bed, e.g. "a-node1".
	Name string
	// IP is the node IP on eth0 (the management segment), e.g. 10.7.168.73/24.
	IP netip.Prefix
	// PodSubnet is the node's primary network (a /24), e.g. 10.244.1.0/24: pods that start before Multus
	// and pods that name no network get their address there. Required.
	PodSubnet netip.Prefix
	// UnderlayIP is the node's own address on ens224, e.g. 172.110.168.73/16, as the seed's nodes have
	// one on the underlay subnet; the zero value leaves ens224 without an address.
	UnderlayIP netip.Prefix
	// InterDC, when valid, gives the node ens192 on the inter-data-centre segment (gateway nodes).
	InterDC netip.Prefix
	// Extra are further underlay NICs of the node.
	Extra []ExtraNIC
}

// Options are the parts the nodes run.
type Options struct {
	// Dir holds every node's directory (config, certificates, private /var/lib, /opt, /var/log, logs).
	Dir string
	// Images are OCI image tarballs imported into every node's containerd (namespace k8s.io).
	Images []string
	// SandboxImage is the pause image's reference, found among Images.
	SandboxImage string
	// CNIPlugins maps a binary name to its path; each is copied into every node's /opt/cni/bin. Copies,
	// not links: an installer (the chart's agent) writing into /opt/cni/bin must never write through to
	// the cache.
	CNIPlugins map[string]string
	// Binaries are kubelet, kube-proxy and kube-scheduler (name → path).
	Binaries map[string]string
	// Out receives progress lines; nil discards them.
	Out io.Writer
	// KeepLogs, when it returns true at teardown, keeps the nodes' logs (a failed test).
	KeepLogs func() bool
}

// Env is the running nodes of every cluster of a bed.
type Env struct {
	bed      *netbed.Bed
	opts     Options
	clusters map[string]*ClusterNodes
	order    []string
	mu       sync.Mutex
}

// ClusterNodes is one cluster's running nodes and the relays between them and the control plane.
type ClusterNodes struct {
	Spec Cluster
	// APIServerAddr is where node processes and pods reach the apiserver: MgmtRouter:<port> in the
	// management namespace.
	APIServerAddr string
	// Nodes in the order of Spec.Nodes.
	Nodes []*Node
	// Hosts in the order of Spec.Hosts.
	Hosts []*ForeignHost
	// Client is an admin client of the cluster.
	Client kubernetes.Interface
	// Config is the admin rest config it was made from.
	Config *rest.Config

	auth *authority
	dir  string
}

// ForeignHost is a running foreign host of a cluster's segments.
type ForeignHost struct {
	Spec HostSpec
	NS   *netbed.Netns
}

// Node is a running node.
type Node struct {
	Spec NodeSpec
	// Cluster is the name of the node's cluster.
	Cluster string
	// Net is the node's network namespace in the bed.
	Net *netbed.Node
	// Dir is the node's directory (bind-mount sources, configs, logs).
	Dir string
	// CgroupRoot is kubelet's cgroupRoot.
	CgroupRoot string

	holder *netbed.Process
	procs  map[string]*netbed.Process
	argv   map[string][]string // each daemon's command line, for StartProcess
}

// MountNS is the node's mount namespace file (/proc/<holder>/ns/mnt), for nsenter --mount.
func (n *Node) MountNS() string { return fmt.Sprintf("/proc/%d/ns/mnt", n.holder.Cmd.Process.Pid) }

// Path is a path inside the node's private file system as the root namespace reaches it, e.g.
// Path("/run/containerd/containerd.sock").
func (n *Node) Path(p string) string {
	return filepath.Join(fmt.Sprintf("/proc/%d/root", n.holder.Cmd.Process.Pid), p)
}

// Log is the log file of one of the node's processes (containerd, kubelet, kube-proxy).
func (n *Node) Log(proc string) string { return filepath.Join(n.Dir, "logs", proc+".log") }

// Cluster returns the named cluster's nodes.
func (e *Env) Cluster(name string) *ClusterNodes {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clusters[name]
}

// Clusters returns every cluster's nodes in the order they were given.
func (e *Env) Clusters() []*ClusterNodes {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*ClusterNodes, 0, len(e.order))
	for _, n := range e.order {
		out = append(out, e.clusters[n])
	}
	return out
}

// Bed is the network test bed the nodes live in.
func (e *Env) Bed() *netbed.Bed { return e.bed }

func (e *Env) logf(format string, args ...any) {
	if e.opts.Out != nil {
		fmt.Fprintf(e.opts.Out, format+"\n", args...)
	}
}

// Start brings up every cluster's nodes in bed, in parallel, and waits until each Node is Ready. What it
// made is removed with the bed, also when Start fails.
func Start(ctx context.Context, bed *netbed.Bed, opts Options, clusters ...Cluster) (*Env, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	// Kubeconfigs and configs name files by absolute path: they are read from other directories.
	var err error
	if opts.Dir, err = filepath.Abs(opts.Dir); err != nil {
		return nil, err
	}
	for i := range clusters {
		if clusters[i].PKIDir, err = filepath.Abs(clusters[i].PKIDir); err != nil {
			return nil, err
		}
		if clusters[i].EgressSocket != "" {
			if clusters[i].EgressSocket, err = filepath.Abs(clusters[i].EgressSocket); err != nil {
				return nil, err
			}
		}
	}
	for _, c := range clusters {
		for _, s := range c.Nodes {
			if err := s.check(); err != nil {
				return nil, err
			}
		}
	}
	e := &Env{bed: bed, opts: opts, clusters: map[string]*ClusterNodes{}}
	// Namespaces first: containerd must not start before a later netns creation could hide its pod
	// namespaces (test/nodes/README.md, item 6; netns_mounts_under_state_dir covers it too).
	for _, c := range clusters {
		cn, err := e.prepareCluster(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		e.clusters[c.Name] = cn
		e.order = append(e.order, c.Name)
	}
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	for _, cn := range e.Clusters() {
		for _, n := range cn.Nodes {
			wg.Go(func() {
				start := time.Now()
				if err := e.startNode(ctx, cn, n); err != nil {
					errMu.Lock()
					errs = append(errs, fmt.Errorf("%s node %s: %w", cn.Spec.Name, n.Spec.Name, err))
					errMu.Unlock()
					return
				}
				e.logf("%s: node %s Ready in %s (node IP %s)", cn.Spec.Name, n.Spec.Name, time.Since(start).Round(100*time.Millisecond), n.Spec.IP.Addr())
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, cn := range e.Clusters() {
		if err := e.startClusterServices(ctx, cn); err != nil {
			return nil, fmt.Errorf("%s: %w", cn.Spec.Name, err)
		}
	}
	return e, nil
}

func (o Options) check() error {
	if o.Dir == "" {
		return errors.New("nodes: Options.Dir is empty")
	}
	for _, name := range []string{"kubelet", "kube-proxy", "kube-scheduler"} {
		if o.Binaries[name] == "" {
			return fmt.Errorf("nodes: the %s binary is not given (hack/build-tools.sh %s)", name, name)
		}
	}
	if o.SandboxImage == "" || len(o.Images) == 0 {
		return errors.New("nodes: no images to import; the pause image and the test app come from `make images`")
	}
	for name, why := range map[string]string{
		"loopback":   "which containerd runs for every pod",
		"bridge":     "the node's primary network",
		"host-local": "the node's primary network's IPAM",
	} {
		if _, ok := o.CNIPlugins[name]; !ok {
			return fmt.Errorf("nodes: CNIPlugins lacks %s, %s (hack/build-tools.sh %s)", name, why, name)
		}
	}
	return nil
}

func (s NodeSpec) check() error {
	if !s.PodSubnet.IsValid() {
		return fmt.Errorf("node %s: NodeSpec.PodSubnet is empty; it is the node's primary network, which Multus wraps as its cluster network", s.Name)
	}
	return nil
}

// prepareCluster makes the cluster's underlay segment and node namespaces, and the relay the nodes use
// to reach the apiserver.
func (e *Env) prepareCluster(ctx context.Context, c Cluster) (*ClusterNodes, error) {
	auth, err := loadAuthority(c.PKIDir)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.opts.Dir, c.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cn := &ClusterNodes{Spec: c, auth: auth, dir: dir}
	admin := filepath.Join(dir, "admin.kubeconfig")
	if err := auth.kubeconfig(admin, "https://"+c.APIServer, "", "underlink-test-admin", "system:masters"); err != nil {
		return nil, err
	}
	if cn.Config, err = clientcmd.BuildConfigFromFlags("", admin); err != nil {
		return nil, err
	}
	if cn.Client, err = kubernetes.NewForConfig(cn.Config); err != nil {
		return nil, err
	}
	if _, err := cn.Client.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("the apiserver at %s does not answer (is the control plane up? `make up`): %w", c.APIServer, err)
	}

	underlay := e.bed.Cluster(c.Underlay)
	mgmt := e.bed.Mgmt()
	_, port, err := net.SplitHostPort(c.APIServer)
	if err != nil {
		return nil, fmt.Errorf("apiserver address %q: %w", c.APIServer, err)
	}
	cn.APIServerAddr = net.JoinHostPort(netbed.MgmtRouter.Addr().String(), port)
	if _, err := e.bed.Relay(mgmt, cn.APIServerAddr, c.APIServer); err != nil {
		return nil, err
	}
	for _, s := range c.Nodes {
		spec := netbed.NodeSpec{Name: s.Name, Cluster: underlay, IP: s.IP}
		if s.InterDC.IsValid() {
			spec.InterDC = s.InterDC
		}
		for _, x := range s.Extra {
			spec.Extra = append(spec.Extra, netbed.NIC{Name: x.Name, Segment: e.bed.Cluster(x.Segment)})
		}
		nn, err := e.bed.AddNode(spec)
		if err != nil {
			return nil, err
		}
		if err := configureNodeNet(nn, s); err != nil {
			return nil, fmt.Errorf("node %s: %w", s.Name, err)
		}
		cn.Nodes = append(cn.Nodes, &Node{Spec: s, Cluster: c.Name, Net: nn, Dir: filepath.Join(dir, s.Name), procs: map[string]*netbed.Process{}, argv: map[string][]string{}})
	}
	for _, hs := range c.Hosts {
		hn, err := e.bed.Host(hs.Name, e.bed.Cluster(hs.Segment), hs.Addrs...)
		if err != nil {
			return nil, err
		}
		cn.Hosts = append(cn.Hosts, &ForeignHost{Spec: hs, NS: hn})
	}
	return cn, nil
}

// configureNodeNet gives a node its underlay address and makes it a router: pods' hijacked traffic and
// Submariner's cross-cluster traffic pass through nodes, and replies may come back on another NIC than
// the request left on (the gateway's cable), so strict reverse-path filtering is off.
func configureNodeNet(nn *netbed.Node, s NodeSpec) error {
	for k, v := range map[string]string{
		"net/ipv4/ip_forward":             "1",
		"net/ipv4/conf/all/rp_filter":     "0",
		"net/ipv4/conf/default/rp_filter": "0",
	} {
		if err := nn.NS.Sysctl(k, v); err != nil {
			return err
		}
	}
	if !s.UnderlayIP.IsValid() {
		return nil
	}
	h, err := nn.NS.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(netbed.UnderlayNIC)
	if err != nil {
		return fmt.Errorf("find %s: %w", netbed.UnderlayNIC, err)
	}
	if err := h.AddrAdd(l, netlinkAddr(s.UnderlayIP)); err != nil {
		return fmt.Errorf("add %s to %s: %w", s.UnderlayIP, netbed.UnderlayNIC, err)
	}
	return nil
}

// nodeReady reports whether a Node is Ready, and why not.
func nodeReady(n *corev1.Node) (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				return true, ""
			}
			return false, fmt.Sprintf("Ready=%s: %s %s", c.Status, c.Reason, c.Message)
		}
	}
	return false, "no Ready condition yet"
}
