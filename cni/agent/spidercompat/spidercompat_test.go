package spidercompat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/underlink/underlink/cni/ipam/protocol"
)

// releaser records the requests it is given and answers with err.
type releaser struct {
	mu    sync.Mutex
	got   []protocol.Request
	err   error
	freed []string
}

func (r *releaser) Release(_ context.Context, req protocol.Request) (*protocol.Released, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, req)
	if r.err != nil {
		return nil, r.err
	}
	return &protocol.Released{Addresses: r.freed}, nil
}

// unixClient speaks HTTP over the socket as Spiderpool's plugins do (pkg/openapi: a dial of the socket
// whatever the URL's host, no keep-alive).
func unixClient(socket string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
}

// call sends method path with body (JSON-encoded unless nil) and returns the status and the body.
func call(t *testing.T, c *http.Client, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://localhost"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// errorMessage decodes Spiderpool's Error model (a JSON string).
func errorMessage(t *testing.T, body []byte) string {
	t.Helper()
	var msg string
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatalf("the body %q is not Spiderpool's Error model (a JSON string): %v", body, err)
	}
	return msg
}

// serve starts s on a socket in a temporary directory and stops it when t ends.
func serve(t *testing.T, s *Server) *http.Client {
	t.Helper()
	if s.Socket == "" {
		s.Socket = filepath.Join(t.TempDir(), "spidernet", "spiderpool.sock")
	}
	s.Log = logr.Discard()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
		if _, err := os.Lstat(s.Socket); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the socket %s is left behind (%v)", s.Socket, err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := net.Dial("unix", s.Socket); err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", s.Socket)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return unixClient(s.Socket)
}

// TestSpiderpoolsIPAMDelIsReleasedThroughUnderlink: the IPAM plugin's DEL body (IpamDelArgs) becomes
// underlink's release request of that pod interface's sandbox; nothing held is success; a failed
// release is a 500 with Spiderpool's Error model naming the pod and the cause.
func TestSpiderpoolsIPAMDelIsReleasedThroughUnderlink(t *testing.T) {
	rel := &releaser{freed: []string{"172.110.1.5"}}
	c := serve(t, &Server{NodeName: "node-1", Releaser: rel})
	args := IpamDelArgs{ContainerID: "c0ffee", IfName: "net1", NetNamespace: "/var/run/netns/cni-1", PodNamespace: "default", PodName: "web-1", PodUID: "uid-1"}
	if code, body := call(t, c, http.MethodDelete, PathIP, args); code != http.StatusOK {
		t.Fatalf("DELETE %s: %d %s", PathIP, code, body)
	}
	want := protocol.Request{ContainerID: "c0ffee", IfName: "net1", Netns: "/var/run/netns/cni-1", Pod: protocol.Pod{Namespace: "default", Name: "web-1", UID: "uid-1"}}
	if len(rel.got) != 1 || rel.got[0].ContainerID != want.ContainerID || rel.got[0].IfName != want.IfName || rel.got[0].Netns != want.Netns || rel.got[0].Pod != want.Pod {
		t.Fatalf("release requests %+v, want %+v", rel.got, want)
	}

	rel.freed = nil
	if code, body := call(t, c, http.MethodDelete, PathIP, args); code != http.StatusOK {
		t.Fatalf("a DEL of nothing held: %d %s, want 200", code, body)
	}

	rel.err = &protocol.Error{Code: protocol.CodeTryAgainLater, Msg: "list SpiderIPPools from the apiserver failed; try again"}
	code, body := call(t, c, http.MethodDelete, PathIP, args)
	if msg := errorMessage(t, body); code != http.StatusInternalServerError || !strings.Contains(msg, "default/web-1") || !strings.Contains(msg, "net1") || !strings.Contains(msg, "try again") {
		t.Fatalf("a failed release: %d %q", code, msg)
	}

	if code, body := call(t, c, http.MethodDelete, PathIP, nil); code != http.StatusInternalServerError || !strings.Contains(errorMessage(t, body), "empty") {
		t.Fatalf("a DEL without a body: %d %s", code, body)
	}
}

