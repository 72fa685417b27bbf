package linkwatch

import (
	"sort"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/pkg/podnet"
)

// DefaultNIC is watched when no SpiderMultusConfig names a master.
const DefaultNIC = "ens224"

// Operational states of RFC 2863 as the kernel reports them (IF_OPER_*).
const (
	operUnknown = 0
	operUp      = 6
)

// LinkUp says whether a link carries traffic: administratively up, and operationally up, or "unknown"
// for drivers that do not report it (dummy, some virtual NICs). A veth whose peer is down is
// "lower layer down", so down.
func LinkUp(adminUp bool, operState uint8) bool {
	return adminUp && (operState == operUp || operState == operUnknown)
}

// Desired is the label value (api/underlay.LinkUp or LinkDown) of each watched NIC given the links by
// name: a NIC that does not exist is down.
func Desired(nics []string, upByName map[string]bool) map[string]string {
	out := make(map[string]string, len(nics))
	for _, nic := range nics {
		if upByName[nic] {
			out[nic] = underlay.LinkUp
		} else {
			out[nic] = underlay.LinkDown
		}
	}
	return out
}

// MastersOf lists, sorted and once each, the links that the SpiderMultusConfigs' pods are made on (their
// pkg/podnet.Parent: the master, or the VLAN sub-interface or bond the config names), or DefaultNIC when
// none names one. A config whose parent cannot be computed is left out: admission denies it and no
// NAD exists for it.
func MastersOf(configs []spv2.SpiderMultusConfig) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range configs {
		if c.Spec.MacvlanConfig == nil {
			continue
		}
		parent, err := podnet.Parent(c.Spec.MacvlanConfig)
		if err != nil || seen[parent] {
			continue
		}
		seen[parent] = true
		out = append(out, parent)
	}
	if len(out) == 0 {
		return []string{DefaultNIC}
	}
	sort.Strings(out)
	return out
}
