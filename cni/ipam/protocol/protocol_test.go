package protocol

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// TestCodesAreCNIs: the plugin hands the agent's codes to the runtime unchanged, so those the CNI spec
// defines must be the spec's.
func TestCodesAreCNIs(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ours, cni uint
	}{
		{"container unknown", CodeContainerUnknown, types.ErrUnknownContainer},
		{"invalid environment", CodeInvalidEnvironment, types.ErrInvalidEnvironmentVariables},
		{"I/O failure", CodeIOFailure, types.ErrIOFailure},
		{"invalid config", CodeInvalidConfig, types.ErrInvalidNetworkConfig},
		{"try again later", CodeTryAgainLater, types.ErrTryAgainLater},
		{"plugin not available", CodePluginNotAvailable, types.ErrPluginNotAvailable},
		{"internal", CodeInternal, types.ErrInternal},
	} {
		if tc.ours != tc.cni {
			t.Errorf("%s: code %d, CNI's is %d", tc.name, tc.ours, tc.cni)
		}
	}
}

// TestRequestsAsNetHTTPReadsThem: the request the plugin writes by hand is what the agent's net/http
// server reads, for every call.
func TestRequestsAsNetHTTPReadsThem(t *testing.T) {
	req := Request{ContainerID: "c1", IfName: "eth0", Pod: Pod{Namespace: "d", Name: "p", UID: "u"}, IPv4Pools: []string{"a"}}
	for _, tc := range []struct {
		call Call
		in   any
	}{
		{Allocate, req},
		{Release, req},
		{Check, CheckRequest{Request: req, Addresses: []string{"172.110.1.5/24"}}},
		{Health, nil},
	} {
		t.Run(tc.call.Pattern(), func(t *testing.T) {
			raw, err := EncodeRequest(tc.call, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
			if err != nil {
				t.Fatalf("net/http cannot read %q: %v", raw, err)
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			if tc.in != nil {
				want, _ = json.Marshal(tc.in)
			}
			if r.Method != tc.call.Method || r.URL.Path != tc.call.Path || r.Host != Host || !r.Close || string(body) != string(want) {
				t.Errorf("read %s %s host %s close=%v body %s", r.Method, r.URL, r.Host, r.Close, body)
			}
			if tc.in != nil && (r.Header.Get("Content-Type") != ContentType || r.ContentLength != int64(len(want))) {
				t.Errorf("headers %v, length %d; want %s and %d", r.Header, r.ContentLength, ContentType, len(want))
			}
			mux := http.NewServeMux()
			served := false
			mux.HandleFunc(tc.call.Pattern(), func(http.ResponseWriter, *http.Request) { served = true })
			mux.ServeHTTP(httpDiscard{}, r)
			if !served {
				t.Errorf("a ServeMux with pattern %q does not route the request", tc.call.Pattern())
			}
		})
	}
	if _, err := EncodeRequest(Allocate, math.NaN()); err == nil {
		t.Error("a body that is no JSON was encoded")
	}
}

type httpDiscard struct{}

func (httpDiscard) Header() http.Header         { return http.Header{} }
func (httpDiscard) Write(b []byte) (int, error) { return len(b), nil }
func (httpDiscard) WriteHeader(int)             {}

// TestAnswers: each result as the agent encodes it, and as the plugin reads it back: the status, and the
// same Allocation or Error.
func TestAnswers(t *testing.T) {
	alloc := &Allocation{IPs: []IP{{Address: "172.110.1.5/24", Gateway: "172.110.0.1", Pool: "cluster-a"}}}
	exhausted := &Error{Code: CodePoolExhausted, Msg: `SpiderIPPool "tiny" is exhausted`}
	for _, tc := range []struct {
		name   string
		out    any
		err    error
		status int
		want   *Error // nil: out comes back
	}{
		{name: "allocation", out: alloc, status: 200},
		{name: "empty", out: Empty{}, status: 200},
		{name: "invalid config", err: &Error{Code: CodeInvalidConfig, Msg: "ipam.ipv4Pools[1]"}, status: 400, want: &Error{Code: CodeInvalidConfig, Msg: "ipam.ipv4Pools[1]"}},
		{name: "invalid environment", err: &Error{Code: CodeInvalidEnvironment, Msg: "CNI_IFNAME is empty"}, status: 400, want: &Error{Code: CodeInvalidEnvironment, Msg: "CNI_IFNAME is empty"}},
		{name: "unreadable request", err: UnreadableRequest(errors.New("unexpected EOF")), status: 400, want: &Error{Code: CodeIOFailure, Msg: "underlink-agent could not decode the request", Details: "unexpected EOF"}},
		{name: "pod unknown", err: &Error{Code: CodeContainerUnknown, Msg: "pod d/p"}, status: 404, want: &Error{Code: CodeContainerUnknown, Msg: "pod d/p"}},
		{name: "wrapped exhausted", err: fmt.Errorf("allocate: %w", exhausted), status: 409, want: exhausted},
		{name: "refused", err: &Error{Code: CodePoolRefused, Msg: "m"}, status: 409, want: &Error{Code: CodePoolRefused, Msg: "m"}},
		{name: "no eligible pool", err: &Error{Code: CodeNoEligiblePool, Msg: "m"}, status: 409, want: &Error{Code: CodeNoEligiblePool, Msg: "m"}},
		{name: "not allocated", err: &Error{Code: CodeNotAllocated, Msg: "m"}, status: 409, want: &Error{Code: CodeNotAllocated, Msg: "m"}},
		{name: "try again", err: &Error{Code: CodeTryAgainLater, Msg: "m", Details: "d"}, status: 503, want: &Error{Code: CodeTryAgainLater, Msg: "m", Details: "d"}},
		{name: "starting", err: &Error{Code: CodePluginNotAvailable, Msg: "m"}, status: 503, want: &Error{Code: CodePluginNotAvailable, Msg: "m"}},
		{name: "not a protocol error", err: errors.New("boom"), status: 500, want: &Error{Code: CodeInternal, Msg: "boom"}},
		{name: "answer that cannot be encoded", out: math.Inf(1), status: 500, want: &Error{Code: CodeInternal, Msg: "underlink-agent could not encode its answer",
			Details: "json: unsupported value: +Inf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := EncodeAnswer(tc.out, tc.err)
			if status != tc.status || !bytes.HasSuffix(body, []byte("\n")) {
				t.Fatalf("status %d body %q, want %d and a line", status, body, tc.status)
			}
			var sent, back reflect.Value // the result, and where the plugin reads it into
			var into any
			if tc.out != nil {
				sent = reflect.Indirect(reflect.ValueOf(tc.out))
				back = reflect.New(sent.Type())
				into = back.Interface()
			}
			err := DecodeAnswer(status, fmt.Sprint(status), body, into)
			var pe *Error
			switch {
			case tc.want != nil:
				if !errors.As(err, &pe) || *pe != *tc.want {
					t.Errorf("read back %#v, want %#v", err, tc.want)
				}
			case err != nil:
				t.Fatal(err)
			case !reflect.DeepEqual(back.Elem().Interface(), sent.Interface()):
				t.Errorf("read back %+v, want %+v", back.Elem(), sent)
			}
		})
	}
}

// TestAnswersThatAreNotTheProtocol: a well-framed answer the agent did not write as the protocol says is
// the agent's fault, and quotes what came.
func TestAnswersThatAreNotTheProtocol(t *testing.T) {
	for _, tc := range []struct {
		code         int
		status, body string
		want         Error
	}{
		{502, "502 Bad Gateway", "<html>proxy</html>", Error{Code: CodeInternal, Msg: "underlink-agent answered 502 Bad Gateway", Details: "<html>proxy</html>"}},
		{409, "409 Conflict", `{"code":100}`, Error{Code: CodeInternal, Msg: "underlink-agent answered 409 Conflict", Details: `{"code":100}`}},
		{200, "200 OK", "no", Error{Code: CodeIOFailure, Msg: "underlink-agent sent an answer that is not JSON", Details: "invalid character 'o' in literal null (expecting 'u')"}},
	} {
		err := DecodeAnswer(tc.code, tc.status, []byte(tc.body), &Allocation{})
		var pe *Error
		if !errors.As(err, &pe) || *pe != tc.want {
			t.Errorf("DecodeAnswer(%s, %q) = %#v, want %#v", tc.status, tc.body, err, tc.want)
		}
	}
}
