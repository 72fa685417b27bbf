//go:build integration

package nodes

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/underlink/underlink/test/netbed"
)

// TestDropRunMountsWhileNamespacesChurn runs the node's first mount step while other processes create and
// delete network namespaces under /run/netns, as the parallel test packages of make test do: a namespace
// that goes away between the read of mountinfo and its umount must not fail the node, and the new mount
// namespace must end with no mount under /run.
func TestDropRunMountsWhileNamespacesChurn(t *testing.T) {
	if err := os.MkdirAll(netbed.RunDir, 0o755); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var churned [2]int
	for w := range churned {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// netbed's prefix form, so that netbed.Sweep removes what a killed test leaves.
				p := filepath.Join(netbed.RunDir, fmt.Sprintf("ulbed-%d-churn%d-%d", os.Getpid(), w, i))
				if err := os.WriteFile(p, nil, 0o444); err != nil {
					t.Error(err)
					return
				}
				if out, err := exec.Command("unshare", "--net="+p, "true").CombinedOutput(); err != nil {
					t.Errorf("unshare --net=%s: %v\n%s", p, err, out)
				}
				if out, err := exec.Command("umount", p).CombinedOutput(); err != nil {
					t.Errorf("umount %s: %v\n%s", p, err, out)
				}
				if err := os.Remove(p); err != nil {
					t.Error(err)
				}
				churned[w]++
			}
		}()
	}
	const check = `awk '$5 ~ /^\/run\// {print "left mounted: " $5; f = 1} END {exit f}' /proc/self/mountinfo`
	for i := range 200 {
		out, err := exec.Command("unshare", "--mount", "--propagation", "private", "--",
			"sh", "-c", "set -eu\n"+dropRunMounts+check).CombinedOutput()
		if err != nil {
			t.Errorf("run %d: %v\n%s", i, err, out)
			break
		}
	}
	close(stop)
	wg.Wait()
	if churned[0]+churned[1] < 20 {
		t.Errorf("only %d namespaces were created and deleted during the runs: the churn did not overlap them", churned[0]+churned[1])
	}
	t.Logf("%d namespaces created and deleted during 200 runs", churned[0]+churned[1])
}
