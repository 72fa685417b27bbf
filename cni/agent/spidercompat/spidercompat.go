// Package spidercompat answers Spiderpool v1.2.2's CNI plugins for the pods Spiderpool set up on a node
// that underlink-agent now serves. After Spiderpool is uninstalled (its CRDs and objects kept) its
// pods keep running, and the DEL Multus cached for them at ADD runs Spiderpool's coordinator and its
// IPAM plugin "spiderpool", which both call Spiderpool's agent on its unix socket
// (/var/run/spidernet/spiderpool.sock). Without an answer both DELs fail and the pod stays
// Terminating. This server takes that socket when no Spiderpool agent answers on it and serves:
//
//	GET    /v1/ipam/healthy        → 200 once the agent's caches are synced
//	DELETE /v1/ipam/ip             IpamDelArgs → the pod interface's addresses released through
//	                               underlink's own release path (cni/agent/service), 200
//	GET    /v1/coordinator/config  GetCoordinatorArgs → CoordinatorConfig from the SpiderCoordinator
//	                               "default", with Spiderpool's defaults for what it leaves unset
//	POST   /v1/ipam/ip             → 500: an ADD through Spiderpool's plugin is refused, saying why
//	                               and how to fix the pod's network
//
// Any other path or method is answered 501 (a Spiderpool call this server does not serve) or 404,
// with a message. Failures carry Spiderpool's Error model: a JSON string.
package spidercompat

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
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/underlink/underlink/cni/agent/peercred"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/ipam/protocol"
)

// Releaser frees a pod interface's addresses: *service.Service, the agent's IPAM service.
type Releaser interface {
	Release(ctx context.Context, req protocol.Request) (*protocol.Released, error)
}

// DefaultRetry is how often a socket a live Spiderpool agent serves is tried again.
const DefaultRetry = 30 * time.Second

// maxBody bounds a request body.
const maxBody = 1 << 20

// Server serves Spiderpool's plugins on Socket. It is a manager.Runnable of every agent.
type Server struct {
	// Socket is Spiderpool's agent socket, e.g. DefaultSocket.
	Socket string
	// NodeName is this agent's node, named in messages.
	NodeName string
	// Releaser frees addresses on a DEL.
	Releaser Releaser
	// Coordinators reads the SpiderCoordinator "default" (live: a read per coordinator DEL).
	Coordinators client.Reader
	// Pods reads this node's pods (the agent's cache), for Spiderpool's default-route-nic annotation;
	// nil reads none.
	Pods client.Reader
	// Ready reports whether the agent's caches are synced; nil means always.
	Ready func() bool
	// Retry is how often a socket held by a live Spiderpool agent is tried again; 0 means DefaultRetry.
	Retry time.Duration
	Log   logr.Logger
}

// NeedLeaderElection says the server runs on every agent.
func (s *Server) NeedLeaderElection() bool { return false }

// Start takes the socket, once no Spiderpool agent answers on it, and serves until ctx ends; then it
// removes the socket if it is still the one it created.
func (s *Server) Start(ctx context.Context) error {
	l, err := s.take(ctx)
	if err != nil || l == nil {
		return err
	}
	return s.Serve(ctx, l)
}

// Serve serves on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l *Listener) error {
	srv := &http.Server{Handler: s.rootOnly(s.Handler()), ReadHeaderTimeout: 10 * time.Second, ConnContext: peercred.ConnContext}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	s.Log.Info("answering Spiderpool's CNI plugins for the pods Spiderpool set up", "socket", s.Socket)
	err := srv.Serve(l)
	l.Close()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve Spiderpool's plugins on %s: %w", s.Socket, err)
	}
	return nil
}

// Listener is the socket this server created; Close removes the file only while it is still that
// socket (a Spiderpool agent installed meanwhile may have replaced it).
type Listener struct {
	*net.UnixListener
	path     string
	dev, ino uint64
}

// Close stops listening and removes the socket file if it is still the one Listen created.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	if dev, ino, ok := fileID(l.path); ok && dev == l.dev && ino == l.ino {
		if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// ErrServed is returned by Listen when something answers on the socket: a live Spiderpool agent.
var ErrServed = errors.New("answered by another process")

