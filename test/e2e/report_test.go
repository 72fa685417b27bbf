package e2e

import (
	"strings"
	"testing"
)

func TestReportSummary(t *testing.T) {
	r := &Report{Checks: []Check{
		{Name: "pods Running", OK: true, Detail: "2/2"},
		{Name: "ping cluster-a → cluster-b", Detail: "100% packet loss"},
		{Name: "HTTP cluster-a → cluster-b", Skipped: true, Detail: "not run: an earlier step failed"},
	}}
	if r.Passed() {
		t.Error("a report with a failed check passed")
	}
	if got := strings.Join(r.Failed(), ","); got != "ping cluster-a → cluster-b,HTTP cluster-a → cluster-b" {
		t.Errorf("Failed() = %s", got)
	}
	var b strings.Builder
	r.WriteSummary(&b)
	for _, want := range []string{" ✓  pods Running", " ✗  ping cluster-a → cluster-b", " –  HTTP cluster-a → cluster-b", "FAIL: 1 of 3 checks passed"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	if (&Report{}).Passed() {
		t.Error("an empty report passed")
	}
	ok := &Report{Checks: []Check{{Name: "x", OK: true}}}
	if !ok.Passed() {
		t.Error("an all-good report failed")
	}
}
