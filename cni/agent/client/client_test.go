package client

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/underlink/underlink/cni/ipam/protocol"
)

func TestUnreachableSaysWhereAndWhy(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	_, err := New(sock, 2*time.Second).Allocate(context.Background(), protocol.Request{})
	var ue *UnreachableError
	want := "underlink-agent not reachable at " + sock + ": dial unix " + sock + ": connect: no such file or directory"
	if !errors.As(err, &ue) || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

// TestSilentAgentTimesOut: an agent that accepts but never answers costs the plugin its timeout, not more.
func TestSilentAgentTimesOut(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	start := time.Now()
	err = New(sock, 300*time.Millisecond).Health(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), "underlink-agent not reachable at "+sock+": no answer within 300ms") {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v does not wrap the deadline", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("returned after %s", took)
	}
}

// TestAgentErrorsComeBackAsProtocolErrors: a refusal keeps its CNI code; an answer that is not the
// protocol is an internal error that quotes it.
func TestAgentErrorsComeBackAsProtocolErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case protocol.PathAllocate:
			w.WriteHeader(http.StatusConflict)
			_ = json.NewEncoder(w).Encode(protocol.Error{Code: protocol.CodePoolExhausted, Msg: `SpiderIPPool "tiny" is exhausted`})
		case protocol.PathRelease:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>proxy</html>"))
		default:
			_ = json.NewEncoder(w).Encode(protocol.Released{Addresses: []string{"10.0.0.1"}})
		}
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	c := New(sock, 2*time.Second)
	_, err = c.Allocate(context.Background(), protocol.Request{})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodePoolExhausted || pe.Msg != `SpiderIPPool "tiny" is exhausted` {
		t.Fatalf("allocate err = %v", err)
	}
	_, err = c.Release(context.Background(), protocol.Request{})
	if !errors.As(err, &pe) || pe.Code != protocol.CodeInternal || !strings.Contains(err.Error(), "502 Bad Gateway") || !strings.Contains(err.Error(), "<html>proxy</html>") {
		t.Fatalf("release err = %v", err)
	}
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
}
