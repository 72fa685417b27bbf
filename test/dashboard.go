package test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// DashboardFile is the chart's Grafana dashboard.
var DashboardFile = Path("deploy", "helm", "underlink", "files", "dashboards", "underlink.json")

// metricName matches a metric an expression names; histogram and summary series are named by their
// family.
var metricName = regexp.MustCompile(`\bunderlink_[a-z0-9_]+`)

// DashboardMetrics returns the metric families the dashboard's queries name that start with prefix
// (underlink_ipam_ for the agent, underlink_admission_ for the webhook), sorted. Every family must start
// with one of the components' prefixes, so no query escapes both components' checks.
func DashboardMetrics(t testing.TB, prefixes ...string) []string {
	t.Helper()
	names, err := dashboardMetrics()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(n, p) }) {
			out = append(out, n)
		}
	}
	return out
}

// ComponentPrefixes are the metric prefixes of the components that serve metrics: the agent's
// (underlink_ipam_, underlink_underlay_) and the webhook's (underlink_admission_).
var ComponentPrefixes = []string{"underlink_ipam_", "underlink_underlay_", "underlink_admission_"}

func dashboardMetrics() ([]string, error) {
	raw, err := os.ReadFile(DashboardFile)
	if err != nil {
		return nil, err
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", DashboardFile, err)
	}
	seen := map[string]bool{}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			return nil, fmt.Errorf("%s: panel %q has no query", DashboardFile, p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					m = strings.TrimSuffix(m, suffix)
				}
				if !slices.ContainsFunc(ComponentPrefixes, func(p string) bool { return strings.HasPrefix(m, p) }) {
					return nil, fmt.Errorf("%s: panel %q names %s, which no component serves (prefixes %v)", DashboardFile, p.Title, m, ComponentPrefixes)
				}
				seen[m] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	slices.Sort(out)
	return out, nil
}

// MissingMetrics returns the names of want that the Prometheus text exposition does not describe (no
// "# TYPE <name>" line): what a dashboard query would find nothing for.
func MissingMetrics(want []string, exposition string) []string {
	var missing []string
	for _, n := range want {
		if !strings.Contains(exposition, "# TYPE "+n+" ") {
			missing = append(missing, n)
		}
	}
	return missing
}
