package podnet

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// MultusNamespace is the namespace Multus resolves a v1.multus-cni.io/default-network without a
// namespace in, whatever the pod's namespace: Multus' multusNamespace, kube-system unless Multus is
// configured otherwise (multus-cni pkg/k8sclient, tryLoadK8sPodDefaultNetwork). A spec.multusName entry
// without a namespace is read in it too.
const MultusNamespace = "kube-system"

// MaxNetworks bounds the entries of one network annotation.
const MaxNetworks = 64

// Selection is one network a pod asks Multus for: Multus' NetworkSelectionElement, reduced to what
// underlink reads.
type Selection struct {
	Namespace string
	Name      string
	// Interface is the pod interface name asked for ("name@net1"), or "".
	Interface string
}

// String is "namespace/name".
func (n Selection) String() string { return n.Namespace + "/" + n.Name }

// ParseNetworks reads a Multus network annotation the way Multus does: a JSON list of
// {"name","namespace","interface"} objects, or a comma-separated list of "[namespace/]name[@interface]".
// Entries without a namespace get defaultNamespace (the pod's namespace for k8s.v1.cni.cncf.io/networks,
// MultusNamespace for v1.multus-cni.io/default-network).
func ParseNetworks(value, defaultNamespace string) ([]Selection, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return nil, fmt.Errorf("is empty")
	}
	var out []Selection
	if strings.HasPrefix(v, "[") {
		var elems []struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			Interface string `json:"interface"`
		}
		if err := json.Unmarshal([]byte(v), &elems); err != nil {
			return nil, fmt.Errorf("is not a JSON list of {\"name\",\"namespace\",\"interface\"}: %w", err)
		}
		if len(elems) > MaxNetworks {
			return nil, fmt.Errorf("lists %d networks, more than %d", len(elems), MaxNetworks)
		}
		for i, e := range elems {
			n := Selection{Namespace: e.Namespace, Name: e.Name, Interface: e.Interface}
			if n.Namespace == "" {
				n.Namespace = defaultNamespace
			}
			if err := validSelection(n); err != nil {
				return nil, fmt.Errorf("entry %d: %w", i, err)
			}
			out = append(out, n)
		}
		return out, nil
	}
	items := strings.Split(v, ",")
	if len(items) > MaxNetworks {
		return nil, fmt.Errorf("lists %d networks, more than %d", len(items), MaxNetworks)
	}
	for _, item := range items {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("has an empty entry (stray comma)")
		}
		n := Selection{Namespace: defaultNamespace}
		rest := item
		if name, iface, ok := strings.Cut(rest, "@"); ok {
			rest, n.Interface = name, iface
			if n.Interface == "" || strings.Contains(n.Interface, "@") {
				return nil, fmt.Errorf("%q: write name@interface with one interface name", item)
			}
		}
		switch parts := strings.Split(rest, "/"); len(parts) {
		case 1:
			n.Name = parts[0]
		case 2:
			if parts[0] == "" {
				return nil, fmt.Errorf("%q: the namespace before '/' is empty", item)
			}
			n.Namespace, n.Name = parts[0], parts[1]
		default:
			return nil, fmt.Errorf("%q: write namespace/name", item)
		}
		if err := validSelection(n); err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func validSelection(n Selection) error {
	if n.Name == "" {
		return fmt.Errorf("names no network")
	}
	if errs := validation.IsDNS1123Subdomain(n.Name); len(errs) > 0 {
		return fmt.Errorf("network name %q is not a valid object name: %s", n.Name, errs[0])
	}
	if errs := validation.IsDNS1123Label(n.Namespace); n.Namespace != "" && len(errs) > 0 {
		return fmt.Errorf("namespace %q is not a valid namespace name: %s", n.Namespace, errs[0])
	}
	if n.Interface != "" && InterfaceNameProblem(n.Interface) != "" {
		return fmt.Errorf("interface %q %s", n.Interface, InterfaceNameProblem(n.Interface))
	}
	return nil
}

// InterfaceNameProblem returns why name cannot be a Linux interface name, or "".
func InterfaceNameProblem(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > 15:
		return fmt.Sprintf("is %d characters; Linux interface names have at most 15", len(name))
	case name == "." || name == "..":
		return "is not an interface name"
	case strings.ContainsAny(name, "/: \t\n"):
		return "contains '/', ':' or a space, which interface names cannot"
	}
	return ""
}

// MultusNameKey is a spec.multusName entry as "namespace/name": a bare name is in MultusNamespace.
func MultusNameKey(entry string) string {
	entry = strings.TrimSpace(entry)
	if strings.Contains(entry, "/") {
		return entry
	}
	return MultusNamespace + "/" + entry
}

// PoolServesNetwork reports whether a SpiderIPPool whose spec.multusName is multusName may give
// addresses on network ("namespace/name"): an empty list serves every network, as in Spiderpool.
func PoolServesNetwork(multusName []string, network string) bool {
	if len(multusName) == 0 {
		return true
	}
	for _, e := range multusName {
		if MultusNameKey(e) == network {
			return true
		}
	}
	return false
}
