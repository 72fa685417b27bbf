// Package client calls underlink-agent over its unix socket (protocol in cni/ipam/protocol). It is what
// the underlink-ipam plugin links, so it stays small: net/http and the protocol types only.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/underlink/underlink/cni/ipam/protocol"
)

// UnreachableError says the agent could not be asked or did not answer: no socket, nobody listening,
// a broken connection, or no answer before the deadline.
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("underlink-agent not reachable at %s: %v", e.Socket, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Client talks to one agent socket.
type Client struct {
	socket  string
	timeout time.Duration
	http    *http.Client
}

// New returns a client for the agent listening on socket; each call gives up after timeout.
func New(socket string, timeout time.Duration) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableCompression: true,
		MaxIdleConns:       1,
	}
	return &Client{socket: socket, timeout: timeout, http: &http.Client{Transport: tr}}
}

// Allocate asks for the addresses of a pod interface (CNI ADD).
func (c *Client) Allocate(ctx context.Context, req protocol.Request) (*protocol.Allocation, error) {
	var out protocol.Allocation
	if err := c.call(ctx, http.MethodPost, protocol.PathAllocate, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Release gives back the addresses of a pod interface (CNI DEL).
func (c *Client) Release(ctx context.Context, req protocol.Request) (*protocol.Released, error) {
	var out protocol.Released
	if err := c.call(ctx, http.MethodPost, protocol.PathRelease, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Check verifies that the pod interface still holds addresses (CNI CHECK).
func (c *Client) Check(ctx context.Context, req protocol.CheckRequest) error {
	return c.call(ctx, http.MethodPost, protocol.PathCheck, req, nil)
}

// Health reports whether the agent serves (CNI STATUS).
func (c *Client) Health(ctx context.Context) error {
	return c.call(ctx, http.MethodGet, protocol.PathHealth, nil, nil)
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request to underlink-agent: %w", err)
		}
		body = bytes.NewReader(b)
	}
	// The host part is ignored: the transport always dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://underlink-agent"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return &UnreachableError{Socket: c.socket, Err: c.cause(ctx, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return &UnreachableError{Socket: c.socket, Err: c.cause(ctx, err)}
	}
	if resp.StatusCode/100 != 2 {
		var e protocol.Error
		if json.Unmarshal(raw, &e) != nil || e.Msg == "" {
			return &protocol.Error{Code: protocol.CodeInternal, Msg: fmt.Sprintf("underlink-agent answered %s", resp.Status), Details: string(raw)}
		}
		return &e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return &protocol.Error{Code: protocol.CodeIOFailure, Msg: "underlink-agent sent an answer that is not JSON", Details: err.Error()}
		}
	}
	return nil
}

// cause keeps what a person needs from a transport error: "no answer within 20s" instead of net/http's
// wrapping of a deadline, and the dial error itself ("dial unix ...: connect: no such file or directory").
func (c *Client) cause(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s: %w", c.timeout, context.DeadlineExceeded)
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	return err
}
