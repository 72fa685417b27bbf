package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/underlink/underlink/test/nodes"
	"github.com/underlink/underlink/test/poll"
	"github.com/underlink/underlink/test/proccpu"
)

// PodStart is one system's figure of PodStartAtScale: n pods of one Deployment created at once, and
// the time until every one is Running and ready on an address of the pool.
type PodStart struct {
	// Round is the round of the run (1 …) the figure is from.
	Round  int
	System string
	Pods   int
	Took   time.Duration
	// SandboxFailures counts the kubelet's failed sandbox creations (FailedCreatePodSandBox Events,
	// with their repeats) of these pods: each one costs its pod a retry after a backoff.
	SandboxFailures int
	// Left is how many addresses the system's store still held a minute after every pod was deleted.
	Left int
	// CPU is what each program on the machine used from the Deployment's create until all pods ran
	// (control planes, nodes and the test bed's relays alike: they share the 2 cores).
	CPU []proccpu.Use
}

// underlinkScheduler is the scheduler underlink's pods select, as the chart's injection makes them do in
// an opted-in namespace; the other systems' pods use the cluster's default scheduler.
const underlinkScheduler = "underlink-scheduler"

// podStartRange holds the pods of PodStartAtScale: 250 addresses of cluster-a's underlay.
const podStartRange = "172.110.231.1-172.110.231.250"

