package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The seed checks `curl -I <service>` for HTTP/1.1 200 OK; a GET names the pod that answered.
func TestAnswers200WithItsNameAndIP(t *testing.T) {
	srv := httptest.NewServer(handler("test-app-696bf7cf7d-bkstk", "172.110.1.131"))
	defer srv.Close()

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "HEAD / HTTP/1.1\r\nHost: test-app-svc\r\nUser-Agent: curl/8.5.0\r\n\r\n")
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || status != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("HEAD status line %q (%v), want HTTP/1.1 200 OK", status, err)
	}

	resp, err := http.Get(srv.URL + "/any/path")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "underlink-testapp test-app-696bf7cf7d-bkstk 172.110.1.131\n" || resp.Header.Get("Server") != "underlink-testapp" {
		t.Errorf("GET: %d %q server %q", resp.StatusCode, body, resp.Header.Get("Server"))
	}

	resp, err = http.Post(srv.URL, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
}
