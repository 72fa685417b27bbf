// Package podnet reads what a pod asks of the network from its annotations and what a network gives
// from its SpiderMultusConfig or NetworkAttachmentDefinition: which networks the pod is attached to, on
// which interfaces, which host NICs those networks use and which SpiderIPPools their addresses come from.
// It is pure (no client), so the scheduler plugin and underlink-agent's pre-allocation share one
// reading of Multus' and Spiderpool's conventions.
package podnet

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
)

// DefaultInterface is the pod interface of the default network (Multus' eth0).
const DefaultInterface = "eth0"

// ArgsDefaultNetwork names the source of an attachment that comes from the plugin's defaultNetwork arg.
const ArgsDefaultNetwork = "scheduler args defaultNetwork"

// Attachment is one network a pod is attached to.
type Attachment struct {
	// Namespace and Name name the network (a SpiderMultusConfig or a NetworkAttachmentDefinition).
	Namespace, Name string
	// Interface is the pod interface the network is attached on: eth0 for the default network, the
	// @ifname or "interface" of the selection, or Multus' net1, net2, ... by position.
	Interface string
	// Source is the annotation (or ArgsDefaultNetwork) that named the network, for messages.
	Source string
}

// Key is "namespace/name".
func (a Attachment) Key() string { return a.Namespace + "/" + a.Name }

// Attachments returns the networks of pod: the v1.multus-cni.io/default-network annotation (or
// defaultNetwork, "namespace/name", when the pod has none; empty means the cluster's primary CNI) on
// eth0, then each entry of k8s.v1.cni.cncf.io/networks. A pod may carry both annotations; it then has one
// attachment per network. As in Multus, a default network without a namespace is in MultusNamespace and
// a secondary one in the pod's namespace. An annotation that cannot be read is an error naming the
// annotation and its value.
func Attachments(pod *v1.Pod, defaultNetwork string) ([]Attachment, error) {
	var out []Attachment
	if v, ok := pod.Annotations[nadv1.DefaultNetworkAnnotation]; ok && strings.TrimSpace(v) != "" {
		sels, err := ParseNetworks(v, MultusNamespace)
		if err != nil {
			return nil, fmt.Errorf("annotation %s=%q: %w", nadv1.DefaultNetworkAnnotation, v, err)
		}
		if len(sels) != 1 {
			return nil, fmt.Errorf("annotation %s=%q: names %d networks; the default network is exactly one", nadv1.DefaultNetworkAnnotation, v, len(sels))
		}
		sel := sels[0]
		if sel.Interface != "" && sel.Interface != DefaultInterface {
			return nil, fmt.Errorf("annotation %s=%q: the default network is always on %s", nadv1.DefaultNetworkAnnotation, v, DefaultInterface)
		}
		out = append(out, Attachment{Namespace: sel.Namespace, Name: sel.Name, Interface: DefaultInterface, Source: nadv1.DefaultNetworkAnnotation})
	} else if defaultNetwork != "" {
		ns, name, _ := strings.Cut(defaultNetwork, "/")
		out = append(out, Attachment{Namespace: ns, Name: name, Interface: DefaultInterface, Source: ArgsDefaultNetwork})
	}
	v, ok := pod.Annotations[nadv1.NetworksAnnotation]
	if !ok || strings.TrimSpace(v) == "" {
		return out, nil
	}
	sels, err := ParseNetworks(v, pod.Namespace)
	if err != nil {
		return nil, fmt.Errorf("annotation %s=%q: %w", nadv1.NetworksAnnotation, v, err)
	}
	seen := map[string]bool{DefaultInterface: len(out) > 0}
	for i, s := range sels {
		s.Interface = SecondaryInterface(i, s)
		if seen[s.Interface] {
			return nil, fmt.Errorf("annotation %s=%q: interface %s is used twice", nadv1.NetworksAnnotation, v, s.Interface)
		}
		seen[s.Interface] = true
		out = append(out, Attachment{Namespace: s.Namespace, Name: s.Name, Interface: s.Interface, Source: nadv1.NetworksAnnotation})
	}
	return out, nil
}

// SecondaryInterface is the pod interface of entry i (from 0) of k8s.v1.cni.cncf.io/networks: the one it
// names, else Multus' net1, net2, ... by position in the list.
func SecondaryInterface(i int, s Selection) string {
	if s.Interface != "" {
		return s.Interface
	}
	return fmt.Sprintf("net%d", i+1)
}

// NetworkOn returns the attachment of pod on interface ifname (see Attachments), and false when the
// pod's annotations attach no network there or cannot be read.
func NetworkOn(pod *v1.Pod, ifname string) (Attachment, bool) {
	atts, err := Attachments(pod, "")
	if err != nil {
		return Attachment{}, false
	}
	for _, a := range atts {
		if a.Interface == ifname {
			return a, true
		}
	}
	return Attachment{}, false
}

// HasNetworkAnnotations reports whether pod names a network by annotation; it is the cheap test that
// lets pods of the cluster's primary network through without parsing anything.
func HasNetworkAnnotations(pod *v1.Pod) bool {
	if len(pod.Annotations) == 0 {
		return false
	}
	_, a := pod.Annotations[nadv1.DefaultNetworkAnnotation]
	_, b := pod.Annotations[nadv1.NetworksAnnotation]
	return a || b
}
