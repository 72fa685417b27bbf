package poolchoice

import (
	"fmt"
	"strings"
)

// ConfigError is a pool choice that cannot be followed: a pod annotation or a network configuration that
// names a pool that does not exist or is of the wrong family, or that cannot be parsed.
type ConfigError struct {
	// Annotation is the pod annotation at fault (AnnoPodIPPools or AnnoPodIPPool), or "" when the
	// network's configuration is.
	Annotation string
	// Field is where in the annotation or configuration: "ipv4[2]", "[0].interface", "ipam.ipv4Pools[1]";
	// "" for the whole annotation.
	Field string
	// Value is the offending value (a pool name, the annotation's text); may be empty.
	Value string
	// Msg says what is wrong, Fix how to put it right.
	Msg, Fix string
}

// Where names the field as the CNI error and the scheduler's reason print it: "pod annotation
// ipam.spidernet.io/ippools ipv4[0]", "ipam.ipv4Pools[1]".
func (e *ConfigError) Where() string {
	if e.Annotation == "" {
		return e.Field
	}
	w := "pod annotation " + e.Annotation
	switch {
	case e.Field == "":
	case strings.HasPrefix(e.Field, "["):
		w += e.Field
	default:
		w += " " + e.Field
	}
	return w
}

func (e *ConfigError) Error() string {
	msg := e.Msg
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Where(), msg)
	}
	return fmt.Sprintf("%s: %q: %s", e.Where(), e.Value, msg)
}

// Rejection is why one candidate pool cannot serve a pod.
type Rejection struct {
	Pool string
	// Field is the pool's field that excludes the pod (spec.namespaceName, spec.nodeAffinity, ...), or
	// "" when the pool is unusable as a whole (being deleted, an invalid selector).
	Field string
	// Reason is a phrase about the pool, e.g. `spec.namespaceName [team-b] does not include namespace "a"`.
	Reason string
	// Transient marks a state an operator changes without touching the pod (spec.disable, a pool being
	// deleted): admission warns about it rather than denying.
	Transient bool
	// Node marks a rejection by spec.nodeName or spec.nodeAffinity: another node may be eligible.
	Node bool
}

func (r Rejection) String() string { return fmt.Sprintf("%q: %s", r.Pool, r.Reason) }

// NoPoolError says no candidate was left for one address family of a pod interface: every pool was
// rejected (Rejections say why) or, in the IPAM, every eligible pool failed to give an address.
type NoPoolError struct {
	Interface  string
	Family     int
	Source     string
	Rejections []Rejection
}

func (e *NoPoolError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no IPv%d SpiderIPPool can serve this pod", e.Family)
	if e.Interface != "" {
		fmt.Fprintf(&b, " on %s", e.Interface)
	}
	fmt.Fprintf(&b, " (pools from %s)", e.Source)
	for i, r := range e.Rejections {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// OnlyTransient reports whether every rejection is one an operator lifts without touching the pod.
func (e *NoPoolError) OnlyTransient() bool {
	for _, r := range e.Rejections {
		if !r.Transient {
			return false
		}
	}
	return len(e.Rejections) > 0
}
