package linkwatch

import (
	"strings"
	"testing"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"

	"github.com/underlink/underlink/test"
)

func TestLabelKey(t *testing.T) {
	for _, tc := range []struct{ nic, key, err string }{
		{"ens224", "underlay.underlink.io/ens224", ""},
		{"bond0.100", "underlay.underlink.io/bond0.100", ""},
		{"eth_1", "underlay.underlink.io/eth_1", ""},
		{"eth@1", "", `NIC "eth@1" cannot be named in node label`},
		{"", "", "cannot be named"},
	} {
		key, err := LabelKey(tc.nic)
		if tc.err == "" && (err != nil || key != tc.key) {
			t.Errorf("LabelKey(%q) = %q, %v; want %q", tc.nic, key, err, tc.key)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("LabelKey(%q) error = %v, want %q", tc.nic, err, tc.err)
		}
	}
}

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
	want := map[string]string{"ens224": Up, "ens256": Down, "ens192": Down}
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
