package service

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/underlink/underlink/cni/agent/client"
)

// The child process of TestOnlyRootIsAnswered: it asks the agent at the socket in
// UNDERLINK_TEST_PEER_SOCKET and prints the answer's error.
func TestMain(m *testing.M) {
	if sock := os.Getenv("UNDERLINK_TEST_PEER_SOCKET"); sock != "" {
		err := client.New(sock, 5*time.Second).Health(context.Background())
		if err == nil {
			os.Stdout.WriteString("answered\n")
		} else {
			os.Stdout.WriteString(err.Error() + "\n")
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestOnlyRootIsAnswered: with the socket's modes loosened (0666 in a 0755 directory), a process that is
// not root reaches the socket and is still refused, by its SO_PEERCRED uid; root is answered.
func TestOnlyRootIsAnswered(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a caller as another user")
	}
	dir := filepath.Join(t.TempDir(), "run")
	sock := filepath.Join(dir, "agent.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Dir(dir)
	for p, mode := range map[string]os.FileMode{filepath.Dir(base): 0o755, base: 0o755, dir: 0o755, sock: 0o666} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &Server{Socket: sock, Ready: func() bool { return true }, Log: logr.Discard()}
	go func() { _ = srv.Serve(ctx, l) }()

	if err := client.New(sock, 5*time.Second).Health(context.Background()); err != nil {
		t.Fatalf("root refused: %v", err)
	}
	// The test binary, where another user may run it.
	bin := filepath.Join(filepath.Dir(dir), "caller")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "UNDERLINK_TEST_PEER_SOCKET="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run the caller as uid 65534: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "answers only root (uid 0); the caller") || !strings.Contains(string(out), "is uid 65534") {
		t.Errorf("a caller of uid 65534 got %q", out)
	}
}
