// Package rules holds the rules underlink admission, its controller and its CLIs apply to
// Spiderpool pools, SpiderMultusConfigs, pods and workload pod templates, against each other and against
// the Submariner clusters (the rules 1–5 of docs/DESIGN.md, plus Spiderpool's own pool sanity rules with
// clearer messages).
//
// The package is pure: no client, no I/O. Callers read the world (a webhook from its cache, `underlink
// validate` from YAML files, `underlink doctor` from a live cluster) into a World and ask the Check
// functions for Violations. Because every caller goes through the same functions, their verdicts agree by
// construction.
package rules

import (
	"reflect"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Severity says whether a violation blocks admission.
type Severity string

const (
	// Deny rejects the object: admission fails, `underlink validate` exits 1.
	Deny Severity = "Deny"
	// Warn admits the object with an admission warning: a soft problem a person should see.
	Warn Severity = "Warn"
)

// Violation is one broken rule on one field of one object.
type Violation struct {
	// Rule is the stable ID of the broken rule, one of Rules (e.g. RulePoolInLocalClusterCIDR).
	Rule string
	// Field is the path of the offending field, e.g. spec.gateway or
	// spec.template.metadata.annotations[v1.multus-cni.io/default-network].
	Field *field.Path
	// Type is the kind of field error; empty means field.ErrorTypeInvalid.
	Type field.ErrorType
	// Value is the offending value as the user wrote it (a string, a list, a number).
	Value any
	// Subject is the object the violation is on, "SpiderIPPool/cluster-a" or
	// "Deployment/default/test-app".
	Subject string
	// Cluster is the Submariner cluster the value conflicts with, if any.
	Cluster string
	// Object is the object the value conflicts with, if any ("SpiderIPPool/cluster-b").
	Object string
	// Severity says whether the violation denies the object or warns.
	Severity Severity
	// Message says what is wrong, naming the conflicting CIDR and cluster or object.
	Message string
	// Fix says what to change, in words a person can act on.
	Fix string
	// Ratcheted marks a denial an update keeps as a warning because the stored object already had it
	// (Ratchet).
	Ratcheted bool
}

// Detail is the message and the fix as one sentence, the detail of the field error.
func (v Violation) Detail() string {
	if v.Fix == "" {
		return v.Message
	}
	return v.Message + "; " + v.Fix
}

// FieldError is the violation as the apimachinery field error kubectl prints, one line per field.
func (v Violation) FieldError() *field.Error {
	path := "<object>"
	if v.Field != nil {
		path = v.Field.String()
	}
	t := v.Type
	if t == "" {
		t = field.ErrorTypeInvalid
	}
	bad := v.Value
	if isNil(bad) {
		bad = field.OmitValueType{} // not "Invalid value: null": the violation has no value to show
	}
	return &field.Error{Type: t, Field: path, BadValue: bad, Detail: v.Detail()}
}

// String is the kubectl-style line, e.g. `spec.coordinator.hijackCIDR: Invalid value:
// ["172.111.0.0/16"]: missing 10.243.0.0/18 (service CIDR of cluster cluster-b); add it so pods reach
// cluster-b's services via the node`. A violation on no field (alignment unchecked) is its detail alone.
func (v Violation) String() string {
	if v.Field == nil {
		return v.Detail()
	}
	return v.FieldError().Error()
}

// isNil reports whether v holds no value: nil, or a nil slice, map or pointer (an empty spec.ips).
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// ToErrorList returns the field errors of the denying violations, for apierrors.NewInvalid.
func ToErrorList(vs []Violation) field.ErrorList {
	var out field.ErrorList
	for _, v := range vs {
		if v.Severity == Deny {
			out = append(out, v.FieldError())
		}
	}
	return out
}

// Warnings returns the warning violations as admission warning lines.
func Warnings(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		if v.Severity == Warn {
			out = append(out, v.String())
		}
	}
	return out
}

// Denied reports whether any violation denies.
func Denied(vs []Violation) bool {
	for _, v := range vs {
		if v.Severity == Deny {
			return true
		}
	}
	return false
}

// ObjectRef names an object as the CLI and messages do: Kind/namespace/name, or Kind/name when
// cluster-scoped.
func ObjectRef(kind, namespace, name string) string {
	if namespace == "" {
		return kind + "/" + name
	}
	return kind + "/" + namespace + "/" + name
}

// collector accumulates violations on one subject.
type collector struct {
	subject string
	vs      []Violation
}

func (c *collector) add(v Violation) {
	if v.Subject == "" {
		v.Subject = c.subject
	}
	c.vs = append(c.vs, v)
}

func (c *collector) deny(rule string, p *field.Path, value any, msg, fix string) {
	c.add(Violation{Rule: rule, Field: p, Value: value, Severity: Deny, Message: msg, Fix: fix})
}

func (c *collector) warn(rule string, p *field.Path, value any, msg, fix string) {
	c.add(Violation{Rule: rule, Field: p, Value: value, Severity: Warn, Message: msg, Fix: fix})
}
