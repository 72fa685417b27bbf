package service

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/underlink/underlink/cni/agent/client"
	"github.com/underlink/underlink/cni/agent/metrics"
	"github.com/underlink/underlink/cni/ipam/protocol"
)

// TestAnswersCarryTheirLength: every answer has a Content-Length, also one too large for net/http to
// buffer (which it would otherwise send chunked), so the plugin's client reads it whole.
func TestAnswersCarryTheirLength(t *testing.T) {
	big := &protocol.Error{Code: protocol.CodeNoEligiblePool, Msg: strings.Repeat(`SpiderIPPool "p" is exhausted; `, 300)}
	l, err := Listen(filepath.Join(t.TempDir(), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeAnswer(w, nil, big) })}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, err := protocol.EncodeRequest(protocol.Allocate, protocol.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusConflict || resp.TransferEncoding != nil || resp.ContentLength != int64(len(body)) || len(body) < 9000 {
		t.Fatalf("status %d, transfer encoding %v, Content-Length %d for %d bytes", resp.StatusCode, resp.TransferEncoding, resp.ContentLength, len(body))
	}
}

// TestPluginClientReadsTheServer: the plugin's client and this server agree, refusals included.
func TestPluginClientReadsTheServer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	var ready atomic.Bool
	svc := &Service{Metrics: metrics.New(prometheus.NewRegistry()), Log: logr.Discard()}
	s := &Server{Service: svc, Socket: sock, Ready: ready.Load, Log: logr.Discard()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c := client.New(sock, 2*time.Second)
	var pe *protocol.Error
	if err := c.Health(ctx); !errors.As(err, &pe) || pe.Code != protocol.CodePluginNotAvailable || pe.Msg != "underlink-agent is starting: its caches are not synced yet" {
		t.Fatalf("health of a starting agent: %v", err)
	}
	ready.Store(true)
	if err := c.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
	// Refused before anything is read: the runtime gave no interface name.
	_, err = c.Allocate(ctx, protocol.Request{ContainerID: "c1"})
	if !errors.As(err, &pe) || pe.Code != protocol.CodeInvalidEnvironment || pe.Msg != "CNI_IFNAME is empty" {
		t.Fatalf("allocate without CNI_IFNAME: %v", err)
	}
}
