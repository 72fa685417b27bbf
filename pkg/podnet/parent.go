package podnet

import (
	"fmt"
	"strconv"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// ParentError says why a macvlan config has no parent link, naming the field.
type ParentError struct {
	// Field is the path of the offending field, e.g. "spec.macvlan.vlanID".
	Field string
	// Value is the offending value as written.
	Value any
	// Reason says what is wrong; Fix what to write instead.
	Reason, Fix string
}

func (e *ParentError) Error() string {
	msg := fmt.Sprintf("%s %v: %s", e.Field, e.Value, e.Reason)
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

// Parent is the host link that a macvlan config's pod interfaces are made on, the macvlan plugin's
// "master" in the generated NAD: the bond (spec.macvlan.bond.name) when the config bonds its masters,
// else its one master, followed by ".<vlanID>" when spec.macvlan.vlanID is not 0 (the VLAN
// sub-interface, named as `ip link add link <parent> name <parent>.<id> type vlan id <id>` and
// Spiderpool's ifacer name it). This is the link that must exist and be up on a node for the network's
// pods to start there: the agent's link watch labels nodes by it and the scheduler places by that
// label. underlink does not create the bond or the VLAN link (docs/DESIGN.md, "VLAN and bond parents").
func Parent(mc *spv2.SpiderMacvlanCniConfig) (string, error) {
	if mc == nil || len(mc.Master) == 0 {
		return "", &ParentError{Field: "spec.macvlan.master", Value: "[]", Reason: "is empty; a macvlan network needs the host NIC its interfaces are made on",
			Fix: "name the host's underlay NIC"}
	}
	parent := mc.Master[0]
	field, value := "spec.macvlan.master[0]", any(parent)
	switch {
	case mc.Bond != nil:
		parent, field, value = mc.Bond.Name, "spec.macvlan.bond.name", mc.Bond.Name
	case len(mc.Master) > 1:
		return "", &ParentError{Field: "spec.macvlan.master", Value: mc.Master,
			Reason: fmt.Sprintf("has %d NICs without spec.macvlan.bond", len(mc.Master)), Fix: "keep one NIC, or bond them with spec.macvlan.bond"}
	}
	if msg := InterfaceNameProblem(parent); msg != "" {
		return "", &ParentError{Field: field, Value: value, Reason: msg, Fix: "write the host link's name as `ip link` shows it"}
	}
	if mc.VlanID == nil || *mc.VlanID == 0 {
		return parent, nil
	}
	id := *mc.VlanID
	if id < 0 || id > 4094 {
		return "", &ParentError{Field: "spec.macvlan.vlanID", Value: id, Reason: "is not a VLAN ID: they are 0 (none) to 4094", Fix: "use a VLAN ID from 1 to 4094, or 0 for none"}
	}
	vlan := parent + "." + strconv.Itoa(int(id))
	if len(vlan) > 15 {
		return "", &ParentError{Field: "spec.macvlan.vlanID", Value: id,
			Reason: fmt.Sprintf("makes the VLAN link %s, %d characters; Linux interface names have at most 15", vlan, len(vlan)),
			Fix:    fmt.Sprintf("name a parent of at most %d characters in %s (now %s)", 15-len(vlan)+len(parent), field, parent)}
	}
	return vlan, nil
}

// HasCreatedParent reports whether a macvlan config's parent is a link that someone must create on
// every node before its pods can start there: a VLAN sub-interface or a bond, which underlink does not
// create (admission warns, `underlink doctor` lists the nodes without it).
func HasCreatedParent(mc *spv2.SpiderMacvlanCniConfig) bool {
	return mc != nil && (mc.Bond != nil || (mc.VlanID != nil && *mc.VlanID != 0))
}
