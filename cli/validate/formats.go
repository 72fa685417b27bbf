package validate

import (
	"encoding/json"
	"io"

	"github.com/underlink/underlink/cli/live"
	"github.com/underlink/underlink/cli/output"
	"github.com/underlink/underlink/pkg/rules"
)

// Schema names the JSON form of the report; a change that is not additive gets a new name.
const Schema = "underlink.io/validate/v1"

// JSONReport is `underlink validate -o json` (documented in cli/README.md, "validate -o json").
type JSONReport struct {
	Schema string `json:"schema"`
	// Mode is "set" or "in-order".
	Mode         string    `json:"mode"`
	LocalCluster JSONLocal `json:"localCluster"`
	// RemoteClusters are the other clusters' IDs.
	RemoteClusters []string `json:"remoteClusters"`
	// DefaultNetwork is the network checked to resolve, and where it was configured.
	DefaultNetwork *live.DefaultNetwork `json:"defaultNetwork,omitempty"`
	// Server is the live cluster read with --kubeconfig.
	Server string `json:"server,omitempty"`
	// Objects are the objects that get lines: those a rule judges, and any with a finding.
	Objects []JSONObject `json:"objects"`
	// Order are the ORDER lines.
	Order   []JSONOrder `json:"order"`
	Summary JSONSummary `json:"summary"`
}

// JSONLocal is the local cluster: its ID (absent when unknown), how it was found (LocalChoice) and why.
type JSONLocal struct {
	ID     string `json:"id,omitempty"`
	By     string `json:"by,omitempty"`
	Reason string `json:"reason"`
}

// JSONObject is one judged object.
type JSONObject struct {
	// Object is "Kind/namespace/name"; for the default network "default network <name>".
	Object string `json:"object"`
	Kind   string `json:"kind,omitempty"`
	// Source is "file#document"; File, Document and Line its parts (absent for a setting).
	Source   string        `json:"source"`
	File     string        `json:"file,omitempty"`
	Document int           `json:"document,omitempty"`
	Line     int           `json:"line,omitempty"`
	Verdict  rules.Verdict `json:"verdict"`
	Findings []JSONFinding `json:"findings"`
}

