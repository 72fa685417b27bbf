package store

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/ipam"
)

// PoolCollector exports every pool's free, allocated and total address counts, computed at scrape time
// from the agent's cache, so the figures never drift from the pools themselves.
type PoolCollector struct {
	Reader client.Reader
	free   *prometheus.Desc
	alloc  *prometheus.Desc
	total  *prometheus.Desc
	bad    *prometheus.Desc
}

// NewPoolCollector returns a collector reading pools from r.
func NewPoolCollector(r client.Reader) *PoolCollector {
	return &PoolCollector{
		Reader: r,
		free:   prometheus.NewDesc("underlink_ipam_pool_free_addresses", "Allocatable addresses of the pool that nobody holds.", []string{"pool"}, nil),
		alloc:  prometheus.NewDesc("underlink_ipam_pool_allocated_addresses", "Addresses of the pool held by pods (status.allocatedIPCount).", []string{"pool"}, nil),
		total:  prometheus.NewDesc("underlink_ipam_pool_total_addresses", "Allocatable addresses of the pool (status.totalIPCount).", []string{"pool"}, nil),
		bad:    prometheus.NewDesc("underlink_ipam_pool_refused", "1 when the agent refuses the pool (malformed status or unusable spec).", []string{"pool"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.free
	ch <- c.alloc
	ch <- c.total
	ch <- c.bad
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var pools spv2.SpiderIPPoolList
	if err := c.Reader.List(ctx, &pools); err != nil {
		return
	}
	for i := range pools.Items {
		p, err := ipam.Load(&pools.Items[i])
		name := pools.Items[i].Name
		if err != nil {
			ch <- prometheus.MustNewConstMetric(c.bad, prometheus.GaugeValue, 1, name)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.bad, prometheus.GaugeValue, 0, name)
		ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(p.Free()), name)
		ch <- prometheus.MustNewConstMetric(c.alloc, prometheus.GaugeValue, float64(p.Allocated()), name)
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(p.Total()), name)
	}
}
