// Package podnet reads what a pod asks of the network from its annotations and what a network gives
// from its SpiderMultusConfig or NetworkAttachmentDefinition: which networks the pod is attached to, on
// which interfaces, which host NICs those networks use and which SpiderIPPools their addresses come from.
// It is pure (no client), so the scheduler plugin and underlink-agent's pre-allocation share one
// reading of Multus' and Spiderpool's conventions.
package podnet

import (
	"encoding/json"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"

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
// attachment per network. A name without a namespace is in the pod's namespace. An annotation that
// cannot be read is an error naming the annotation and its value.
func Attachments(pod *v1.Pod, defaultNetwork string) ([]Attachment, error) {
	var out []Attachment
	if v, ok := pod.Annotations[nadv1.DefaultNetworkAnnotation]; ok && strings.TrimSpace(v) != "" {
		sel, err := parseElement(v, pod.Namespace)
		if err != nil {
			return nil, fmt.Errorf("annotation %s=%q: %w", nadv1.DefaultNetworkAnnotation, v, err)
		}
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
	sels, err := parseNetworks(v, pod.Namespace)
	if err != nil {
		return nil, fmt.Errorf("annotation %s=%q: %w", nadv1.NetworksAnnotation, v, err)
	}
	seen := map[string]bool{DefaultInterface: len(out) > 0}
	for i, s := range sels {
		if s.Interface == "" {
			// Multus numbers unnamed secondary interfaces by their position in the list.
			s.Interface = fmt.Sprintf("net%d", i+1)
		}
		if seen[s.Interface] {
			return nil, fmt.Errorf("annotation %s=%q: interface %s is used twice", nadv1.NetworksAnnotation, v, s.Interface)
		}
		seen[s.Interface] = true
		out = append(out, Attachment{Namespace: s.Namespace, Name: s.Name, Interface: s.Interface, Source: nadv1.NetworksAnnotation})
	}
	return out, nil
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

// selection is one network selection: Multus' NetworkSelectionElement, reduced to what placement needs.
type selection struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Interface string `json:"interface,omitempty"`
}

// parseNetworks reads the networks annotation: a JSON list of selections, or Multus' short form
// "ns/name@ifname, name, ...".
func parseNetworks(v, podNamespace string) ([]selection, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "[") {
		var sels []selection
		if err := json.Unmarshal([]byte(v), &sels); err != nil {
			return nil, fmt.Errorf("not a JSON list of network selections: %w", err)
		}
		for i := range sels {
			if sels[i].Namespace == "" {
				sels[i].Namespace = podNamespace
			}
			if err := sels[i].validate(); err != nil {
				return nil, fmt.Errorf("entry %d: %w", i, err)
			}
		}
		return sels, nil
	}
	var sels []selection
	for _, item := range strings.Split(v, ",") {
		s, err := parseElement(item, podNamespace)
		if err != nil {
			return nil, err
		}
		sels = append(sels, s)
	}
	return sels, nil
}

// parseElement reads "[namespace/]name[@interface]".
func parseElement(item, podNamespace string) (selection, error) {
	item = strings.TrimSpace(item)
	s := selection{Namespace: podNamespace}
	ref, ifname, hasIf := strings.Cut(item, "@")
	if hasIf {
		s.Interface = ifname
		if ifname == "" {
			return s, fmt.Errorf("%q: empty interface name after @", item)
		}
	}
	if ns, name, ok := strings.Cut(ref, "/"); ok {
		s.Namespace, s.Name = ns, name
	} else {
		s.Name = ref
	}
	if err := s.validate(); err != nil {
		return s, fmt.Errorf("%q: %w", item, err)
	}
	return s, nil
}

func (s selection) validate() error {
	if s.Name == "" {
		return fmt.Errorf("no network name; write namespace/name or name")
	}
	if msgs := content.IsDNS1123Subdomain(s.Name); len(msgs) > 0 {
		return fmt.Errorf("network name %q: %s", s.Name, strings.Join(msgs, "; "))
	}
	if msgs := content.IsDNS1123Label(s.Namespace); len(msgs) > 0 {
		return fmt.Errorf("namespace %q: %s", s.Namespace, strings.Join(msgs, "; "))
	}
	if len(s.Interface) > 15 || strings.ContainsAny(s.Interface, "/ \t") {
		return fmt.Errorf("interface %q is not a Linux interface name", s.Interface)
	}
	return nil
}
