//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/poll"
)

// TestImagesImportAndRunInContainerd imports the pause and test app tarballs with `ctr images import` into
// a containerd of the test's own (own root, state and socket; the CRI plugin off), and runs the test app
// image: its server answers on 127.0.0.1, and its curl link (the same binary under another name) fetches
// from it inside the container. It needs root and containerd, ctr and runc on PATH, as the local clusters do.
func TestImagesImportAndRunInContainerd(t *testing.T) {
	for _, b := range []string{"containerd", "ctr", "runc"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s is not installed: the local clusters' nodes need it (apt-get install containerd runc)", b)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("containerd needs root: run the integration tests as root (make test)")
	}
	bins := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bins+"/", "./test/cmd/underlink-testapp", "./hack/imagebuild/pause")
	build.Dir = test.RepoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := t.TempDir()
	if err := run(Images, bins, nil, nil, "ghcr.io/underlink", "ctr-test", "amd64", out, "pause,underlink-testapp"); err != nil {
		t.Fatal(err)
	}

	sock := startContainerd(t)
	ctr := func(args ...string) (string, error) {
		cmd := exec.Command("ctr", append([]string{"--address", sock, "--namespace", "k8s.io"}, args...)...)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	for _, name := range []string{"pause", "underlink-testapp"} {
		if o, err := ctr("images", "import", filepath.Join(out, name+".tar")); err != nil {
			t.Fatalf("ctr images import %s.tar: %v\n%s", name, err, o)
		}
	}
	list, err := ctr("images", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"ghcr.io/underlink/pause:ctr-test", "ghcr.io/underlink/underlink-testapp:ctr-test"} {
		if !strings.Contains(list, ref) {
			t.Errorf("containerd does not list %s after import:\n%s", ref, list)
		}
	}

	// The server, in the host network but bound to loopback only.
	port := freeLoopbackPort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	server := exec.Command("ctr", "--address", sock, "--namespace", "k8s.io", "run", "--rm", "--net-host",
		"ghcr.io/underlink/underlink-testapp:ctr-test", "testapp-server", "/usr/local/bin/underlink-testapp", "--listen", addr)
	var serverOut bytes.Buffer
	server.Stdout, server.Stderr = &serverOut, &serverOut
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = ctr("tasks", "kill", "--signal", "SIGKILL", "testapp-server")
		_ = server.Wait()
	})
	var body string
	// serverOut is written by the ctr process while this waits: it is read only once the wait is over.
	err = poll.Wait(context.Background(), 30*time.Second, 200*time.Millisecond, "the test app image answering on "+addr, func() (bool, string, error) {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false, err.Error(), nil
		}
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		body = b.String()
		return resp.StatusCode == 200, resp.Status, nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, serverOut.String())
	}
	if !strings.HasPrefix(body, "underlink-testapp ") {
		t.Errorf("body %q", body)
	}
	// curl is the same binary under another name, as the seed's `kubectl exec ... -- curl -I` runs it.
	o, err := ctr("run", "--rm", "--net-host", "ghcr.io/underlink/underlink-testapp:ctr-test", "testapp-curl", "curl", "-I", "http://"+addr+"/")
	if err != nil || !strings.Contains(o, "HTTP/1.1 200 OK") {
		t.Errorf("curl -I inside the image: %v\n%s", err, o)
	}
}

// startContainerd runs a containerd with its own root, state and socket under a temporary directory, and
// stops it when the test ends; it returns the socket.
func startContainerd(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ul-ctrd-") // short: the socket path must fit in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = %q
[metrics]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", filepath.Join(dir, "debug.sock"))
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "containerd", "--config", cfg)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		// Unmount whatever the overlay snapshotter left mounted before removing the tree.
		_ = exec.Command("sh", "-c", "grep -o '"+dir+"[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l").Run()
		_ = os.RemoveAll(dir)
		if t.Failed() {
			t.Logf("containerd log:\n%s", logs.String())
		}
	})
	// logs is written by containerd while this waits: it is read only once the wait is over.
	err = poll.Wait(context.Background(), 20*time.Second, poll.Interval, "containerd serving "+sock, func() (bool, string, error) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false, err.Error(), nil
		}
		c.Close()
		return true, "", nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	return sock
}

func freeLoopbackPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
