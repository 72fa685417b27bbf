package netconf

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/test"
)

func seedConfig(t *testing.T) *spv2.SpiderMultusConfig {
	t.Helper()
	smc := &spv2.SpiderMultusConfig{}
	test.DecodeSeed(t, "cluster-a-multusconfig.yaml", smc)
	return smc
}

var clusterA = Local{ServiceCIDR: []string{"10.233.0.0/18"}, ClusterCIDR: []string{"172.110.0.0/16"}}

// The seed's cluster-a config becomes exactly the chain of api/cniconf, and a CNI runtime loads it.
func TestBuildSeedConfigIsTheMacvlanCoordinatorChain(t *testing.T) {
	got, err := Build(seedConfig(t), clusterA)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cniVersion":"1.0.0","name":"kube-system-macvlan-conf","plugins":[` +
		`{"type":"underlink-macvlan","master":"ens224","mode":"bridge","ipam":{"type":"underlink-ipam","ipv4Pools":["cluster-a"],"defaultRouteNIC":"eth0"}},` +
		`{"clusterCIDR":["172.110.0.0/16"],"hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],"ipam":{},"mode":"underlay","podRPFilter":0,"serviceCIDR":["10.233.0.0/18"],"type":"underlink-coordinator"}]}`
	if got != want {
		t.Errorf("config of the seed's macvlan-conf:\n got %s\nwant %s", got, want)
	}
	list, err := libcni.ConfListFromBytes([]byte(got))
	if err != nil {
		t.Fatalf("a CNI runtime cannot load the generated list: %v", err)
	}
	if list.CNIVersion != "1.0.0" || len(list.Plugins) != 2 || list.Plugins[0].Network.Type != "underlink-macvlan" || list.Plugins[1].Network.Type != "underlink-coordinator" {
		t.Errorf("loaded list: version %s, %d plugins", list.CNIVersion, len(list.Plugins))
	}
}

func ptr[T any](v T) *T { return &v }

