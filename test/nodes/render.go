package nodes

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// Paths inside a node's private mount namespace. A node sees the machine's root file system except for
// these, which are its own (bind mounts of directories under the node's state directory, and a tmpfs on
// /run), so everything a real node keeps at its usual place — containerd's socket, /opt/cni/bin that the
// chart's agent fills, /run/underlink/agent.sock, kubelet's root and pod logs — is per node here too.
const (
	ContainerdSocket = "/run/containerd/containerd.sock"
	CNIBinDir        = "/opt/cni/bin"
	// CNIConfDir is the runtime's CNI configuration directory, where Multus' DaemonSet writes
	// 00-multus.conflist and multus.d/multus.kubeconfig through its hostPath /etc/cni/net.d.
	CNIConfDir  = "/etc/cni/net.d"
	kubeletRoot = "/var/lib/kubelet"
	podLogsDir  = "/var/log/pods"
)

// PrimaryNetworkFile is the node-local network's file in CNIConfDir. It sorts after Multus'
// 00-multus.conflist, so containerd (max_conf_num 1) runs Multus once it is there and this network
// before, and Multus' autoconfig takes it as the cluster network it wraps.
const PrimaryNetworkFile = "10-node-local.conflist"

// containerdConfig renders containerd 1.6's config for a node: its defaults, plus what test/nodes/README.md
// found this kind of machine needs (restrict_oom_score_adj; pod netns mounts under the state dir, so a
// later `ip netns add` cannot hide them), the sandbox image imported from `make images`, and the CNI
// directories at their usual paths inside the node's mount namespace.
func containerdConfig(sandboxImage string) string {
	return fmt.Sprintf(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
# Plugins a node of this test bed never uses; "opt" would otherwise create /opt/containerd.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # runc cannot raise oom_score_adj here (CAP_SYS_RESOURCE is not in the bounding set).
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`, ContainerdSocket, sandboxImage, CNIBinDir, CNIConfDir)
}

// kubeletParams are the per-node values of a kubelet configuration.
type kubeletParams struct {
	NodeIP      string
	CgroupRoot  string
	ClientCA    string
	TLSCert     string
	TLSKey      string
	ResolvConf  string
	ClusterDNS  []string
	ClusterName string
}

// kubeletConfig renders the KubeletConfiguration of a node with the settings test/nodes/README.md lists for
// this kind of machine (cgroup v1 allowed, cgroupfs driver, swap tolerated, a per-node cgroup root,
// oomScoreAdj 0), kubelet's API served on the node IP with client-certificate and webhook
// authentication, and no eviction or image GC: images come from `make images`, not a registry, so a
// collected image could not come back.
func kubeletConfig(p kubeletParams) ([]byte, error) {
	c := kubeletv1beta1.KubeletConfiguration{
		TypeMeta:                 metav1.TypeMeta{APIVersion: "kubelet.config.k8s.io/v1beta1", Kind: "KubeletConfiguration"},
		Address:                  p.NodeIP,
		Port:                     KubeletPort,
		ReadOnlyPort:             0,
		HealthzBindAddress:       "127.0.0.1",
		HealthzPort:              ptr.To[int32](10248),
		TLSCertFile:              p.TLSCert,
		TLSPrivateKeyFile:        p.TLSKey,
		ContainerRuntimeEndpoint: "unix://" + ContainerdSocket,
		CgroupDriver:             "cgroupfs",
		CgroupRoot:               p.CgroupRoot,
		FailCgroupV1:             ptr.To(false),
		FailSwapOn:               ptr.To(false),
		OOMScoreAdj:              ptr.To[int32](0),
		PodLogsDir:               podLogsDir,
		ResolverConfig:           ptr.To(p.ResolvConf),
		ClusterDomain:            "cluster.local",
		ClusterDNS:               p.ClusterDNS,
		Authentication: kubeletv1beta1.KubeletAuthentication{
			X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: p.ClientCA},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: ptr.To(true)},
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: ptr.To(false)},
		},
		Authorization: kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook},
		// Only the memory signal, and nothing merged in from the defaults: a nearly full disk of the
		// machine must not evict the demo's pods.
		EvictionHard:                 map[string]string{"memory.available": "50Mi"},
		MergeDefaultEvictionSettings: ptr.To(false),
		ImageGCHighThresholdPercent:  ptr.To[int32](100),
		ImageGCLowThresholdPercent:   ptr.To[int32](99),
		SerializeImagePulls:          ptr.To(false),
		// Status every few seconds, so the fault step sees changes quickly.
		NodeStatusUpdateFrequency: metav1.Duration{Duration: nodeStatusEvery},
		SyncFrequency:             metav1.Duration{Duration: syncEvery},
		StaticPodPath:             "",
		RegisterNode:              ptr.To(true),
		MaxPods:                   110,
	}
	return yaml.Marshal(c)
}

// kubeProxyConfig renders a KubeProxyConfiguration (iptables mode) for a node. Conntrack sizing is left
// to the kernel (a network namespace may not write the global sysctls), node ports listen on the node
// IP only, and no cluster CIDR is set, so traffic arriving from the remote cluster through the
// Submariner gateway is not masqueraded, as Submariner itself arranges in a real cluster.
//
// tcpBeLiberal: an underlay pod's traffic to the remote cluster leaves through its node (veth0, the
// hijack routes), but the replies reach the pod straight over the underlay (gateway → ens224 → the pod's
// macvlan), so the pod's node sees one direction of each TCP connection. kube-proxy would drop the rest
// of it as conntrack-INVALID; with nf_conntrack_tcp_be_liberal it installs no such DROP rule. Real
// clusters with this asymmetric path need the same setting.
func kubeProxyConfig(kubeconfig, nodeName string) ([]byte, error) {
	c := map[string]any{
		"apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
		"kind":       "KubeProxyConfiguration",
		"mode":       "iptables",
		"clientConnection": map[string]any{
			"kubeconfig": kubeconfig,
		},
		"hostnameOverride":   nodeName,
		"bindAddress":        "0.0.0.0",
		"healthzBindAddress": "127.0.0.1:10256",
		"metricsBindAddress": "127.0.0.1:10249",
		"nodePortAddresses":  []string{"primary"},
		"conntrack": map[string]any{
			"maxPerCore":            0,
			"min":                   0,
			"tcpEstablishedTimeout": "0s",
			"tcpCloseWaitTimeout":   "0s",
			"tcpBeLiberal":          true,
		},
		"iptables": map[string]any{
			"syncPeriod":    "30s",
			"minSyncPeriod": "1s",
		},
	}
	return yaml.Marshal(c)
}

// cgroupRootOf is a node's kubelet cgroupRoot: one directory per bed and node under /underlink in every
// cgroup v1 hierarchy, named so a sweep can tell whose it is.
func cgroupRootOf(prefix, node string) string {
	return "/underlink/" + strings.TrimSuffix(prefix, "-") + "/" + node
}

// clusterNetworkConf is a node's own network, its primary CNI (PrimaryNetworkFile), for pods that name no
// network (the chart's scheduler) and pods that start before Multus: a bridge with the node as gateway
// and masquerading, like a simple primary CNI would give, on a /24 of its own so no two nodes hand out
// the same address. cniVersion 1.0.0 is the newest containerd 1.6's libcni speaks; Multus' autoconfig
// gives its own configuration this version.
func clusterNetworkConf(subnet string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "node-local",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}}
  ]
}
`, subnet)
}
