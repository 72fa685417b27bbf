package podnet

import (
	"errors"
	"strings"
	"testing"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// Parent is the one computation of the link a network's pods attach to: the NAD's macvlan master, the
// agent's watched link and the scheduler's label all come from it.
func TestParent(t *testing.T) {
	id := func(v int32) *int32 { return &v }
	bond := &spv2.BondConfig{Name: "bond0", Mode: 1}
	for _, tc := range []struct {
		name         string
		mc           *spv2.SpiderMacvlanCniConfig
		want, field  string
		errContains  string
		createdByOps bool
	}{
		{name: "one master", mc: &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224"}}, want: "ens224"},
		{name: "VLAN 0 is none", mc: &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224"}, VlanID: id(0)}, want: "ens224"},
		{name: "VLAN sub-interface", mc: &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224"}, VlanID: id(100)}, want: "ens224.100", createdByOps: true},
		{name: "bond", mc: &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224", "ens256"}, Bond: bond}, want: "bond0", createdByOps: true},
		{name: "VLAN on a bond", mc: &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224", "ens256"}, Bond: bond, VlanID: id(4094)}, want: "bond0.4094", createdByOps: true},
		{name: "no master", mc: &spv2.SpiderMacvlanCniConfig{}, field: "spec.macvlan.master", errContains: "is empty"},
		{name: "two masters without a bond", mc: &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224", "ens256"}}, field: "spec.macvlan.master", errContains: "has 2 NICs without spec.macvlan.bond"},
		{name: "VLAN ID out of range", mc: &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224"}, VlanID: id(4095)}, field: "spec.macvlan.vlanID", errContains: "0 (none) to 4094"},
		{name: "VLAN link name too long", mc: &spv2.SpiderMacvlanCniConfig{Master: []string{"enp130s0f1np1"}, VlanID: id(4000)}, field: "spec.macvlan.vlanID",
			errContains: "makes the VLAN link enp130s0f1np1.4000, 18 characters; Linux interface names have at most 15; name a parent of at most 10 characters in spec.macvlan.master[0]"},
		{name: "bad bond name", mc: &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224", "ens256"}, Bond: &spv2.BondConfig{Name: "bond/0"}}, field: "spec.macvlan.bond.name", errContains: "contains '/'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parent(tc.mc)
			if tc.errContains != "" {
				var pe *ParentError
				if !errors.As(err, &pe) || pe.Field != tc.field || !strings.Contains(err.Error(), tc.errContains) {
					t.Fatalf("Parent = %q, %v; want an error on %s containing %q", got, err, tc.field, tc.errContains)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parent = %q, %v; want %q", got, err, tc.want)
			}
			if HasCreatedParent(tc.mc) != tc.createdByOps {
				t.Errorf("HasCreatedParent = %v", !tc.createdByOps)
			}
		})
	}
}

// The scheduler's and the agent's reading of a config carries its parent, not its masters.
func TestFromMultusConfigReadsTheParent(t *testing.T) {
	macvlan := "macvlan"
	vlan := int32(100)
	smc := &spv2.SpiderMultusConfig{Spec: spv2.MultusCNIConfigSpec{CniType: &macvlan, MacvlanConfig: &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224"}, VlanID: &vlan}}}
	smc.Namespace, smc.Name = "kube-system", "tagged"
	if n := FromMultusConfig(smc); len(n.Masters) != 1 || n.Masters[0] != "ens224.100" || n.Problem != "" {
		t.Errorf("network %+v", n)
	}
	vlan = 5000
	if n := FromMultusConfig(smc); n.Problem == "" || !strings.Contains(n.Problem, "SpiderMultusConfig kube-system/tagged spec.macvlan.vlanID 5000") {
		t.Errorf("problem %q", n.Problem)
	}
}
