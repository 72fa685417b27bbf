package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestDrainClosesKeptAliveConnections: once the drain starts, every answer closes its connection, so a
// client that kept one open to this replica opens its next one through the Service (to a replica that
// stays), and readiness fails.
func TestDrainClosesKeptAliveConnections(t *testing.T) {
	d := &Drain{}
	srv := httptest.NewServer(d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })))
	defer srv.Close()
	get := func() *http.Response {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := get(); resp.Close || d.Ready(nil) != nil {
		t.Fatalf("before the drain: Close %v, ready error %v; want a kept-alive connection and ready", resp.Close, d.Ready(nil))
	}
	d.Start()
	if resp := get(); !resp.Close {
		t.Error("draining: the answer keeps its connection open; want Connection: close")
	}
	if d.Ready(nil) == nil {
		t.Error("draining: still ready")
	}
}
