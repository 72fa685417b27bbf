package ipam

import (
	"errors"
	"fmt"
	"strings"
)

// ExhaustedError says a pool has no free address for a new holder.
type ExhaustedError struct {
	Pool      string
	Total     int64
	Allocated int64
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("SpiderIPPool %q is exhausted: %d of %d allocatable addresses are allocated (spec.ips less spec.excludeIPs and spec.gateway); add addresses to spec.ips or delete pods that hold them",
		e.Pool, e.Allocated, e.Total)
}

// StatusError says a pool's status is not in the shape Spiderpool writes. The agent refuses to allocate
// from such a pool and never overwrites its status: someone else wrote it, and a rewrite would lose it.
type StatusError struct {
	Pool string
	Err  error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("SpiderIPPool %q: refusing to allocate: %v; underlink never overwrites a status it cannot read, so fix or clear status.allocatedIPs (kubectl edit --subresource=status spiderippool %s)",
		e.Pool, e.Err, e.Pool)
}

func (e *StatusError) Unwrap() error { return e.Err }

// SpecError says a pool's spec cannot be used (normally stopped by the CRD's validation and admission).
type SpecError struct {
	Pool  string
	Field string
	Err   error
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("SpiderIPPool %q: %s: %v", e.Pool, e.Field, e.Err)
}

func (e *SpecError) Unwrap() error { return e.Err }

// ConfigError is a bad pool choice in a request: a CNI config field or a pod annotation that names a pool
// that does not exist, is of the wrong family, or cannot be parsed. Field is the CNI config path
// ("ipam.ipv4Pools[0]") or the annotation name.
type ConfigError struct {
	Field string
	Value string
	Msg   string
}

func (e *ConfigError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %q: %s", e.Field, e.Value, e.Msg)
}

// Rejection is why one pool was skipped for a request.
type Rejection struct {
	Pool   string
	Reason string
}

// NoPoolError says no pool was left for one address family of a request after eligibility filtering or
// after every eligible pool failed; Rejections say why each was dropped.
type NoPoolError struct {
	Family     int
	Source     string
	Rejections []Rejection
}

func (e *NoPoolError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no IPv%d SpiderIPPool can serve this pod (pools from %s)", e.Family, e.Source)
	for i, r := range e.Rejections {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%q: %s", r.Pool, r.Reason)
	}
	return b.String()
}

// IsExhausted reports whether err is, or wraps, an ExhaustedError.
func IsExhausted(err error) bool {
	var e *ExhaustedError
	return errors.As(err, &e)
}
