package linkwatch

import (
	"strings"
	"testing"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/api/underlay"

	"github.com/underlink/underlink/test"
)

func TestLinkUp(t *testing.T) {
	for _, tc := range []struct {
		admin bool
		oper  uint8
		want  bool
	}{
		{true, 6, true},   // up
		{true, 0, true},   // unknown: dummy NICs
		{true, 2, false},  // down: no carrier
		{true, 7, false},  // dormant
		{true, 5, false},  // lower layer down: veth peer down
		{false, 6, false}, // admin down wins
		{false, 0, false},
	} {
		if got := LinkUp(tc.admin, tc.oper); got != tc.want {
			t.Errorf("LinkUp(%v, %d) = %v", tc.admin, tc.oper, got)
		}
	}
}

func TestDesiredMissingNICIsDown(t *testing.T) {
	got := Desired([]string{"ens224", "ens256", "ens192"}, map[string]bool{"ens224": true, "ens256": false, "lo": true})
	want := map[string]string{"ens224": underlay.LinkUp, "ens256": underlay.LinkDown, "ens192": underlay.LinkDown}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != 3 {
		t.Errorf("labels for unwatched links: %v", got)
	}
}

// The watched links are the ones pods are made on: a config with a VLAN ID is watched on its VLAN
// sub-interface and a bonded one on its bond, never on the masters beneath them (their NAD's macvlan
// "master" is the parent, so a node with ens224 but no ens224.100 cannot start their pods).
func TestMastersOfFollowsTheParent(t *testing.T) {
	var seed spv2.SpiderMultusConfig
	test.DecodeSeed(t, "cluster-a-multusconfig.yaml", &seed)
	macvlan := func(mc spv2.SpiderMacvlanCniConfig) spv2.SpiderMultusConfig {
		return spv2.SpiderMultusConfig{Spec: spv2.MultusCNIConfigSpec{MacvlanConfig: &mc}}
	}
	vlan := int32(100)
	zero := int32(0)
	second := macvlan(spv2.SpiderMacvlanCniConfig{Master: []string{"ens256"}})
	tagged := macvlan(spv2.SpiderMacvlanCniConfig{Master: []string{"ens224"}, VlanID: &vlan})
	untagged := macvlan(spv2.SpiderMacvlanCniConfig{Master: []string{"ens224"}, VlanID: &zero})
	bonded := macvlan(spv2.SpiderMacvlanCniConfig{Master: []string{"ens224", "ens256"}, Bond: &spv2.BondConfig{Name: "bond0"}, VlanID: &vlan})
	unbondedPair := macvlan(spv2.SpiderMacvlanCniConfig{Master: []string{"ens256", "ens224"}})
	for _, tc := range []struct {
		configs []spv2.SpiderMultusConfig
		want    string
	}{
		{nil, "ens224"},
		{[]spv2.SpiderMultusConfig{{}}, "ens224"},
		{[]spv2.SpiderMultusConfig{seed}, "ens224"},
		{[]spv2.SpiderMultusConfig{seed, second}, "ens224,ens256"},
		{[]spv2.SpiderMultusConfig{tagged}, "ens224.100"},
		{[]spv2.SpiderMultusConfig{seed, tagged, untagged}, "ens224,ens224.100"},
		{[]spv2.SpiderMultusConfig{bonded}, "bond0.100"},
		{[]spv2.SpiderMultusConfig{unbondedPair}, "ens224"}, // no parent: admission denies it, nothing to watch
	} {
		if got := strings.Join(MastersOf(tc.configs), ","); got != tc.want {
			t.Errorf("MastersOf = %s, want %s", got, tc.want)
		}
	}
}
