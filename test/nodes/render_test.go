package nodes

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The settings test/nodes/README.md says this kind of machine needs are in every node's configuration.
func TestNodeConfigsCarryTheMachineSettings(t *testing.T) {
	ctrd := containerdConfig("ghcr.io/underlink/pause:0.1.0")
	for _, want := range []string{
		`restrict_oom_score_adj = true`, `netns_mounts_under_state_dir = true`, `sandbox_image = "ghcr.io/underlink/pause:0.1.0"`,
		`SystemdCgroup = false`, `bin_dir = "/opt/cni/bin"`, `conf_dir = "/etc/cni/net.d"`, `max_conf_num = 1`, `address = "/run/containerd/containerd.sock"`,
	} {
		if !strings.Contains(ctrd, want) {
			t.Errorf("containerd config lacks %s:\n%s", want, ctrd)
		}
	}

	b, err := kubeletConfig(kubeletParams{NodeIP: "10.7.168.73", CgroupRoot: "/underlink/ulbed-1-1/a-node1", ClientCA: "/ca.crt",
		TLSCert: "/k.crt", TLSKey: "/k.key", ResolvConf: "/r"})
	if err != nil {
		t.Fatal(err)
	}
	var kc map[string]any
	if err := yaml.Unmarshal(b, &kc); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"failCgroupV1": false, "cgroupDriver": "cgroupfs", "failSwapOn": false, "oomScoreAdj": float64(0),
		"cgroupRoot": "/underlink/ulbed-1-1/a-node1", "address": "10.7.168.73", "port": float64(KubeletPort),
		"containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock", "imageGCHighThresholdPercent": float64(100),
		"mergeDefaultEvictionSettings": false,
	} {
		if kc[k] != want {
			t.Errorf("kubelet config %s = %v (%T), want %v", k, kc[k], kc[k], want)
		}
	}
	authz, _ := kc["authorization"].(map[string]any)
	if authz["mode"] != "Webhook" {
		t.Errorf("kubelet authorization %v, want Webhook", authz)
	}

	p, err := kubeProxyConfig("/kp.kubeconfig", "a-node1")
	if err != nil {
		t.Fatal(err)
	}
	var pc map[string]any
	if err := yaml.Unmarshal(p, &pc); err != nil {
		t.Fatal(err)
	}
	ct, _ := pc["conntrack"].(map[string]any)
	if pc["mode"] != "iptables" || pc["hostnameOverride"] != "a-node1" || pc["clusterCIDR"] != nil || ct["tcpBeLiberal"] != true {
		t.Errorf("kube-proxy config: %s", p)
	}

	// The primary network sorts after Multus' configuration, and speaks containerd 1.6's newest CNI version.
	var conf struct {
		CNIVersion string `json:"cniVersion"`
		Plugins    []struct{ Type string }
	}
	if err := json.Unmarshal([]byte(clusterNetworkConf("10.244.73.0/24")), &conf); err != nil {
		t.Fatal(err)
	}
	if conf.CNIVersion != "1.0.0" || len(conf.Plugins) != 1 || conf.Plugins[0].Type != "bridge" || !(MultusConfFile < PrimaryNetworkFile) {
		t.Errorf("primary network %s: %+v", PrimaryNetworkFile, conf)
	}
	if got := cgroupRootOf("ulbed-12-3-", "a-node1"); got != "/underlink/ulbed-12-3/a-node1" {
		t.Errorf("cgroupRootOf = %s", got)
	}
	if pid, ok := bedOwner("ulbed-12-3"); !ok || pid != 12 {
		t.Errorf("bedOwner = %d %v", pid, ok)
	}
}

func TestImageRefs(t *testing.T) {
	index := []byte(`{"schemaVersion":2,"manifests":[{"annotations":{"io.containerd.image.name":"ghcr.io/underlink/pause:0.1.0","org.opencontainers.image.ref.name":"0.1.0"}}]}`)
	m, err := refsOf([]byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:ab","annotations":{"io.containerd.image.name":"ghcr.io/underlink/pause:0.1.0","org.opencontainers.image.ref.name":"0.1.0"}}]}`), nil)
	if err != nil || m["ghcr.io/underlink/pause:0.1.0"] != "sha256:ab" {
		t.Errorf("OCI index digests: %v %v", m, err)
	}
	m, err = refsOf(index, nil)
	refs := refNames(m)
	if err != nil || len(refs) != 1 || refs[0] != "ghcr.io/underlink/pause:0.1.0" {
		t.Errorf("OCI index: %v %v", refs, err)
	}
	m, err = refsOf([]byte(`{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"ghcr.io/underlink/underlink-testapp:0.1.0"}}]}`), nil)
	if refs = refNames(m); err != nil || refs[0] != "ghcr.io/underlink/underlink-testapp:0.1.0" {
		t.Errorf("full ref.name: %v %v", refs, err)
	}
	m, err = refsOf(nil, []byte(`[{"RepoTags":["docker.io/library/nginx:latest"]}]`))
	if refs = refNames(m); err != nil || refs[0] != "docker.io/library/nginx:latest" {
		t.Errorf("docker manifest: %v %v", refs, err)
	}
	if _, err := refsOf([]byte(`{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"0.1.0"}}]}`), nil); err == nil {
		t.Error("a tag-only ref.name was taken for a reference")
	}
	images := []Image{{Refs: []string{"ghcr.io/underlink/underlink-webhook:0.1.0"}}, {Refs: []string{"ghcr.io/underlink/pause:0.1.0"}}}
	if r, err := PickImage(images, "pause"); err != nil || r != "ghcr.io/underlink/pause:0.1.0" {
		t.Errorf("PickImage pause: %s %v", r, err)
	}
	if _, err := PickImage(images, "underlink-testapp"); err == nil || !strings.Contains(err.Error(), "make images") {
		t.Errorf("PickImage missing: %v", err)
	}
}

func TestReadConnect(t *testing.T) {
	for in, want := range map[string]string{
		"CONNECT 10.7.168.73:10250 HTTP/1.1\r\nHost: 10.7.168.73:10250\r\n\r\n": "10.7.168.73:10250",
		"CONNECT 10.233.1.5:443 HTTP/1.1\r\n\r\n":                               "10.233.1.5:443",
	} {
		got, err := readConnect(bufio.NewReader(strings.NewReader(in)))
		if err != nil || got != want {
			t.Errorf("readConnect(%q) = %q, %v", in, got, err)
		}
	}
	for in, want := range map[string]string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n":               "want a CONNECT request",
		"CONNECT nohost HTTP/1.1\r\nHost: nohost\r\n\r\n": "not host:port",
		"garbage": "read CONNECT request",
	} {
		if _, err := readConnect(bufio.NewReader(strings.NewReader(in))); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("readConnect(%q): %v, want %q", in, err, want)
		}
	}
}
