package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/underlink/underlink/cli/output"
	"github.com/underlink/underlink/pkg/rules"
)

// Marks printed before each check, as subctl diagnose does.
var marks = map[Status]string{Pass: "✓", Warn: "!", Fail: "✗"}

// WriteText prints the checklist:
//
//	Local cluster: cluster-a (...); remote clusters: cluster-b
//	Default network: kube-system/macvlan-conf (Deployment/underlink/underlink-webhook:--default-network)
//	 ✓ pool-ips-in-subnet: spec.ips and spec.excludeIPs are well-formed and inside spec.subnet
//	 ✗ hijack-covers-remote-cidrs: hijackCIDR covers every remote cluster_cidr and service_cidr (design rule 3)
//	     SpiderMultusConfig/kube-system/macvlan-conf spec.coordinator.hijackCIDR: missing 172.112.0.0/16 ...
//	       fix: add 172.112.0.0/16 to spec.coordinator.hijackCIDR
//
// Quiet prints only the checks that fail or warn, with their findings.
func (r *Report) WriteText(w io.Writer, quiet bool) error {
	var b strings.Builder
	if quiet {
		for _, c := range r.Checks {
			if c.Status != Pass {
				writeCheck(&b, c)
			}
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	local := r.LocalCluster
	if local == "" {
		local = "unknown"
	}
	remotes := "none"
	if len(r.Remotes) > 0 {
		remotes = strings.Join(r.Remotes, ", ")
	}
	fmt.Fprintf(&b, "Local cluster: %s (%s); remote clusters: %s\n", local, r.LocalReason, remotes)
	if r.DefaultNetwork != nil {
		fmt.Fprintf(&b, "Default network: %s (%s)\n", r.DefaultNetwork.Name, r.DefaultNetwork.Source)
	}
	for _, c := range r.Checks {
		writeCheck(&b, c)
	}
	fmt.Fprintf(&b, "\n%d checks: %d failed, %d with warnings, %d passed\n", r.Summary.Checks, r.Summary.Failed, r.Summary.Warned, r.Summary.Passed)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCheck prints a check's line and its findings, each naming its object and field.
func writeCheck(b *strings.Builder, c Check) {
	fmt.Fprintf(b, " %s %s: %s\n", marks[c.Status], c.ID, c.What)
	for _, f := range c.Findings {
		where := f.Subject
		if f.Field != "" {
			where += " " + f.Field
		}
		sev := "error"
		if f.Severity != rules.Deny {
			sev = "warning"
		}
		fmt.Fprintf(b, "     %s: %s: %s\n", sev, strings.TrimSpace(where), f.Why)
		if f.Fix != "" {
			fmt.Fprintf(b, "       fix: %s\n", f.Fix)
		}
	}
}

// Cases are the checks as JUnit test cases: a failed check fails its case.
func (r *Report) Cases() []output.Case {
	out := make([]output.Case, 0, len(r.Checks))
	for _, c := range r.Checks {
		out = append(out, output.Case{Name: c.ID + ": " + c.What, Class: "underlink doctor", Findings: r.findings(c)})
	}
	return out
}

// Findings are every check's findings, for SARIF: placed on the objects they are about.
func (r *Report) Findings() []output.Finding {
	var out []output.Finding
	for _, c := range r.Checks {
		out = append(out, r.findings(c)...)
	}
	return out
}

func (r *Report) findings(c Check) []output.Finding {
	var out []output.Finding
	for _, f := range c.Findings {
		lvl := output.Warning
		if f.Severity == rules.Deny {
			lvl = output.Error
		}
		msg := strings.TrimSpace(f.Subject+" "+f.Field) + ": " + f.Why
		if f.Fix != "" {
			msg += "; " + f.Fix
		}
		out = append(out, output.Finding{Rule: c.ID, Level: lvl, Object: f.Subject, Field: f.Field, Message: msg})
	}
	return out
}

// Tool describes doctor for SARIF: every check it runs.
func Tool(version string) output.Tool {
	t := output.Tool{Name: "underlink doctor", Version: version, InformationURI: "https://github.com/underlink/underlink"}
	for _, ri := range rules.Rules {
		t.Rules = append(t.Rules, output.Rule{ID: ri.ID, Description: ri.Description})
	}
	t.Rules = append(t.Rules, output.Rule{ID: CheckNADsInSync, Description: whatNADsInSync}, output.Rule{ID: CheckWebhooksRegistered, Description: whatWebhooksRegistered},
		output.Rule{ID: CheckParentsOnNodes, Description: whatParentsOnNodes}, output.Rule{ID: CheckIPConflicts, Description: whatIPConflicts})
	return t
}

// WriteJSON prints the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