// JSONFinding is one broken rule.
type JSONFinding struct {
	Rule string `json:"rule"`
	// Severity is "deny" or "warn".
	Severity string `json:"severity"`
	Field    string `json:"field,omitempty"`
	// Line is the line of the field in the file (of the object when it has no field).
	Line    int    `json:"line,omitempty"`
	Value   any    `json:"value,omitempty"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
	// Cluster and ConflictsWith are the cluster and the object the value conflicts with.
	Cluster       string `json:"cluster,omitempty"`
	ConflictsWith string `json:"conflictsWith,omitempty"`
	// Text is the finding as the text output prints it after the object.
	Text string `json:"text"`
}

// JSONOrder is one ORDER line.
type JSONOrder struct {
	Object string      `json:"object"`
	Source string      `json:"source"`
	Rules  []string    `json:"rules"`
	Later  []JSONPlace `json:"later"`
	Text   string      `json:"text"`
}

// JSONPlace is an object and its source.
type JSONPlace struct {
	Object string `json:"object"`
	Source string `json:"source"`
}

// JSONSummary counts the objects.
type JSONSummary struct {
	// Objects counts every manifest object.
	Objects int `json:"objects"`
	Denied  int `json:"denied"`
	Warned  int `json:"warned"`
	Allowed int `json:"allowed"`
	// Context counts by kind the context objects without findings; Skipped the objects no rule reads.
	Context map[string]int `json:"context"`
	Skipped map[string]int `json:"skipped"`
	// Alignment is "checked" or "unchecked" (no clusters, or the local cluster unknown).
	Alignment string `json:"alignment"`
}

// JSON is the report in its JSON form.
func (r Report) JSON() JSONReport {
	out := JSONReport{Schema: Schema, Mode: "set", RemoteClusters: append([]string{}, r.Remotes...), Server: r.Server,
		LocalCluster: JSONLocal{ID: r.Local, By: string(r.LocalBy), Reason: r.LocalReason}, Objects: []JSONObject{}, Order: []JSONOrder{}}
	if r.InOrder {
		out.Mode = "in-order"
	}
	if r.DefaultNetwork.Name != "" {
		out.DefaultNetwork = &r.DefaultNetwork
	}
	for _, res := range r.Results {
		if !res.Listed() {
			continue
		}
		o := JSONObject{Object: res.Ref, Kind: res.obj.Kind, Source: res.Source, File: res.obj.File, Document: res.obj.Document,
			Line: res.obj.Line, Verdict: res.Verdict, Findings: []JSONFinding{}}
		for _, v := range res.Violations {
			sev := "warn"
			if v.Severity == rules.Deny {
				sev = "deny"
			}
			o.Findings = append(o.Findings, JSONFinding{Rule: v.Rule, Severity: sev, Field: FieldOf(v), Line: res.Line(v), Value: v.Value,
				Message: v.Message, Fix: v.Fix, Cluster: v.Cluster, ConflictsWith: v.Object, Text: v.String()})
		}
		out.Objects = append(out.Objects, o)
	}
	for _, ow := range r.Order {
		jo := JSONOrder{Object: ow.Ref, Source: ow.Source, Rules: ow.Rules, Later: []JSONPlace{}, Text: ow.Line()}
		for _, p := range ow.Later {
			jo.Later = append(jo.Later, JSONPlace{Object: p.Ref, Source: p.Source})
		}
		out.Order = append(out.Order, jo)
	}
	out.Summary = JSONSummary{Objects: len(r.objectResults()), Context: r.ContextKinds(), Skipped: r.Skipped(), Alignment: "checked"}
	out.Summary.Denied, out.Summary.Warned, out.Summary.Allowed = r.Counts()
	if r.Unaligned() {
		out.Summary.Alignment = "unchecked"
	}
	return out
}

// WriteJSON prints the report as one JSON object.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.JSON())
}

// Findings are the report's findings for JUnit and SARIF: each violation, and each ORDER line as a
// warning of the rules it names.
func (r Report) Findings() []output.Finding {
	var out []output.Finding
	for _, res := range r.Results {
		out = append(out, r.caseOf(res).Findings...)
	}
	for _, o := range r.Order {
		out = append(out, output.Finding{Rule: RuleApplyOrder, Level: output.Warning, Object: o.Ref, Message: o.Line(), File: fileOf(o.Source),
			Line: r.lineOfSource(o.Source)})
	}
	return out
}

// Cases are the judged objects as JUnit test cases, one per object, grouped by file.
func (r Report) Cases() []output.Case {
	var out []output.Case
	for _, res := range r.Results {
		if res.Listed() {
			out = append(out, r.caseOf(res))
		}
	}
	return out
}

func (r Report) caseOf(res Result) output.Case {
	c := output.Case{Name: res.Ref, Class: res.Source}
	if res.obj.Object != nil {
		c.Class = res.obj.File
	}
	for _, v := range res.Violations {
		lvl := output.Warning
		if v.Severity == rules.Deny {
			lvl = output.Error
		}
		c.Findings = append(c.Findings, output.Finding{Rule: v.Rule, Level: lvl, Object: res.Ref, Field: FieldOf(v),
			Message: res.Ref + ": " + v.String(), File: res.obj.File, Line: res.Line(v)})
	}
	return c
}

// lineOfSource is the line of the object read from source, or 0.
func (r Report) lineOfSource(source string) int {
	for _, res := range r.Results {
		if res.Source == source {
			return res.obj.Line
		}
	}
	return 0
}

// Tool describes validate for SARIF: every rule it can report.
func Tool(version string) output.Tool {
	t := output.Tool{Name: "underlink", Version: version, InformationURI: "https://github.com/underlink/underlink"}
	for _, ri := range rules.Rules {
		t.Rules = append(t.Rules, output.Rule{ID: ri.ID, Description: ri.Description})
	}
	t.Rules = append(t.Rules,
		output.Rule{ID: RuleObjectsUnique, Description: "each object is given once in the set"},
		output.Rule{ID: RuleKindKnown, Description: "objects of the Spiderpool, Submariner and Multus API groups are of a kind and version the group serves"},
		output.Rule{ID: RuleFieldsKnown, Description: "every field is one the object's kind has"},
		output.Rule{ID: RuleApplyOrder, Description: "a first kubectl apply -f in the given order admits every object the set admits"})
	return t
}
