package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/underlink/underlink/test/proccpu"
	"sigs.k8s.io/yaml"
)

func TestWritePodStarts(t *testing.T) {
	starts := []PodStart{
		{Round: 1, System: "floor", Pods: 200, Took: 50 * time.Second, SandboxFailures: 10},
		{Round: 1, System: "Spiderpool v1.2.2", Pods: 200, Took: 100 * time.Second, SandboxFailures: 3,
			CPU: []proccpu.Use{{Name: "kube-apiserver", Ticks: 5000}, {Name: "etcd", Ticks: 1000}, {Name: "sleep", Ticks: 10}}},
		{Round: 1, System: "underlink", Pods: 200, Took: 80 * time.Second,
			CPU: []proccpu.Use{{Name: "kube-apiserver", Ticks: 4000}, {Name: "underlink-agent", Ticks: 2000}, {Name: "etcd", Ticks: 500}}},
		{Round: 2, System: "floor", Pods: 200, Took: 60 * time.Second},
		{Round: 2, System: "Spiderpool v1.2.2", Pods: 200, Took: 90 * time.Second},
		{Round: 2, System: "underlink", Pods: 200, Took: 84 * time.Second, SandboxFailures: 4,
			CPU: []proccpu.Use{{Name: "only-in-round-2", Ticks: 9000}}},
	}
	var b strings.Builder
	WritePodStarts(&b, starts)
	rows := map[string][]string{}
	for _, l := range strings.Split(b.String(), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 1 && f[0] >= "0" && f[0] <= "9":
			rows[f[0]+" "+f[1]] = f
		case len(f) > 0:
			rows[f[0]] = f
		}
	}
	for name, want := range map[string][]string{
		// each round's ratios are to its own floor and Spiderpool
		"1 underlink":  {"1", "underlink", "200", "1m20s", "2.50", "1.60×", "0.80×", "0", "0"},
		"2 underlink":  {"2", "underlink", "200", "1m24s", "2.38", "1.40×", "0.93×", "4", "0"},
		"2 Spiderpool": {"2", "Spiderpool", "v1.2.2", "200", "1m30s", "2.22", "1.50×", "1.00×", "0", "0"},
		// the medians: time, ÷ floor, ÷ Spiderpool, its range, failures
		"underlink": {"underlink", "2", "1m22s", "1.50×", "0.87×", "0.80–0.93×", "2"},
		"floor":     {"floor", "2", "55s", "1.00×", "0.58×", "0.50–0.67×", "5"},
		// the CPU table is the first round's
		"kube-apiserver":  {"kube-apiserver", "0.0", "50.0", "40.0"},
		"underlink-agent": {"underlink-agent", "0.0", "0.0", "20.0"},
		"all":             {"all", "0.0", "60.1", "65.0"},
	} {
		got := rows[name]
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %s = %q, want %q\n%s", name, got, want, b.String())
		}
	}
	if strings.Contains(b.String(), "only-in-round-2") {
		t.Errorf("the CPU table holds a later round's programs:\n%s", b.String())
	}
	// One round: no medians.
	var one strings.Builder
	WritePodStarts(&one, starts[:3])
	if strings.Contains(one.String(), "medians") {
		t.Errorf("one round printed medians:\n%s", one.String())
	}
	// top is 1: sleep is in the rest, and underlink-agent, one of the systems' own, is listed.
	var top2 strings.Builder
	writeCPU(&top2, starts, 1)
	if strings.Contains(top2.String(), "sleep") || strings.Contains(top2.String(), "etcd") || !strings.Contains(top2.String(), "underlink-agent") || !strings.Contains(top2.String(), "the rest") {
		t.Errorf("writeCPU with top 1:\n%s", top2.String())
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestPodsStartedFollowsAWatch(t *testing.T) {
	pod := func(name, phase, ip string, ready bool, deleting bool) podJSON {
		var p podJSON
		p.Metadata.Name, p.Status.Phase, p.Status.PodIP = name, phase, ip
		status := "False"
		if ready {
			status = "True"
		}
		p.Status.Conditions = append(p.Status.Conditions, struct{ Type, Status, Reason, Message string }{Type: "Ready", Status: status, Message: "containers not ready"})
		if deleting {
			ts := "2026-12-07T12:00:00Z"
			p.Metadata.DeletionTimestamp = &ts
		}
		return p
	}
	p := newPodsStarted()
	steps := []struct {
		event   string
		pod     podJSON
		all     bool
		doing   string
		started string // the started pods' names and IPs, in order
	}{
		{"ADDED", pod("a", "Pending", "", false, false), false, "a Pending (Ready: containers not ready)", ""},
		{"ADDED", pod("b", "Running", "172.110.231.2", true, false), false, "a Pending (Ready: containers not ready)", "b 172.110.231.2"},
		{"MODIFIED", pod("a", "Running", "", true, false), false, "a Running", "b 172.110.231.2"},
		{"MODIFIED", pod("a", "Running", "172.110.231.1", true, false), true, "", "a 172.110.231.1, b 172.110.231.2"},
		// a third pod of another ReplicaSet is going away: not all until it is gone
		{"ADDED", pod("c", "Running", "172.110.231.3", true, true), false, "c terminating", "a 172.110.231.1, b 172.110.231.2"},
		{"DELETED", pod("c", "Running", "172.110.231.3", true, true), true, "", "a 172.110.231.1, b 172.110.231.2"},
		// a started pod deleted: one short again
		{"DELETED", pod("b", "Running", "172.110.231.2", true, false), false, "", "a 172.110.231.1"},
	}
	for i, s := range steps {
		p.event(s.event, s.pod)
		if got := p.all(2); got != s.all {
			t.Errorf("step %d (%s %s): all(2) = %v, want %v", i, s.event, s.pod.Metadata.Name, got, s.all)
		}
		if got := p.notStarted(); got != s.doing {
			t.Errorf("step %d (%s %s): notStarted = %q, want %q", i, s.event, s.pod.Metadata.Name, got, s.doing)
		}
		var started []string
		for _, info := range p.startedPods() {
			started = append(started, info.Name+" "+info.IP)
		}
		if got := strings.Join(started, ", "); got != s.started {
			t.Errorf("step %d (%s %s): startedPods = %q, want %q", i, s.event, s.pod.Metadata.Name, got, s.started)
		}
	}
}

func TestFailureCause(t *testing.T) {
	for msg, want := range map[string]string{
		`Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "8d97e5": plugin type="multus" failed (add): Multus: [default/mig-app-8bcfcc8bf-29jl9/9711e305]: error waiting for pod: Get "https://10.233.0.1:443/api/v1/namespaces/default/pods/mig-app-8bcfcc8bf-29jl9?timeout=1m0s": context deadline exceeded`: "error waiting for pod",
		`Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "8d97e5": plugin type="multus" failed (add): Multus: [default/p/u/c]: error adding container to network "mig-macvlan": plugin type="underlink-ipam" failed (add): pool mig-pool has no free address: 250 of 250 allocated`:                           "pool mig-pool has no free address",
		`Failed to create pod sandbox: rpc error: code = DeadlineExceeded desc = context deadline exceeded`: "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
	} {
		if got := failureCause(msg); got != want {
			t.Errorf("failureCause(%.60q…) = %q, want %q", msg, got, want)
		}
	}
}

func TestFloorNADIsMacvlanWithHostLocal(t *testing.T) {
	var nad struct {
		Metadata struct{ Name, Namespace string }
		Spec     struct{ Config string }
	}
	if err := yaml.Unmarshal(floorNAD("172.110.231.1-172.110.231.250", "/tmp/x/floor-host-local"), &nad); err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Type, Master string
		IPAM         struct {
			Type    string
			DataDir string `json:"dataDir"`
			Ranges  [][]struct {
				Subnet     string
				RangeStart string `json:"rangeStart"`
				RangeEnd   string `json:"rangeEnd"`
			}
		}
	}
	if err := json.Unmarshal([]byte(nad.Spec.Config), &conf); err != nil {
		t.Fatalf("config %s: %v", nad.Spec.Config, err)
	}
	r := conf.IPAM.Ranges[0][0]
	if nad.Metadata.Name != floorNet || nad.Metadata.Namespace != migNetNS || conf.Type != "macvlan" || conf.Master != "ens224" ||
		conf.IPAM.Type != "host-local" || conf.IPAM.DataDir != "/tmp/x/floor-host-local" || r.RangeStart != "172.110.231.1" || r.RangeEnd != "172.110.231.250" {
		t.Errorf("floor NAD %+v, config %+v", nad, conf)
	}
}
