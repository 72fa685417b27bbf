//go:build integration

// Package webhook measures what underlink-webhook adds to pod creation: create latency through a real
// apiserver for pods of an opted-in namespace (mutated and validated over TLS) against pods of a
// namespace the webhooks never see, interleaved in one run at one fixed rate.
package webhook

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/api/scheme"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/webhook/app"
	"github.com/underlink/underlink/webhook/registration"
	"github.com/underlink/underlink/webhook/webhooktest"
)

var (
	rate     = flag.Int("rate", 100, "pod creates per second in each of the two streams")
	duration = flag.Duration("duration", 30*time.Second, "how long each stream creates pods")
	warmup   = flag.Duration("warmup", 3*time.Second, "creates before measuring, to warm connections and caches")
)

// BenchmarkPodCreateLatency runs two open-loop streams of pod creates at -rate each for -duration,
// interleaved: one into a namespace labelled underlink.io/inject=enabled (mutating injection plus
// validation of the injected network, over TLS) and one into a plain namespace (no webhook call). It
// prints p50/p90/p99 of both and their ratio, and reports them as metrics. b.N is ignored: one run is
// one measurement (use -benchtime 1x).
func BenchmarkPodCreateLatency(b *testing.B) {
	env := controlplane.StartEnv(b, controlplane.EnvOptions{ServiceCIDR: "10.233.0.0/18"})
	ctx := context.Background()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0 // the client's own rate limiter must not shape the measured rate
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		b.Fatal(err)
	}
	setup(b, c)
	webhooktest.Start(b, env.Config, env.Client, app.Options{DisableController: true})

	// Check the two streams take the two paths before measuring anything.
	probe := pod("with-webhook")
	if err := c.Create(ctx, probe); err != nil || probe.Annotations[nadv1.DefaultNetworkAnnotation] != app.DefaultNetwork {
		b.Fatalf("pod of the opted-in namespace not injected: %v %v", err, probe.Annotations)
	}
	probe = pod("without-webhook")
	if err := c.Create(ctx, probe); err != nil || probe.Annotations[nadv1.DefaultNetworkAnnotation] != "" {
		b.Fatalf("pod of the plain namespace touched: %v %v", err, probe.Annotations)
	}

	run(ctx, b, c, *warmup)
	before := handlerTime(b)
	b.ResetTimer()
	res := run(ctx, b, c, *duration)
	b.StopTimer()
	after := handlerTime(b)

	with, without := res["with-webhook"], res["without-webhook"]
	if with.errors > 0 || without.errors > 0 {
		b.Fatalf("creates failed: %d with the webhook, %d without (first: %v)", with.errors, without.errors, firstErr(with, without))
	}
	w50, w90, w99 := with.quantiles()
	o50, o90, o99 := without.quantiles()
	fmt.Fprintf(os.Stdout, "\npod create through the apiserver, %d/s per stream for %v, interleaved (achieved %.0f/s per stream):\n",
		*rate, *duration, float64(len(with.lat))/duration.Seconds())
	fmt.Fprintf(os.Stdout, "%-34s %8s %8s %8s %8s\n", "", "n", "p50", "p90", "p99")
	fmt.Fprintf(os.Stdout, "%-34s %8d %8s %8s %8s\n", "without webhook (plain namespace)", len(without.lat), ms(o50), ms(o90), ms(o99))
	fmt.Fprintf(os.Stdout, "%-34s %8d %8s %8s %8s\n", "with webhook (opted-in namespace)", len(with.lat), ms(w50), ms(w90), ms(w99))
	fmt.Fprintf(os.Stdout, "%-34s %8s %8.2f %8.2f %8.2f   (goal: p99 ratio <= 1.10)\n", "ratio with/without", "", ratio(w50, o50), ratio(w90, o90), ratio(w99, o99))
	for _, hook := range []string{"mutate", "validate"} {
		n := after[hook].count - before[hook].count
		if n > 0 {
			fmt.Fprintf(os.Stdout, "underlink handler time, %-8s mean %s over %d requests (the rest of the difference is the apiserver's calls over TLS)\n",
				hook, ms(time.Duration((after[hook].sum-before[hook].sum)/float64(n)*float64(time.Second))), n)
		}
	}
	fmt.Fprintln(os.Stdout)
	b.ReportMetric(float64(w50.Microseconds())/1000, "p50-with-ms")
	b.ReportMetric(float64(w99.Microseconds())/1000, "p99-with-ms")
	b.ReportMetric(float64(o50.Microseconds())/1000, "p50-without-ms")
	b.ReportMetric(float64(o99.Microseconds())/1000, "p99-without-ms")
	b.ReportMetric(ratio(w99, o99), "p99-ratio")
}

