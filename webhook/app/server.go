package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// ServerIdleTimeout is how long the webhook server keeps an idle connection: longer than the
// apiserver's webhook client keeps one (Go's default transport, 90 s), so the client always closes an
// idle connection first. A server closing it could cross a request the client has just sent on it,
// which the apiserver reports as a failed admission (EOF): a POST is never retried.
const ServerIdleTimeout = 120 * time.Second

// drainingServer is controller-runtime's webhook server (registration, mux, TLS options and
// certificate watching as in webhook.DefaultServer) whose connections the Drain counts, so that a
// replica stops only once its clients have closed them (SignalContext).
type drainingServer struct {
	*webhook.DefaultServer
	drain   *Drain
	started atomic.Bool
}

func newDrainingServer(o webhook.Options, d *Drain) *drainingServer {
	if o.WebhookMux == nil {
		o.WebhookMux = http.NewServeMux()
	}
	if o.Port == 0 {
		o.Port = webhook.DefaultPort
	}
	if o.CertName == "" {
		o.CertName = "tls.crt"
	}
	if o.KeyName == "" {
		o.KeyName = "tls.key"
	}
	return &drainingServer{DefaultServer: &webhook.DefaultServer{Options: o}, drain: d}
}

// WebhookMux returns the server's mux.
func (s *drainingServer) WebhookMux() *http.ServeMux { return s.Options.WebhookMux }

// Start serves until ctx ends, then shuts down, waiting up to a minute for requests in flight.
func (s *drainingServer) Start(ctx context.Context) error {
	o := s.Options
	cfg := &tls.Config{NextProtos: []string{"h2"}}
	for _, op := range o.TLSOpts {
		op(cfg)
	}
	if cfg.GetCertificate == nil && len(cfg.Certificates) == 0 {
		w, err := certwatcher.New(filepath.Join(o.CertDir, o.CertName), filepath.Join(o.CertDir, o.KeyName))
		if err != nil {
			return fmt.Errorf("serving certificate in %s: %w", o.CertDir, err)
		}
		cfg.GetCertificate = w.GetCertificate
		go func() { _ = w.Start(ctx) }()
	}
	ln, err := tls.Listen("tcp", net.JoinHostPort(o.Host, strconv.Itoa(o.Port)), cfg)
	if err != nil {
		return err
	}
	srv := &http.Server{
		BaseContext:       func(net.Listener) context.Context { return ctx },
		Handler:           s.drain.Wrap(o.WebhookMux),
		MaxHeaderBytes:    1 << 20,
		ReadHeaderTimeout: 32 * time.Second,
		IdleTimeout:       ServerIdleTimeout,
		ConnState:         s.drain.ConnState,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	s.started.Store(true)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-done
	return nil
}

// StartedChecker passes once the server listens.
func (s *drainingServer) StartedChecker() healthz.Checker {
	return func(*http.Request) error {
		if !s.started.Load() {
			return errors.New("webhook server not started yet")
		}
		return nil
	}
}
