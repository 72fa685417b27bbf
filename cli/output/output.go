// Package output holds the forms both underlink commands print besides their text: JUnit XML
// (github.com/jstemmer/go-junit-report/v2/junit), which CI systems show as test results, and SARIF
// 2.1.0 (github.com/owenrumney/go-sarif/v3), which code scanning shows inline in the files. Each
// command turns its report into Cases and Findings; this package only writes them.
package output

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jstemmer/go-junit-report/v2/junit"
	"github.com/owenrumney/go-sarif/v3/pkg/report"
	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
)

// Format is an output form, the value of -o.
type Format string

// The forms.
const (
	Text  Format = "text"
	JSON  Format = "json"
	JUnit Format = "junit"
	SARIF Format = "sarif"
)

// Formats are every form, in the order help lists them.
var Formats = []Format{Text, JSON, JUnit, SARIF}

// ParseFormat reads the value of -o.
func ParseFormat(s string) (Format, error) {
	if f := Format(strings.ToLower(s)); slices.Contains(Formats, f) {
		return f, nil
	}
	return "", fmt.Errorf("-o %q: use text, json, junit or sarif", s)
}

// Level is how bad a finding is, in SARIF's words.
type Level string

// Levels: Error denies (validate) or fails a check (doctor); Warning admits with a warning.
const (
	Error   Level = "error"
	Warning Level = "warning"
)

// Finding is one problem: a broken rule on one object.
type Finding struct {
	// Rule is the rule ID (pkg/rules, or a command's own check).
	Rule  string
	Level Level
	// Object is "Kind/namespace/name"; Field the offending field's path, if any.
	Object string
	Field  string
	// Message is the whole finding as the text output prints it (field, value, why, fix).
	Message string
	// File and Line place it in a manifest; empty for what was read from a cluster.
	File string
	Line int
}

// Case is one thing checked, one JUnit test case: an object (validate) or a check (doctor).
type Case struct {
	// Name names it ("SpiderIPPool/cluster-a", or a check ID); Class groups it (the file, or "doctor").
	Name  string
	Class string
	// Findings fail the case when one is an Error; warnings go to its output.
	Findings []Finding
}

// Tool describes the command for SARIF's tool.driver.
type Tool struct {
	Name, Version, InformationURI string
	// Rules are every rule ID the command can report, with a one-line description.
	Rules []Rule
}

// Rule is a rule of Tool.
type Rule struct{ ID, Description string }

// WriteJUnit writes one test suite of the cases: an Error finding fails its case, warnings are printed
// in its system-out, so CI systems count denials as failures and still show the warnings.
func WriteJUnit(w io.Writer, suite string, cases []Case) error {
	ts := junit.Testsuite{Name: suite, Time: "0"}
	for _, c := range cases {
		tc := junit.Testcase{Name: c.Name, Classname: c.Class, Time: "0"}
		var errs, warns []string
		for _, f := range c.Findings {
			line := fmt.Sprintf("%s [%s]", f.Message, f.Rule)
			if f.File != "" {
				line = fmt.Sprintf("%s:%d: %s", f.File, f.Line, line)
			}
			if f.Level == Error {
				errs = append(errs, line)
			} else {
				warns = append(warns, line)
			}
		}
		if len(errs) > 0 {
			tc.Failure = &junit.Result{Message: firstLine(errs[0]), Type: "denied", Data: strings.Join(errs, "\n")}
		}
		if len(warns) > 0 {
			tc.SystemOut = &junit.Output{Data: strings.Join(warns, "\n")}
		}
		ts.AddTestcase(tc)
	}
	var all junit.Testsuites
	all.AddSuite(ts)
	return all.WriteXML(w)
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// WriteSARIF writes a SARIF 2.1.0 log of one run. A finding read from a file is placed on its line, its
// path made relative to the working directory (code scanning resolves it against the checkout); one
// read from a cluster has only a logical location, the object.
func WriteSARIF(w io.Writer, tool Tool, findings []Finding) error {
	log := report.NewV210Report()
	run := sarif.NewRun()
	run.Tool = sarif.NewTool()
	run.Tool.Driver = sarif.NewToolComponent().WithName(tool.Name)
	if tool.InformationURI != "" {
		run.Tool.Driver.WithInformationURI(tool.InformationURI)
	}
	if tool.Version != "" {
		run.Tool.Driver.WithVersion(tool.Version)
	}
	for _, r := range tool.Rules {
		run.AddRule(r.ID).WithDescription(r.Description).WithShortDescription(sarif.NewMultiformatMessageString().WithText(r.Description))
	}
	for _, f := range findings {
		if run.GetRuleIndex(f.Rule) < 0 {
			run.AddRule(f.Rule).WithDescription(f.Rule)
		}
		res := run.CreateResultForRule(f.Rule).WithLevel(string(f.Level)).WithMessage(sarif.NewTextMessage(f.Message))
		loc := sarif.NewLocation()
		if f.Object != "" {
			logical := sarif.NewLogicalLocation().WithFullyQualifiedName(f.Object).WithKind("object")
			if f.Field != "" {
				logical.WithFullyQualifiedName(f.Object + " " + f.Field)
			}
			loc.AddLogicalLocation(logical)
		}
		if uri := artifactURI(f.File); uri != "" {
			run.AddDistinctArtifact(uri)
			phys := sarif.NewPhysicalLocation().WithArtifactLocation(sarif.NewSimpleArtifactLocation(uri))
			if f.Line > 0 {
				phys.WithRegion(sarif.NewRegion().WithStartLine(f.Line))
			}
			loc.WithPhysicalLocation(phys)
		}
		res.AddLocation(loc)
	}
	log.AddRun(run)
	return log.PrettyWrite(w)
}

// artifactURI is a file's path as a SARIF artifact URI: relative to the working directory when it lies
// below it, with forward slashes; "" for standard input.
func artifactURI(file string) string {
	if file == "" || file == "<stdin>" {
		return ""
	}
	if filepath.IsAbs(file) {
		if wd, err := filepath.Abs("."); err == nil {
			if rel, err := filepath.Rel(wd, file); err == nil && !strings.HasPrefix(rel, "..") {
				file = rel
			}
		}
	}
	return filepath.ToSlash(filepath.Clean(file))
}
