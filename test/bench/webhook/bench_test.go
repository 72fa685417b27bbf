//go:build integration

// Package webhook measures what underlink's admission adds to pod creation: create latency through a
// real apiserver for pods of an opted-in namespace (injected and validated) against pods of a namespace
// underlink's admission never sees, interleaved in one run at one fixed rate, for each way of injecting.
package webhook

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
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
	rate      = flag.Int("rate", 100, "pod creates per second in each of the two streams")
	duration  = flag.Duration("duration", 30*time.Second, "how long each stream creates pods")
	warmup    = flag.Duration("warmup", 3*time.Second, "creates before measuring, to warm connections and caches")
	rounds    = flag.Int("rounds", 3, "measured runs of -duration per way of injecting; the report gives each run's ratios and those of all runs pooled")
	injection = flag.String("injection", "none,policy,webhook", "ways of injecting to measure, comma-separated: policy (the chart's default), webhook, none (no underlink admission for either stream: the ratios' noise)")
	profile   = flag.String("apiserver-cpuprofile", "", "write the apiserver's CPU profile of each measured run to this file (suffixed with the injection), for go tool pprof")
)

// BenchmarkPodCreateLatency runs, for each way of injecting (-injection), -rounds runs of two open-loop
// streams of pod creates at -rate each for -duration, interleaved: one into a namespace labelled
// underlink.io/inject=enabled and one into a plain namespace no underlink admission sees. It prints
// p50/p90/p99 of both and their ratio for each run and for all runs pooled, how many times the webhook
// was called and what each admission plugin cost, and reports the pooled figures as metrics. b.N is
// ignored: one run is one measurement (use -benchtime 1x).
//
// injection=policy is the chart's default: the apiserver injects with underlink's
// MutatingAdmissionPolicy, and the opted-in validating webhook is skipped for pods whose network exists
// (the fast path the controller keeps). injection=webhook is the mutating webhook, which validates the
// pods it patches: one TLS round trip per pod. injection=none installs no underlink admission and leaves
// the first namespace unlabelled, so both streams take the same path: its ratios are 1 but for noise,
// which tells how far apart two runs of the same thing land on this machine.
func BenchmarkPodCreateLatency(b *testing.B) {
	for _, inj := range strings.Split(*injection, ",") {
		b.Run("injection="+inj, func(b *testing.B) { measure(b, inj) })
	}
}

const injectionNone = "none"

func measure(b *testing.B, inj string) {
	if inj != injectionNone && !registration.Injection(inj).Valid() {
		b.Fatalf("-injection %q: write none, policy, webhook or several separated by commas", inj)
	}
	if *rounds < 1 {
		b.Fatalf("-rounds %d: at least one run", *rounds)
	}
	env := controlplane.StartEnv(b, controlplane.EnvOptions{ServiceCIDR: "10.233.0.0/18"})
	ctx := context.Background()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0 // the client's own rate limiter must not shape the measured rate
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		b.Fatal(err)
	}
	setup(b, c, inj != injectionNone)
	if inj != injectionNone {
		// The controller keeps the fast path; with the injection webhook the injector validates every pod.
		webhooktest.StartInjection(b, env.Config, env.Client, app.Options{}, registration.Injection(inj))
		// Check the two streams take the two paths before measuring anything.
		probe := pod("with-webhook")
		if err := c.Create(ctx, probe); err != nil || probe.Annotations[nadv1.DefaultNetworkAnnotation] != app.DefaultNetwork {
			b.Fatalf("pod of the opted-in namespace not injected: %v %v", err, probe.Annotations)
		}
		probe = pod("without-webhook")
		if err := c.Create(ctx, probe); err != nil || probe.Annotations[nadv1.DefaultNetworkAnnotation] != "" {
			b.Fatalf("pod of the plain namespace touched: %v %v", err, probe.Annotations)
		}
		if registration.Injection(inj) == registration.InjectionPolicy {
			waitFastPath(b, c)
		}
	}

	run(ctx, b, c, *warmup)
	before, plugBefore := handlerTime(b), admissionTime(b, env.Config)
	prof := startProfile(b, env.Config, inj)
	b.ResetTimer()
	pooled := map[string]*stream{"with-webhook": {}, "without-webhook": {}}
	var perRun []string
	for i := 0; i < *rounds; i++ {
		res := run(ctx, b, c, *duration)
		with, without := res["with-webhook"], res["without-webhook"]
		if with.errors > 0 || without.errors > 0 {
			b.Fatalf("creates failed: %d with underlink, %d without (first: %v)", with.errors, without.errors, firstErr(with, without))
		}
		w50, _, w99 := with.quantiles()
		o50, _, o99 := without.quantiles()
		perRun = append(perRun, fmt.Sprintf("run %d: p50 %.2f, p99 %.2f", i+1, ratio(w50, o50), ratio(w99, o99)))
		pooled["with-webhook"].lat = append(pooled["with-webhook"].lat, with.lat...)
		pooled["without-webhook"].lat = append(pooled["without-webhook"].lat, without.lat...)
	}
	b.StopTimer()
	prof()
	after, plugAfter := handlerTime(b), admissionTime(b, env.Config)

	with, without := pooled["with-webhook"], pooled["without-webhook"]
	w50, w90, w99 := with.quantiles()
	o50, o90, o99 := without.quantiles()
	total := time.Duration(*rounds) * *duration
	what := "with underlink (opted-in namespace)"
	if inj == injectionNone {
		what = "the same, no underlink (plain namespace)"
	}
	achieved := float64(len(with.lat)) / total.Seconds()
	fmt.Fprintf(os.Stdout, "\npod create through the apiserver, injection=%s, %d/s per stream, %d runs of %v interleaved (achieved %.0f/s per stream):\n",
		inj, *rate, *rounds, *duration, achieved)
	if achieved < 0.97*float64(*rate) {
		// The ticker fell behind: requests queued in this process and in the apiserver, and the
		// latencies below are mostly that queue, the same for both streams, so their ratios say little.
		fmt.Fprintf(os.Stdout, "WARNING: the machine did not sustain %d/s per stream (CPU steal, another job?): the figures below measure a queue; rerun when it is quiet or with a lower -rate\n", *rate)
	}
	fmt.Fprintf(os.Stdout, "%-40s %8s %8s %8s %8s\n", "", "n", "p50", "p90", "p99")
	fmt.Fprintf(os.Stdout, "%-40s %8d %8s %8s %8s\n", "without underlink (plain namespace)", len(without.lat), ms(o50), ms(o90), ms(o99))
	fmt.Fprintf(os.Stdout, "%-40s %8d %8s %8s %8s\n", what, len(with.lat), ms(w50), ms(w90), ms(w99))
	fmt.Fprintf(os.Stdout, "%-40s %8s %8.2f %8.2f %8.2f   (goal: p99 ratio <= 1.10)\n", "ratio, all runs pooled", "", ratio(w50, o50), ratio(w90, o90), ratio(w99, o99))
	fmt.Fprintf(os.Stdout, "ratio of each run: %s\n", strings.Join(perRun, "; "))
	for _, hook := range []string{"mutate", "validate"} {
		n := after[hook].count - before[hook].count
		mean := "-"
		if n > 0 {
			mean = ms(time.Duration((after[hook].sum - before[hook].sum) / float64(n) * float64(time.Second)))
		}
		fmt.Fprintf(os.Stdout, "webhook calls, %-8s %6d for %d opted-in pods (handler mean %s)\n", hook, n, len(with.lat), mean)
	}
	creates := float64(len(with.lat) + len(without.lat))
	for _, plugin := range []string{"MutatingAdmissionPolicy", "MutatingAdmissionWebhook", "ValidatingAdmissionWebhook"} {
		d := plugAfter[plugin] - plugBefore[plugin]
		fmt.Fprintf(os.Stdout, "apiserver admission plugin %-27s mean %6.3fms per create of either stream\n", plugin, d/creates*1000)
	}
	fmt.Fprintln(os.Stdout)
	b.ReportMetric(float64(w50.Microseconds())/1000, "p50-with-ms")
	b.ReportMetric(float64(w99.Microseconds())/1000, "p99-with-ms")
	b.ReportMetric(float64(o50.Microseconds())/1000, "p50-without-ms")
	b.ReportMetric(float64(o99.Microseconds())/1000, "p99-without-ms")
	b.ReportMetric(ratio(w99, o99), "p99-ratio")
}