// Listen creates the socket at path with mode 0600 (its directory 0700 when missing). A socket file no
// process answers on is stale and replaced; one that answers is left alone (ErrServed), and any other
// kind of file is an error.
func Listen(path string) (*Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the directory %s of --spiderpool-socket: %w", dir, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s is a %s, not a socket; underlink-agent leaves it alone: remove it, or pass another --spiderpool-socket (empty turns the Spiderpool compatibility off)", path, fi.Mode().Type())
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("%s: %w", path, ErrServed)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove the stale socket %s: %w", path, err)
		}
	}
	// The umask makes the socket 0600 from its creation, with no window before a chmod.
	old := syscall.Umask(0o177)
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// net would unlink the path on Close whatever file is there by then; Listener.Close checks first.
	ul.SetUnlinkOnClose(false)
	dev, ino, ok := fileID(path)
	if !ok {
		_ = ul.Close()
		return nil, fmt.Errorf("stat the socket %s just created", path)
	}
	return &Listener{UnixListener: ul, path: path, dev: dev, ino: ino}, nil
}

func fileID(path string) (dev, ino uint64, ok bool) {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0, 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), st.Ino, true
}

// take listens on the socket, waiting while a Spiderpool agent answers on it. It returns nil, nil when
// ctx ends first.
func (s *Server) take(ctx context.Context) (*Listener, error) {
	retry := s.Retry
	if retry <= 0 {
		retry = DefaultRetry
	}
	logged := ""
	for {
		l, err := Listen(s.Socket)
		if err == nil {
			if logged != "" {
				s.Log.Info("the socket is free now; taking it", "socket", s.Socket)
			}
			return l, nil
		}
		if msg := err.Error(); msg != logged {
			if errors.Is(err, ErrServed) {
				s.Log.Info("a Spiderpool agent answers on its socket; underlink leaves it alone and tries again", "socket", s.Socket, "every", retry.String())
			} else {
				s.Log.Error(err, "cannot answer Spiderpool's plugins; trying again", "socket", s.Socket, "every", retry.String())
			}
			logged = msg
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(retry):
		}
	}
}

// Handler is the HTTP handler of the calls.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealthy, func(w http.ResponseWriter, r *http.Request) {
		if s.Ready != nil && !s.Ready() {
			fail(w, http.StatusInternalServerError, "underlink-agent is starting: its caches are not synced yet; try again")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("DELETE "+PathIP, s.release)
	mux.HandleFunc("POST "+PathIP, s.refuseAdd)
	mux.HandleFunc("GET "+PathCoordinatorConfig, s.coordinatorConfig)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathHealthy || r.URL.Path == PathIP || r.URL.Path == PathCoordinatorConfig || slices.Contains(unimplemented, r.URL.Path) {
			fail(w, http.StatusNotImplemented, fmt.Sprintf(
				"%s %s: underlink-agent on node %s answers Spiderpool's plugins only for the DEL of pods Spiderpool set up (GET %s, DELETE %s, GET %s); Spiderpool is not installed",
				r.Method, r.URL.Path, s.NodeName, PathHealthy, PathIP, PathCoordinatorConfig))
			return
		}
		fail(w, http.StatusNotFound, fmt.Sprintf("%s %s: no such path in Spiderpool's agent API (basePath /v1)", r.Method, r.URL.Path))
	})
	return mux
}

// release serves the IPAM plugin's DEL through underlink's own release path: the pod interface's
// sandbox (containerID) names what is freed; nothing held is success.
func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	var args IpamDelArgs
	if !s.decode(w, r, &args, true) {
		return
	}
	req := protocol.Request{
		ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.NetNamespace,
		Pod: protocol.Pod{Namespace: args.PodNamespace, Name: args.PodName, UID: args.PodUID},
	}
	log := s.Log.WithValues("pod", args.PodNamespace+"/"+args.PodName, "ifName", args.IfName, "containerID", args.ContainerID)
	out, err := s.Releaser.Release(r.Context(), req)
	if err != nil {
		log.Info("DEL from Spiderpool's IPAM plugin failed", "err", err.Error())
		fail(w, http.StatusInternalServerError, fmt.Sprintf("underlink-agent on node %s could not release the addresses of pod %s/%s interface %s: %v",
			s.NodeName, args.PodNamespace, args.PodName, args.IfName, err))
		return
	}
	log.Info("DEL from Spiderpool's IPAM plugin served", "released", out.Addresses)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
}

