// Package metrics defines underlink-agent's Prometheus metrics. One Metrics value is created per agent
// and registered with the registry the agent serves on its metrics address.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the agent's counters, histograms and gauges.
type Metrics struct {
	// Allocations counts ADDs by result: "new" (an address was given), "existing" (the pod interface
	// already held one), "preallocated" (answered from a pre-allocation, without a write), "failed".
	// Pre-allocations themselves count as "ahead" (given) and "ahead-failed".
	Allocations *prometheus.CounterVec
	// Releases counts addresses freed by DEL.
	Releases prometheus.Counter
	// GCFreed counts addresses freed by garbage collection, by pool.
	GCFreed *prometheus.CounterVec
	// Conflicts counts pool status writes retried after a resourceVersion conflict, by pool.
	Conflicts *prometheus.CounterVec
	// WriteErrors counts pool status writes that failed for another reason and were retried, by pool.
	WriteErrors *prometheus.CounterVec
	// RequestSeconds is the agent-side latency of IPAM requests, by op (allocate, release, check).
	RequestSeconds *prometheus.HistogramVec
	// BatchSize is the number of requests carried by one pool status write.
	BatchSize prometheus.Histogram
	// LinkUp is 1 when an underlay NIC is up, 0 when down or missing.
	LinkUp *prometheus.GaugeVec
	// LabelPatchSeconds is the time from a netlink event to the node label patched.
	LabelPatchSeconds prometheus.Histogram
	// IPConflicts counts addresses set aside because another host answered for them during ADD, by pool.
	IPConflicts *prometheus.CounterVec
	// ReleaseFailures counts DELs the agent could not serve (the runtime retries them).
	ReleaseFailures prometheus.Counter
	// GCKept is the number of addresses garbage collection keeps for pods gone from a node that is down,
	// as of its last pass (only the collecting agent reports a non-zero value).
	GCKept prometheus.Gauge
}

// New creates the metrics and registers them with reg (nil: not registered, for tests).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "underlink_ipam_allocations_total", Help: "IPAM ADD requests by result (new, existing, preallocated, failed), and pre-allocations (ahead, ahead-failed).",
		}, []string{"result"}),
		Releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "underlink_ipam_releases_total", Help: "Addresses freed by CNI DEL.",
		}),
		GCFreed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "underlink_ipam_gc_freed_total", Help: "Addresses freed by garbage collection (pod gone or replaced).",
		}, []string{"pool"}),
		Conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "underlink_ipam_conflicts_retried_total", Help: "Pool status writes retried after a resourceVersion conflict.",
		}, []string{"pool"}),
		WriteErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "underlink_ipam_write_errors_retried_total", Help: "Pool status writes retried after an apiserver error other than a conflict.",
		}, []string{"pool"}),
		RequestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "underlink_ipam_request_duration_seconds", Help: "Latency of IPAM requests served on the agent socket.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
		}, []string{"op"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "underlink_ipam_write_batch_size", Help: "Requests carried by one pool status write.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		IPConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "underlink_ipam_ip_conflicts_total", Help: "Addresses set aside because another host on the segment answered for them during ADD (detectIPConflict).",
		}, []string{"pool"}),
		ReleaseFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "underlink_ipam_release_failures_total", Help: "IPAM DEL requests the agent could not serve (the runtime retries them).",
		}),
		GCKept: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "underlink_ipam_gc_kept_addresses", Help: "Addresses garbage collection keeps for pods gone from a node that is down (NotReady or its Lease expired), as of its last pass.",
		}),
		LinkUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "underlink_underlay_link_up", Help: "1 when the underlay NIC is up, 0 when down or missing.",
		}, []string{"nic"}),
		LabelPatchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "underlink_underlay_label_patch_seconds", Help: "Time from a netlink link event to the node label patched.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	// Every series of these label values exists from the first scrape (at 0), so rate() sees the first
	// event and a query never names a series that is not there yet.
	for _, r := range []string{"new", "existing", "preallocated", "failed", "ahead", "ahead-failed"} {
		m.Allocations.WithLabelValues(r)
	}
	for _, op := range []string{"allocate", "release", "check"} {
		m.RequestSeconds.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.Allocations, m.Releases, m.GCFreed, m.Conflicts, m.WriteErrors, m.RequestSeconds, m.BatchSize, m.LinkUp, m.LabelPatchSeconds, m.IPConflicts, m.ReleaseFailures, m.GCKept)
	}
	return m
}

// ForPool creates the pool's series of every per-pool counter at 0, when the agent first sees the pool.
func (m *Metrics) ForPool(pool string) {
	for _, v := range []*prometheus.CounterVec{m.GCFreed, m.Conflicts, m.WriteErrors, m.IPConflicts} {
		v.WithLabelValues(pool)
	}
}
