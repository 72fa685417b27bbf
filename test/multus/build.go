package multus

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/underlink/underlink/test"
)

// Binary is the stand-in's binary name, the "type" in the node's CNI configuration.
const Binary = "underlink-multus-standin"

// Build compiles the stand-in into dir (static, so it runs in any node's mount namespace) and returns
// its path.
func Build(dir string) (string, error) {
	out := filepath.Join(dir, Binary)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./test/multus/cmd/"+Binary)
	cmd.Dir = test.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the Multus stand-in: %w\n%s", err, b)
	}
	return out, nil
}