// PodStartAtScale measures pod start at scale, the figure Spiderpool publishes, on cluster-a's real
// nodes, one system after the other on the same nodes, underlay and address range: the floor (macvlan
// with host-local IPAM, no IPAM daemon: what every system's time is measured against), whereabouts
// v0.9.2 (macvlan and whereabouts IPAM in a plain NAD, see whereabouts.go), Spiderpool v1.2.2 (its own
// chart), then underlink (Spiderpool uninstalled as docs/migrate-from-spiderpool.md says; its pods on
// underlink-scheduler, as injected pods are). n pods are created at once by one Deployment; the clock
// stops when all are Running and ready, and the system's store must then hold exactly n addresses.
// Between the systems every pod is deleted and the store emptied.
//
// Runs of one system on this bed spread more than the systems differ (docs/BENCHMARKS.md), so rounds
// after the first run the floor, Spiderpool and underlink again, in that order (underlink uninstalled
// and Spiderpool installed again, then the other way, as the migration does): each round's times are
// compared with that round's floor and Spiderpool. whereabouts runs in the first round only.
func PodStartAtScale(ctx context.Context, t Target, sp Spiderpool, n, rounds int) ([]PodStart, *Report) {
	r := newRunner(ctx, t)
	r.a, r.b = t.Clusters[0], t.Clusters[0]
	r.testApp, _ = nodes.PickImage(t.Images, "underlink-testapp")
	m := &migration{runner: r, sp: sp}
	var out []PodStart
	spiderStore := func() (int, error) {
		allocs, err := m.poolAllocations(m.a, migPool)
		return len(allocs), err
	}
	// measure creates the Deployment on network (namespace/name) and times it; allocated counts the
	// addresses the system's store holds. A system whose DEL frees every address (mustFree) must hold
	// none once the pods are gone; for one that relies on a reconciler the bed does not run, the
	// addresses left are a figure, and clear empties the store for the next system.
	measure := func(round int, system, network, scheduler string, allocated func() (int, error), mustFree bool, clear func() error) func() error {
		return func() error {
			c := m.a
			before, err := proccpu.Take()
			if err != nil {
				return m.check(false, "the machine's processes read", err.Error())
			}
			start := time.Now()
			if _, err := m.kubectlQuiet(c, m.scheduledDeployment(migApp, n, "v1.multus-cni.io/default-network", network, scheduler), "apply", "-f", "-"); err != nil {
				return m.check(false, "Deployment of "+fmt.Sprint(n)+" pods created", err.Error())
			}
			pods, err := m.watchStarted(c, "app="+migApp, n, 30*time.Minute)
			took := time.Since(start)
			var cpu []proccpu.Use
			if after, err := proccpu.Take(); err == nil {
				cpu = proccpu.Diff(before, after)
			}
			fmt.Fprintf(m.out, "   CPU until all ran (or the wait ended): %.0f s in all (%.2f of 2 cores); %s\n", proccpu.Total(cpu), proccpu.Total(cpu)/took.Seconds(), proccpu.Format(cpu, 20))
			if err != nil {
				return m.check(false, fmt.Sprintf("%d pods Running under %s", n, system), err.Error())
			}
			held, err := allocated()
			if err != nil {
				return m.check(false, system+"'s store read", err.Error())
			}
			ips := map[string]bool{}
			for _, p := range pods {
				ips[p.IP] = true
			}
			failures, first := m.sandboxFailures(c, pods)
			// A store that leaks (not mustFree) may hold more: addresses of ADDs that failed and were retried.
			if err := m.check(len(ips) == n && (held == n || !mustFree && held > n), fmt.Sprintf("%d pods Running under %s in %s", n, system, took.Round(100*time.Millisecond)),
				fmt.Sprintf("%.1f pods/s; %d addresses in %s's store, %d distinct pod IPs; %d failed sandbox creations%s",
					float64(n)/took.Seconds(), held, system, len(ips), failures, first)); err != nil {
				return err
			}
			left, err := m.emptied(system, allocated, mustFree)
			out = append(out, PodStart{Round: round, System: system, Pods: n, Took: took, SandboxFailures: failures, Left: left, CPU: cpu})
			if err != nil || clear == nil {
				return err
			}
			return clear()
		}
	}
	spiderNet := migNetNS + "/" + migNet
	floorDir, floorHeld := m.floorStore()
	// One round's run of each system compared in every round.
	floor := func(round int) func() error {
		return measure(round, "floor", migNetNS+"/"+floorNet, "", floorHeld, true, nil)
	}
	spiderpool := func(round int) func() error {
		return measure(round, spiderpoolSystem, spiderNet, "", spiderStore, true, nil)
	}
	underlink := func(round int) func() error {
		return measure(round, "underlink", spiderNet, underlinkScheduler, spiderStore, true, nil)
	}
	underlinkNADs := func() error {
		if err := m.installUnderlink(); err != nil {
			return err
		}
		return m.nadNames("underlink-ipam")
	}
	steps := []step{
		{"Install Multus (its own thin DaemonSet)", r.installMultus},
		{"The floor: a macvlan network with host-local IPAM and no IPAM daemon", func() error {
			if m.a.Nodes[0].CNIConfDir == "" {
				return m.check(false, "the floor's host-local directory", "the bed does not reach "+m.a.Nodes[0].Name+"'s files")
			}
			out, err := m.showManifest(m.a, "apply", floorNAD(podStartRange, floorDir))
			return m.check(err == nil, "network "+floorNet+" created", out)
		}},
		{fmt.Sprintf("floor: %d pods at once", n), floor(1)},
		{"whereabouts v0.9.2 on every node, and a macvlan network whose addresses it gives", func() error { return m.installWhereabouts(podStartRange) }},
		{fmt.Sprintf("whereabouts: %d pods at once", n), measure(1, "whereabouts v0.9.2", migNetNS+"/"+wbNet, "", m.wbAllocations, false, m.clearWhereabouts)},
		{"Install Spiderpool v1.2.2 from its own chart", m.installSpiderpool},
		{"A pool of 250 addresses and a macvlan network", func() error {
			out, err := m.showManifest(m.a, "apply", m.migManifests(podStartRange))
			if err := m.check(err == nil, "pool and network created", out); err != nil {
				return err
			}
			return m.nadNames(`"spiderpool"`)
		}},
		{fmt.Sprintf("Spiderpool: %d pods at once", n), spiderpool(1)},
		{"Uninstall Spiderpool (helm uninstall --no-hooks)", m.uninstallSpiderpool},
		{"Install underlink", underlinkNADs},
		{fmt.Sprintf("underlink: %d pods at once", n), underlink(1)},
	}
	for round := 2; round <= rounds; round++ {
		steps = append(steps,
			step{fmt.Sprintf("Round %d: uninstall underlink, keeping its CRDs and pools", round), m.uninstallUnderlink},
			step{fmt.Sprintf("Round %d, floor: %d pods at once", round, n), floor(round)},
			step{fmt.Sprintf("Round %d: install Spiderpool again", round), func() error {
				if err := m.installSpiderpool(); err != nil {
					return err
				}
				return m.nadNames(`"spiderpool"`)
			}},
			step{fmt.Sprintf("Round %d, Spiderpool: %d pods at once", round, n), spiderpool(round)},
			step{fmt.Sprintf("Round %d: uninstall Spiderpool", round), m.uninstallSpiderpool},
			step{fmt.Sprintf("Round %d: install underlink again", round), underlinkNADs},
			step{fmt.Sprintf("Round %d, underlink: %d pods at once", round, n), underlink(round)},
		)
	}
	return out, r.run(steps)
}

