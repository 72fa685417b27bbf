package netbed

import "testing"

func TestOwnerPID(t *testing.T) {
	for _, c := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"ulbed-4242-1-a-node1", 4242, true},
		{"ulbed-17-3-cluster-a-underlay", 17, true},
		{"cni-1234", 0, false},       // containerd's pod namespaces are never swept
		{"cnitest-ab-cd", 0, false},  // nor the plugins' testutils namespaces
		{"ulbed-x-1-node", 0, false}, // not a pid
		{"ulbed-0-1-node", 0, false}, // not a process
		{"ulbed-4242", 0, false},     // no bed part
	} {
		pid, ok := ownerPID(c.name)
		if pid != c.pid || ok != c.ok {
			t.Errorf("ownerPID(%q) = %d, %v; want %d, %v", c.name, pid, ok, c.pid, c.ok)
		}
	}
}
