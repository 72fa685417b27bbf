package podnet

import (
	"strings"
	"testing"
)

// FuzzParseNetworks: every accepted selection names a valid object in a namespace.
func FuzzParseNetworks(f *testing.F) {
	for _, s := range []string{"kube-system/macvlan-conf", "a@net1, b/c@net2", `[{"name":"a","interface":"net1"}]`, "/a", "a@", "[", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseNetworks(s, "pods")
		if err != nil {
			return
		}
		if (len(sel) == 0 && !strings.HasPrefix(strings.TrimSpace(s), "[")) || len(sel) > MaxNetworks {
			t.Fatalf("ParseNetworks(%q) = %d selections", s, len(sel))
		}
		for _, n := range sel {
			if n.Name == "" || n.Namespace == "" || validSelection(n) != nil ||
				(n.Interface != "" && InterfaceNameProblem(n.Interface) != "") {
				t.Fatalf("ParseNetworks(%q) accepted %+v", s, n)
			}
		}
	})
}
