package poolchoice

import (
	"encoding/json"
	"fmt"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/podnet"
)

// Where a pod interface's pools come from, in order of precedence.
const (
	SourcePodIPPools = "pod annotation " + spv2.AnnoPodIPPools
	SourcePodIPPool  = "pod annotation " + spv2.AnnoPodIPPool
	SourceNetwork    = "the network's configuration"
	SourceDefault    = "SpiderIPPools with spec.default: true"
)

// Names are pool names per address family, in the order they are tried.
type Names struct {
	IPv4, IPv6 []string
}

// Empty reports whether n names no pool.
func (n Names) Empty() bool { return len(n.IPv4) == 0 && len(n.IPv6) == 0 }

// Annotations are a pod's explicit pool choices: Spiderpool's ipam.spidernet.io/ippools (per
// interface) and ipam.spidernet.io/ippool (any interface).
type Annotations struct {
	single   *spv2.AnnoPodIPPoolValue
	multi    spv2.AnnoPodIPPoolsValue
	hasMulti bool
}

// ParseAnnotations reads the pool annotations of a pod. What Spiderpool would refuse is a *ConfigError
// naming the annotation: JSON that does not decode, an ippools list without items, an item without
// an interface or an interface listed twice, an ippool that names no pool.
func ParseAnnotations(annotations map[string]string) (Annotations, error) {
	var a Annotations
	if raw, ok := annotations[spv2.AnnoPodIPPools]; ok {
		a.hasMulti = true
		if err := json.Unmarshal([]byte(raw), &a.multi); err != nil {
			return a, &ConfigError{Annotation: spv2.AnnoPodIPPools, Value: raw, Msg: fmt.Sprintf("is not a JSON list of items: %v", err), Fix: `write it like [{"interface":"eth0","ipv4":["<pool>"]}]`}
		}
		if len(a.multi) == 0 {
			return a, &ConfigError{Annotation: spv2.AnnoPodIPPools, Value: raw, Msg: "lists no interface", Fix: "name each interface with its pools, or remove the annotation"}
		}
		seen := map[string]bool{}
		for i, it := range a.multi {
			field := fmt.Sprintf("[%d].interface", i)
			switch {
			case it.NIC == "":
				return a, &ConfigError{Annotation: spv2.AnnoPodIPPools, Field: field, Msg: "is empty", Fix: "name the pod interface the item is for, e.g. eth0"}
			case podnet.InterfaceNameProblem(it.NIC) != "":
				return a, &ConfigError{Annotation: spv2.AnnoPodIPPools, Field: field, Value: it.NIC, Msg: podnet.InterfaceNameProblem(it.NIC), Fix: "name the pod interface, e.g. eth0 or net1"}
			case seen[it.NIC]:
				return a, &ConfigError{Annotation: spv2.AnnoPodIPPools, Field: field, Value: it.NIC, Msg: "is listed twice", Fix: "list each interface once"}
			}
			seen[it.NIC] = true
		}
	}
	raw, ok := annotations[spv2.AnnoPodIPPool]
	if !ok || a.hasMulti {
		// Under ipam.spidernet.io/ippools the single annotation is never read, as in Spiderpool.
		return a, nil
	}
	a.single = &spv2.AnnoPodIPPoolValue{}
	if err := json.Unmarshal([]byte(raw), a.single); err != nil {
		return a, &ConfigError{Annotation: spv2.AnnoPodIPPool, Value: raw, Msg: fmt.Sprintf("is not a JSON object: %v", err), Fix: `write it like {"ipv4":["<pool>"],"ipv6":["<pool>"]}`}
	}
	if len(a.single.IPv4Pools)+len(a.single.IPv6Pools) == 0 {
		return a, &ConfigError{Annotation: spv2.AnnoPodIPPool, Value: raw, Msg: "names no ipv4 or ipv6 pools", Fix: "name the pools, or remove the annotation"}
	}
	return a, nil
}

// Choice is a pod's own choice for one interface.
type Choice struct {
	Names
	// Annotation is the annotation that chose (AnnoPodIPPools or AnnoPodIPPool).
	Annotation string
	// CleanGateway asks for no default route (an ippools item's cleangateway).
	CleanGateway bool
	// Item is the index of the ipam.spidernet.io/ippools item that chose, for field paths; -1 for
	// ipam.spidernet.io/ippool.
	Item int
}

// field is the path of entry i of the family's list inside the annotation: "[0].ipv4[1]", "ipv4[1]".
func (c Choice) field(family, i int) string {
	f := fmt.Sprintf("ipv%d[%d]", family, i)
	if c.Item >= 0 {
		f = fmt.Sprintf("[%d].%s", c.Item, f)
	}
	return f
}

// Source is the annotation as a source of pools, for messages.
func (c Choice) Source() string { return "pod annotation " + c.Annotation }

// For returns the pod's choice for the interface ifname; ok is false when the annotations choose
// nothing for any interface. When ipam.spidernet.io/ippools is present it alone decides, as in
// Spiderpool: an interface without an item there, or an item without pools, is a *ConfigError.
func (a Annotations) For(ifname string) (c Choice, ok bool, err error) {
	if a.hasMulti {
		for i, it := range a.multi {
			if it.NIC != ifname {
				continue
			}
			if len(it.IPv4Pools)+len(it.IPv6Pools) == 0 {
				return Choice{}, false, &ConfigError{Annotation: spv2.AnnoPodIPPools, Value: ifname, Msg: "the item of this interface names no ipv4 or ipv6 pools", Fix: "name its pools, or drop the item"}
			}
			return Choice{Names: Names{IPv4: it.IPv4Pools, IPv6: it.IPv6Pools}, Annotation: spv2.AnnoPodIPPools, CleanGateway: it.CleanGateway, Item: i}, true, nil
		}
		return Choice{}, false, &ConfigError{Annotation: spv2.AnnoPodIPPools, Value: ifname,
			Msg: fmt.Sprintf("names no pools for interface %s, which takes its addresses from SpiderIPPools (the annotation, when present, decides for every interface)", ifname),
			Fix: fmt.Sprintf(`add an item {"interface":%q,"ipv4":["<pool>"]}`, ifname)}
	}
	if a.single != nil {
		return Choice{Names: Names{IPv4: a.single.IPv4Pools, IPv6: a.single.IPv6Pools}, Annotation: spv2.AnnoPodIPPool, Item: -1}, true, nil
	}
	return Choice{}, false, nil
}

// Interfaces are the interfaces ipam.spidernet.io/ippools has items for, in order; nil without it.
func (a Annotations) Interfaces() []string {
	var out []string
	for _, it := range a.multi {
		out = append(out, it.NIC)
	}
	return out
}

// HasPools reports whether the pod has ipam.spidernet.io/ippools, which then alone decides.
func (a Annotations) HasPools() bool { return a.hasMulti }

// Mentioned returns every pool name the annotations mention, for deciding which pool events concern a
// pod.
func (a Annotations) Mentioned() []string {
	var out []string
	if a.single != nil {
		out = append(append(out, a.single.IPv4Pools...), a.single.IPv6Pools...)
	}
	for _, it := range a.multi {
		out = append(append(out, it.IPv4Pools...), it.IPv6Pools...)
	}
	return out
}
