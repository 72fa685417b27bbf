package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// listen returns a socket whose every connection is passed to serve.
func listen(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return sock
}

// serveHTTP serves h with net/http's server, as the agent does, on a new socket.
func serveHTTP(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

// answering serves raw as the answer to every request, after reading the request, then closes.
func answering(raw string) func(net.Conn) {
	return func(c net.Conn) {
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		_, _ = io.WriteString(c, raw)
	}
}

// TestSilentAgentTimesOut: an agent that accepts but never answers costs the plugin its timeout, not more.
func TestSilentAgentTimesOut(t *testing.T) {
	for name, serve := range map[string]func(net.Conn){
		"never reads": func(c net.Conn) { t.Cleanup(func() { _ = c.Close() }) },
		// Headers begun, never finished: the deadline covers the whole answer, not only its first byte.
		"stalls mid-answer": func(c net.Conn) {
			t.Cleanup(func() { _ = c.Close() })
			if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			sock := listen(t, serve)
			start := time.Now()
			err := New(sock, 300*time.Millisecond).Health(context.Background())
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
		})
	}
}

// TestCallerCancelEndsTheCall: a cancelled context ends a call that waits on a silent agent.
func TestCallerCancelEndsTheCall(t *testing.T) {
	sock := listen(t, func(c net.Conn) { t.Cleanup(func() { _ = c.Close() }) })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := New(sock, time.Minute).Health(ctx)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want an UnreachableError wrapping context.Canceled", err)
	}
}

// TestAgentErrorsComeBackAsProtocolErrors: a refusal keeps its CNI code; an answer that is not the
// protocol is an internal error that quotes it. The server is net/http's, as the agent's is.
func TestAgentErrorsComeBackAsProtocolErrors(t *testing.T) {
	sock := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {
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
	})
	c := New(sock, 2*time.Second)
	_, err := c.Allocate(context.Background(), protocol.Request{})
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

// TestChunkedAnswerOfNetHTTP: an agent that streams a large answer (net/http chunks what it cannot buffer,
// as agents before Content-Length on every answer did) is still understood.
func TestChunkedAnswerOfNetHTTP(t *testing.T) {
	msg := "every pool refused: " + strings.Repeat(`SpiderIPPool "p" is exhausted; `, 300)
	sock := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(protocol.Error{Code: protocol.CodeNoEligiblePool, Msg: msg})
		w.(http.Flusher).Flush()
	})
	_, err := New(sock, 2*time.Second).Allocate(context.Background(), protocol.Request{})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeNoEligiblePool || pe.Msg != msg {
		t.Fatalf("err = %.200v", err)
	}
}

// TestRequestOnTheWire: one request per connection, with its length, asking the agent to close.
func TestRequestOnTheWire(t *testing.T) {
	got := make(chan *http.Request, 1)
	bodies := make(chan string, 1)
	sock := listen(t, func(c net.Conn) {
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			t.Error(err)
			return
		}
		b, _ := io.ReadAll(req.Body)
		got <- req
		bodies <- string(b)
		_, _ = io.WriteString(c, withLength("200 OK", `{"ips":[{"address":"10.0.0.5/24","pool":"a"}]}`))
	})
	req := protocol.Request{ContainerID: "c1", IfName: "eth0", Pod: protocol.Pod{Namespace: "d", Name: "p", UID: "u"}, IPv4Pools: []string{"a"}}
	alloc, err := New(sock, 2*time.Second).Allocate(context.Background(), req)
	if err != nil || len(alloc.IPs) != 1 || alloc.IPs[0].Address != "10.0.0.5/24" {
		t.Fatalf("allocation %+v, err %v", alloc, err)
	}
	r := <-got
	want, _ := json.Marshal(req)
	if r.Method != "POST" || r.URL.Path != protocol.PathAllocate || !r.Close || r.ContentLength != int64(len(want)) ||
		r.Header.Get("Content-Type") != protocol.ContentType || r.Host != protocol.Host || <-bodies != string(want) {
		t.Errorf("request %s %s close=%v length=%d headers %v", r.Method, r.URL, r.Close, r.ContentLength, r.Header)
	}
}

// withLength is an HTTP/1.1 answer with status and body and its Content-Length.
func withLength(status, body string) string {
	return fmt.Sprintf("HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", status, len(body), body)
}

