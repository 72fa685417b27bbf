package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "webhook"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestDrainingServerStopsWhenItsClientsHaveClosedEveryConnection: a replica that drains keeps serving
// while a client holds a connection, even an idle one, answering each request with Connection: close,
// and stops as soon as the client has closed its last.
func TestDrainingServerStopsWhenItsClientsHaveClosedEveryConnection(t *testing.T) {
	cert := selfSigned(t)
	port := freePort(t)
	d := &Drain{}
	s := newDrainingServer(webhook.Options{Host: "127.0.0.1", Port: port, TLSOpts: []func(*tls.Config){
		DisableHTTP2, func(c *tls.Config) { c.Certificates = []tls.Certificate{cert} }}}, d)
	// The first requests wait at the gate until all three are in flight, so the client holds three
	// connections (Go's transport reuses an idle one when it can).
	gate := make(chan struct{})
	s.Register("/validate", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-gate
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- s.Start(ctx) }()
	for s.StartedChecker()(nil) != nil {
		select {
		case err := <-stopped:
			t.Fatalf("the server did not start: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 25} //nolint:gosec // the test's own certificate
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	url := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + "/validate"
	post := func() (*http.Response, error) {
		resp, err := client.Post(url, "application/json", strings.NewReader(`{}`))
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	// Three connections, kept alive and idle.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, err := post(); err != nil {
				t.Error(err)
			}
		})
	}
	for deadline := time.Now().Add(5 * time.Second); d.Open() < 3 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	wg.Wait()
	if n := d.Open(); n != 3 {
		t.Fatalf("%d connections open, want the client's three kept-alive ones", n)
	}

	d.Start()
	drainStart := time.Now()
	go func() { d.Wait(time.Minute); cancel() }()

	// Two more requests take two of the kept connections; each answer closes its connection.
	for range 2 {
		resp, err := post()
		if err != nil || !resp.Close {
			t.Fatalf("draining: %v, Connection: close %v; want an answer that closes its connection", err, resp != nil && resp.Close)
		}
	}
	// The third stays open and idle: the replica keeps serving past DrainMin.
	time.Sleep(DrainMin + 500*time.Millisecond)
	select {
	case err := <-stopped:
		t.Fatalf("the server stopped while the client held %d connections: %v", d.Open(), err)
	default:
	}
	// The client closes what it keeps: the server stops at once.
	tr.CloseIdleConnections()
	closedAt := time.Now()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("drain: stopped %s after the client closed its last connection (%s after the drain began)",
			time.Since(closedAt).Round(time.Millisecond), time.Since(drainStart).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatalf("the server did not stop after the client closed every connection (%d open)", d.Open())
	}
	if n := d.Open(); n != 0 {
		t.Errorf("%d connections counted open after the stop", n)
	}
}

// TestDrainWaitIsBounded: a client that never closes its connection holds a replica no longer than max.
func TestDrainWaitIsBounded(t *testing.T) {
	d := &Drain{}
	d.ConnState(nil, http.StateNew)
	start := time.Now()
	d.Wait(300 * time.Millisecond)
	if took := time.Since(start); took < 300*time.Millisecond || took > 2*time.Second {
		t.Errorf("Wait with an open connection took %s, want the bound, 300ms", took)
	}
	d.ConnState(nil, http.StateClosed)
	start = time.Now()
	d.Wait(time.Minute)
	if took := time.Since(start); took < DrainMin || took > DrainMin+time.Second {
		t.Errorf("Wait without connections took %s, want DrainMin, %s", took, DrainMin)
	}
}
