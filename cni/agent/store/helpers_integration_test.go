//go:build integration

package store_test

import (
	"errors"

	dto "github.com/prometheus/client_model/go"

	"github.com/underlink/underlink/cni/agent/metrics"
	"github.com/underlink/underlink/cni/ipam"
)

func testutilCounter(m *metrics.Metrics, pool string) float64 {
	var out dto.Metric
	if err := m.Conflicts.WithLabelValues(pool).Write(&out); err != nil {
		return 0
	}
	return out.GetCounter().GetValue()
}

func batchStats(m *metrics.Metrics) (writes, ops float64) {
	var out dto.Metric
	if err := m.BatchSize.Write(&out); err != nil {
		return 0, 0
	}
	return float64(out.GetHistogram().GetSampleCount()), out.GetHistogram().GetSampleSum()
}

func asStatus(err error, se **ipam.StatusError) bool { return errors.As(err, se) }
