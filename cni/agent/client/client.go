// Package client calls underlink-agent over its unix socket. It is what the underlink-ipam plugin links,
// and the plugin is exec'd once per CNI call, so it stays small: one HTTP/1.1 exchange per call, read by
// hand on a unix connection (no net/http, whose TLS and HTTP/2 package initialisation alone cost every
// exec about a millisecond of CPU). What goes on the wire — calls, framing, limits, the errors of an
// answer — is cni/ipam/protocol's; this package dials, writes, reads HTTP/1.x and keeps deadlines.
package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/underlink/underlink/cni/ipam/protocol"
)

// UnreachableError says the agent could not be asked or did not answer: no socket, nobody listening,
// a broken connection, an answer that is not HTTP, or no answer before the deadline.
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
}

// New returns a client for the agent listening on socket; each call gives up after timeout.
func New(socket string, timeout time.Duration) *Client {
	return &Client{socket: socket, timeout: timeout}
}

// Allocate asks for the addresses of a pod interface (CNI ADD).
func (c *Client) Allocate(ctx context.Context, req protocol.Request) (*protocol.Allocation, error) {
	var out protocol.Allocation
	if err := c.call(ctx, protocol.Allocate, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Conflict reports addresses another host answered for during ADD (see protocol.ConflictRequest).
func (c *Client) Conflict(ctx context.Context, req protocol.ConflictRequest) (*protocol.SetAside, error) {
	var out protocol.SetAside
	if err := c.call(ctx, protocol.Conflict, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Release gives back the addresses of a pod interface (CNI DEL).
func (c *Client) Release(ctx context.Context, req protocol.Request) (*protocol.Released, error) {
	var out protocol.Released
	if err := c.call(ctx, protocol.Release, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Check verifies that the pod interface still holds addresses (CNI CHECK).
func (c *Client) Check(ctx context.Context, req protocol.CheckRequest) error {
	return c.call(ctx, protocol.Check, req, nil)
}

// Health reports whether the agent serves (CNI STATUS).
func (c *Client) Health(ctx context.Context) error {
	return c.call(ctx, protocol.Health, nil, nil)
}

// answer is what the client keeps of an HTTP response.
type answer struct {
	// status is the status line after the version, e.g. "409 Conflict".
	status string
	code   int
	body   []byte
}

func (c *Client) call(ctx context.Context, call protocol.Call, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := protocol.EncodeRequest(call, in)
	if err != nil {
		return fmt.Errorf("encode request to underlink-agent: %w", err)
	}
	a, err := c.exchange(ctx, req)
	if err != nil {
		return &UnreachableError{Socket: c.socket, Err: c.cause(ctx, err)}
	}
	return protocol.DecodeAnswer(a.code, a.status, a.body, out)
}

// exchange sends one request (protocol.EncodeRequest's, which asks the agent to close the connection) on
// a new connection and reads the whole answer. The connection's deadline is ctx's, and ending ctx early
// ends the exchange.
func (c *Client) exchange(ctx context.Context, req []byte) (*answer, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return nil, err
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	return readAnswer(bufio.NewReader(conn))
}

// readAnswer reads an HTTP/1.x response: the status line, the headers, and a body delimited by
// Content-Length, by chunked transfer coding, or (on a closing connection) by the end of the stream.
func readAnswer(r *bufio.Reader) (*answer, error) {
	budget := protocol.MaxHeaderBytes
	line, err := readLine(r, &budget)
	if err != nil {
		return nil, fmt.Errorf("reading the status line: %w", err)
	}
	version, status, _ := strings.Cut(line, " ")
	codeText, _, _ := strings.Cut(status, " ")
	code, cerr := strconv.Atoi(codeText)
	if !strings.HasPrefix(version, "HTTP/1.") || len(codeText) != 3 || cerr != nil || code < 100 {
		return nil, fmt.Errorf("the answer is not HTTP/1.x: status line %q", line)
	}
	a := &answer{status: status, code: code}
	length, chunked := -1, false
	for {
		line, err := readLine(r, &budget)
		if err != nil {
			return nil, fmt.Errorf("reading the headers: %w", err)
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("malformed header line %q", line)
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 || length >= 0 && n != length {
				return nil, fmt.Errorf("malformed Content-Length %q", value)
			}
			length = n
		case "transfer-encoding":
			if !strings.EqualFold(value, "chunked") {
				return nil, fmt.Errorf("unsupported Transfer-Encoding %q", value)
			}
			chunked = true
		}
	}
	switch {
	case code/100 == 1 || code == 204 || code == 304:
		// No body, whatever the headers say (RFC 9112 section 6.3).
	case chunked:
		a.body, err = readChunked(r)
	case length > protocol.MaxBodyBytes:
		err = fmt.Errorf("Content-Length %d is over the %d bytes an answer may have", length, protocol.MaxBodyBytes)
	case length >= 0:
		a.body = make([]byte, length)
		if n, rerr := io.ReadFull(r, a.body); rerr != nil {
			err = fmt.Errorf("body ended after %d of its %d bytes: %w", n, length, rerr)
		}
	default:
		a.body, err = readAll(r, protocol.MaxBodyBytes)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// readLine reads one CRLF- (or LF-) terminated line, charging it to budget.
func readLine(r *bufio.Reader, budget *int) (string, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > *budget {
			return "", fmt.Errorf("header section longer than %d bytes", protocol.MaxHeaderBytes)
		}
		line = append(line, frag...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
	*budget -= len(line)
	return strings.TrimRight(string(line), "\r\n"), nil
}

// readChunked reads a body in chunked transfer coding (RFC 9112 section 7.1), ignoring chunk
// extensions and trailers.
func readChunked(r *bufio.Reader) ([]byte, error) {
	var body []byte
	budget := protocol.MaxHeaderBytes
	for {
		line, err := readLine(r, &budget)
		if err != nil {
			return nil, fmt.Errorf("reading a chunk size: %w", err)
		}
		sizeText, _, _ := strings.Cut(line, ";")
		size, err := strconv.ParseUint(strings.TrimSpace(sizeText), 16, 31)
		if err != nil {
			return nil, fmt.Errorf("malformed chunk size %q", line)
		}
		if size == 0 {
			for {
				trailer, err := readLine(r, &budget)
				if err != nil {
					return nil, fmt.Errorf("reading the trailers: %w", err)
				}
				if trailer == "" {
					return body, nil
				}
			}
		}
		if len(body)+int(size) > protocol.MaxBodyBytes {
			return nil, fmt.Errorf("chunked body is over the %d bytes an answer may have", protocol.MaxBodyBytes)
		}
		start := len(body)
		body = append(body, make([]byte, size)...)
		if _, err := io.ReadFull(r, body[start:]); err != nil {
			return nil, fmt.Errorf("chunk ended early: %w", err)
		}
		if end, err := readLine(r, &budget); err != nil || end != "" {
			return nil, fmt.Errorf("chunk of %d bytes not followed by CRLF", size)
		}
	}
}

// readAll reads to the end of the stream, at most limit bytes.
func readAll(r io.Reader, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err == nil && len(b) > limit {
		err = fmt.Errorf("body is over the %d bytes an answer may have", limit)
	}
	return b, err
}

// cause keeps what a person needs from a transport error: "no answer within 20s" instead of a
// connection's i/o timeout, and the dial error itself ("dial unix ...: connect: no such file or
// directory").
func (c *Client) cause(ctx context.Context, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return ctx.Err()
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("no answer within %s: %w", c.timeout, context.DeadlineExceeded)
	}
	return err
}