// TestSpiderpoolsADDIsRefusedWithTheFix: an ADD through Spiderpool's plugin gets a 500 that says
// Spiderpool is gone, which pod and interface, and how to fix the network.
func TestSpiderpoolsADDIsRefusedWithTheFix(t *testing.T) {
	rel := &releaser{}
	c := serve(t, &Server{NodeName: "node-1", Releaser: rel})
	code, body := call(t, c, http.MethodPost, PathIP, map[string]any{
		"containerID": "c0ffee", "ifName": "net1", "netNamespace": "/var/run/netns/x", "podNamespace": "default", "podName": "web-1", "podUID": "uid-1",
		"defaultIPv4IPPool": []string{"cluster-a"},
	})
	msg := errorMessage(t, body)
	if code != http.StatusInternalServerError {
		t.Fatalf("ADD: %d %q", code, msg)
	}
	for _, want := range []string{"Spiderpool is not installed", "node-1", "default/web-1", "net1", `"spiderpool"`, "SpiderMultusConfig", "underlink-ipam", "delete"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the ADD's message lacks %q: %s", want, msg)
		}
	}
	if len(rel.got) != 0 {
		t.Errorf("an ADD released %+v", rel.got)
	}
}

// TestOnlySpiderpoolsDelCallsAreServed: health is 200 once the caches are synced (500 before), the
// rest of Spiderpool's API is 501 and anything else 404, each with a message.
func TestOnlySpiderpoolsDelCallsAreServed(t *testing.T) {
	var ready atomic.Bool
	c := serve(t, &Server{NodeName: "node-1", Releaser: &releaser{}, Ready: ready.Load})
	if code, body := call(t, c, http.MethodGet, PathHealthy, nil); code != http.StatusInternalServerError || !strings.Contains(errorMessage(t, body), "starting") {
		t.Fatalf("health before the caches synced: %d %s", code, body)
	}
	ready.Store(true)
	if code, body := call(t, c, http.MethodGet, PathHealthy, nil); code != http.StatusOK {
		t.Fatalf("health: %d %s", code, body)
	}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, "/v1/ipam/ips", http.StatusNotImplemented},
		{http.MethodDelete, "/v1/ipam/ips", http.StatusNotImplemented},
		{http.MethodGet, "/v1/workloadendpoint", http.StatusNotImplemented},
		{http.MethodGet, "/v1/runtime/readiness", http.StatusNotImplemented},
		{http.MethodPut, PathIP, http.StatusNotImplemented},
		{http.MethodPost, PathCoordinatorConfig, http.StatusNotImplemented},
		{http.MethodGet, "/v1/allocate", http.StatusNotFound},
		{http.MethodGet, "/", http.StatusNotFound},
	} {
		code, body := call(t, c, tc.method, tc.path, nil)
		if msg := errorMessage(t, body); code != tc.code || !strings.Contains(msg, tc.path) {
			t.Errorf("%s %s: %d %q, want %d naming the path", tc.method, tc.path, code, msg, tc.code)
		}
	}
}

// TestListenNeverStealsTheSocket: a socket something answers on is left alone, a stale one is
// replaced, a file that is not a socket is an error and stays, the directory is created, the socket
// is 0600, and Close removes the socket only while it is still the one Listen created.
func TestListenNeverStealsTheSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spidernet")
	path := filepath.Join(dir, "spiderpool.sock")

	l, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen with the directory missing: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, err := Listen(path); !errors.Is(err, ErrServed) {
		t.Fatalf("Listen on a live socket: %v, want ErrServed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the socket: %v", err)
	}

	// A stale socket: its listener is gone and the file stays (a killed agent).
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	_ = ul.Close()
	l, err = Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}

	// Replaced meanwhile (a Spiderpool agent removes the file and listens): Close leaves the new one.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	other, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("unix", path); err != nil {
		t.Fatalf("Close removed a socket it did not create: %v", err)
	} else {
		_ = c.Close()
	}
	_ = other.Close()

	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "x" {
		t.Fatalf("the regular file was touched: %q %v", b, err)
	}
}

// TestServerWaitsForALiveSpiderpoolAgent: while a Spiderpool agent answers on the socket the server
// leaves it alone and tries again; once it is gone, the server takes the socket and answers.
func TestServerWaitsForALiveSpiderpoolAgent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spiderpool.sock")
	spiderpool, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := spiderpool.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	s := &Server{Socket: path, NodeName: "node-1", Releaser: &releaser{}, Retry: 20 * time.Millisecond, Log: logr.Discard()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Start returned while a Spiderpool agent serves: %v", err)
	default:
	}
	_ = spiderpool.Close() // removes the socket, as a Spiderpool agent that stops does

	c := unixClient(path)
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://localhost"+PathHealthy, nil)
		if resp, err := c.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not take the socket once Spiderpool's agent was gone")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the socket is left behind: %v", err)
	}
}
