// Package peercred records, in each request's context, the credentials of the process at the other end
// of a unix socket connection (SO_PEERCRED: the process that connected, as the kernel saw it at connect
// time), for the agent's servers that answer only root.
package peercred

import (
	"context"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// key holds, in a request's context, its connection's peer credentials (or the error reading them).
type key struct{}

type peer struct {
	cred *unix.Ucred
	err  error
}

// ConnContext reads the peer's credentials once per connection: an http.Server's ConnContext.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return context.WithValue(ctx, key{}, peer{err: fmt.Errorf("not a unix socket connection (%T)", c)})
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return context.WithValue(ctx, key{}, peer{err: err})
	}
	var p peer
	if err := raw.Control(func(fd uintptr) {
		p.cred, p.err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		p.err = err
	}
	return context.WithValue(ctx, key{}, p)
}

// From returns the credentials ConnContext recorded in ctx. A nil cred comes with the reason.
func From(ctx context.Context) (*unix.Ucred, error) {
	p, ok := ctx.Value(key{}).(peer)
	if !ok {
		return nil, fmt.Errorf("no peer credentials recorded for this connection")
	}
	if p.err == nil && p.cred == nil {
		return nil, fmt.Errorf("the kernel returned no peer credentials")
	}
	return p.cred, p.err
}
