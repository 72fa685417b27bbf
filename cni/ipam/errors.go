package ipam

import (
	"errors"
	"fmt"
)

// ExhaustedError says a pool has no free address for a new holder.
type ExhaustedError struct {
	Pool      string
	Total     int64
	Allocated int64
	// Reserved are the pool's addresses SpiderReservedIPs reserve that no pod holds.
	Reserved int64
}

func (e *ExhaustedError) Error() string {
	reserved, fix := "", ""
	if e.Reserved > 0 {
		reserved, fix = fmt.Sprintf(" and %d reserved by SpiderReservedIPs", e.Reserved), ", or delete the SpiderReservedIPs that reserve its addresses"
	}
	return fmt.Sprintf("SpiderIPPool %q is exhausted: %d of %d allocatable addresses are allocated%s (spec.ips less spec.excludeIPs and spec.gateway); add addresses to spec.ips or delete pods that hold them%s",
		e.Pool, e.Allocated, e.Total, reserved, fix)
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

// IsExhausted reports whether err is, or wraps, an ExhaustedError.
func IsExhausted(err error) bool {
	var e *ExhaustedError
	return errors.As(err, &e)
}