// floorNet is the floor's network: macvlan with host-local IPAM, the least an underlay chain does.
const floorNet = "floor-macvlan"

// floorStore is where the floor's host-local keeps its addresses, a directory both of cluster-a's nodes
// share: only this bed can do that (its nodes share the machine's /tmp), and it makes host-local's
// file lock give each address once across both nodes, so the floor's pods are checked as the others'.
// held counts the addresses in it.
func (m *migration) floorStore() (dir string, held func() (int, error)) {
	// A node's CNIConfDir is <node dir>/etc-cni/net.d; the node's directory goes with the bed.
	dir = filepath.Join(filepath.Dir(filepath.Dir(m.a.Nodes[0].CNIConfDir)), "floor-host-local")
	return dir, func() (int, error) {
		entries, err := os.ReadDir(filepath.Join(dir, floorNet))
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		n := 0
		for _, e := range entries {
			if _, err := netip.ParseAddr(e.Name()); err == nil {
				n++
			}
		}
		return n, err
	}
}

// floorNAD is the floor's network: macvlan on the underlay with host-local IPAM over ipRange, keeping its
// addresses in dataDir.
func floorNAD(ipRange, dataDir string) []byte {
	first, last, _ := strings.Cut(ipRange, "-")
	return macvlanNAD(floorNet, fmt.Sprintf(`{"type":"host-local","dataDir":"%s","ranges":[[{"subnet":"172.110.0.0/16",
    "rangeStart":"%s","rangeEnd":"%s","gateway":"172.110.0.1"}]]}`, dataDir, first, last))
}

