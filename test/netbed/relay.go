package netbed

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Relay forwards TCP connections made to Listen inside a namespace to Target in the root namespace:
//
//	process in n ─► n's Listen (127.0.0.1:PORT) ─► unix socket Socket ─► Target (root namespace)
//
// The listening socket is created by a thread locked into n, so it belongs to n's loopback; the unix
// socket is a file, reachable from every namespace, and its accepting side dials Target from the root
// namespace. Node processes thereby reach a control plane that listens on the root loopback, with no
// address of the test in the root namespace and no traffic leaving loopback.
type Relay struct {
	// Listen is the address inside the namespace, e.g. 127.0.0.1:6443.
	Listen string
	// Socket is the unix socket between the two halves.
	Socket string
	// Target is the root-namespace address connections end at.
	Target string

	inner, outer net.Listener
	conns        Conns
	closed       atomic.Bool
	wg           sync.WaitGroup
}

var relaySeq atomic.Int64

// Relay starts a relay from listen inside n to target in the root namespace. target is host:port or a
// URL such as a rest.Config's Host ("https://127.0.0.1:38211"). listen "" means 127.0.0.1 and target's
// port, so a kubeconfig or rest.Config written for target works unchanged in n (envtest's serving
// certificate already names 127.0.0.1). The bed closes it on teardown.
func (b *Bed) Relay(n *Netns, listen, target string) (*Relay, error) {
	if strings.Contains(target, "://") {
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("relay target %q: %w", target, err)
		}
		target = u.Host
	}
	if listen == "" {
		_, port, err := net.SplitHostPort(target)
		if err != nil {
			return nil, fmt.Errorf("relay target %q: %w", target, err)
		}
		listen = net.JoinHostPort("127.0.0.1", port)
	}
	r := &Relay{
		Listen: listen,
		Target: target,
		Socket: filepath.Join(b.dir, fmt.Sprintf("relay-%d.sock", relaySeq.Add(1))),
	}
	var err error
	if r.outer, err = net.Listen("unix", r.Socket); err != nil {
		return nil, fmt.Errorf("relay socket: %w", err)
	}
	b.OnTeardown(r.Close)
	err = n.Do(func(ns.NetNS) error {
		r.inner, err = net.Listen("tcp", listen)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("relay listen on %s in netns %s: %w", listen, n.Name, err)
	}
	r.wg.Add(2)
	go r.serve(r.outer, func() (net.Conn, error) { return net.Dial("tcp", target) })
	go r.serve(r.inner, func() (net.Conn, error) { return net.Dial("unix", r.Socket) })
	return r, nil
}

func (r *Relay) serve(l net.Listener, dial func() (net.Conn, error)) {
	defer r.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			up, err := dial()
			if err != nil {
				_ = c.Close()
				return
			}
			r.conns.Splice(c, up)
		}()
	}
}

// Close stops the relay and cuts its connections.
func (r *Relay) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, l := range []net.Listener{r.inner, r.outer} {
		if l != nil {
			if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	r.conns.Close()
	r.wg.Wait()
	return errors.Join(errs...)
}
