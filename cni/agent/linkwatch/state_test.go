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

func TestMastersOfSeedAndDefault(t *testing.T) {
	var seed spv2.SpiderMultusConfig
	test.DecodeSeed(t, "cluster-a-multusconfig.yaml", &seed)
	other := spv2.SpiderMultusConfig{Spec: spv2.MultusCNIConfigSpec{MacvlanConfig: &spv2.SpiderMacvlanCniConfig{Master: []string{"ens256", "ens224"}}}}
	for _, tc := range []struct {
		configs []spv2.SpiderMultusConfig
		want    string
	}{
		{nil, "ens224"},
		{[]spv2.SpiderMultusConfig{{}}, "ens224"},
		{[]spv2.SpiderMultusConfig{seed}, "ens224"},
		{[]spv2.SpiderMultusConfig{seed, other}, "ens224,ens256"},
	} {
		if got := strings.Join(MastersOf(tc.configs), ","); got != tc.want {
			t.Errorf("MastersOf = %s, want %s", got, tc.want)
		}
	}
}
