package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// Drain is how a replica leaves: told to stop (SIGTERM, after the pod's preStop sleep let kube-proxy
// drop it from the Service), it keeps serving but answers every request with "Connection: close" and
// reports not ready, until its clients have closed every connection (or a bound passes). The apiserver's
// kept-alive connections to it, which conntrack keeps routing to it after the endpoint is gone, are
// closed after one more answer each, and the ones it does not use again by its own idle timeout: the
// client closes each connection, so no request can cross a close by the server. (HTTP/1.1 has no
// GOAWAY; HTTP/2, which has, stays off.)
type Drain struct {
	draining atomic.Bool
	open     atomic.Int64
}

// ConnState counts the server's open connections (http.Server.ConnState).
func (d *Drain) ConnState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		d.open.Add(1)
	case http.StateClosed, http.StateHijacked:
		d.open.Add(-1)
	}
}

// Open is the number of open connections.
func (d *Drain) Open() int64 { return d.open.Load() }

// Wrap closes the connection after each answer once the replica drains.
func (d *Drain) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// Start begins the drain.
func (d *Drain) Start() { d.draining.Store(true) }

// Draining says whether the drain began.
func (d *Drain) Draining() bool { return d.draining.Load() }

// Ready is a readiness check that fails while the replica drains.
func (d *Drain) Ready(*http.Request) error {
	if d.draining.Load() {
		return errors.New("draining: the replica is stopping")
	}
	return nil
}

// DrainMin is the least a drain lasts, for connections a slow kube-proxy still sends to the replica.
const DrainMin = time.Second

// SignalContext is ctrl.SetupSignalHandler with the drain: the first SIGTERM or SIGINT starts d and
// cancels the context once no connection is open (after DrainMin) or after max; a second one exits at
// once.
func SignalContext(d *Drain, max time.Duration, log func(msg string, kv ...any)) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	c := make(chan os.Signal, 2)
	signal.Notify(c, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-c
		start := time.Now()
		d.Start()
		log("draining: closing each connection after its answer until the clients have closed all", "open", d.Open(), "max", max.String())
		drained := make(chan struct{})
		go func() {
			d.Wait(max)
			log("drained", "open", d.Open(), "took", time.Since(start).Round(time.Millisecond).String())
			cancel()
			close(drained)
		}()
		select {
		case <-c:
			os.Exit(1)
		case <-drained:
		}
	}()
	return ctx
}

// Wait returns once no connection is open, but not before DrainMin, or after max.
func (d *Drain) Wait(max time.Duration) {
	start := time.Now()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		took := time.Since(start)
		if took >= max || took >= min(DrainMin, max) && d.Open() == 0 {
			return
		}
	}
}
