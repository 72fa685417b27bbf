package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/test/nodes"
)

// The upgrade step's load: pods created at loadRate in the opted-in namespace, held by a scheduling gate
// so that they cost admission only (no node runs them).
const (
	loadLabel = "underlink-e2e"
	loadValue = "upgrade-load"
	loadGate  = "underlink.io/e2e-hold"
	loadRun   = "underlink-e2e-run"
	loadRate  = 20 // pods per second
)

// cleanUpgrade deletes the load pods an earlier run's upgrade step left on c.
func (r *runner) cleanUpgrade(c TargetCluster) error {
	return r.deleteLeftovers(c, [][]string{
		{"delete", "pods", "-n", appNamespace, "-l", loadLabel + "=" + loadValue, "--ignore-not-found", "--wait=false"},
	})
}

// upgradeUnderLoad upgrades cluster-b from the previous release (its chart and its own images) to this
// tree's, and then to the next release (this chart with a new pod template), each while pods are created
// at 20/s, with injection by the mutating webhook (what webhook.injection=auto chooses on Kubernetes 1.33
// to 1.35, where every pod create calls it). Every pod admitted is injected, no running pod's address
// changes, and no create fails.
func (r *runner) upgradeUnderLoad() error {
	c := r.b
	prev := r.t.Previous
	if prev == nil {
		return r.check(false, "the previous release is built", "no chart and images in "+PreviousDir()+": run `make images-previous`")
	}
	prevRef, err := nodes.PickImage(prev.Images, "underlink-webhook")
	if err != nil {
		return r.check(false, "the previous release's images", err.Error())
	}
	prevRepo, prevTag := splitRef(prevRef)
	webhookRef, _ := nodes.PickImage(r.t.Images, "underlink-webhook")
	repo, tag := splitRef(webhookRef)
	detail := fmt.Sprintf("previous %s, this tree %s", prevTag, tag)
	if prevTag == tag {
		detail += ": a node would keep one image under the tag; bump the chart's appVersion"
	}
	if err := r.check(prevTag != tag, "the previous release's image tag differs from this tree's", detail); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if _, err := nodes.SyncImages(r.ctx, n.ContainerdSocket, nodes.Tarballs(prev.Images)); err != nil {
			return r.check(false, "the previous release's images on "+n.Name, err.Error())
		}
	}
	// Back to the previous release, as the cluster ran before this upgrade. The controller of this tree
	// has written the fast-path match condition; an earlier chart that renders it takes the field back
	// (--force-conflicts); the upgrade under test takes nothing.
	if out, err := r.helmUpgrade(c, prev.Chart, prevRepo, prevTag, []string{"webhook.injection=webhook"}, "--force-conflicts"); err != nil {
		return r.check(false, "cluster-b on the previous release "+prevTag, out)
	}
	r.pass("cluster-b runs the previous release", fmt.Sprintf("chart %s, images %s, injection by the webhook", prev.Chart, prevRef))

	before, err := r.podIPs(c, "app="+appName)
	if err != nil || len(before) == 0 {
		return r.check(false, "running test-app pods on "+c.Name, fmt.Sprintf("%v %v", before, err))
	}
	cs, err := r.clientset(c)
	if err != nil {
		return r.check(false, "client of "+c.Name, err.Error())
	}
	// Every replica is replaced in each upgrade; the old ones drain (preStop, then Connection: close
	// while not ready) until the apiserver has closed every connection to them, so that no connection
	// is closed by a replica under a request the apiserver has just sent (it does not retry a POST).
	// Any failed create fails the step.
	// The replicas of the previous release leave as that release drains: after a fixed 3 s, which can
	// close a kept-alive connection under a request. From this release on, none may fail.
	for _, u := range []struct {
		what     string
		sets     []string
		oldDrain bool
	}{
		{prevTag + " → " + tag, []string{"webhook.injection=webhook"}, true},
		{tag + " → the next release", []string{"webhook.injection=webhook", `webhook.podAnnotations.underlink\.io/e2e-release=next`}, false},
	} {
		st, err := r.upgradeWithLoad(c, cs, before, u.what, r.t.Chart, repo, tag, u.sets)
		if err != nil {
			return err
		}
		if err := r.noFailedCreate(st, u.what, u.oldDrain); err != nil {
			return err
		}
	}
	return nil
}