// sandboxFailures counts the FailedCreatePodSandBox Events (with their repeats) of pods, and quotes the
// first one's message.
func (m *migration) sandboxFailures(c TargetCluster, pods []podInfo) (int, string) {
	out, err := m.kubectlQuiet(c, nil, "get", "events", "-n", appNamespace, "--field-selector", "reason=FailedCreatePodSandBox", "-o", "json")
	if err != nil {
		return 0, " (Events not read: " + err.Error() + ")"
	}
	var list struct {
		Items []struct {
			Count          int    `json:"count"`
			Message        string `json:"message"`
			InvolvedObject struct {
				Name string `json:"name"`
			} `json:"involvedObject"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return 0, " (Events not read: " + err.Error() + ")"
	}
	names := map[string]bool{}
	for _, p := range pods {
		names[p.Name] = true
	}
	n, first := 0, ""
	causes := map[string]int{}
	for _, e := range list.Items {
		if !names[e.InvolvedObject.Name] {
			continue
		}
		k := max(e.Count, 1)
		n += k
		causes[failureCause(e.Message)] += k
		if first == "" {
			first = ", the first: " + e.Message
		}
	}
	if len(causes) == 0 {
		return n, first
	}
	var by []string
	for cause, k := range causes {
		by = append(by, fmt.Sprintf("%q %d", cause, k))
	}
	slices.Sort(by)
	return n, "; by cause: " + strings.Join(by, ", ") + first
}

// failureCause is what a FailedCreatePodSandBox message says went wrong, without what names the pod or
// the sandbox: the innermost plugin's error ("failed (add): ") after Multus' pod reference ("[ns/name/uid]: "),
// up to its detail (": "), e.g. "error waiting for pod".
func failureCause(msg string) string {
	msg = strings.TrimPrefix(msg, "Failed to create pod sandbox: ")
	if i := strings.LastIndex(msg, "failed (add): "); i >= 0 {
		msg = msg[i+len("failed (add): "):]
		if i := strings.LastIndex(msg, "]: "); i >= 0 {
			msg = msg[i+len("]: "):]
		}
		msg, _, _ = strings.Cut(msg, ": ")
	}
	if len(msg) > 100 {
		msg = msg[:100] + "…"
	}
	return msg
}

// emptied deletes the Deployment, waits until its pods are gone, and then until allocated, the
// system's store, holds nothing: which must happen when mustFree (the check fails after 10 minutes),
// and is waited for one minute otherwise. It returns how many addresses the store still holds.
func (m *migration) emptied(system string, allocated func() (int, error), mustFree bool) (int, error) {
	c := m.a
	if out, err := m.kubectlQuiet(c, nil, "delete", "deployment", migApp, "-n", appNamespace, "--wait=true"); err != nil {
		return 0, m.check(false, "Deployment deleted", out)
	}
	err := poll.Wait(m.ctx, 10*time.Minute, 2*time.Second, "the pods gone", func() (bool, string, error) {
		pods, _ := m.kubectlQuiet(c, nil, "get", "pods", "-n", appNamespace, "-l", "app="+migApp, "-o", "name")
		return pods == "", fmt.Sprintf("%d pods left", len(strings.Fields(pods))), nil
	})
	if err != nil {
		return 0, m.check(false, "every pod of "+system+" deleted", err.Error())
	}
	held := 0
	timeout := time.Minute
	if mustFree {
		timeout = 10 * time.Minute
	}
	err = poll.Wait(m.ctx, timeout, 2*time.Second, system+"'s store empty", func() (bool, string, error) {
		var err error
		if held, err = allocated(); err != nil {
			return false, err.Error(), nil
		}
		return held == 0, fmt.Sprintf("%d addresses allocated", held), nil
	})
	if mustFree {
		detail := ""
		if err != nil {
			detail = err.Error()
		}
		return held, m.check(err == nil, "every pod deleted and "+system+"'s store empty", detail)
	}
	return held, m.check(true, fmt.Sprintf("every pod deleted; %s's store holds %d addresses a minute later", system, held),
		"its DEL does not free an address whose ADD failed; its reconciler (not run here) frees them")
}

// WritePodStarts prints the figures as a table, each time also as a ratio to the floor's and to
// Spiderpool's of the same round; with more than one round, each system's medians over the rounds; and
// the first round's CPU by program.
func WritePodStarts(w io.Writer, starts []PodStart) {
	of := func(round int, system string) time.Duration {
		for _, s := range starts {
			if s.Round == round && s.System == system {
				return s.Took
			}
		}
		return 0
	}
	ratio := func(s PodStart, to string) (float64, bool) {
		d := of(s.Round, to)
		if d <= 0 {
			return 0, false
		}
		return s.Took.Seconds() / d.Seconds(), true
	}
	show := func(v float64, ok bool) string {
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%.2f×", v)
	}
	fmt.Fprintf(w, "\npod start at scale: one Deployment's pods created at once on cluster-a's 2 real nodes, until all Running and ready\n")
	fmt.Fprintf(w, "%-6s %-20s %6s %12s %8s %10s %14s %18s %20s\n", "round", "system", "pods", "time", "pods/s", "÷ floor", "÷ Spiderpool", "sandbox failures", "left after delete")
	rounds := 0
	var systems []string
	for _, s := range starts {
		rounds = max(rounds, s.Round)
		if !slices.Contains(systems, s.System) {
			systems = append(systems, s.System)
		}
		fmt.Fprintf(w, "%-6d %-20s %6d %12s %8.2f %10s %14s %18d %20d\n", s.Round, s.System, s.Pods, s.Took.Round(100*time.Millisecond),
			float64(s.Pods)/s.Took.Seconds(), show(ratio(s, "floor")), show(ratio(s, spiderpoolSystem)), s.SandboxFailures, s.Left)
	}
	if rounds > 1 {
		fmt.Fprintf(w, "\nmedians over the rounds (each ratio taken within its round)\n")
		fmt.Fprintf(w, "%-20s %7s %12s %10s %14s %22s %18s\n", "system", "rounds", "time", "÷ floor", "÷ Spiderpool", "÷ Spiderpool, range", "sandbox failures")
		for _, system := range systems {
			var took, toFloor, toSpider, failures []float64
			for _, s := range starts {
				if s.System != system {
					continue
				}
				took = append(took, s.Took.Seconds())
				failures = append(failures, float64(s.SandboxFailures))
				if v, ok := ratio(s, "floor"); ok {
					toFloor = append(toFloor, v)
				}
				if v, ok := ratio(s, spiderpoolSystem); ok {
					toSpider = append(toSpider, v)
				}
			}
			span := "-"
			if len(toSpider) > 0 {
				span = fmt.Sprintf("%.2f–%.2f×", slices.Min(toSpider), slices.Max(toSpider))
			}
			fmt.Fprintf(w, "%-20s %7d %12s %10s %14s %22s %18.0f\n", system, len(took), time.Duration(median(took)*float64(time.Second)).Round(100*time.Millisecond),
				show(median(toFloor), len(toFloor) > 0), show(median(toSpider), len(toSpider) > 0), span, median(failures))
		}
	}
	var first []PodStart
	for _, s := range starts {
		if s.Round <= 1 {
			first = append(first, s)
		}
	}
	writeCPU(w, first, 14)
}

// spiderpoolSystem is Spiderpool's name in PodStart.System.
const spiderpoolSystem = "Spiderpool v1.2.2"

// median is the middle of v (the mean of the two middle values of an even count); 0 if v is empty.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Sorted(slices.Values(v))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// ownPrograms are the daemons of the systems compared (and of Multus), listed whatever their share.
var ownPrograms = []string{"underlink-", "spiderpool-", "whereabouts", "multus"}

// writeCPU prints, side by side, the CPU seconds each program used in each system's run: the programs
// among the top of any run and the systems' own, then the rest and the total.
func writeCPU(w io.Writer, starts []PodStart, top int) {
	if len(starts) == 0 {
		return
	}
	var names []string
	seen := map[string]bool{}
	for _, s := range starts {
		for i, u := range s.CPU {
			own := slices.ContainsFunc(ownPrograms, func(p string) bool { return strings.HasPrefix(u.Name, p) })
			if (i < top || own) && !seen[u.Name] {
				seen[u.Name] = true
				names = append(names, u.Name)
			}
		}
	}
	fmt.Fprintf(w, "\nCPU seconds by program, from the Deployment's create until all pods ran\n%-44s", "program")
	for _, s := range starts {
		fmt.Fprintf(w, " %20s", s.System)
	}
	fmt.Fprintln(w)
	row := func(name string, sec func(PodStart) float64) {
		fmt.Fprintf(w, "%-44s", name)
		for _, s := range starts {
			fmt.Fprintf(w, " %20.1f", sec(s))
		}
		fmt.Fprintln(w)
	}
	used := func(s PodStart, name string) float64 {
		for _, u := range s.CPU {
			if u.Name == name {
				return float64(u.Ticks) / proccpu.TicksPerSecond
			}
		}
		return 0
	}
	for _, n := range names {
		row(n, func(s PodStart) float64 { return used(s, n) })
	}
	row("the rest", func(s PodStart) float64 {
		rest := proccpu.Total(s.CPU)
		for _, n := range names {
			rest -= used(s, n)
		}
		return rest
	})
	row("all", func(s PodStart) float64 { return proccpu.Total(s.CPU) })
	row("cores busy (all ÷ the run's time)", func(s PodStart) float64 { return proccpu.Total(s.CPU) / s.Took.Seconds() })
}

// watchStarted waits until the pods of selector in the app namespace are n Running, ready pods with IPs,
// following them with one watch (`kubectl get -w`), and returns them sorted by name, as the watch saw them.
// waitLabeled's polls start a kubectl, which lists every pod, twice a second: in a pod-start run that was
// 13 s of the 150 s of CPU the machine spent, more than any system's own daemons, on the cores the pods
// start on. A watch that ends early (the apiserver closes watches after a while) is started again, and
// its first events list the pods anew.
func (r *runner) watchStarted(c TargetCluster, selector string, n int, timeout time.Duration) ([]podInfo, error) {
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	defer cancel()
	var last string
	for {
		pods, why, err := r.watchOnce(ctx, c, selector, n)
		if pods != nil {
			return pods, nil
		}
		if why != "" {
			last = why
		}
		if err != nil {
			last += " (" + err.Error() + ")"
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("want %d Running pods of %s within %s: %s", n, selector, timeout, last)
		case <-time.After(pollInterval):
		}
	}
}

// watchOnce runs one watch of the pods of selector until n of them are started, the watch ends or ctx is
// done. It returns the started pods, sorted by name, or nil and what the pods not started were doing at
// its last event.
func (r *runner) watchOnce(ctx context.Context, c TargetCluster, selector string, n int) ([]podInfo, string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.t.Kubectl, "--kubeconfig", c.Kubeconfig, "get", "pods", "-n", appNamespace,
		"-l", selector, "--watch", "--output-watch-events", "-o", "json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	// Wait only after the kill: a watch that found its pods started runs on.
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	dec := json.NewDecoder(stdout)
	pods := newPodsStarted()
	for {
		var ev struct {
			Type   string  `json:"type"`
			Object podJSON `json:"object"`
		}
		if err := dec.Decode(&ev); err != nil {
			if !errors.Is(err, io.EOF) {
				return nil, pods.notStarted(), err
			}
			// kubectl ended the watch; its error, if any, is on stderr once it has exited.
			_ = cmd.Wait()
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				return nil, pods.notStarted(), errors.New(msg)
			}
			return nil, pods.notStarted(), nil
		}
		pods.event(ev.Type, ev.Object)
		if pods.all(n) {
			return pods.startedPods(), "", nil
		}
	}
}

// podsStarted folds a watch's events of pods: which are started (podJSON.started), and what the others
// are doing.
type podsStarted struct {
	started map[string]podInfo
	doing   map[string]string
}

func newPodsStarted() *podsStarted {
	return &podsStarted{started: map[string]podInfo{}, doing: map[string]string{}}
}

// event takes one watch event (ADDED, MODIFIED or DELETED) of pod.
func (p *podsStarted) event(eventType string, pod podJSON) {
	name := pod.Metadata.Name
	delete(p.started, name)
	delete(p.doing, name)
	if eventType == "DELETED" {
		return
	}
	if info, ok, why := pod.started(); ok {
		p.started[name] = info
	} else {
		p.doing[name] = why
	}
}

// all says whether n pods are started and no other is doing anything.
func (p *podsStarted) all(n int) bool { return len(p.started) == n && len(p.doing) == 0 }

// startedPods is the started pods, sorted by name.
func (p *podsStarted) startedPods() []podInfo {
	return slices.SortedFunc(maps.Values(p.started), func(a, b podInfo) int { return strings.Compare(a.Name, b.Name) })
}

// notStarted is what the pods not started are doing, sorted by name.
func (p *podsStarted) notStarted() string {
	s := slices.Collect(maps.Values(p.doing))
	slices.Sort(s)
	return strings.Join(s, "; ")
}