// waitFastPath waits until the controller has put the benchmark's network into the fast-path condition.
func waitFastPath(b *testing.B, c client.Client) {
	if _, err := webhooktest.WaitFastPath(context.Background(), c, func(expr string) bool {
		return strings.Contains(expr, "'"+app.DefaultNetwork+"'")
	}); err != nil {
		b.Fatal(err)
	}
}

// admissionTime reads from the apiserver's /metrics the seconds each admission plugin has spent on pod
// creates (apiserver_admission_controller_admission_duration_seconds), by plugin name.
func admissionTime(b *testing.B, cfg *rest.Config) map[string]float64 {
	rc, err := rest.RESTClientFor(withCodecs(cfg))
	if err != nil {
		b.Fatal(err)
	}
	raw, err := rc.Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatalf("read the apiserver's metrics: %v", err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_admission_controller_admission_duration_seconds_sum{") ||
			!strings.Contains(line, `operation="CREATE"`) || !strings.Contains(line, `rejected="false"`) {
			continue
		}
		_, rest, _ := strings.Cut(line, `name="`)
		name, _, _ := strings.Cut(rest, `"`)
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			b.Fatalf("metrics line %q: %v", line, err)
		}
		out[name] += v
	}
	return out
}

// startProfile asks the apiserver for a CPU profile as long as the measured run (-apiserver-cpuprofile);
// the returned func waits for it and writes it to the file.
func startProfile(b *testing.B, cfg *rest.Config, inj string) (wait func()) {
	if *profile == "" {
		return func() {}
	}
	rc, err := rest.RESTClientFor(withCodecs(cfg))
	if err != nil {
		b.Fatal(err)
	}
	type result struct {
		raw []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		total := time.Duration(*rounds) * *duration
		raw, err := rc.Get().AbsPath("/debug/pprof/profile").Param("seconds", strconv.Itoa(int(total.Seconds()))).
			Timeout(total + time.Minute).DoRaw(context.Background())
		done <- result{raw, err}
	}()
	return func() {
		r := <-done
		if r.err != nil {
			b.Fatalf("apiserver CPU profile: %v", r.err)
		}
		file := *profile + "." + inj
		if err := os.WriteFile(file, r.raw, 0o644); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stdout, "apiserver CPU profile of the measured run: %s\n", file)
	}
}

func withCodecs(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	return c
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

// setup creates the two namespaces (the first opted in when optIn) and the objects the webhook checks.
func setup(b *testing.B, c client.Client, optIn bool) {
	ctx := context.Background()
	var optedIn map[string]string
	if optIn {
		optedIn = map[string]string{registration.InjectLabel: registration.InjectEnabled}
	}
	macvlan := "macvlan"
	gw := "172.110.1.254"
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "submariner-operator"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "with-webhook", Labels: optedIn}},
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
