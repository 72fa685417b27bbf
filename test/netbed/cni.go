package netbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/underlink/underlink/cni/cniinstall"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/controlplane"
)

// ReferencePlugins are the reference CNI plugins (github.com/containernetworking/plugins v1.9.1) that
// hack/build-tools.sh builds into the cache from hack/tools/cni-plugins.
var ReferencePlugins = []string{"macvlan", "host-local", "bridge", "loopback", "static"}

// PluginDir returns a new directory holding the reference plugins (links to the cached binaries) and
// underlink's own CNI binaries built now from ./cmd/<name> of this repository, e.g.
// PluginDir("underlink-coordinator", "underlink-ipam"). It fails the test, saying how to fix it, when a
// reference plugin is not built.
func (b *Bed) PluginDir(cmds ...string) string {
	b.t.Helper()
	dir := filepath.Join(b.dir, "cni-bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	for _, name := range ReferencePlugins {
		src, err := controlplane.Binary(name)
		if err != nil {
			b.t.Fatalf("netbed: %v (the reference CNI plugins: hack/build-tools.sh %s)", err, "macvlan host-local bridge loopback static")
		}
		dst := filepath.Join(dir, name)
		_ = os.Remove(dst)
		if err := os.Symlink(src, dst); err != nil {
			b.t.Fatal(err)
		}
	}
	if err := BuildCommands(dir, cmds...); err != nil {
		b.t.Fatal(err)
	}
	return dir
}

// BuildCommands builds ./cmd/<name> of this repository into dir as static, stripped binaries: a Go
// command with go build (CGO_ENABLED=0), a C one (cmd/<name>/main.c: the underlink-ipam relay) with
// CCompile. A command that execs another (cniinstall.Companions) brings it along.
func BuildCommands(dir string, cmds ...string) error {
	var goCmds []string
	seen := map[string]bool{}
	for i := 0; i < len(cmds); i++ {
		c := cmds[i]
		if seen[c] {
			continue
		}
		seen[c] = true
		if companion, ok := cniinstall.Companions[c]; ok {
			cmds = append(cmds, companion)
		}
		src := filepath.Join(test.RepoRoot(), "cmd", c, "main.c")
		if _, err := os.Stat(src); err != nil {
			goCmds = append(goCmds, "./cmd/"+c)
			continue
		}
		if err := CCompile(src, filepath.Join(dir, c)); err != nil {
			return err
		}
	}
	if len(goCmds) == 0 {
		return nil
	}
	// Stripped like the reference plugins (hack/build-tools.sh), so exec costs compare fairly.
	args := append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", dir + "/"}, goCmds...)
	cmd := exec.Command("go", args...)
	cmd.Dir = test.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %v: %w\n%s", goCmds, err, out)
	}
	return nil
}

// CFlags are hack/make/c.mk's C_CFLAGS.
var CFlags = []string{"-O2", "-static", "-s", "-Wall", "-Wextra", "-Werror"}

// CCompile builds a C command as make build and make images do (hack/make/c.mk's C_CFLAGS, which
// TestCFlagsAreMakes holds to these): static, stripped, every warning an error.
func CCompile(src, out string) error {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	cmd := exec.Command(cc, append(append([]string{}, CFlags...), "-o", out, src)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", cc, src, err, b)
	}
	return nil
}

// CNI runs network configuration lists the way a container runtime on a node does: libcni executes
// the plugin binaries from a goroutine locked into the node's namespace, so every plugin runs in the
// node's namespace (the macvlan master is the node's ens224) with CNI_NETNS naming the pod's. Its
// result cache (the runtime's /var/lib/cni) lives in the bed's directory, one per node.
type CNI struct {
	// Node is the namespace the plugins run in.
	Node *Netns
	// Config is libcni's runtime, with the plugin directories and the cache directory.
	Config *libcni.CNIConfig
}

// CNI returns a runtime for node that finds plugins in binDirs.
func (b *Bed) CNI(node *Netns, binDirs ...string) *CNI {
	cache := filepath.Join(b.dir, "cni-cache", node.Role)
	return &CNI{Node: node, Config: libcni.NewCNIConfigWithCacheDir(binDirs, cache, nil)}
}

// Attachment is the runtime's view of one pod interface, as kubelet (through Multus) would pass it.
func Attachment(containerID string, pod *Netns, ifName string, args ...[2]string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: containerID, NetNS: pod.Path(), IfName: ifName, Args: args}
}

// PodArgs are the CNI_ARGS kubelet passes for a pod.
func PodArgs(namespace, name, uid string) [][2]string {
	return [][2]string{
		{"IgnoreUnknown", "true"},
		{"K8S_POD_NAMESPACE", namespace},
		{"K8S_POD_NAME", name},
		{"K8S_POD_INFRA_CONTAINER_ID", ""},
		{"K8S_POD_UID", uid},
	}
}

// ParseConfList parses a network configuration list (a NAD's spec.config).
func ParseConfList(conf []byte) (*libcni.NetworkConfigList, error) {
	l, err := libcni.ConfListFromBytes(conf)
	if err != nil {
		return nil, fmt.Errorf("parse CNI config list: %w", err)
	}
	return l, nil
}

func (c *CNI) in(f func() error) error {
	return c.Node.Do(func(ns.NetNS) error { return f() })
}

// Add runs ADD of the whole chain.
func (c *CNI) Add(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (types.Result, error) {
	var res types.Result
	err := c.in(func() error {
		var err error
		res, err = c.Config.AddNetworkList(ctx, list, rt)
		return err
	})
	return res, err
}

// Del runs DEL of the whole chain (in reverse order, with the cached result as prevResult).
func (c *CNI) Del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return c.in(func() error { return c.Config.DelNetworkList(ctx, list, rt) })
}

// Check runs CHECK of the whole chain against the cached result.
func (c *CNI) Check(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return c.in(func() error { return c.Config.CheckNetworkList(ctx, list, rt) })
}

// GC runs GC of the chain: DEL of cached attachments not in valid, then each plugin's GC with
// cni.dev/valid-attachments.
func (c *CNI) GC(ctx context.Context, list *libcni.NetworkConfigList, valid []types.GCAttachment) error {
	return c.in(func() error {
		return c.Config.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid})
	})
}

// Status runs STATUS of each plugin of the chain.
func (c *CNI) Status(ctx context.Context, list *libcni.NetworkConfigList) error {
	return c.in(func() error { return c.Config.GetStatusNetworkList(ctx, list) })
}
