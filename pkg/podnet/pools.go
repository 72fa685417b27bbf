package podnet

import (
	"encoding/json"
	"fmt"

	v1 "k8s.io/api/core/v1"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// PoolChoice is an ordered list of SpiderIPPool names per address family, and who chose it.
type PoolChoice struct {
	IPv4, IPv6 []string
	// Source says where the names come from, e.g. "annotation ipam.spidernet.io/ippool", for messages.
	Source string
}

// Empty reports whether the choice names no pool.
func (c PoolChoice) Empty() bool { return len(c.IPv4) == 0 && len(c.IPv6) == 0 }

// PoolAnnotations are a pod's explicit pool choices (Spiderpool's ipam.spidernet.io/ippool and
// ipam.spidernet.io/ippools).
type PoolAnnotations struct {
	single *spv2.AnnoPodIPPoolValue
	multi  spv2.AnnoPodIPPoolsValue
}

// ParsePoolAnnotations reads the pool annotations of pod. A value that is not the JSON Spiderpool
// documents is an error naming the annotation and its value.
func ParsePoolAnnotations(pod *v1.Pod) (PoolAnnotations, error) {
	var pa PoolAnnotations
	if v, ok := pod.Annotations[spv2.AnnoPodIPPool]; ok {
		pa.single = &spv2.AnnoPodIPPoolValue{}
		if err := json.Unmarshal([]byte(v), pa.single); err != nil {
			return pa, fmt.Errorf(`annotation %s=%q: not {"ipv4":["pool"],"ipv6":["pool"]}: %w`, spv2.AnnoPodIPPool, v, err)
		}
	}
	if v, ok := pod.Annotations[spv2.AnnoPodIPPools]; ok {
		if err := json.Unmarshal([]byte(v), &pa.multi); err != nil {
			return pa, fmt.Errorf(`annotation %s=%q: not [{"interface":"eth0","ipv4":["pool"]}]: %w`, spv2.AnnoPodIPPools, v, err)
		}
		for i, item := range pa.multi {
			if item.NIC == "" {
				return pa, fmt.Errorf("annotation %s=%q: entry %d has no interface; each entry names the pod interface it is for", spv2.AnnoPodIPPools, v, i)
			}
		}
	}
	return pa, nil
}

// For returns the pools the annotations choose for the pod interface ifname. As in Spiderpool, an
// ipam.spidernet.io/ippools entry for the interface wins over ipam.spidernet.io/ippool, which applies to
// whichever interface asks; ok is false when neither chooses.
func (pa PoolAnnotations) For(ifname string) (PoolChoice, bool) {
	for _, item := range pa.multi {
		if item.NIC == ifname {
			return PoolChoice{IPv4: item.IPv4Pools, IPv6: item.IPv6Pools, Source: "annotation " + spv2.AnnoPodIPPools}, true
		}
	}
	if pa.single != nil {
		return PoolChoice{IPv4: pa.single.IPv4Pools, IPv6: pa.single.IPv6Pools, Source: "annotation " + spv2.AnnoPodIPPool}, true
	}
	return PoolChoice{}, false
}

// Names returns every pool name the annotations mention, for deciding which pool events concern a pod.
func (pa PoolAnnotations) Names() []string {
	var out []string
	if pa.single != nil {
		out = append(append(out, pa.single.IPv4Pools...), pa.single.IPv6Pools...)
	}
	for _, item := range pa.multi {
		out = append(append(out, item.IPv4Pools...), item.IPv6Pools...)
	}
	return out
}
