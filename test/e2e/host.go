package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/localenv"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/nodes"
)

// State is what a running node host records for the demo and for `make down`: enough to run the
// scenario against its nodes, and to clean up after it if it died.
type State struct {
	PID    int    `json:"pid"`
	BedDir string `json:"bedDir"`
	Prefix string `json:"prefix"`
	// Clusters: per cluster, its nodes' names, namespaces (under /run/netns) and roles.
	Clusters []StateCluster `json:"clusters"`
}

// StateCluster is one cluster's nodes in State.
type StateCluster struct {
	Name  string      `json:"name"`
	Nodes []StateNode `json:"nodes"`
	// Hosts are its foreign hosts: name → namespace (under /run/netns).
	Hosts map[string]string `json:"hosts,omitempty"`
}

// StateNode is one node in State.
type StateNode struct {
	Name    string `json:"name"`
	Netns   string `json:"netns"`
	Gateway bool   `json:"gateway"`
	IP      string `json:"ip"`
	// ContainerdSocket is the node's containerd socket as the root namespace reaches it.
	ContainerdSocket string `json:"containerdSocket"`
	// CNIConfDir is the node's /etc/cni/net.d as the root namespace reaches it.
	CNIConfDir string `json:"cniConfDir"`
}

// StatePath is the state file of the node host whose directory is dir.
func StatePath(dir string) string { return filepath.Join(dir, "state.json") }

