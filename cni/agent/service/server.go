package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/go-logr/logr"

	"github.com/underlink/underlink/cni/agent/peercred"
	"github.com/underlink/underlink/cni/ipam/plugin"
	"github.com/underlink/underlink/cni/ipam/protocol"
)

// Server serves a Service on a unix socket with net/http: the calls, framing and answers of
// cni/ipam/protocol, which the plugin's client (cni/agent/client) reads.
type Server struct {
	Service *Service
	// Socket is the socket path, e.g. /run/underlink/agent.sock.
	Socket string
	// Ready reports whether the agent's caches are synced; /v1/health and requests wait for it.
	Ready func() bool
	Log   logr.Logger
}

// NeedLeaderElection says the server runs on every agent, not only on the leader.
func (s *Server) NeedLeaderElection() bool { return false }

// Listen creates the socket: its directory with mode 0700 if missing, the socket with mode 0600, so
// only root reaches it. A socket left by a dead agent is replaced; one with a live agent is an error.
func Listen(socket string) (net.Listener, error) {
	dir := filepath.Dir(socket)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create socket directory %s: %w", dir, err)
		}
	}
	if _, err := os.Lstat(socket); err == nil {
		if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("%s is served by another running underlink-agent; stop it or pass another --socket", socket)
		}
		if err := os.Remove(socket); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", socket, err)
		}
	}
	// The umask makes the socket 0600 from its creation, with no window before a chmod.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", socket)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", socket, err)
	}
	if err := os.Chmod(socket, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("chmod %s: %w", socket, err)
	}
	return l, nil
}

// Start serves until ctx ends (manager.Runnable).
func (s *Server) Start(ctx context.Context) error {
	l, err := Listen(s.Socket)
	if err != nil {
		return err
	}
	return s.Serve(ctx, l)
}

// Serve serves on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.rootOnly(s.Handler()), ReadHeaderTimeout: 10 * time.Second, ConnContext: peercred.ConnContext}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	s.Log.Info("serving IPAM", "socket", s.Socket)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Handler is the HTTP handler of the protocol.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(protocol.Health.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		if s.Ready != nil && !s.Ready() {
			writeAnswer(w, nil, &protocol.Error{Code: protocol.CodePluginNotAvailable, Msg: "underlink-agent is starting: its caches are not synced yet"})
			return
		}
		writeAnswer(w, protocol.Empty{}, nil)
	})
	mux.HandleFunc(protocol.Allocate.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		var req protocol.Request
		if !s.decode(w, r, &req) {
			return
		}
		out, err := s.Service.Allocate(r.Context(), req)
		writeAnswer(w, out, err)
	})
	mux.HandleFunc(protocol.Release.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		var req protocol.Request
		if !s.decode(w, r, &req) {
			return
		}
		out, err := s.Service.Release(r.Context(), req)
		writeAnswer(w, out, err)
	})
	mux.HandleFunc(protocol.Conflict.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		var req protocol.ConflictRequest
		if !s.decode(w, r, &req) {
			return
		}
		out, err := s.Service.Conflict(r.Context(), req)
		writeAnswer(w, out, err)
	})
	mux.HandleFunc(protocol.Check.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		var req protocol.CheckRequest
		if !s.decode(w, r, &req) {
			return
		}
		writeAnswer(w, protocol.Empty{}, s.Service.Check(r.Context(), req))
	})
	mux.HandleFunc(protocol.CNI.Pattern(), s.serveCNI)
	return mux
}

