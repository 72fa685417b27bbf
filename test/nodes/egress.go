package nodes

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/underlink/underlink/test/netbed"
)

// EgressProxy serves the kube-apiserver's egress selector for "cluster" traffic (proxyProtocol
// HTTPConnect over a unix socket): for each `CONNECT host:port` it dials the target from inside a node
// namespace, answers 200 and relays bytes both ways. It is how the apiserver, on the root namespace's
// loopback, reaches kubelets (exec, logs, port-forward) and Services (webhooks by Service reference)
// that exist only inside the bed.
type EgressProxy struct {
	// Socket is the unix socket the apiserver dials.
	Socket string
	// From is the namespace targets are dialed from.
	From *netbed.Netns

	l     net.Listener
	mu    sync.Mutex
	done  bool
	conns netbed.Conns
	wg    sync.WaitGroup
}

// connectTimeout bounds one dial to a kubelet or Service.
const connectTimeout = 10 * time.Second

// StartEgressProxy listens on socket (removing a stale socket file first) and serves until Close.
func StartEgressProxy(socket string, from *netbed.Netns) (*EgressProxy, error) {
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("egress proxy: listen on %s: %w", socket, err)
	}
	p := &EgressProxy{Socket: socket, From: from, l: l}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *EgressProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

// readConnect reads one HTTP CONNECT request and returns its target host:port. Anything else is an
// error that names what came instead.
func readConnect(br *bufio.Reader) (string, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return "", fmt.Errorf("read CONNECT request: %w", err)
	}
	if req.Method != http.MethodConnect {
		return "", fmt.Errorf("want a CONNECT request, got %s %s", req.Method, req.URL)
	}
	host := req.Host
	if host == "" && req.URL != nil {
		host = req.URL.Host
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		return "", fmt.Errorf("CONNECT target %q is not host:port: %w", host, err)
	}
	return host, nil
}

func (p *EgressProxy) handle(c net.Conn) {
	br := bufio.NewReader(c)
	target, err := readConnect(br)
	if err != nil {
		fmt.Fprintf(c, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\n%s\n", err)
		c.Close()
		return
	}
	var up net.Conn
	err = p.From.Do(func(ns.NetNS) error {
		var err error
		up, err = net.DialTimeout("tcp", target, connectTimeout)
		return err
	})
	if err != nil {
		fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\nunderlink test bed: dial %s from %s: %s\n", target, p.From.Name, err)
		c.Close()
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		c.Close()
		up.Close()
		return
	}
	// Bytes the client sent right after its request are already in br.
	p.conns.Splice(&bufferedConn{Conn: c, r: br}, up)
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Close stops the proxy, cuts its connections and removes the socket.
func (p *EgressProxy) Close() error {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return nil
	}
	p.done = true
	p.mu.Unlock()
	p.conns.Close()
	err := p.l.Close()
	p.wg.Wait()
	if rmErr := os.Remove(p.Socket); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = errors.Join(err, rmErr)
	}
	return err
}

// CloseWrite half-closes the underlying connection when it can.
func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return b.Conn.Close()
}
