//go:build integration

// Package scheduler benchmarks underlink-scheduler's scheduling throughput against kube-scheduler's
// default profile, the way scheduler_perf reports SchedulingThroughput, on a real apiserver: the real
// binary built from this repository, 1000 Node objects and 3000 pods. Run it with `make bench-scheduler`.
package scheduler

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/scheduler/schedulertest"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/poll"
)

// The size; UNDERLINK_BENCH_NODES and UNDERLINK_BENCH_PODS change it for a quicker look.
var (
	benchNodes = envInt("UNDERLINK_BENCH_NODES", 1000)
	benchPods  = envInt("UNDERLINK_BENCH_PODS", 3000)
)

const workers = 16

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// result is one profile's run.
type result struct {
	profile    string
	pods       int
	elapsed    time.Duration
	throughput throughput
	// pluginShare is UnderlayNetwork's part of the scheduling algorithm's time (PreFilter to Score),
	// and pluginPerCycle its mean time per cycle, from kube-scheduler's sampled plugin metrics.
	pluginShare    float64
	pluginPerCycle time.Duration
	algoPerCycle   time.Duration
	extensionTimes map[string]time.Duration
	// batched is how many pods opportunistic batching placed on a hinted node without a full cycle.
	batched     float64
	metricsFile string
}