type histo struct {
	count uint64
	sum   float64
}

// handlerTime reads underlink_admission_duration_seconds per webhook from the metrics registry.
func handlerTime(b *testing.B) map[string]histo {
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]histo{}
	for _, f := range families {
		if f.GetName() != "underlink_admission_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "webhook" {
					h := out[l.GetValue()]
					h.count += m.GetHistogram().GetSampleCount()
					h.sum += m.GetHistogram().GetSampleSum()
					out[l.GetValue()] = h
				}
			}
		}
	}
	return out
}

func setup(b *testing.B, c client.Client) {
	ctx := context.Background()
	macvlan := "macvlan"
	gw := "172.110.1.254"
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "submariner-operator"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "with-webhook", Labels: map[string]string{registration.InjectLabel: registration.InjectEnabled}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "without-webhook"}},
		&submarinerv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: "submariner-operator", Name: "cluster-a"},
			Spec: submarinerv1.ClusterSpec{ClusterID: "cluster-a", ClusterCIDR: []string{"172.110.0.0/16"}, ServiceCIDR: []string{"10.233.0.0/18"}}},
		&submarinerv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: "submariner-operator", Name: "cluster-b"},
			Spec: submarinerv1.ClusterSpec{ClusterID: "cluster-b", ClusterCIDR: []string{"172.111.0.0/16"}, ServiceCIDR: []string{"10.243.0.0/18"}}},
		&spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "cluster-a"},
			Spec: spv2.IPPoolSpec{Subnet: "172.110.1.0/24", IPs: []string{"172.110.1.1-172.110.1.200"}, Gateway: &gw}},
		&spv2.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "macvlan-conf"},
			Spec: spv2.MultusCNIConfigSpec{CniType: &macvlan,
				MacvlanConfig:     &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224"}, SpiderpoolConfigPools: &spv2.SpiderpoolPools{IPv4IPPool: []string{"cluster-a"}}},
				CoordinatorConfig: &spv2.CoordinatorSpec{HijackCIDR: []string{"10.243.0.0/18", "172.111.0.0/16"}}}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			b.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

func pod(ns string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bench-", Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}
}

type stream struct {
	mu     sync.Mutex
	lat    []time.Duration
	errors int
	first  error
}

func (s *stream) add(d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errors++
		if s.first == nil {
			s.first = err
		}
		return
	}
	s.lat = append(s.lat, d)
}

func (s *stream) quantiles() (p50, p90, p99 time.Duration) {
	sort.Slice(s.lat, func(i, j int) bool { return s.lat[i] < s.lat[j] })
	q := func(p float64) time.Duration {
		if len(s.lat) == 0 {
			return 0
		}
		return s.lat[int(p*float64(len(s.lat)-1))]
	}
	return q(0.50), q(0.90), q(0.99)
}

func firstErr(ss ...*stream) error {
	for _, s := range ss {
		if s.first != nil {
			return s.first
		}
	}
	return nil
}

// run creates pods open-loop: one tick every 1/(2·rate) alternates between the two namespaces, and every
// create runs in its own goroutine, so a slow answer never delays the next request.
func run(ctx context.Context, b *testing.B, c client.Client, d time.Duration) map[string]*stream {
	out := map[string]*stream{"with-webhook": {}, "without-webhook": {}}
	ns := []string{"with-webhook", "without-webhook"}
	tick := time.NewTicker(time.Second / time.Duration(2**rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		n := ns[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := c.Create(ctx, pod(n))
			out[n].add(time.Since(start), err)
		}()
	}
	wg.Wait()
	return out
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
