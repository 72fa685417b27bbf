package admit

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Verdicts of an admission decision, the verdict label of underlink_admission_decisions_total.
const (
	VerdictAllowed = "allowed"
	VerdictWarned  = "warned"
	VerdictDenied  = "denied"
	VerdictPatched = "patched"
	VerdictErrored = "errored"
)

// Rule label values for decisions no alignment rule made.
const (
	RuleNone   = "none"   // allowed without a violation, or a pod left alone
	RuleInject = "inject" // the pod got the default network or the scheduler
	RuleError  = "error"  // the request or the world could not be read
)

var (
	decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "underlink_admission_decisions_total",
		Help: "Admission decisions by object kind, verdict (allowed, warned, denied, patched, errored) and the rule that decided (the first denying rule, else the first warning rule, else none/inject/error).",
	}, []string{"kind", "verdict", "rule"})
	violations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "underlink_admission_violations_total",
		Help: "Rule violations found by admission, by object kind, rule and severity (Deny, Warn); one request may find several.",
	}, []string{"kind", "rule", "severity"})
	latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "underlink_admission_duration_seconds",
		Help:    "Time underlink's admission handlers take per request, by webhook (mutate, validate) and object kind.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	}, []string{"webhook", "kind"})
)

func init() {
	metrics.Registry.MustRegister(decisions, violations, latency)
}

func observe(webhook, kind string, start time.Time, verdict, rule string) {
	latency.WithLabelValues(webhook, kind).Observe(time.Since(start).Seconds())
	decisions.WithLabelValues(kind, verdict, rule).Inc()
}

// knownKinds bounds the kind label of the metrics, so malformed requests cannot grow its cardinality.
var knownKinds = map[string]bool{
	"Pod": true, "Deployment": true, "ReplicaSet": true, "StatefulSet": true, "DaemonSet": true, "Job": true,
	"CronJob": true, "SpiderIPPool": true, "SpiderMultusConfig": true, "SpiderCoordinator": true,
}

func kindLabel(kind string) string {
	if knownKinds[kind] {
		return kind
	}
	return "unknown"
}
