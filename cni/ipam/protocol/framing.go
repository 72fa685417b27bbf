package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// How a call travels: HTTP/1.1 on the agent's unix socket, one exchange per connection. The plugin writes
// the request of EncodeRequest on a new connection, asking the agent to close it after the answer; the
// agent sends every answer with its Content-Length (EncodeAnswer), and the plugin reads it with
// DecodeAnswer. The plugin also reads chunked and close-delimited answers, and takes an answer over
// MaxBodyBytes, or headers over MaxHeaderBytes, as the agent not answering.
const (
	// Host is the Host header of every request: a unix socket has no host name.
	Host = "underlink-agent"
	// ContentType is the media type of every request and answer body.
	ContentType = "application/json"
	// MaxBodyBytes bounds a request body the agent reads and an answer body the plugin reads; the bodies
	// are a few hundred bytes.
	MaxBodyBytes = 1 << 20
	// MaxHeaderBytes bounds the status line and headers of an answer the plugin reads.
	MaxHeaderBytes = 64 << 10
)

// EncodeRequest is the whole request of call c with in as its JSON body (nil: no body), as the plugin
// writes it on a new connection.
func EncodeRequest(c Call, in any) ([]byte, error) {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = b
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", c.Method, c.Path, Host)
	if body != nil {
		fmt.Fprintf(&req, "Content-Type: %s\r\nContent-Length: %d\r\n", ContentType, len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	return req.Bytes(), nil
}

// UnreadableRequest is the error the agent answers a request body with that it could not read or
// decode (err).
func UnreadableRequest(err error) *Error {
	return &Error{Code: CodeIOFailure, Msg: "underlink-agent could not decode the request", Details: err.Error()}
}

// Status is the HTTP status of an error answer with code: 400 for a request the agent cannot serve as
// asked, 404 for a pod it does not know, 409 for pools that cannot give or do not hold the address, 503
// for an agent that cannot serve now, 500 for anything else. The plugin goes by the body's code, not by
// the status.
func Status(code uint) int {
	switch code {
	case CodeInvalidConfig, CodeInvalidEnvironment, CodeIOFailure:
		return 400 // Bad Request
	case CodeContainerUnknown:
		return 404 // Not Found
	case CodePoolExhausted, CodePoolRefused, CodeNoEligiblePool, CodeNotAllocated, CodeIPConflict, CodeGatewayUnreachable:
		return 409 // Conflict
	case CodeTryAgainLater, CodePluginNotAvailable:
		return 503 // Service Unavailable
	default:
		return 500 // Internal Server Error
	}
}

// EncodeAnswer is the status and JSON body of the answer to a call whose result is out or err: 200 with
// out, or err's Error (CodeInternal with err's text when err is no *Error) with its Status.
func EncodeAnswer(out any, err error) (status int, body []byte) {
	status, v := 200, out
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Code: CodeInternal, Msg: err.Error()}
		}
		status, v = Status(e.Code), e
	}
	body, merr := json.Marshal(v)
	if merr != nil {
		status = 500
		body, _ = json.Marshal(&Error{Code: CodeInternal, Msg: "underlink-agent could not encode its answer", Details: merr.Error()})
	}
	return status, append(body, '\n')
}

// DecodeAnswer reads an answer with status code and status line text (e.g. "409 Conflict") and body
// into out (nil: the body is not read). A non-2xx answer is its Error, or, when its body is not one,
// CodeInternal quoting the status and body; a 2xx body that is not JSON is CodeIOFailure.
func DecodeAnswer(code int, status string, body []byte, out any) error {
	if code/100 != 2 {
		var e Error
		if json.Unmarshal(body, &e) != nil || e.Msg == "" {
			return &Error{Code: CodeInternal, Msg: fmt.Sprintf("underlink-agent answered %s", status), Details: string(body)}
		}
		return &e
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return &Error{Code: CodeIOFailure, Msg: "underlink-agent sent an answer that is not JSON", Details: err.Error()}
		}
	}
	return nil
}
