package store

import (
	"github.com/prometheus/client_golang/prometheus"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/pools"
	"github.com/underlink/underlink/cni/ipam"
)

// PoolCollector exports the free, allocated and total address counts of the pools this agent has read
// or written, computed at scrape time from the versions it holds (pools.View.Held), so a scrape costs
// the apiserver nothing; a pool's figures are as fresh as this agent's last look at it.
type PoolCollector struct {
	View *pools.View
	// Node is this agent's node: underlink_ipam_node_allocated_addresses counts the pool's records of it
	// (the scrape's target labels say which node).
	Node  string
	free  *prometheus.Desc
	mine  *prometheus.Desc
	alloc *prometheus.Desc
	total *prometheus.Desc
	bad   *prometheus.Desc
}

// NewPoolCollector returns a collector of the pools v holds.
func NewPoolCollector(v *pools.View) *PoolCollector {
	return &PoolCollector{
		View:  v,
		free:  prometheus.NewDesc("underlink_ipam_pool_free_addresses", "Allocatable addresses of the pool that nobody holds.", []string{"pool"}, nil),
		alloc: prometheus.NewDesc("underlink_ipam_pool_allocated_addresses", "Addresses of the pool held by pods (status.allocatedIPCount).", []string{"pool"}, nil),
		total: prometheus.NewDesc("underlink_ipam_pool_total_addresses", "Allocatable addresses of the pool (status.totalIPCount).", []string{"pool"}, nil),
		mine:  prometheus.NewDesc("underlink_ipam_node_allocated_addresses", "Addresses of the pool held by pods of this agent's node (records whose node is this one).", []string{"pool"}, nil),
		bad:   prometheus.NewDesc("underlink_ipam_pool_refused", "1 when the agent refuses the pool (malformed status or unusable spec).", []string{"pool"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.free
	ch <- c.alloc
	ch <- c.total
	ch <- c.mine
	ch <- c.bad
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, obj := range c.View.Held() {
		p, err := ipam.Load(obj)
		name := obj.Name
		if err != nil {
			ch <- prometheus.MustNewConstMetric(c.bad, prometheus.GaugeValue, 1, name)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.bad, prometheus.GaugeValue, 0, name)
		ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(p.Free()), name)
		ch <- prometheus.MustNewConstMetric(c.alloc, prometheus.GaugeValue, float64(p.Allocated()), name)
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(p.Total()), name)
		mine := 0
		if c.Node != "" {
			p.Any(func(a spv2.PoolIPAllocation) bool {
				if a.Node == c.Node {
					mine++
				}
				return false
			})
		}
		ch <- prometheus.MustNewConstMetric(c.mine, prometheus.GaugeValue, float64(mine), name)
	}
}
