package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
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

// TestRelayCall: the relay's call (/v1/cni) answers as the plugin process would, with skel's checks
// first, and leaves to the plugin process (no CNI-Exit) what only it can do.
func TestRelayCall(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Metrics: metrics.New(prometheus.NewRegistry()), Log: logr.Discard()}
	// Never ready: an ADD that gets past the checks waits for the caches until ipam.timeoutSeconds.
	s := &Server{Service: svc, Socket: sock, Ready: func() bool { return false }, Log: logr.Discard()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx, l) }()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	conf := func(version, extra string) string {
		return fmt.Sprintf(`{"cniVersion":%q,"name":"n","type":"macvlan","ipam":{"type":"underlink-ipam","timeoutSeconds":1,"ipv4Pools":["p"]%s}}`, version, extra)
	}
	podArgs := "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p1"
	for _, tc := range []struct {
		name, command, netns, args, stdin string
		// exit is "" when the call is left to the plugin process.
		exit, want string
	}{
		{"an ADD that probes", "ADD", "/var/run/netns/p1", podArgs, conf("1.1.0", `,"detectIPConflict":true`), "", ""},
		{"CHECK", "CHECK", "/var/run/netns/p1", podArgs, conf("1.1.0", ""), "", ""},
		{"an ADD without CNI_NETNS", "ADD", "", podArgs, conf("1.1.0", ""), "1", `"code": 4,` + "\n" + `    "msg": "required env variables [CNI_NETNS] missing"`},
		{"a CNI version the plugin does not speak", "ADD", "/var/run/netns/p1", podArgs, conf("9.9.9", ""), "1", `"msg": "incompatible CNI versions"`},
		{"a network without a name", "DEL", "", podArgs, `{"cniVersion":"1.1.0","ipam":{"type":"underlink-ipam"}}`, "1", `"msg": "missing network name"`},
		{"a misspelt ipam key", "ADD", "/var/run/netns/p1", podArgs, conf("1.1.0", `,"ipv4Pool":["p"]`), "1", `unknown field \"ipv4Pool\"`},
		{"an ADD without the pod", "ADD", "/var/run/netns/p1", "", conf("1.1.0", ""), "1", "lacks K8S_POD_NAMESPACE or K8S_POD_NAME"},
		{"an ADD while the caches sync", "ADD", "/var/run/netns/p1", podArgs, conf("1.1.0", ""), "1", "its caches did not sync in time"},
	} {
		req, _ := http.NewRequest("POST", "http://underlink-agent"+protocol.PathCNI, strings.NewReader(tc.stdin))
		for k, v := range map[string]string{protocol.HeaderCommand: tc.command, protocol.HeaderContainerID: "c1", protocol.HeaderNetns: tc.netns,
			protocol.HeaderIfName: "eth0", protocol.HeaderArgs: tc.args, protocol.HeaderPath: "/opt/cni/bin"} {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get(protocol.HeaderExit); got != tc.exit || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: status %d, CNI-Exit %q, body\n%s\nwant CNI-Exit %q and %q", tc.name, resp.StatusCode, got, body, tc.exit, tc.want)
		}
	}
}