func TestBuildVariants(t *testing.T) {
	base := func(mut func(s *spv2.MultusCNIConfigSpec)) *spv2.SpiderMultusConfig {
		smc := &spv2.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "net"}}
		smc.Spec = spv2.MultusCNIConfigSpec{
			CniType:       ptr("macvlan"),
			MacvlanConfig: &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224"}, SpiderpoolConfigPools: &spv2.SpiderpoolPools{IPv4IPPool: []string{"p4"}, IPv6IPPool: []string{"p6"}}},
		}
		mut(&smc.Spec)
		return smc
	}
	cases := []struct {
		name    string
		smc     *spv2.SpiderMultusConfig
		plugins []map[string]any // a subset of each plugin's keys
		wantErr string
		unsupp  bool
	}{
		{
			name: "vlan and mtu: master is the VLAN sub-interface",
			smc: base(func(s *spv2.MultusCNIConfigSpec) {
				s.MacvlanConfig.VlanID = ptr(int32(100))
				s.MacvlanConfig.MTU = ptr(int32(1400))
			}),
			plugins: []map[string]any{{"master": "ens224.100", "mtu": float64(1400), "mode": "bridge"}, {"type": "underlink-coordinator"}},
		},
		{
			name:    "dual stack pools",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) {}),
			plugins: []map[string]any{{"ipam": map[string]any{"type": "underlink-ipam", "ipv4Pools": []any{"p4"}, "ipv6Pools": []any{"p6"}, "defaultRouteNIC": "eth0"}}, {}},
		},
		{
			name:    "matchMasterSubnet passes the master to IPAM",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) { s.MacvlanConfig.SpiderpoolConfigPools.MatchMasterSubnet = ptr(true) }),
			plugins: []map[string]any{{"ipam": map[string]any{"type": "underlink-ipam", "ipv4Pools": []any{"p4"}, "ipv6Pools": []any{"p6"}, "matchMasterSubnet": true, "master": "ens224", "defaultRouteNIC": "eth0"}}, {}},
		},
		{
			name:    "disableIPAM leaves macvlan without ipam",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) { s.DisableIPAM = ptr(true) }),
			plugins: []map[string]any{{"type": "underlink-macvlan", "ipam": nil}, {}},
		},
		{
			name:    "enableCoordinator false chains no coordinator",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) { s.EnableCoordinator = ptr(false) }),
			plugins: []map[string]any{{"type": "underlink-macvlan"}},
		},
		{
			name:    "coordinator mode disabled chains no coordinator",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) { s.CoordinatorConfig = &spv2.CoordinatorSpec{Mode: ptr("disabled")} }),
			plugins: []map[string]any{{"type": "underlink-macvlan"}},
		},
		{
			name: "coordinator settings are copied, negative rp_filter leaves it",
			smc: base(func(s *spv2.MultusCNIConfigSpec) {
				s.CoordinatorConfig = &spv2.CoordinatorSpec{Mode: ptr("auto"), PodRPFilter: ptr(int32(-1)), HostRuleTable: ptr(int64(500)), TxQueueLen: ptr(int32(1000)), VethMTU: ptr(int64(1400)),
					VethLinkAddress: ptr("169.254.100.1"), PodMACPrefix: ptr("0a:1b"), PodDefaultRouteNIC: ptr("eth0"), TunePodRoutes: ptr(true)}
			}),
			plugins: []map[string]any{{}, {"mode": "underlay", "podRPFilter": nil, "hostRuleTable": float64(500), "txQueueLen": float64(1000), "vethMTU": float64(1400),
				"vethLinkAddress": "169.254.100.1", "podMACPrefix": "0a:1b", "podDefaultRouteNIC": "eth0", "tunePodRoutes": true}},
		},
		{
			name: "detection is underlink-ipam's; the default route goes to podDefaultRouteNIC only",
			smc: base(func(s *spv2.MultusCNIConfigSpec) {
				s.CoordinatorConfig = &spv2.CoordinatorSpec{DetectIPConflict: ptr(true), DetectGateway: ptr(true), PodDefaultRouteNIC: ptr("net1")}
			}),
			plugins: []map[string]any{{"ipam": map[string]any{"type": "underlink-ipam", "ipv4Pools": []any{"p4"}, "ipv6Pools": []any{"p6"},
				"detectIPConflict": true, "detectGateway": true, "defaultRouteNIC": "net1"}}, {"podDefaultRouteNIC": "net1", "detectIPConflict": nil}},
		},
		{
			name: "detection without the coordinator: every interface keeps its default route",
			smc: base(func(s *spv2.MultusCNIConfigSpec) {
				s.EnableCoordinator = ptr(false)
				s.CoordinatorConfig = &spv2.CoordinatorSpec{DetectIPConflict: ptr(true), DetectGateway: ptr(false)}
			}),
			plugins: []map[string]any{{"ipam": map[string]any{"type": "underlink-ipam", "ipv4Pools": []any{"p4"}, "ipv6Pools": []any{"p6"}, "detectIPConflict": true}}},
		},
		{
			name: "bond: macvlan on the bond",
			smc: base(func(s *spv2.MultusCNIConfigSpec) {
				s.MacvlanConfig.Master = []string{"ens224", "ens256"}
				s.MacvlanConfig.Bond = &spv2.BondConfig{Name: "bond0", Mode: 1}
			}),
			plugins: []map[string]any{{"master": "bond0"}, {}},
		},
		{
			name: "chained plugins are appended",
			smc: base(func(s *spv2.MultusCNIConfigSpec) {
				s.ChainCNIJsonData = []string{`{"type":"tuning","sysctl":{"net.core.somaxconn":"500"}}`}
			}),
			plugins: []map[string]any{{"type": "underlink-macvlan"}, {"type": "underlink-coordinator"}, {"type": "tuning"}},
		},
		{
			name:    "two masters without a bond",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) { s.MacvlanConfig.Master = []string{"ens224", "ens256"} }),
			wantErr: "spec.macvlan.master [ens224 ens256]: has 2 NICs",
		},
		{
			name:    "macvlan without master",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) { s.MacvlanConfig = nil }),
			wantErr: "spec.macvlan.master is required",
		},
		{
			name: "interface name too long",
			smc: base(func(s *spv2.MultusCNIConfigSpec) {
				s.MacvlanConfig.Master = []string{"enp130s0f1np1"}
				s.MacvlanConfig.VlanID = ptr(int32(4000))
			}),
			wantErr: "makes the VLAN link enp130s0f1np1.4000, 18 characters",
		},
		{
			name:    "chained plugin not JSON",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) { s.ChainCNIJsonData = []string{`{"type":`} }),
			wantErr: "spec.chainCNIJsonData[0] is not a JSON object",
		},
		{
			name:    "chained plugin without type",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) { s.ChainCNIJsonData = []string{`{"sysctl":{}}`} }),
			wantErr: `spec.chainCNIJsonData[0] has no "type"`,
		},
		{
			name:    "ipvlan is unsupported",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) { s.CniType = ptr("ipvlan") }),
			wantErr: `spec.cniType "ipvlan" is not supported`,
			unsupp:  true,
		},
		{
			name:    "overlay coordinator is unsupported",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) { s.CoordinatorConfig = &spv2.CoordinatorSpec{Mode: ptr("overlay")} }),
			wantErr: `spec.coordinator.mode "overlay" is not supported`,
			unsupp:  true,
		},
		{
			name:    "custom without customCNI",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) { s.CniType = nil }),
			wantErr: "spec.customCNI is empty",
		},
		{
			name:    "custom that is not CNI",
			smc:     base(func(s *spv2.MultusCNIConfigSpec) { s.CniType = ptr("custom"); s.CustomCNIConfig = ptr(`{"hello":1}`) }),
			wantErr: `neither "type" nor "plugins"`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Build(c.smc, clusterA)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "ns/net") {
					t.Fatalf("error %v, want one naming ns/net and containing %q", err, c.wantErr)
				}
				if errors.Is(err, ErrUnsupported) != c.unsupp {
					t.Errorf("errors.Is(err, ErrUnsupported) = %v, want %v", !c.unsupp, c.unsupp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var list struct {
				CNIVersion string           `json:"cniVersion"`
				Plugins    []map[string]any `json:"plugins"`
			}
			if err := json.Unmarshal([]byte(got), &list); err != nil {
				t.Fatal(err)
			}
			if list.CNIVersion != "1.0.0" || len(list.Plugins) != len(c.plugins) {
				t.Fatalf("got %s, want %d plugins", got, len(c.plugins))
			}
			for i, want := range c.plugins {
				for k, v := range want {
					if g := list.Plugins[i][k]; !equalJSON(g, v) {
						t.Errorf("plugin %d %q = %#v, want %#v (config %s)", i, k, g, v, got)
					}
				}
			}
		})
	}
}