// BenchmarkSchedulingThroughput schedules 3000 pods on 1000 nodes with the default profile and with the
// underlink-scheduler profile (the same pods: every other one on the seed's underlay network), and prints
// both throughputs, the plugin's share of cycle time and the ratio (goal ≥ 0.95).
//
// Each profile gets its own control plane and scheduler, and the two run side by side: on a shared
// machine whose load changes from minute to minute, runs one after the other compare the load, not the
// profiles. The pods exist before the schedulers start, so the schedulers, not the client, set the pace.
func BenchmarkSchedulingThroughput(b *testing.B) {
	profiles := []string{"default-scheduler", "underlink-scheduler"}
	runs := make([]*run, len(profiles))
	for i, profile := range profiles {
		runs[i] = newRun(b, profile)
	}
	start := time.Now()
	if err := each(runs, func(r *run) error { return r.populate(context.Background()) }); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d nodes and %d pods created for each profile in %s", benchNodes, benchPods, time.Since(start).Round(time.Second))
	for _, r := range runs {
		var stop func()
		r.binds, stop = recordBinds(b, r.cs)
		defer stop()
	}
	schedulertest.Binary(b) // build before the clock starts
	b.ResetTimer()
	for _, r := range runs {
		edit := func(c map[string]any) {
			// Start pacing stays on, as shipped: its Permit and Score run for every underlay pod. The
			// nodes have no kubelet, so no pod ever starts, but 1500 underlay pods on 1000 nodes stay far
			// below 8 per node.
			if r.profile == "default-scheduler" {
				c["profiles"] = []any{map[string]any{"schedulerName": "default-scheduler"}}
			}
		}
		r.proc = schedulertest.Launch(b, schedulertest.Config(b, "underlink-scheduler.yaml", r.env.Kubeconfig(b), edit), "--leader-elect=false", "-v=0")
	}
	for _, r := range runs {
		r.proc.WaitHealthy(b)
	}
	if err := each(runs, func(r *run) error {
		var err error
		r.boundAt, err = r.binds.wait(benchPods, 20*time.Minute)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()

	var results []result
	for _, r := range runs {
		res, err := r.result(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		results = append(results, res)
		b.ReportMetric(res.throughput.average, strings.TrimSuffix(r.profile, "-scheduler")+"-pods/s")
	}
	b.ReportMetric(results[1].throughput.average/results[0].throughput.average, "ratio")
	report(os.Stdout, results)
}

// run is one profile's control plane, scheduler and measurements.
type run struct {
	profile string
	env     *controlplane.Env
	cs      kubernetes.Interface
	proc    *schedulertest.Process
	binds   *bindRecorder
	boundAt []time.Time
}

func newRun(b *testing.B, profile string) *run {
	env := controlplane.StartEnv(b, controlplane.EnvOptions{})
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 5000, 5000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return &run{profile: profile, env: env, cs: cs}
}

// each runs f on every run at once and returns the first error.
func each(runs []*run, f func(*run) error) error {
	errs := make(chan error, len(runs))
	for _, r := range runs {
		go func(r *run) { errs <- f(r) }(r)
	}
	var first error
	for range runs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// populate creates the seed's network with a pool big enough for every underlay pod, the nodes with
// ens224 up, and the pods.
func (r *run) populate(ctx context.Context) error {
	for _, m := range []string{`
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: cluster-a
spec:
  default: true
  subnet: 172.110.0.0/16
  ips: ["172.110.0.1-172.110.15.254"]
  gateway: 172.110.255.254
`, `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: macvlan-conf
  namespace: kube-system
spec:
  cniType: macvlan
  macvlan:
    master: [ens224]
    ippools:
      ipv4: [cluster-a]
`} {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(m), &u.Object); err != nil {
			return err
		}
		if err := r.env.Client.Create(ctx, u); err != nil {
			return err
		}
	}
	if err := parallel(benchNodes, func(i int) error {
		_, err := schedulertest.CreateNode(ctx, r.cs, fmt.Sprintf("node-%04d", i), schedulertest.NodeUp("ens224"))
		return err
	}); err != nil {
		return err
	}
	return parallel(benchPods, func(i int) error {
		// The same pods for both profiles: every other one on the underlay network (the default
		// profile ignores the annotation).
		network := ""
		if i%2 == 0 {
			network = "kube-system/macvlan-conf"
		}
		_, err := r.cs.CoreV1().Pods("default").Create(ctx, schedulertest.Pod("default", fmt.Sprintf("pod-%04d", i), r.profile, network), metav1.CreateOptions{})
		return err
	})
}

func (r *run) result(ctx context.Context) (result, error) {
	res := result{profile: r.profile, pods: len(r.boundAt)}
	res.elapsed = r.boundAt[len(r.boundAt)-1].Sub(r.boundAt[0])
	res.throughput = throughputOf(r.boundAt)
	m, err := r.proc.Metrics(ctx)
	if err != nil {
		return res, err
	}
	// Kept after the run for a closer look.
	res.metricsFile = filepath.Join(os.TempDir(), "underlink-bench-"+r.profile+".metrics")
	if err := os.WriteFile(res.metricsFile, []byte(m), 0o644); err != nil {
		return res, err
	}
	res.pluginShare, res.pluginPerCycle, res.algoPerCycle, res.extensionTimes = pluginShare(m, "UnderlayNetwork")
	res.batched = sumOf(m, "scheduler_batch_attempts_total", map[string]string{"result": "hint_used"})
	return res, nil
}

// parallel runs f(0..n-1) on a few workers and returns the first error.
func parallel(n int, f func(i int) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// bindRecorder records when each pod is first seen bound, from an informer (which re-lists and
// re-watches by itself when the apiserver closes a watch under load).
type bindRecorder struct {
	mu   sync.Mutex
	seen map[string]bool
	at   []time.Time
}

func (r *bindRecorder) observe(obj any) {
	p, ok := obj.(*v1.Pod)
	if !ok || p.Spec.NodeName == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.seen[p.Name] {
		r.seen[p.Name] = true
		r.at = append(r.at, time.Now())
	}
}

func (r *bindRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.at)
}

// recordBinds starts recording the binds of pods in default; stop ends it.
func recordBinds(b *testing.B, cs kubernetes.Interface) (r *bindRecorder, stop func()) {
	b.Helper()
	r = &bindRecorder{seen: map[string]bool{}}
	inf := toolscache.NewSharedIndexInformer(&toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return cs.CoreV1().Pods("default").List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.CoreV1().Pods("default").Watch(ctx, o)
		},
	}, &v1.Pod{}, 0, toolscache.Indexers{})
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    r.observe,
		UpdateFunc: func(_, obj any) { r.observe(obj) },
	}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go inf.RunWithContext(ctx)
	if !toolscache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		b.Fatal("pod informer did not sync")
	}
	return r, cancel
}

// wait waits until n pods are bound and returns the bind times, sorted.
func (r *bindRecorder) wait(n int, timeout time.Duration) ([]time.Time, error) {
	// The bind times come from the informer, so how often this looks does not shape them.
	err := poll.Wait(context.Background(), timeout, 20*time.Millisecond, fmt.Sprintf("%d pods bound", n), func() (bool, string, error) {
		c := r.count()
		return c >= n, fmt.Sprintf("%d of %d bound", c, n), nil
	})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	at := append([]time.Time(nil), r.at...)
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	return at, nil
}

// throughput is scheduler_perf's SchedulingThroughput: pods bound per one-second interval, averaged and
// as percentiles, from the first bind to the last.
type throughput struct {
	average, p50, p90, p99 float64
}