// Host runs the local environment's nodes until ctx ends: it builds a bed, brings the nodes of every
// cluster of cp up, joins the clusters with the Submariner simulation, writes State, reports ready on
// progress, and on ctx's end removes everything (the bed's teardown). A failed start removes what it
// made before it returns.
func Host(ctx context.Context, dir string, cp *localenv.Env, progress io.Writer) (err error) {
	h := nodes.NewHost(ctx, "underlink-nodes", progress)
	bedDir := ""
	defer func() {
		if cerr := h.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("teardown: %w", cerr))
		}
		// netbed keeps a failed bed's directory for its logs; the nodes' logs are in dir already.
		if bedDir != "" {
			_ = os.RemoveAll(bedDir)
		}
		_ = os.Remove(StatePath(dir))
	}()
	var env *Env
	err = h.Do(func() {
		bed := netbed.New(h)
		bedDir = bed.Dir()
		var uerr error
		env, uerr = Up(ctx, bed, cp, UpOptions{Dir: dir, Out: progress})
		if uerr != nil {
			h.Fatal(uerr)
		}
		st := State{PID: os.Getpid(), BedDir: bed.Dir(), Prefix: bed.Prefix()}
		for _, cn := range env.Nodes.Clusters() {
			sc := StateCluster{Name: cn.Spec.Name}
			for i, n := range cn.Nodes {
				sc.Nodes = append(sc.Nodes, StateNode{Name: n.Spec.Name, Netns: n.Net.NS.Path(), Gateway: i == 0, IP: n.Spec.IP.Addr().String(),
					ContainerdSocket: n.Path(nodes.ContainerdSocket), CNIConfDir: n.Path(nodes.CNIConfDir)})
			}
			for _, fh := range cn.Hosts {
				if sc.Hosts == nil {
					sc.Hosts = map[string]string{}
				}
				sc.Hosts[fh.Spec.Name] = fh.NS.Path()
			}
			st.Clusters = append(st.Clusters, sc)
		}
		b, jerr := json.MarshalIndent(st, "", "  ")
		if jerr != nil {
			h.Fatal(jerr)
		}
		if werr := os.WriteFile(StatePath(dir), b, 0o644); werr != nil {
			h.Fatal(werr)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(progress, ReadyLine)
	<-ctx.Done()
	fmt.Fprintln(progress, "stopping the nodes")
	return nil
}

// ReadyLine is what Host prints once the nodes serve.
const ReadyLine = "underlink-nodes: READY"

// LoadTarget reads a running node host's State and makes the scenario's Target for the clusters of cp.
// The returned close function releases the namespace handles.
func LoadTarget(dir string, cp *localenv.Env, out io.Writer) (Target, func(), error) {
	b, err := os.ReadFile(StatePath(dir))
	if err != nil {
		return Target{}, nil, fmt.Errorf("the nodes are not running (no %s): %w", StatePath(dir), err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return Target{}, nil, fmt.Errorf("%s: %w", StatePath(dir), err)
	}
	var handles []ns.NetNS
	closeAll := func() {
		for _, h := range handles {
			_ = h.Close()
		}
	}
	t, err := baseTarget(out)
	if err != nil {
		return Target{}, nil, err
	}
	for i, c := range cp.Clusters {
		if i >= len(st.Clusters) || st.Clusters[i].Name != c.Name {
			closeAll()
			return Target{}, nil, fmt.Errorf("the running nodes (%s) are not those of %s's clusters: `make down` and start again", StatePath(dir), cp.Dir)
		}
		tc := TargetCluster{Name: c.Name, Kubeconfig: cp.KubeconfigPath(c), ClusterCIDR: c.ClusterCIDR, ServiceCIDR: c.ServiceCIDR}
		for _, n := range st.Clusters[i].Nodes {
			h, err := ns.GetNS(n.Netns)
			if err != nil {
				closeAll()
				return Target{}, nil, fmt.Errorf("node %s: %w", n.Name, err)
			}
			handles = append(handles, h)
			tc.Nodes = append(tc.Nodes, TargetNode{Name: n.Name, Gateway: n.Gateway, Net: &netbed.Netns{NetNS: h, Name: filepath.Base(n.Netns), Role: n.Name},
				Kubelet: frozenKubelet{netns: n.Netns}, ContainerdSocket: n.ContainerdSocket, CNIConfDir: n.CNIConfDir})
		}
		for name, path := range st.Clusters[i].Hosts {
			h, err := ns.GetNS(path)
			if err != nil {
				closeAll()
				return Target{}, nil, fmt.Errorf("host %s: %w", name, err)
			}
			handles = append(handles, h)
			if tc.Hosts == nil {
				tc.Hosts = map[string]*netbed.Netns{}
			}
			tc.Hosts[name] = &netbed.Netns{NetNS: h, Name: filepath.Base(path), Role: name}
		}
		t.Clusters = append(t.Clusters, tc)
	}
	return t, closeAll, nil
}

// TargetOf is the Target of nodes started in this process (the end-to-end test).
func TargetOf(env *Env, out io.Writer) (Target, error) {
	t, err := baseTarget(out)
	if err != nil {
		return Target{}, err
	}
	for _, c := range env.ControlPlane.Clusters {
		cn := env.Nodes.Cluster(c.Name)
		tc := TargetCluster{Name: c.Name, Kubeconfig: env.ControlPlane.KubeconfigPath(c), ClusterCIDR: c.ClusterCIDR, ServiceCIDR: c.ServiceCIDR}
		for j, n := range cn.Nodes {
			tc.Nodes = append(tc.Nodes, TargetNode{Name: n.Spec.Name, Gateway: j == 0, Net: n.Net.NS, Kubelet: ownKubelet{env.Nodes, n},
				ContainerdSocket: n.Path(nodes.ContainerdSocket), CNIConfDir: n.Path(nodes.CNIConfDir)})
		}
		for _, fh := range cn.Hosts {
			if tc.Hosts == nil {
				tc.Hosts = map[string]*netbed.Netns{}
			}
			tc.Hosts[fh.Spec.Name] = fh.NS
		}
		t.Clusters = append(t.Clusters, tc)
	}
	return t, nil
}

// baseTarget finds kubectl, helm, the chart, the images and Multus' release tree.
func baseTarget(out io.Writer) (Target, error) {
	kubectl, err := controlplane.Binary("kubectl")
	if err != nil {
		return Target{}, err
	}
	images, err := nodes.FindImages(nodes.ImagesDir())
	if err != nil {
		return Target{}, err
	}
	helm, _ := controlplane.Binary("helm") // its absence is reported by the install step, with the fix
	tree, err := nodes.MultusTree()
	if err != nil {
		return Target{}, err
	}
	return Target{Out: out, Kubectl: kubectl, Helm: helm, Chart: ChartDir(), Images: images, MultusTree: tree, Previous: previousRelease()}, nil
}

// PreviousDir is where `make images-previous` puts the previous release (chart/, images/).
func PreviousDir() string { return test.Path("_output", "previous") }

// previousRelease is the release in PreviousDir, or nil when it is not built.
func previousRelease() *Release {
	dir := PreviousDir()
	images, err := nodes.FindImages(filepath.Join(dir, "images"))
	if err != nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "chart", "Chart.yaml")); err != nil {
		return nil
	}
	return &Release{Chart: filepath.Join(dir, "chart"), Images: images}
}

// SyncImages imports into the running nodes the images `make images` rebuilt since they started, and
// says whether any of underlink's own images was among them.
func SyncImages(ctx context.Context, dir string, out io.Writer) (underlinkChanged bool, err error) {
	b, err := os.ReadFile(StatePath(dir))
	if err != nil {
		return false, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return false, err
	}
	images, err := nodes.FindImages(nodes.ImagesDir())
	if err != nil {
		return false, err
	}
	for _, c := range st.Clusters {
		for _, n := range c.Nodes {
			done, err := nodes.SyncImages(ctx, n.ContainerdSocket, nodes.Tarballs(images))
			if err != nil {
				return false, fmt.Errorf("node %s: %w", n.Name, err)
			}
			for _, t := range done {
				fmt.Fprintf(out, "nodes: %s: imported the rebuilt %s\n", n.Name, filepath.Base(t))
				underlinkChanged = underlinkChanged || strings.HasPrefix(filepath.Base(t), "underlink-") && !strings.Contains(t, "testapp")
			}
		}
	}
	return underlinkChanged, nil
}

// ownKubelet is the kubelet of a node this process started: Stop kills it (SIGKILL), Start runs it again
// with the same command line.
type ownKubelet struct {
	env  *nodes.Env
	node *nodes.Node
}

func (k ownKubelet) Stop() error  { return k.env.StopProcess(k.node, "kubelet") }
func (k ownKubelet) Start() error { return k.env.StartProcess(k.node, "kubelet") }
func (k ownKubelet) How() string  { return "killed (SIGKILL)" }

// frozenKubelet is the kubelet of a node that the node host process (make demo) started and supervises:
// Stop stops it where it is (SIGSTOP), as a node cut off from the cluster; Start lets it go on
// (SIGCONT). Either way it renews no Lease, reports no status and tears nothing down while stopped.
type frozenKubelet struct{ netns string }

func (k frozenKubelet) Stop() error {
	_, err := nodes.SignalByName(k.netns, "kubelet", syscall.SIGSTOP)
	return err
}

func (k frozenKubelet) Start() error {
	_, err := nodes.SignalByName(k.netns, "kubelet", syscall.SIGCONT)
	return err
}
func (k frozenKubelet) How() string { return "stopped (SIGSTOP)" }
