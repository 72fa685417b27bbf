package e2e

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/underlink/underlink/test/nodes"
	"github.com/underlink/underlink/test/poll"
)

// PodStart is one system's figure of PodStartAtScale: n pods of one Deployment created at once, and
// the time until every one is Running and ready on an address of the pool.
type PodStart struct {
	System string
	Pods   int
	Took   time.Duration
}

// podStartRange holds the pods of PodStartAtScale: 250 addresses of cluster-a's underlay.
const podStartRange = "172.110.231.1-172.110.231.250"

// PodStartAtScale measures pod start at scale, the figure Spiderpool publishes, on cluster-a's real
// nodes: Spiderpool v1.2.2 (its own chart) first, then underlink on the same nodes, network and pool
// (Spiderpool uninstalled as docs/migrate-from-spiderpool.md says). n pods are created at once by one
// Deployment; the clock stops when all are Running and ready, and the pool must then hold exactly n
// addresses. Between the systems every pod is deleted and the pool emptied.
func PodStartAtScale(ctx context.Context, t Target, sp Spiderpool, n int) ([]PodStart, *Report) {
	r := newRunner(ctx, t)
	r.a, r.b = t.Clusters[0], t.Clusters[0]
	r.testApp, _ = nodes.PickImage(t.Images, "underlink-testapp")
	m := &migration{runner: r, sp: sp}
	var out []PodStart
	measure := func(system, plugin string) func() error {
		return func() error {
			if err := m.nadNames(plugin); err != nil {
				return err
			}
			c := m.a
			start := time.Now()
			if _, err := m.kubectlQuiet(c, m.deployment(n), "apply", "-f", "-"); err != nil {
				return m.check(false, "Deployment of "+fmt.Sprint(n)+" pods created", err.Error())
			}
			pods, err := m.waitApp(c, n, 15*time.Minute)
			took := time.Since(start)
			if err != nil {
				return m.check(false, fmt.Sprintf("%d pods Running under %s", n, system), err.Error())
			}
			allocs, err := m.poolAllocations(c, migPool)
			if err != nil {
				return m.check(false, "pool read", err.Error())
			}
			ips := map[string]bool{}
			for _, p := range pods {
				ips[p.IP] = true
			}
			if err := m.check(len(allocs) == n && len(ips) == n, fmt.Sprintf("%d pods Running under %s in %s", n, system, took.Round(100*time.Millisecond)),
				fmt.Sprintf("%.1f pods/s; %d addresses in the pool, %d distinct pod IPs", float64(n)/took.Seconds(), len(allocs), len(ips))); err != nil {
				return err
			}
			out = append(out, PodStart{System: system, Pods: n, Took: took})
			return m.emptied(system)
		}
	}
	rep := r.run([]step{
		{"Install Multus (its own thin DaemonSet)", r.installMultus},
		{"Install Spiderpool v1.2.2 from its own chart", m.installSpiderpool},
		{"A pool of 250 addresses and a macvlan network", func() error {
			out, err := m.showManifest(m.a, "apply", m.migManifests(podStartRange))
			return m.check(err == nil, "pool and network created", out)
		}},
		{fmt.Sprintf("Spiderpool: %d pods at once", n), measure("Spiderpool v1.2.2", `"spiderpool"`)},
		{"Uninstall Spiderpool (helm uninstall --no-hooks)", m.uninstallSpiderpool},
		{"Install underlink", m.installUnderlink},
		{fmt.Sprintf("underlink: %d pods at once", n), measure("underlink", "underlink-ipam")},
	})
	return out, rep
}

// emptied deletes the Deployment and waits until its pods are gone and the pool holds nothing.
func (m *migration) emptied(system string) error {
	c := m.a
	if out, err := m.kubectlQuiet(c, nil, "delete", "deployment", migApp, "-n", appNamespace, "--wait=true"); err != nil {
		return m.check(false, "Deployment deleted", out)
	}
	err := poll.Wait(m.ctx, 10*time.Minute, 2*time.Second, "the pods gone and the pool empty", func() (bool, string, error) {
		pods, _ := m.kubectlQuiet(c, nil, "get", "pods", "-n", appNamespace, "-l", "app="+migApp, "-o", "name")
		allocs, err := m.poolAllocations(c, migPool)
		if err != nil {
			return false, err.Error(), nil
		}
		return pods == "" && len(allocs) == 0, fmt.Sprintf("%d addresses allocated", len(allocs)), nil
	})
	detail := ""
	if err != nil {
		detail = err.Error()
	}
	return m.check(err == nil, "every pod deleted and the pool empty under "+system, detail)
}

// WritePodStarts prints the figures as a table with the ratio to Spiderpool's.
func WritePodStarts(w io.Writer, starts []PodStart) {
	var spider time.Duration
	for _, s := range starts {
		if s.System == "Spiderpool v1.2.2" {
			spider = s.Took
		}
	}
	fmt.Fprintf(w, "\npod start at scale: one Deployment's pods created at once on cluster-a's 2 real nodes, until all Running and ready\n")
	fmt.Fprintf(w, "%-20s %6s %12s %8s %16s\n", "system", "pods", "time", "pods/s", "÷ Spiderpool")
	for _, s := range starts {
		ratio := "-"
		if spider > 0 {
			ratio = fmt.Sprintf("%.2f×", s.Took.Seconds()/spider.Seconds())
		}
		fmt.Fprintf(w, "%-20s %6d %12s %8.2f %16s\n", s.System, s.Pods, s.Took.Round(100*time.Millisecond), float64(s.Pods)/s.Took.Seconds(), ratio)
	}
}