// replicaExitErrors are how a call to a replica that stops fails: its port refused (502 through the
// test bed's egress relay), or its connection closed under the request.
var replicaExitErrors = []string{"connection refused", "502", "EOF", "connection reset", "server closed idle connection", "use of closed network connection"}

// noFailedCreate checks that no create of the load failed, and says of each failure whether it was a
// connection to the webhook that a replica's exit closed or refused. With oldDrain (replicas of a release
// before the drain waited for the apiserver's connections) those are counted but allowed.
func (r *runner) noFailedCreate(st loadStats, what string, oldDrain bool) error {
	var atExit, other []string
	for _, f := range st.failed {
		if strings.Contains(f, "failed calling webhook") && slices.ContainsFunc(replicaExitErrors, func(e string) bool { return strings.Contains(f, e) }) {
			atExit = append(atExit, f)
		} else {
			other = append(other, f)
		}
	}
	name := what + ": no pod create fails"
	ok := len(st.failed) == 0
	if oldDrain {
		name = what + ": no pod create fails but on a connection a replica of the previous release closed as it left"
		ok = len(other) == 0
	}
	return r.check(ok, name,
		fmt.Sprintf("%d of %d creates at 20/s failed: %d on a connection a stopping replica closed %v, %d otherwise %v",
			len(st.failed), st.sent, len(atExit), atExit[:min(len(atExit), 3)], len(other), other[:min(len(other), 3)]))
}

// upgradeWithLoad runs helm upgrade on c while pods are created at loadRate, checks that the upgrade
// succeeded, that every pod admitted was injected and that no running test-app pod's IP changed (before),
// deletes the load's pods, and returns the load's figures.
func (r *runner) upgradeWithLoad(c TargetCluster, cs *kubernetes.Clientset, before map[string]string, what, chart, repo, tag string, sets []string) (loadStats, error) {
	load := r.startLoad(cs)
	time.Sleep(2 * time.Second) // the load runs before the upgrade starts, and after it ends
	start := time.Now()
	out, herr := r.helmUpgrade(c, chart, repo, tag, sets)
	took := time.Since(start)
	time.Sleep(3 * time.Second)
	st := load.stop()
	if err := r.check(herr == nil, "helm upgrade "+what+" on "+c.Name, fmt.Sprintf("%.1fs: %s", took.Seconds(), lastLines(out, 1))); err != nil {
		return st, err
	}
	fmt.Fprintf(r.out, "   load: %d pod creates at %d/s over %.1fs, %d failed\n", st.sent, loadRate, st.took.Seconds(), len(st.failed))
	for _, f := range st.failed[:min(len(st.failed), 5)] {
		fmt.Fprintln(r.out, indent(f))
	}
	if err := r.check(st.sent >= int(took.Seconds())*loadRate, "pods created at 20/s through the upgrade ("+what+")",
		fmt.Sprintf("%d creates over %.1fs, the upgrade %.1fs", st.sent, st.took.Seconds(), took.Seconds())); err != nil {
		return st, err
	}
	pods, err := cs.CoreV1().Pods(appNamespace).List(r.ctx, metav1.ListOptions{LabelSelector: loadRun + "=" + st.run})
	if err != nil {
		return st, r.check(false, "load pods listed", err.Error())
	}
	var bare []string
	for _, p := range pods.Items {
		if p.Annotations[nadv1.DefaultNetworkAnnotation] == "" {
			bare = append(bare, p.Name)
		}
	}
	if err := r.check(len(bare) == 0 && len(pods.Items) == st.created, "every pod admitted through the upgrade ("+what+") was injected",
		fmt.Sprintf("%d of %d carry %s; not injected: %v", len(pods.Items)-len(bare), len(pods.Items), nadv1.DefaultNetworkAnnotation, bare[:min(len(bare), 5)])); err != nil {
		return st, err
	}
	after, err := r.podIPs(c, "app="+appName)
	if err != nil {
		return st, r.check(false, "running test-app pods on "+c.Name, err.Error())
	}
	if err := r.check(maps.Equal(before, after), "no running pod's IP changes ("+what+")", fmt.Sprintf("before %v, after %v", sortedPairs(before), sortedPairs(after))); err != nil {
		return st, err
	}
	if err := cs.CoreV1().Pods(appNamespace).DeleteCollection(r.ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: loadLabel + "=" + loadValue}); err != nil {
		return st, r.check(false, "load pods deleted", err.Error())
	}
	return st, nil
}

