package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Marks printed before each check, as subctl diagnose does.
var marks = map[Status]string{Pass: "✓", Warn: "!", Fail: "✗"}

// WriteText prints the checklist:
//
//	Local cluster: cluster-a (...); remote clusters: cluster-b
//	 ✓ pool-ips-in-subnet: spec.ips and spec.excludeIPs are well-formed and inside spec.subnet
//	 ✗ hijack-covers-remote-cidrs: hijackCIDR covers every remote cluster_cidr and service_cidr (design rule 3)
//	     SpiderMultusConfig/kube-system/macvlan-conf spec.coordinator.hijackCIDR: missing 172.112.0.0/16 ...
//	       fix: add 172.112.0.0/16 to spec.coordinator.hijackCIDR
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	local := r.LocalCluster
	if local == "" {
		local = "unknown"
	}
	remotes := "none"
	if len(r.Remotes) > 0 {
		remotes = strings.Join(r.Remotes, ", ")
	}
	fmt.Fprintf(&b, "Local cluster: %s (%s); remote clusters: %s\n", local, r.LocalReason, remotes)
	failed, warned := 0, 0
	for _, c := range r.Checks {
		fmt.Fprintf(&b, " %s %s: %s\n", marks[c.Status], c.ID, c.What)
		for _, f := range c.Findings {
			where := f.Subject
			if f.Field != "" {
				where += " " + f.Field
			}
			sev := "error"
			if f.Severity != "Deny" {
				sev = "warning"
			}
			fmt.Fprintf(&b, "     %s: %s: %s\n", sev, strings.TrimSpace(where), f.Why)
			if f.Fix != "" {
				fmt.Fprintf(&b, "       fix: %s\n", f.Fix)
			}
		}
		switch c.Status {
		case Fail:
			failed++
		case Warn:
			warned++
		}
	}
	fmt.Fprintf(&b, "\n%d checks: %d failed, %d with warnings, %d passed\n", len(r.Checks), failed, warned, len(r.Checks)-failed-warned)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
