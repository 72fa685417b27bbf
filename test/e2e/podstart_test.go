package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/underlink/underlink/test/proccpu"
)

func TestWritePodStarts(t *testing.T) {
	starts := []PodStart{
		{System: "Spiderpool v1.2.2", Pods: 200, Took: 100 * time.Second, SandboxFailures: 3,
			CPU: []proccpu.Use{{Name: "kube-apiserver", Ticks: 5000}, {Name: "etcd", Ticks: 1000}, {Name: "sleep", Ticks: 10}}},
		{System: "underlink", Pods: 200, Took: 80 * time.Second,
			CPU: []proccpu.Use{{Name: "kube-apiserver", Ticks: 4000}, {Name: "underlink-agent", Ticks: 2000}, {Name: "etcd", Ticks: 500}}},
	}
	var b strings.Builder
	WritePodStarts(&b, starts)
	rows := map[string][]string{}
	for _, l := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	for name, want := range map[string][]string{
		"underlink":       {"underlink", "200", "1m20s", "2.50", "0.80×", "0", "0"},
		"kube-apiserver":  {"kube-apiserver", "50.0", "40.0"},
		"underlink-agent": {"underlink-agent", "0.0", "20.0"},
		"all":             {"all", "60.1", "65.0"},
	} {
		got := rows[name]
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %s = %q, want %q\n%s", name, got, want, b.String())
		}
	}
	// top is 1: sleep is in the rest, and underlink-agent, one of the systems' own, is listed.
	var top2 strings.Builder
	writeCPU(&top2, starts, 1)
	if strings.Contains(top2.String(), "sleep") || strings.Contains(top2.String(), "etcd") || !strings.Contains(top2.String(), "underlink-agent") || !strings.Contains(top2.String(), "the rest") {
		t.Errorf("writeCPU with top 1:\n%s", top2.String())
	}
}
