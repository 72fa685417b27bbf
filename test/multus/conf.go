package multus

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
)

// DefaultCacheDir is where the stand-in keeps the chain it ran for each attachment (the runtime's CNI
// cache directory, private to each node of the bed).
const DefaultCacheDir = "/var/lib/cni/underlink-multus-standin"

// Conf is the stand-in's own network configuration, the node's only CNI configuration.
type Conf struct {
	types.PluginConf
	// Kubeconfig is how the stand-in reaches the apiserver.
	Kubeconfig string `json:"kubeconfig"`
	// ClusterNetwork, like Multus's, is the network of pods without a default-network annotation: a NAD
	// ("namespace/name") or the absolute path of a CNI configuration list on the node. Empty means such
	// pods fail with an error that says so.
	ClusterNetwork string `json:"clusterNetwork,omitempty"`
	// CacheDir overrides DefaultCacheDir.
	CacheDir string `json:"cacheDir,omitempty"`
}

// ParseConf reads and checks the stand-in's configuration from the runtime's stdin.
func ParseConf(stdin []byte) (*Conf, error) {
	c := &Conf{}
	if err := json.Unmarshal(stdin, c); err != nil {
		return nil, fmt.Errorf("multus stand-in: parse network configuration: %w", err)
	}
	if c.Kubeconfig == "" {
		return nil, errors.New(`multus stand-in: network configuration field "kubeconfig" is empty; it must name a kubeconfig that may get pods and network-attachment-definitions`)
	}
	if c.ClusterNetwork != "" && !filepath.IsAbs(c.ClusterNetwork) {
		if _, err := ParseNetworkRef(c.ClusterNetwork, "default"); err != nil {
			return nil, fmt.Errorf(`multus stand-in: field "clusterNetwork": %w`, err)
		}
	}
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir
	}
	return c, nil
}

// NetworkRef names a NetworkAttachmentDefinition, or (File) a configuration list on the node.
type NetworkRef struct {
	Namespace, Name string
	File            string
}

func (r NetworkRef) String() string {
	if r.File != "" {
		return r.File
	}
	return r.Namespace + "/" + r.Name
}

// ParseNetworkRef parses the value of v1.multus-cni.io/default-network as Multus does: "namespace/name"
// or "name" (in the pod's namespace).
func ParseNetworkRef(v, podNamespace string) (NetworkRef, error) {
	v = strings.TrimSpace(v)
	ns, name, found := strings.Cut(v, "/")
	if !found {
		ns, name = podNamespace, v
	}
	if ns == "" || name == "" || strings.ContainsAny(name, "/@ ,[{") || strings.ContainsAny(ns, "@ ,[{") {
		return NetworkRef{}, fmt.Errorf(`%q is not a network name: want "namespace/name" or "name"`, v)
	}
	return NetworkRef{Namespace: ns, Name: name}, nil
}

// DefaultNetwork picks the network of a pod: its v1.multus-cni.io/default-network annotation, else the
// configured cluster network, else an error that names the pod and says what to set.
func DefaultNetwork(annotations map[string]string, podNamespace, podName, clusterNetwork string) (NetworkRef, error) {
	if v, ok := annotations[nadv1.DefaultNetworkAnnotation]; ok {
		ref, err := ParseNetworkRef(v, podNamespace)
		if err != nil {
			return NetworkRef{}, fmt.Errorf("pod %s/%s: annotation %s: %w", podNamespace, podName, nadv1.DefaultNetworkAnnotation, err)
		}
		return ref, nil
	}
	if filepath.IsAbs(clusterNetwork) {
		return NetworkRef{File: clusterNetwork}, nil
	}
	if clusterNetwork != "" {
		return ParseNetworkRef(clusterNetwork, "default")
	}
	return NetworkRef{}, fmt.Errorf("pod %s/%s has no %s annotation and the Multus stand-in has no clusterNetwork: annotate the pod (underlink's webhook does so in namespaces labelled underlink.io/inject=enabled)",
		podNamespace, podName, nadv1.DefaultNetworkAnnotation)
}

// ChainOf turns a NAD's spec.config (or a node's configuration file) — a plugin list, or a single plugin as Multus also accepts — into the
// list libcni runs.
func ChainOf(ref NetworkRef, config string) (*libcni.NetworkConfigList, error) {
	if strings.TrimSpace(config) == "" {
		return nil, fmt.Errorf("NetworkAttachmentDefinition %s has an empty spec.config", ref)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal([]byte(config), &probe); err != nil {
		return nil, fmt.Errorf("NetworkAttachmentDefinition %s: spec.config is not a JSON object: %w", ref, err)
	}
	if _, ok := probe["plugins"]; ok {
		l, err := libcni.ConfListFromBytes([]byte(config))
		if err != nil {
			return nil, fmt.Errorf("NetworkAttachmentDefinition %s: spec.config: %w", ref, err)
		}
		return l, nil
	}
	c, err := libcni.ConfFromBytes([]byte(config))
	if err != nil {
		return nil, fmt.Errorf("NetworkAttachmentDefinition %s: spec.config: %w", ref, err)
	}
	l, err := libcni.ConfListFromConf(c)
	if err != nil {
		return nil, fmt.Errorf("NetworkAttachmentDefinition %s: spec.config: %w", ref, err)
	}
	return l, nil
}

// PodArgs extracts K8S_POD_NAMESPACE and K8S_POD_NAME from CNI_ARGS ("K=V;K=V"), and returns every pair
// to pass on to the delegated chain as Multus does.
func PodArgs(cniArgs string) (namespace, name string, pairs [][2]string, err error) {
	for _, kv := range strings.Split(cniArgs, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", "", nil, fmt.Errorf("CNI_ARGS entry %q is not KEY=VALUE", kv)
		}
		pairs = append(pairs, [2]string{k, v})
		switch k {
		case "K8S_POD_NAMESPACE":
			namespace = v
		case "K8S_POD_NAME":
			name = v
		}
	}
	if namespace == "" || name == "" {
		return "", "", nil, fmt.Errorf("CNI_ARGS %q lacks K8S_POD_NAMESPACE or K8S_POD_NAME; the stand-in serves kubelet's pods only", cniArgs)
	}
	return namespace, name, pairs, nil
}