// refuseAdd answers an ADD through Spiderpool's IPAM plugin: nothing would give the address.
func (s *Server) refuseAdd(w http.ResponseWriter, r *http.Request) {
	var args IpamAddArgs
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	_ = json.Unmarshal(body, &args)
	pod := args.PodNamespace + "/" + args.PodName
	if args.PodName == "" {
		pod = "(unnamed)"
	}
	s.Log.Info("refused an ADD through Spiderpool's IPAM plugin", "pod", pod, "ifName", args.IfName, "containerID", args.ContainerID)
	fail(w, http.StatusInternalServerError, fmt.Sprintf(
		"Spiderpool is not installed: underlink serves node %s, and the NetworkAttachmentDefinition of pod %s interface %s still names Spiderpool's IPAM plugin (ipam type \"spiderpool\"), which only Spiderpool's agent can answer. "+
			"If the NAD belongs to a SpiderMultusConfig, underlink's controller rewrites it with underlink-ipam: check that underlink's controller runs and the config is Ready (kubectl get spidermultusconfig -A), then delete the pod so it is created again. "+
			"If the NAD is hand-written, set its ipam type to \"underlink-ipam\" or delete it and create a SpiderMultusConfig instead",
		s.NodeName, pod, orDash(args.IfName)))
}

// coordinatorConfig answers the coordinator plugin with the cluster's coordinator defaults.
func (s *Server) coordinatorConfig(w http.ResponseWriter, r *http.Request) {
	var args GetCoordinatorArgs
	if !s.decode(w, r, &args, false) {
		return
	}
	var coord *spv2.SpiderCoordinator
	var c spv2.SpiderCoordinator
	switch err := s.Coordinators.Get(r.Context(), types.NamespacedName{Name: spv2.CoordinatorDefaultName}, &c); {
	case err == nil:
		coord = &c
	case apierrors.IsNotFound(err):
		// No cluster defaults: Spiderpool's own defaults still let the DEL clean up the host side.
		s.Log.V(1).Info("no SpiderCoordinator default; answering Spiderpool's defaults", "pod", args.PodNamespace+"/"+args.PodName)
	default:
		fail(w, http.StatusInternalServerError, fmt.Sprintf("underlink-agent on node %s could not read SpiderCoordinator %q: %v; try again",
			s.NodeName, spv2.CoordinatorDefaultName, err))
		return
	}
	var pod *corev1.Pod
	if s.Pods != nil && args.PodNamespace != "" && args.PodName != "" {
		var p corev1.Pod
		// A pod already gone only loses its default-route-nic annotation, which a DEL does not use.
		if err := s.Pods.Get(r.Context(), types.NamespacedName{Namespace: args.PodNamespace, Name: args.PodName}, &p); err == nil {
			pod = &p
		}
	}
	body, err := json.Marshal(ConfigFor(coord, pod))
	if err != nil {
		fail(w, http.StatusInternalServerError, fmt.Sprintf("encode the coordinator config: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// decode waits for the agent's caches (a release before they sync could miss pools), then reads the
// JSON body into; required says an empty body is an error.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, into any, required bool) bool {
	for s.Ready != nil && !s.Ready() {
		select {
		case <-r.Context().Done():
			fail(w, http.StatusInternalServerError, "underlink-agent is starting: its caches did not sync in time; try again")
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err == nil && len(body) == 0 {
		if !required {
			return true
		}
		err = errors.New("the body is empty")
	}
	if err == nil {
		err = json.Unmarshal(body, into)
	}
	if err != nil {
		fail(w, http.StatusInternalServerError, fmt.Sprintf("%s %s: the body is not the JSON object of Spiderpool's agent API: %v", r.Method, r.URL.Path, err))
		return false
	}
	return true
}

// fail answers with status and Spiderpool's Error model: the message as a JSON string.
func fail(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(msg)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rootOnly answers only callers whose uid is 0, as the agent's own IPAM socket does (a release frees
// addresses): the socket's mode already keeps others out unless it is loosened or passed on.
func (s *Server) rootOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, err := peercred.From(r.Context())
		switch {
		case err != nil:
			fail(w, http.StatusForbidden, fmt.Sprintf("underlink-agent cannot read the caller's credentials (SO_PEERCRED): %v; it answers only root on %s", err, s.Socket))
		case cred.Uid != 0:
			s.Log.Info("refused a caller that is not root", "path", r.URL.Path, "uid", cred.Uid, "pid", cred.Pid)
			fail(w, http.StatusForbidden, fmt.Sprintf("underlink-agent answers only root (uid 0) on %s; the caller (pid %d) is uid %d", s.Socket, cred.Pid, cred.Uid))
		default:
			next.ServeHTTP(w, r)
		}
	})
}
