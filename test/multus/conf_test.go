package multus

import (
	"strings"
	"testing"
)

func TestParseNetworkRef(t *testing.T) {
	for _, c := range []struct {
		in, podNS string
		want      NetworkRef
		err       string
	}{
		{in: "kube-system/macvlan-conf", podNS: "default", want: NetworkRef{Namespace: "kube-system", Name: "macvlan-conf"}},
		{in: "macvlan-conf", podNS: "team-a", want: NetworkRef{Namespace: "team-a", Name: "macvlan-conf"}},
		{in: " kube-system/macvlan-conf ", podNS: "default", want: NetworkRef{Namespace: "kube-system", Name: "macvlan-conf"}},
		{in: "", podNS: "default", err: `"" is not a network name`},
		{in: "kube-system/", podNS: "default", err: "is not a network name"},
		{in: "a/b/c", podNS: "default", err: "is not a network name"},
		{in: "macvlan-conf@eth1", podNS: "default", err: "is not a network name"},
		{in: `[{"name":"x"}]`, podNS: "default", err: "is not a network name"},
	} {
		got, err := ParseNetworkRef(c.in, c.podNS)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseNetworkRef(%q): err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseNetworkRef(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestDefaultNetwork(t *testing.T) {
	ann := map[string]string{"v1.multus-cni.io/default-network": "kube-system/macvlan-conf"}
	if got, err := DefaultNetwork(ann, "default", "p", ""); err != nil || got.String() != "kube-system/macvlan-conf" {
		t.Errorf("annotated pod: %v, %v", got, err)
	}
	if got, err := DefaultNetwork(nil, "default", "p", "kube-system/fallback"); err != nil || got.String() != "kube-system/fallback" {
		t.Errorf("clusterNetwork fallback: %v, %v", got, err)
	}
	if got, err := DefaultNetwork(nil, "default", "p", "/etc/node/cluster-network.conflist"); err != nil || got.File != "/etc/node/cluster-network.conflist" {
		t.Errorf("clusterNetwork file: %v, %v", got, err)
	}
	_, err := DefaultNetwork(nil, "default", "p", "")
	if err == nil || !strings.Contains(err.Error(), "pod default/p has no v1.multus-cni.io/default-network annotation") {
		t.Errorf("no annotation, no fallback: %v", err)
	}
	_, err = DefaultNetwork(map[string]string{"v1.multus-cni.io/default-network": "a/b/c"}, "default", "p", "")
	if err == nil || !strings.Contains(err.Error(), "pod default/p: annotation v1.multus-cni.io/default-network") {
		t.Errorf("bad annotation: %v", err)
	}
}

func TestChainOf(t *testing.T) {
	ref := NetworkRef{Namespace: "kube-system", Name: "macvlan-conf"}
	l, err := ChainOf(ref, `{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","plugins":[{"type":"macvlan","master":"ens224"},{"type":"underlink-coordinator"}]}`)
	if err != nil || len(l.Plugins) != 2 || l.Plugins[1].Network.Type != "underlink-coordinator" {
		t.Fatalf("plugin list: %+v, %v", l, err)
	}
	l, err = ChainOf(ref, `{"cniVersion":"1.0.0","name":"single","type":"macvlan","master":"ens224"}`)
	if err != nil || len(l.Plugins) != 1 || l.Name != "single" {
		t.Fatalf("single plugin: %+v, %v", l, err)
	}
	for _, bad := range []string{"", "  ", "not json", `{"cniVersion":"1.1.0","name":"x","plugins":[]}`} {
		if _, err := ChainOf(ref, bad); err == nil || !strings.Contains(err.Error(), "kube-system/macvlan-conf") {
			t.Errorf("ChainOf(%q): %v, want an error naming the NAD", bad, err)
		}
	}
}

func TestPodArgs(t *testing.T) {
	ns, name, pairs, err := PodArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=test-app-1;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u")
	if err != nil || ns != "default" || name != "test-app-1" || len(pairs) != 5 {
		t.Fatalf("got %q %q %v %v", ns, name, pairs, err)
	}
	if _, _, _, err := PodArgs("IgnoreUnknown=1"); err == nil || !strings.Contains(err.Error(), "lacks K8S_POD_NAMESPACE") {
		t.Errorf("missing pod args: %v", err)
	}
	if _, _, _, err := PodArgs("K8S_POD_NAME"); err == nil || !strings.Contains(err.Error(), "not KEY=VALUE") {
		t.Errorf("malformed: %v", err)
	}
}

func TestParseConf(t *testing.T) {
	c, err := ParseConf([]byte(`{"cniVersion":"1.0.0","name":"multus-standin","type":"underlink-multus-standin","kubeconfig":"/k"}`))
	if err != nil || c.Kubeconfig != "/k" || c.CacheDir != DefaultCacheDir {
		t.Fatalf("%+v %v", c, err)
	}
	for in, want := range map[string]string{
		`{`: "parse network configuration",
		`{"cniVersion":"1.0.0","name":"m","type":"t"}`:                                            `"kubeconfig" is empty`,
		`{"cniVersion":"1.0.0","name":"m","type":"t","kubeconfig":"/k","clusterNetwork":"a/b/c"}`: `field "clusterNetwork"`,
	} {
		if _, err := ParseConf([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConf(%s): %v, want %q", in, err, want)
		}
	}
}