func throughputOf(at []time.Time) throughput {
	first := at[0]
	var perSecond []float64
	i := 0
	for sec := 1; i < len(at); sec++ {
		end := first.Add(time.Duration(sec) * time.Second)
		n := 0
		for i < len(at) && !at[i].After(end) {
			n++
			i++
		}
		perSecond = append(perSecond, float64(n))
	}
	// The last interval is partial; scale it so a short tail does not drag the numbers down.
	if last := at[len(at)-1].Sub(first.Add(time.Duration(len(perSecond)-1) * time.Second)); last > 0 && last < time.Second && len(perSecond) > 1 {
		perSecond[len(perSecond)-1] /= last.Seconds()
	}
	t := throughput{average: float64(len(at)-1) / math.Max(at[len(at)-1].Sub(first).Seconds(), 1e-9)}
	sorted := append([]float64(nil), perSecond...)
	sort.Float64s(sorted)
	pct := func(p float64) float64 { return sorted[int(math.Ceil(p*float64(len(sorted))))-1] }
	t.p50, t.p90, t.p99 = pct(0.5), pct(0.9), pct(0.99)
	return t
}

var sampleRE = regexp.MustCompile(`^([a-z_:]+)(?:\{([^}]*)\})? ([0-9.e+-]+|NaN)$`)
var labelRE = regexp.MustCompile(`([a-z_]+)="([^"]*)"`)

// pluginShare reads kube-scheduler's metrics. Plugin execution times are recorded for a sample of
// cycles (10%); the sample size is the count of a PreFilter every pod runs (NodeResourcesFit), so the
// plugin's mean time per cycle compares with the mean scheduling algorithm time over all cycles.
func pluginShare(metrics, plugin string) (share float64, perCycle, algoPerCycle time.Duration, byPoint map[string]time.Duration) {
	byPoint = map[string]time.Duration{}
	var pluginSum, sampled, algoSum, algoCount float64
	for _, line := range strings.Split(metrics, "\n") {
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := map[string]string{}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		switch m[1] {
		case "scheduler_plugin_execution_duration_seconds_sum":
			if labels["plugin"] == plugin {
				pluginSum += v
				byPoint[labels["extension_point"]] += time.Duration(v * float64(time.Second))
			}
		case "scheduler_plugin_execution_duration_seconds_count":
			if labels["plugin"] == "NodeResourcesFit" && labels["extension_point"] == "PreFilter" {
				sampled += v
			}
		case "scheduler_scheduling_algorithm_duration_seconds_sum":
			algoSum += v
		case "scheduler_scheduling_algorithm_duration_seconds_count":
			algoCount += v
		}
	}
	if sampled == 0 || algoCount == 0 {
		return 0, 0, 0, byPoint
	}
	perCycleS := pluginSum / sampled
	algoS := algoSum / algoCount
	return perCycleS / algoS, time.Duration(perCycleS * float64(time.Second)), time.Duration(algoS * float64(time.Second)), byPoint
}

// sumOf adds the samples of a metric whose labels include match.
func sumOf(metrics, name string, match map[string]string) float64 {
	var sum float64
	for _, line := range strings.Split(metrics, "\n") {
		m := sampleRE.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		labels := map[string]string{}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		ok := true
		for k, v := range match {
			ok = ok && labels[k] == v
		}
		if ok {
			v, _ := strconv.ParseFloat(m[3], 64)
			sum += v
		}
	}
	return sum
}

func report(out *os.File, rs []result) {
	fmt.Fprintf(out, "\nScheduling throughput, %d Node objects x %d pods, half of them on an underlay network; both profiles side by side\n\n", benchNodes, benchPods)
	fmt.Fprintf(out, "| profile | pods/s avg | p50 | p90 | p99 | time | algorithm/cycle | UnderlayNetwork/cycle | plugin share | batched pods |\n")
	fmt.Fprintf(out, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		share := "-"
		if r.profile == "underlink-scheduler" {
			share = fmt.Sprintf("%.1f%%", 100*r.pluginShare)
		}
		fmt.Fprintf(out, "| %s | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s | %.0f |\n", r.profile, r.throughput.average, r.throughput.p50, r.throughput.p90, r.throughput.p99,
			r.elapsed.Round(10*time.Millisecond), r.algoPerCycle.Round(time.Microsecond), r.pluginPerCycle.Round(time.Microsecond), share, r.batched)
	}
	ratio := rs[1].throughput.average / rs[0].throughput.average
	verdict := "meets"
	if ratio < 0.95 {
		verdict = "misses"
	}
	fmt.Fprintf(out, "\nratio underlink-scheduler / default-scheduler: %.2f (%s the goal of >= 0.95)\n", ratio, verdict)
	var points []string
	for p, d := range rs[1].extensionTimes {
		points = append(points, fmt.Sprintf("%s %s", p, d.Round(time.Microsecond)))
	}
	sort.Strings(points)
	fmt.Fprintf(out, "UnderlayNetwork time in sampled cycles by extension point: %s\n", strings.Join(points, ", "))
	fmt.Fprintf(out, "scheduler metrics: %s, %s\n\n", rs[0].metricsFile, rs[1].metricsFile)
}