// TestAnswers pins how each shape of answer is read: framing faults are the agent not answering
// (code 11 in the plugin); a well-framed answer that is not the protocol is the agent's fault.
func TestAnswers(t *testing.T) {
	const alloc = `{"ips":[{"address":"172.110.1.5/24","gateway":"172.110.0.1","pool":"cluster-a"}]}`
	for _, tc := range []struct {
		name, raw string
		// unreachable is the cause an UnreachableError must say; else protocolCode, else success.
		unreachable  string
		protocolCode uint
		protocolMsg  string
	}{
		{name: "content-length", raw: withLength("200 OK", alloc)},
		{name: "close-delimited", raw: "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + alloc},
		{name: "chunked with extension and trailer", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"a;x=1\r\n" + alloc[:10] + fmt.Sprintf("\r\n%x\r\n", len(alloc)-10) + alloc[10:] + "\r\n0\r\nX-Trailer: y\r\n\r\n"},
		{name: "LF line ends, odd header case", raw: fmt.Sprintf("HTTP/1.0 200 OK\ncontent-LENGTH:  %d \n\n", len(alloc)) + alloc},
		{name: "agent's error text", raw: withLength("409 Conflict", `{"code":100,"msg":"SpiderIPPool \"tiny\" is exhausted: 2 of 2 are allocated"}`),
			protocolCode: 100, protocolMsg: `SpiderIPPool "tiny" is exhausted: 2 of 2 are allocated`},
		{name: "non-2xx without the protocol", raw: withLength("500 Internal Server Error", "oops"),
			protocolCode: protocol.CodeInternal, protocolMsg: "underlink-agent answered 500 Internal Server Error"},
		{name: "2xx not JSON", raw: withLength("200 OK", "no"), protocolCode: protocol.CodeIOFailure, protocolMsg: "underlink-agent sent an answer that is not JSON"},
		{name: "no answer", raw: "", unreachable: "reading the status line: unexpected EOF"},
		{name: "not HTTP", raw: "SSH-2.0-OpenSSH_9.6\r\n", unreachable: `the answer is not HTTP/1.x: status line "SSH-2.0-OpenSSH_9.6"`},
		{name: "bad status code", raw: "HTTP/1.1 2x0 OK\r\n\r\n", unreachable: `status line "HTTP/1.1 2x0 OK"`},
		{name: "headers cut", raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", unreachable: "reading the headers: unexpected EOF"},
		{name: "header without colon", raw: "HTTP/1.1 200 OK\r\nContent-Length 2\r\n\r\n{}", unreachable: `malformed header line "Content-Length 2"`},
		{name: "short body", raw: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + alloc[:10], unreachable: "body ended after 10 of its 100 bytes: unexpected EOF"},
		{name: "bad length", raw: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", unreachable: `malformed Content-Length "-1"`},
		{name: "two lengths", raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", unreachable: `malformed Content-Length "3"`},
		{name: "huge length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", unreachable: "Content-Length 99999999 is over the 1048576 bytes"},
		{name: "unknown coding", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", unreachable: `unsupported Transfer-Encoding "gzip"`},
		{name: "bad chunk size", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", unreachable: `malformed chunk size "zz"`},
		{name: "chunk cut", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + alloc[:10], unreachable: "chunk ended early: unexpected EOF"},
		{name: "chunk without CRLF", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}xx\r\n0\r\n\r\n", unreachable: "chunk of 2 bytes not followed by CRLF"},
		{name: "endless headers", raw: "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Filler: "+strings.Repeat("a", 1000)+"\r\n", 70), unreachable: "header section longer than 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := listen(t, answering(tc.raw))
			got, err := New(sock, 2*time.Second).Allocate(context.Background(), protocol.Request{})
			var ue *UnreachableError
			var pe *protocol.Error
			switch {
			case tc.unreachable != "":
				want := "underlink-agent not reachable at " + sock + ": "
				if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.unreachable) {
					t.Fatalf("err = %v, want %q…%q", err, want, tc.unreachable)
				}
			case tc.protocolCode != 0:
				if !errors.As(err, &pe) || pe.Code != tc.protocolCode || pe.Msg != tc.protocolMsg {
					t.Fatalf("err = %v, want code %d %q", err, tc.protocolCode, tc.protocolMsg)
				}
			case err != nil:
				t.Fatal(err)
			case len(got.IPs) != 1 || got.IPs[0].Address != "172.110.1.5/24" || got.IPs[0].Gateway != "172.110.0.1":
				t.Fatalf("allocation %+v", got)
			}
		})
	}
}
