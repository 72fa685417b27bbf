package multus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/api/scheme"
)

// apiTimeout bounds the stand-in's reads from the apiserver.
const apiTimeout = 15 * time.Second

// cached is what the stand-in keeps per attachment: the network it chose and the chain it ran.
type cached struct {
	Network string          `json:"network"`
	Config  json.RawMessage `json:"config"`
}

// Plugin is the stand-in for one CNI invocation.
type Plugin struct {
	Conf *Conf
	Args *skel.CmdArgs
}

// New parses the invocation's configuration.
func New(args *skel.CmdArgs) (*Plugin, error) {
	c, err := ParseConf(args.StdinData)
	if err != nil {
		return nil, err
	}
	return &Plugin{Conf: c, Args: args}, nil
}

func (p *Plugin) cacheFile() string {
	return filepath.Join(p.Conf.CacheDir, p.Args.ContainerID+"-"+p.Args.IfName+".json")
}

func (p *Plugin) cniConfig() *libcni.CNIConfig {
	return libcni.NewCNIConfig(filepath.SplitList(os.Getenv("CNI_PATH")), nil)
}

func (p *Plugin) runtimeConf(pairs [][2]string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: p.Args.ContainerID, NetNS: p.Args.Netns, IfName: p.Args.IfName, Args: pairs}
}

// resolve reads the pod and its network's NAD from the apiserver.
func (p *Plugin) resolve(ctx context.Context, podNS, podName string) (NetworkRef, *libcni.NetworkConfigList, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", p.Conf.Kubeconfig)
	if err != nil {
		return NetworkRef{}, nil, fmt.Errorf("multus stand-in: kubeconfig %s: %w", p.Conf.Kubeconfig, err)
	}
	cfg.Timeout = apiTimeout
	cl, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return NetworkRef{}, nil, err
	}
	pod := &corev1.Pod{}
	if err := cl.Get(ctx, client.ObjectKey{Namespace: podNS, Name: podName}, pod); err != nil {
		return NetworkRef{}, nil, fmt.Errorf("multus stand-in: get pod %s/%s: %w", podNS, podName, err)
	}
	ref, err := DefaultNetwork(pod.Annotations, podNS, podName, p.Conf.ClusterNetwork)
	if err != nil {
		return NetworkRef{}, nil, err
	}
	if ref.File != "" {
		b, err := os.ReadFile(ref.File)
		if err != nil {
			return ref, nil, fmt.Errorf("multus stand-in: clusterNetwork: %w", err)
		}
		chain, err := ChainOf(ref, string(b))
		return ref, chain, err
	}
	nad := &nadv1.NetworkAttachmentDefinition{}
	if err := cl.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, nad); err != nil {
		if apierrors.IsNotFound(err) {
			return ref, nil, fmt.Errorf("multus stand-in: pod %s/%s asks for network %s (annotation %s), but NetworkAttachmentDefinition %s does not exist",
				podNS, podName, ref, nadv1.DefaultNetworkAnnotation, ref)
		}
		return ref, nil, fmt.Errorf("multus stand-in: get NetworkAttachmentDefinition %s: %w", ref, err)
	}
	chain, err := ChainOf(ref, nad.Spec.Config)
	return ref, chain, err
}

// Add runs the pod's network's chain and returns its result in the runtime's CNI version.
func (p *Plugin) Add(ctx context.Context) (types.Result, error) {
	podNS, podName, pairs, err := PodArgs(p.Args.Args)
	if err != nil {
		return nil, err
	}
	ref, chain, err := p.resolve(ctx, podNS, podName)
	if err != nil {
		return nil, err
	}
	// Kept before ADD runs: a DEL after a half-done ADD must find the chain to undo it.
	if err := p.save(cached{Network: ref.String(), Config: chain.Bytes}); err != nil {
		return nil, err
	}
	res, err := p.cniConfig().AddNetworkList(ctx, chain, p.runtimeConf(pairs))
	if err != nil {
		return nil, fmt.Errorf("multus stand-in: network %s (chain %q) for pod %s/%s: %w", ref, chain.Name, podNS, podName, err)
	}
	out, err := res.GetAsVersion(p.Conf.CNIVersion)
	if err != nil {
		return nil, fmt.Errorf("multus stand-in: convert the result of %s to CNI %s: %w", ref, p.Conf.CNIVersion, err)
	}
	return out, nil
}

// Del runs DEL of the chain that ADD ran. Nothing to delete (no cache, pod and NAD gone) is success.
func (p *Plugin) Del(ctx context.Context) error {
	_, _, pairs, err := PodArgs(p.Args.Args)
	if err != nil {
		// DEL must not fail for want of arguments it does not need to find its cache.
		pairs = nil
	}
	chain, ref, err := p.load(ctx)
	if err != nil || chain == nil {
		return err
	}
	if err := p.cniConfig().DelNetworkList(ctx, chain, p.runtimeConf(pairs)); err != nil {
		return fmt.Errorf("multus stand-in: DEL of network %s: %w", ref, err)
	}
	if err := os.Remove(p.cacheFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Check runs CHECK of the chain that ADD ran.
func (p *Plugin) Check(ctx context.Context) error {
	_, _, pairs, err := PodArgs(p.Args.Args)
	if err != nil {
		return err
	}
	chain, ref, err := p.load(ctx)
	if err != nil {
		return err
	}
	if chain == nil {
		return fmt.Errorf("multus stand-in: no attachment %s/%s to check", p.Args.ContainerID, p.Args.IfName)
	}
	if err := p.cniConfig().CheckNetworkList(ctx, chain, p.runtimeConf(pairs)); err != nil {
		return fmt.Errorf("multus stand-in: CHECK of network %s: %w", ref, err)
	}
	return nil
}

func (p *Plugin) save(c cached) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.Conf.CacheDir, 0o700); err != nil {
		return err
	}
	tmp := p.cacheFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p.cacheFile())
}

// load returns the cached chain of this attachment, or (nil, nil) when there is none.
func (p *Plugin) load(context.Context) (*libcni.NetworkConfigList, string, error) {
	b, err := os.ReadFile(p.cacheFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var c cached
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, "", fmt.Errorf("multus stand-in: cache %s: %w", p.cacheFile(), err)
	}
	l, err := libcni.ConfListFromBytes(c.Config)
	if err != nil {
		return nil, "", fmt.Errorf("multus stand-in: cache %s: %w", p.cacheFile(), err)
	}
	return l, c.Network, nil
}
