package service

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/underlink/underlink/cni/agent/metrics"
	"github.com/underlink/underlink/cni/agent/store"
	"github.com/underlink/underlink/cni/ipam"
	"github.com/underlink/underlink/cni/ipam/protocol"
	"github.com/underlink/underlink/pkg/poolchoice"
)

func TestErrorsMapToCNICodes(t *testing.T) {
	exhausted := &ipam.ExhaustedError{Pool: "tiny", Total: 2, Allocated: 2}
	for _, tc := range []struct {
		err  error
		code uint
	}{
		{&poolchoice.ConfigError{Field: "ipam.ipv4Pools[0]", Value: "nope", Msg: "no SpiderIPPool"}, protocol.CodeInvalidConfig},
		{exhausted, protocol.CodePoolExhausted},
		{fmt.Errorf("wrapped: %w", exhausted), protocol.CodePoolExhausted},
		{&ipam.StatusError{Pool: "p", Err: errors.New("bad")}, protocol.CodePoolRefused},
		{&ipam.SpecError{Pool: "p", Field: "spec.subnet", Err: errors.New("bad")}, protocol.CodePoolRefused},
		{&store.PoolGoneError{Pool: "p"}, protocol.CodePoolRefused},
		{&poolchoice.NoPoolError{Family: 4, Rejections: []poolchoice.Rejection{{Pool: "a", Reason: exhausted.Error()}, {Pool: "b", Reason: "SpiderIPPool \"b\" is exhausted: 1 of 1"}}}, protocol.CodePoolExhausted},
		{&poolchoice.NoPoolError{Family: 4, Rejections: []poolchoice.Rejection{{Pool: "a", Reason: exhausted.Error()}, {Pool: "b", Reason: "spec.disable is true"}}}, protocol.CodeNoEligiblePool},
		{&poolchoice.NoPoolError{Family: 4}, protocol.CodeNoEligiblePool},
		{context.DeadlineExceeded, protocol.CodeTryAgainLater},
		{&protocol.Error{Code: protocol.CodeContainerUnknown, Msg: "pod"}, protocol.CodeContainerUnknown},
		{errors.New("boom"), protocol.CodeInternal},
	} {
		var pe *protocol.Error
		if got := toProtocol(tc.err); !errors.As(got, &pe) || pe.Code != tc.code {
			t.Errorf("toProtocol(%v) = %v, want code %d", tc.err, got, tc.code)
		}
	}
}

func TestDefaultRouteOnlyForAnOnLinkGateway(t *testing.T) {
	for _, tc := range []struct {
		subnet, gw string
		family     int
		want       []protocol.Route
	}{
		{"172.110.0.0/16", "172.110.0.1", 4, []protocol.Route{{Dst: "0.0.0.0/0", Gw: "172.110.0.1"}}},
		{"172.110.1.0/24", "172.110.0.1", 4, nil}, // the seed's pool: underlink-coordinator routes it onlink
		{"fd00::/64", "fd00::1", 6, []protocol.Route{{Dst: "::/0", Gw: "fd00::1"}}},
	} {
		got := defaultRoutes(store.PoolInfo{Family: tc.family, Subnet: netip.MustParsePrefix(tc.subnet), Gateway: netip.MustParseAddr(tc.gw)})
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s via %s: %v, want %v", tc.subnet, tc.gw, got, tc.want)
		}
	}
}

func TestRequestsNeedTheirRuntimeFields(t *testing.T) {
	full := protocol.Request{ContainerID: "c", IfName: "eth0", Pod: protocol.Pod{Namespace: "d", Name: "p"}}
	if err := validate(full, true); err != nil {
		t.Fatal(err)
	}
	noPod := full
	noPod.Pod = protocol.Pod{}
	if err := validate(noPod, false); err != nil {
		t.Errorf("DEL without the pod: %v", err)
	}
	for _, r := range []protocol.Request{
		{IfName: "eth0", Pod: full.Pod},
		{ContainerID: "c", Pod: full.Pod},
		noPod,
	} {
		var pe *protocol.Error
		if err := validate(r, true); !errors.As(err, &pe) || pe.Code != protocol.CodeInvalidEnvironment {
			t.Errorf("validate(%+v) = %v", r, err)
		}
	}
}

// TestFailedRequestsAreLogged: a refused DEL, like a refused ADD, leaves a log line naming the pod, the
// interface, the sandbox and the error, beside its metric.
func TestFailedRequestsAreLogged(t *testing.T) {
	var lines []string
	log := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{})
	reg := prometheus.NewRegistry()
	s := &Service{Metrics: metrics.New(reg), Log: log}
	req := protocol.Request{ContainerID: "0123456789abcdef", Pod: protocol.Pod{Namespace: "d", Name: "p"}} // no CNI_IFNAME
	if _, err := s.Release(context.Background(), req); err == nil {
		t.Fatal("a DEL without CNI_IFNAME was served")
	}
	if _, err := s.Allocate(context.Background(), req); err == nil {
		t.Fatal("an ADD without CNI_IFNAME was served")
	}
	if len(lines) != 2 {
		t.Fatalf("log lines: %q", lines)
	}
	for i, msg := range []string{`"msg"="release failed"`, `"msg"="allocation failed"`} {
		for _, want := range []string{msg, `"pod"="d/p"`, `"ifName"=""`, `"containerID"="0123456789ab"`, `"err"="CNI_IFNAME is empty"`, `"after"=`} {
			if !strings.Contains(lines[i], want) {
				t.Errorf("log line %q lacks %s", lines[i], want)
			}
		}
	}
	if got := testutil.ToFloat64(s.Metrics.ReleaseFailures); got != 1 {
		t.Errorf("release failures counted: %v, want 1", got)
	}
}