// podIPs maps the name of each running pod that selector selects in the app namespace to its IP.
func (r *runner) podIPs(c TargetCluster, selector string) (map[string]string, error) {
	out, err := r.kubectlQuiet(c, nil, "get", "pods", "-n", appNamespace, "-l", selector, "--field-selector", "status.phase=Running",
		"-o", `jsonpath={range .items[*]}{.metadata.name}={.status.podIP}{"\n"}{end}`)
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Fields(out) {
		name, ip, _ := strings.Cut(l, "=")
		m[name] = ip
	}
	return m, nil
}

func sortedPairs(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

func (r *runner) clientset(c TargetCluster) (*kubernetes.Clientset, error) {
	cfg, err := clientConfig(c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 200, 400
	return kubernetes.NewForConfig(cfg)
}

// podLoad creates pods at loadRate, each create on its own, so a slow answer does not lower the rate.
type podLoad struct {
	cancel  context.CancelFunc
	done    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	sent    int
	created atomic.Int64
	failed  []string
	start   time.Time
	run     string
}

type loadStats struct {
	run     string
	sent    int
	created int
	failed  []string
	took    time.Duration
}

func (r *runner) startLoad(cs *kubernetes.Clientset) *podLoad {
	ctx, cancel := context.WithCancel(r.ctx)
	run := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff)
	l := &podLoad{cancel: cancel, done: make(chan struct{}), start: time.Now(), run: run}
	go func() {
		defer close(l.done)
		t := time.NewTicker(time.Second / loadRate)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			l.sent++ // written here only; stop reads it after done is closed
			l.wg.Add(1)
			go func(i int) {
				defer l.wg.Done()
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("load-%s-%05d", run, i), Namespace: appNamespace, Labels: map[string]string{loadLabel: loadValue, loadRun: run}},
					Spec: corev1.PodSpec{
						SchedulingGates:               []corev1.PodSchedulingGate{{Name: loadGate}},
						TerminationGracePeriodSeconds: new(int64(1)),
						Containers:                    []corev1.Container{{Name: "test-app", Image: r.testApp, ImagePullPolicy: corev1.PullNever}},
					},
				}
				cctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
				defer cancel()
				if _, err := cs.CoreV1().Pods(appNamespace).Create(cctx, pod, metav1.CreateOptions{}); err != nil {
					l.mu.Lock()
					l.failed = append(l.failed, fmt.Sprintf("%s at +%.2fs: %v", pod.Name, time.Since(l.start).Seconds(), err))
					l.mu.Unlock()
					return
				}
				l.created.Add(1)
			}(i)
		}
	}()
	return l
}

// stop ends the load and waits for the creates in flight.
func (l *podLoad) stop() loadStats {
	l.cancel()
	<-l.done
	took := time.Since(l.start)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return loadStats{run: l.run, sent: l.sent, created: int(l.created.Load()), failed: l.failed, took: took}
}
