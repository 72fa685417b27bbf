package podnet

import (
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/test"
)

func pod(ann map[string]string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p", Annotations: ann}}
}

func TestAttachments(t *testing.T) {
	for _, tc := range []struct {
		name           string
		ann            map[string]string
		defaultNetwork string
		want           []Attachment
		wantErr        string
	}{
		{name: "plain pod has none"},
		{
			name: "seed deployment's default network (with its typo kept)",
			ann:  map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-confg"},
			want: []Attachment{{Namespace: "kube-system", Name: "macvlan-confg", Interface: "eth0", Source: nadv1.DefaultNetworkAnnotation}},
		},
		{
			// Multus reads it in its own namespace, not the pod's (tryLoadK8sPodDefaultNetwork).
			name: "default network without namespace is in Multus' namespace",
			ann:  map[string]string{nadv1.DefaultNetworkAnnotation: "macvlan-conf"},
			want: []Attachment{{Namespace: "kube-system", Name: "macvlan-conf", Interface: "eth0", Source: nadv1.DefaultNetworkAnnotation}},
		},
		{
			name:           "args default network applies to pods without the annotation",
			defaultNetwork: "kube-system/macvlan-conf",
			want:           []Attachment{{Namespace: "kube-system", Name: "macvlan-conf", Interface: "eth0", Source: ArgsDefaultNetwork}},
		},
		{
			name:           "the annotation wins over the args default network",
			ann:            map[string]string{nadv1.DefaultNetworkAnnotation: "other/net"},
			defaultNetwork: "kube-system/macvlan-conf",
			want:           []Attachment{{Namespace: "other", Name: "net", Interface: "eth0", Source: nadv1.DefaultNetworkAnnotation}},
		},
		{
			name: "short form networks are numbered net1, net2 unless named",
			ann:  map[string]string{nadv1.NetworksAnnotation: "kube-system/a, b@ul0 ,c"},
			want: []Attachment{
				{Namespace: "kube-system", Name: "a", Interface: "net1", Source: nadv1.NetworksAnnotation},
				{Namespace: "default", Name: "b", Interface: "ul0", Source: nadv1.NetworksAnnotation},
				{Namespace: "default", Name: "c", Interface: "net3", Source: nadv1.NetworksAnnotation},
			},
		},
		{
			name: "JSON networks",
			ann:  map[string]string{nadv1.NetworksAnnotation: `[{"name":"a","namespace":"kube-system","interface":"ul0","ips":["1.2.3.4/24"]},{"name":"b"}]`},
			want: []Attachment{
				{Namespace: "kube-system", Name: "a", Interface: "ul0", Source: nadv1.NetworksAnnotation},
				{Namespace: "default", Name: "b", Interface: "net2", Source: nadv1.NetworksAnnotation},
			},
		},
		{
			name: "both annotations: default network on eth0 plus the extra ones",
			ann:  map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf", nadv1.NetworksAnnotation: "kube-system/macvlan-conf"},
			want: []Attachment{
				{Namespace: "kube-system", Name: "macvlan-conf", Interface: "eth0", Source: nadv1.DefaultNetworkAnnotation},
				{Namespace: "kube-system", Name: "macvlan-conf", Interface: "net1", Source: nadv1.NetworksAnnotation},
			},
		},
		{name: "bad JSON names the annotation", ann: map[string]string{nadv1.NetworksAnnotation: `[{"name":`}, wantErr: "annotation k8s.v1.cni.cncf.io/networks=\"[{\\\"name\\\":\": is not a JSON list"},
		{name: "bad name", ann: map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/Mac_Vlan"}, wantErr: `network name "Mac_Vlan"`},
		{name: "empty name", ann: map[string]string{nadv1.NetworksAnnotation: "a,,b"}, wantErr: "stray comma"},
		{name: "default network on another interface", ann: map[string]string{nadv1.DefaultNetworkAnnotation: "a@net1"}, wantErr: "always on eth0"},
		{name: "interface used twice", ann: map[string]string{nadv1.NetworksAnnotation: "a@x,b@x"}, wantErr: "interface x is used twice"},
		{name: "JSON entry without name", ann: map[string]string{nadv1.NetworksAnnotation: `[{"namespace":"a"}]`}, wantErr: "entry 0: names no network"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Attachments(pod(tc.ann), tc.defaultNetwork)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			if HasNetworkAnnotations(pod(tc.ann)) != (len(tc.ann) > 0) {
				t.Errorf("HasNetworkAnnotations disagrees with the annotations %v", tc.ann)
			}
		})
	}
}

func seedMultusConfig(t *testing.T) *spv2.SpiderMultusConfig {
	t.Helper()
	smc := &spv2.SpiderMultusConfig{}
	test.DecodeSeed(t, "cluster-a-multusconfig.yaml", smc)
	return smc
}

func ptr[T any](v T) *T { return &v }