// serveCNI runs an ADD or a DEL the relay (cmd/underlink-ipam) hands over, with the plugin's own logic
// (plugin.Serve) in this process. The answer is what the plugin would print and its exit status; a call
// the plugin process must make itself gets an answer without protocol.HeaderExit, and the relay execs
// underlink-ipam-full.
func (s *Server) serveCNI(w http.ResponseWriter, r *http.Request) {
	stdin, err := io.ReadAll(io.LimitReader(r.Body, protocol.MaxBodyBytes))
	if err != nil {
		writeAnswer(w, nil, protocol.UnreadableRequest(err))
		return
	}
	h := r.Header
	args := &skel.CmdArgs{
		ContainerID: h.Get(protocol.HeaderContainerID), Netns: h.Get(protocol.HeaderNetns), IfName: h.Get(protocol.HeaderIfName),
		Args: h.Get(protocol.HeaderArgs), Path: h.Get(protocol.HeaderPath), StdinData: stdin,
	}
	out, err := plugin.Serve(r.Context(), h.Get(protocol.HeaderCommand), args, inProcess{s})
	exit := "0"
	if err != nil {
		var te *types.Error
		if !errors.As(err, &te) {
			// plugin.ErrRunPlugin: 501, no CNI-Exit.
			w.WriteHeader(http.StatusNotImplemented)
			return
		}
		exit = "1"
		if out, err = json.MarshalIndent(te, "", "    "); err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set(protocol.HeaderExit, exit)
	writeBody(w, http.StatusOK, out)
}

// inProcess is the plugin's Agent inside the agent: the service itself, once the caches are synced.
type inProcess struct{ s *Server }

func (a inProcess) ready(ctx context.Context) error { return a.s.waitReady(ctx) }

func (a inProcess) Allocate(ctx context.Context, req protocol.Request) (*protocol.Allocation, error) {
	if err := a.ready(ctx); err != nil {
		return nil, err
	}
	return a.s.Service.Allocate(ctx, req)
}

func (a inProcess) Release(ctx context.Context, req protocol.Request) (*protocol.Released, error) {
	if err := a.ready(ctx); err != nil {
		return nil, err
	}
	return a.s.Service.Release(ctx, req)
}

func (a inProcess) Conflict(ctx context.Context, req protocol.ConflictRequest) (*protocol.SetAside, error) {
	if err := a.ready(ctx); err != nil {
		return nil, err
	}
	return a.s.Service.Conflict(ctx, req)
}

func (a inProcess) Check(ctx context.Context, req protocol.CheckRequest) error {
	if err := a.ready(ctx); err != nil {
		return err
	}
	return a.s.Service.Check(ctx, req)
}

func (a inProcess) Health(ctx context.Context) error {
	if a.s.Ready != nil && !a.s.Ready() {
		return &protocol.Error{Code: protocol.CodePluginNotAvailable, Msg: "underlink-agent is starting: its caches are not synced yet"}
	}
	return nil
}

// rootOnly answers only callers whose uid is 0. The socket's mode (0600 in a 0700 directory) already
// keeps other users out; this holds when those modes are loosened, or when a process reaches the socket
// through a bind mount or an inherited descriptor.
func (s *Server) rootOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, err := peercred.From(r.Context())
		switch {
		case err != nil:
			s.Log.Info("refused a caller whose credentials cannot be read", "path", r.URL.Path, "err", err.Error())
			writeAnswer(w, nil, &protocol.Error{Code: protocol.CodeInvalidEnvironment, Msg: "underlink-agent cannot read the caller's credentials (SO_PEERCRED); it answers only root on its unix socket"})
		case cred.Uid != 0:
			s.Log.Info("refused a caller that is not root", "path", r.URL.Path, "uid", cred.Uid, "pid", cred.Pid)
			writeAnswer(w, nil, &protocol.Error{Code: protocol.CodeInvalidEnvironment, Msg: fmt.Sprintf(
				"underlink-agent answers only root (uid 0); the caller (pid %d) is uid %d", cred.Pid, cred.Uid)})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// waitReady waits until the caches are synced, or fails with CodeTryAgainLater when ctx ends first:
// before that a decision could miss pools.
func (s *Server) waitReady(ctx context.Context) error {
	for s.Ready != nil && !s.Ready() {
		select {
		case <-ctx.Done():
			return &protocol.Error{Code: protocol.CodeTryAgainLater, Msg: "underlink-agent is starting: its caches did not sync in time"}
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// decode reads a request body once the caches are synced.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, into any) bool {
	if err := s.waitReady(r.Context()); err != nil {
		writeAnswer(w, nil, err)
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, protocol.MaxBodyBytes))
	if err == nil {
		err = json.Unmarshal(body, into)
	}
	if err != nil {
		writeAnswer(w, nil, protocol.UnreadableRequest(err))
		return false
	}
	return true
}

// writeAnswer sends protocol.EncodeAnswer's status and body, always with its Content-Length: the plugin's
// client (cni/agent/client) reads one answer per connection and need not decode chunked bodies from this
// server.
func writeAnswer(w http.ResponseWriter, out any, err error) {
	status, body := protocol.EncodeAnswer(out, err)
	writeBody(w, status, body)
}

// writeBody sends status and body with the protocol's Content-Type and the body's Content-Length.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", protocol.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
