package linkwatch

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// LabelPrefix starts the node label that says whether an underlay NIC is up: underlay.underlink.io/<nic>.
const LabelPrefix = "underlay.underlink.io/"

// DefaultNIC is watched when no SpiderMultusConfig names a master.
const DefaultNIC = "ens224"

// Label values.
const (
	Up   = "up"
	Down = "down"
)

// LabelKey is the node label of nic, or an error when the NIC's name cannot be a label name.
func LabelKey(nic string) (string, error) {
	key := LabelPrefix + nic
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return "", fmt.Errorf("NIC %q cannot be named in node label %q: %s", nic, key, strings.Join(errs, "; "))
	}
	return key, nil
}

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

// Desired is the label value of each watched NIC given the links by name: a NIC that does not exist is
// down.
func Desired(nics []string, upByName map[string]bool) map[string]string {
	out := make(map[string]string, len(nics))
	for _, nic := range nics {
		if upByName[nic] {
			out[nic] = Up
		} else {
			out[nic] = Down
		}
	}
	return out
}

// MastersOf lists, sorted and once each, the macvlan masters of the SpiderMultusConfigs, or DefaultNIC
// when none names one.
func MastersOf(configs []spv2.SpiderMultusConfig) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range configs {
		if c.Spec.MacvlanConfig == nil {
			continue
		}
		for _, m := range c.Spec.MacvlanConfig.Master {
			if m != "" && !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		return []string{DefaultNIC}
	}
	sort.Strings(out)
	return out
}