func TestBuildCustomPassesThrough(t *testing.T) {
	raw := `{"cniVersion":"1.0.0","name":"x","type":"bridge"}`
	smc := &spv2.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "net"}, Spec: spv2.MultusCNIConfigSpec{CniType: ptr("custom"), CustomCNIConfig: ptr(raw)}}
	got, err := Build(smc, Local{})
	if err != nil || got != raw {
		t.Fatalf("Build = %q, %v; want the customCNI verbatim", got, err)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestBuildMergesTheClusterCoordinatorDefaults: a config's coordinator fields win; what it leaves unset
// comes from the SpiderCoordinator "default", hijack CIDRs and the IPAM's probes included.
func TestBuildMergesTheClusterCoordinatorDefaults(t *testing.T) {
	defaults := &spv2.CoordinatorSpec{HijackCIDR: []string{"10.243.0.0/18", "172.111.0.0/16"}, PodMACPrefix: ptr("0a:1b"),
		TxQueueLen: ptr(int32(1000)), DetectGateway: ptr(true), TunePodRoutes: ptr(false)}
	local := clusterA
	local.Defaults = defaults
	// The seed's config sets hijackCIDR; one without a coordinator block sets nothing.
	seed, err := Build(seedConfig(t), local)
	if err != nil {
		t.Fatal(err)
	}
	bare := seedConfig(t)
	bare.Spec.CoordinatorConfig = nil
	got, err := Build(bare, local)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		conf, want string
	}{
		{seed, `"hijackCIDR":["10.243.0.0/18","172.111.0.0/16"]`},
		{seed, `"podMACPrefix":"0a:1b"`},
		{seed, `"txQueueLen":1000`},
		{seed, `"detectGateway":true`},
		{got, `"hijackCIDR":["10.243.0.0/18","172.111.0.0/16"]`},
		{got, `"tunePodRoutes":false`},
	} {
		if !strings.Contains(c.conf, c.want) {
			t.Errorf("config lacks %s:\n%s", c.want, c.conf)
		}
	}
	// The config's own value wins over the default.
	own := seedConfig(t)
	own.Spec.CoordinatorConfig.PodMACPrefix = ptr("0e:0f")
	conf, err := Build(own, local)
	if err != nil || !strings.Contains(conf, `"podMACPrefix":"0e:0f"`) {
		t.Errorf("the config's own podMACPrefix must win: %v\n%s", err, conf)
	}
	// No defaults: exactly the config.
	plain, _ := Build(seedConfig(t), clusterA)
	if strings.Contains(plain, "0a:1b") {
		t.Errorf("defaults leaked into a build without them: %s", plain)
	}
}
