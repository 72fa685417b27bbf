package netbed

import (
	"io"
	"net"
	"sync"
)

// Conns is the set of connections a relaying server has open, so that closing the server cuts them
// all. The zero value is ready to use.
type Conns struct {
	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
}

// Splice relays a and b both ways until both directions end, passing half-closes on, then closes
// both. When the set was closed first it only closes them.
func (s *Conns) Splice(a, b net.Conn) {
	if !s.add(a, b) {
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
	s.mu.Lock()
	delete(s.open, a)
	delete(s.open, b)
	s.mu.Unlock()
}

func (s *Conns) add(cs ...net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	if s.open == nil {
		s.open = map[net.Conn]struct{}{}
	}
	for _, c := range cs {
		s.open[c] = struct{}{}
	}
	return true
}

// Close cuts every open connection; later Splices only close theirs.
func (s *Conns) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.open {
		_ = c.Close()
	}
}
