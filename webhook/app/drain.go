package app

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// Drain is how a replica leaves: told to stop (SIGTERM, after the pod's preStop sleep let kube-proxy
// drop it from the Service), it keeps serving for a while but answers every request with "Connection:
// close" and reports not ready. The apiserver's kept-alive connections to it, which conntrack keeps
// routing to it after the endpoint is gone, are then closed after one more answer each instead of being
// cut under a request when the server stops.
type Drain struct {
	draining atomic.Bool
}

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

// SignalContext is ctrl.SetupSignalHandler with the drain: the first SIGTERM or SIGINT starts d and
// cancels the context after period; a second one exits at once.
func SignalContext(d *Drain, period time.Duration) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	c := make(chan os.Signal, 2)
	signal.Notify(c, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-c
		d.Start()
		t := time.AfterFunc(period, cancel)
		<-c
		t.Stop()
		os.Exit(1)
	}()
	return ctx
}
