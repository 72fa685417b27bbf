package e2e

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Check is one line of the summary: something the seed's scenario shows, and whether it held.
type Check struct {
	Name   string
	OK     bool
	Detail string
	// Skipped: not run because an earlier step failed.
	Skipped bool
	Took    time.Duration
}

// Report is every check of a run, in order.
type Report struct {
	Checks []Check
	Took   time.Duration
}

// Passed says whether every check ran and held.
func (r *Report) Passed() bool {
	if len(r.Checks) == 0 {
		return false
	}
	for _, c := range r.Checks {
		if !c.OK || c.Skipped {
			return false
		}
	}
	return true
}

// Failed lists the names of the checks that failed or did not run.
func (r *Report) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK || c.Skipped {
			out = append(out, c.Name)
		}
	}
	return out
}

// FailedWithDetail names each check that failed, with what it saw, and then each check skipped.
func (r *Report) FailedWithDetail() []string {
	var failed, skipped []string
	for _, c := range r.Checks {
		switch {
		case c.Skipped:
			skipped = append(skipped, c.Name+" (skipped)")
		case !c.OK:
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
	return append(failed, skipped...)
}

// WriteSummary prints the summary table: ✓ or ✗ (or – for not run), the check, and what it found.
func (r *Report) WriteSummary(w io.Writer) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "SUMMARY")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	pass := 0
	for _, c := range r.Checks {
		mark := "✗"
		switch {
		case c.Skipped:
			mark = "–"
		case c.OK:
			mark = "✓"
			pass++
		}
		detail := strings.ReplaceAll(strings.TrimSpace(c.Detail), "\n", " ")
		if len(detail) > 110 {
			detail = detail[:107] + "..."
		}
		fmt.Fprintf(tw, " %s\t%s\t%s\n", mark, c.Name, detail)
	}
	tw.Flush()
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "\n%s: %d of %d checks passed in %s\n", verdict, pass, len(r.Checks), r.Took.Round(100*time.Millisecond))
}