func TestFromMultusConfig(t *testing.T) {
	seed := seedMultusConfig(t)
	noIPAM := seed.DeepCopy()
	noIPAM.Spec.DisableIPAM = ptr(true)
	noMaster := seed.DeepCopy()
	noMaster.Spec.MacvlanConfig = nil
	custom := &spv2.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"}, Spec: spv2.MultusCNIConfigSpec{
		CniType:         ptr("custom"),
		CustomCNIConfig: ptr(`{"cniVersion":"1.0.0","type":"macvlan","master":"ens256","ipam":{"type":"spiderpool","default_ipv4_ippool":["p4"]}}`),
	}}
	badCustom := custom.DeepCopy()
	badCustom.Spec.CustomCNIConfig = ptr(`{"type":`)
	ipvlan := &spv2.SpiderMultusConfig{Spec: spv2.MultusCNIConfigSpec{CniType: ptr("ipvlan")}}
	match := seed.DeepCopy()
	match.Spec.MacvlanConfig.VlanID = ptr(int32(100))
	match.Spec.MacvlanConfig.SpiderpoolConfigPools.MatchMasterSubnet = ptr(true)
	for _, tc := range []struct {
		name string
		in   *spv2.SpiderMultusConfig
		want Network
	}{
		{name: "seed config: ens224 and pool cluster-a", in: seed, want: Network{Kind: KindMultusConfig, Masters: []string{"ens224"}, IPAM: true,
			Pools: PoolChoice{IPv4: []string{"cluster-a"}, Source: "SpiderMultusConfig kube-system/macvlan-conf spec.macvlan.ippools",
				IPv4Field: "SpiderMultusConfig kube-system/macvlan-conf spec.macvlan.ippools.ipv4", IPv6Field: "SpiderMultusConfig kube-system/macvlan-conf spec.macvlan.ippools.ipv6"}}},
		{name: "disableIPAM keeps the NIC, drops the pools", in: noIPAM, want: Network{Kind: KindMultusConfig, Masters: []string{"ens224"},
			Pools: PoolChoice{IPv4: []string{"cluster-a"}, Source: "SpiderMultusConfig kube-system/macvlan-conf spec.macvlan.ippools",
				IPv4Field: "SpiderMultusConfig kube-system/macvlan-conf spec.macvlan.ippools.ipv4", IPv6Field: "SpiderMultusConfig kube-system/macvlan-conf spec.macvlan.ippools.ipv6"}}},
		{name: "macvlan without master is a problem naming the field", in: noMaster, want: Network{Kind: KindMultusConfig,
			Problem: "SpiderMultusConfig kube-system/macvlan-conf has spec.cniType macvlan but no spec.macvlan.master"}},
		{name: "custom CNI is read like a NAD", in: custom, want: Network{Kind: KindMultusConfig, Masters: []string{"ens256"}, IPAM: true,
			Pools: PoolChoice{IPv4: []string{"p4"}, Source: "SpiderMultusConfig ns/c spec.customCNI ipam",
				IPv4Field: "SpiderMultusConfig ns/c spec.customCNI ipam.default_ipv4_ippool", IPv6Field: "SpiderMultusConfig ns/c spec.customCNI ipam.default_ipv6_ippool"}}},
		{name: "unreadable custom CNI", in: badCustom, want: Network{Kind: KindMultusConfig,
			Problem: "SpiderMultusConfig ns/c spec.customCNI: not a CNI configuration (JSON): unexpected end of JSON input"}},
		{name: "other CNI types need nothing", in: ipvlan, want: Network{Kind: KindMultusConfig}},
		{name: "matchMasterSubnet matches the link the pods are made on: the VLAN sub-interface", in: match, want: Network{Kind: KindMultusConfig, Masters: []string{"ens224.100"}, IPAM: true,
			Pools: PoolChoice{IPv4: []string{"cluster-a"}, Source: "SpiderMultusConfig kube-system/macvlan-conf spec.macvlan.ippools", MatchMaster: "ens224.100",
				IPv4Field: "SpiderMultusConfig kube-system/macvlan-conf spec.macvlan.ippools.ipv4", IPv6Field: "SpiderMultusConfig kube-system/macvlan-conf spec.macvlan.ippools.ipv6"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FromMultusConfig(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			if got.Underlay() != (len(tc.want.Masters) > 0 || tc.want.IPAM) {
				t.Errorf("Underlay() = %v", got.Underlay())
			}
		})
	}
}

func TestFromNAD(t *testing.T) {
	nad := func(cfg string) *nadv1.NetworkAttachmentDefinition {
		return &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "macvlan-conf"}, Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: cfg}}
	}
	for _, tc := range []struct {
		name string
		cfg  string
		want Network
	}{
		{
			name: "underlink's generated chain",
			cfg: `{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","plugins":[
				{"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"underlink-ipam","ipv4Pools":["cluster-a"]}},
				{"type":"underlink-coordinator","mode":"underlay","hijackCIDR":["172.111.0.0/16"]}]}`,
			want: Network{Kind: KindNAD, Masters: []string{"ens224"}, IPAM: true,
				Pools: PoolChoice{IPv4: []string{"cluster-a"}, Source: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config ipam",
					IPv4Field: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config ipam.ipv4Pools", IPv6Field: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config ipam.ipv6Pools"}},
		},
		{
			name: "Spiderpool's NAD",
			cfg:  `{"cniVersion":"0.3.1","type":"macvlan","master":"ens224","ipam":{"type":"spiderpool","default_ipv6_ippool":["v6"]}}`,
			want: Network{Kind: KindNAD, Masters: []string{"ens224"}, IPAM: true,
				Pools: PoolChoice{IPv6: []string{"v6"}, Source: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config ipam",
					IPv4Field: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config ipam.default_ipv4_ippool", IPv6Field: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config ipam.default_ipv6_ippool"}},
		},
		{
			name: "matchMasterSubnet in underlink-ipam and in Spiderpool's IPAM",
			cfg:  `{"cniVersion":"1.1.0","plugins":[{"type":"macvlan","master":"ens224","ipam":{"type":"underlink-ipam","ipv4Pools":["a"],"matchMasterSubnet":true,"master":"ens224"}}]}`,
			want: Network{Kind: KindNAD, Masters: []string{"ens224"}, IPAM: true,
				Pools: PoolChoice{IPv4: []string{"a"}, Source: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config ipam", MatchMaster: "ens224",
					IPv4Field: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config ipam.ipv4Pools", IPv6Field: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config ipam.ipv6Pools"}},
		},
		{
			name: "Spiderpool's match_master_subnet takes the plugin's master",
			cfg:  `{"cniVersion":"0.3.1","type":"sriov","master":"ens5f0","ipam":{"type":"spiderpool","default_ipv4_ippool":["a"],"match_master_subnet":true}}`,
			want: Network{Kind: KindNAD, Masters: []string{"ens5f0"}, IPAM: true,
				Pools: PoolChoice{IPv4: []string{"a"}, Source: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config ipam", MatchMaster: "ens5f0",
					IPv4Field: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config ipam.default_ipv4_ippool", IPv6Field: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config ipam.default_ipv6_ippool"}},
		},
		{name: "a bridge with host-local needs nothing", cfg: `{"type":"bridge","ipam":{"type":"host-local"}}`, want: Network{Kind: KindNAD}},
		{name: "empty config (Multus reads it from disk)", want: Network{Kind: KindNAD}},
		{name: "not JSON", cfg: `macvlan`, want: Network{Kind: KindNAD,
			Problem: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config: not a CNI configuration (JSON): invalid character 'm' looking for beginning of value"}},
		{name: "ipam not an object", cfg: `{"type":"macvlan","ipam":"x"}`, want: Network{Kind: KindNAD,
			Problem: "NetworkAttachmentDefinition kube-system/macvlan-conf spec.config: plugin 0 (macvlan): ipam is not an object: json: cannot unmarshal string into Go value of type podnet.cniIPAM"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FromNAD(nad(tc.cfg)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseNetworks(t *testing.T) {
	got, err := ParseNetworks(" a , ns2/b@net1,c@net2 ", "pods")
	if err != nil {
		t.Fatal(err)
	}
	want := []Selection{{Namespace: "pods", Name: "a"}, {Namespace: "ns2", Name: "b", Interface: "net1"}, {Namespace: "pods", Name: "c", Interface: "net2"}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"", "a@", "a@b@c", "/a", "a/", "[1]", strings.Repeat("a,", MaxNetworks+1) + "a"} {
		if _, err := ParseNetworks(bad, "pods"); err == nil {
			t.Errorf("ParseNetworks(%q) accepted", bad)
		}
	}
}

// A spec.multusName entry without a namespace is in Multus' namespace, like a default network.
func TestPoolServesNetwork(t *testing.T) {
	for _, tc := range []struct {
		multusName []string
		network    string
		want       bool
	}{
		{nil, "kube-system/macvlan-conf", true},
		{[]string{"kube-system/macvlan-conf"}, "kube-system/macvlan-conf", true},
		{[]string{"macvlan-conf"}, "kube-system/macvlan-conf", true},
		{[]string{"macvlan-conf"}, "default/macvlan-conf", false},
		{[]string{"kube-system/macvlan-ens256"}, "kube-system/macvlan-conf", false},
		{[]string{"kube-system/macvlan-conf"}, "", false},
	} {
		if got := PoolServesNetwork(tc.multusName, tc.network); got != tc.want {
			t.Errorf("PoolServesNetwork(%v, %q) = %v, want %v", tc.multusName, tc.network, got, tc.want)
		}
	}
}

func TestNetworkOn(t *testing.T) {
	p := pod(map[string]string{nadv1.DefaultNetworkAnnotation: "macvlan-conf", nadv1.NetworksAnnotation: "sriov@ul0,other"})
	for ifname, want := range map[string]string{"eth0": "kube-system/macvlan-conf", "ul0": "default/sriov", "net2": "default/other", "net1": ""} {
		a, ok := NetworkOn(p, ifname)
		if got := map[bool]string{true: a.Key()}[ok]; got != want {
			t.Errorf("NetworkOn(%s) = %q, want %q", ifname, got, want)
		}
	}
	if _, ok := NetworkOn(pod(map[string]string{nadv1.DefaultNetworkAnnotation: "Bad_Name"}), "eth0"); ok {
		t.Error("NetworkOn read a network from an annotation that does not parse")
	}
}
