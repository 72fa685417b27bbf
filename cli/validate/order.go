package validate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/underlink/underlink/pkg/rules"
)

// RuleApplyOrder is the ID of the ORDER lines in JUnit and SARIF: a first `kubectl apply -f` in the
// given order admits every object the set admits.
const RuleApplyOrder = "apply-order"

// Place names an object and where the input holds it ("file.yaml#2").
type Place struct {
	Ref    string
	Source string
}

// OrderWarning is an object the set admits but a first `kubectl apply -f` in the given order would deny,
// because objects it needs come after it: applying those first, or applying twice, clears the denial.
type OrderWarning struct {
	Place
	// Rules are the IDs of the rules the first apply would find broken.
	Rules []string
	// Later are the objects after it whose absence breaks them.
	Later []Place
}

// Line is the ORDER line of the report, e.g. `ORDER app.yaml#1: Deployment/default/app would be denied
// on a first kubectl apply -f in this order because SpiderMultusConfig/kube-system/macvlan-conf
// (smc.yaml#1) comes later; apply smc.yaml first, or re-apply [pod-network-exists]`.
func (o OrderWarning) Line() string {
	var named, files, moves []string
	for _, p := range o.Later {
		named = append(named, fmt.Sprintf("%s (%s)", p.Ref, p.Source))
		f := fileOf(p.Source)
		switch {
		case f == fileOf(o.Source):
			moves = append(moves, fmt.Sprintf("move %s above %s in %s", p.Ref, o.Ref, f))
		case !slices.Contains(files, f):
			files = append(files, f)
		}
	}
	verb := "comes"
	if len(named) > 1 {
		verb = "come"
	}
	var fixes []string
	if len(files) > 0 {
		fixes = append(fixes, "apply "+andList(files)+" first")
	}
	fixes = append(fixes, moves...)
	return fmt.Sprintf("ORDER %s: %s would be denied on a first `kubectl apply -f` in this order because %s %s later; %s, or re-apply [%s]",
		o.Source, o.Ref, andList(named), verb, strings.Join(fixes, ", "), strings.Join(o.Rules, ", "))
}

// fileOf is the file of a source: "dir/app.yaml#2[0]" → "dir/app.yaml".
func fileOf(source string) string {
	if i := strings.LastIndex(source, "#"); i >= 0 {
		return source[:i]
	}
	return source
}

func andList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// orderWarnings compares the set's verdicts with the in-order ones (seq, before: see inOrder) and
// returns an OrderWarning for each object the set admits but the in-order run denies, naming the later
// pools and configs that clear its denial: each one that clears one of its denials when added to what
// came before it, else all of them together when only that clears it. An in-order denial that no later
// object clears (a pool it names was itself denied) is no matter of order and gets no warning.
func (e *evaluation) orderWarnings(set, seq []Result, before []*store) []OrderWarning {
	var out []OrderWarning
	for i, obj := range e.objs {
		if seq[i].Verdict != rules.VerdictDeny || set[i].Verdict == rules.VerdictDeny {
			continue
		}
		k := keyOf(obj)
		old := before[i].get(k)
		denials := denialsOf(seq[i].Violations)
		cleared := func(s *store) []string {
			vs, _ := rules.Check(s.world(e.base), obj.Object, old)
			still := denialsOf(vs)
			var ids []string
			for _, v := range seq[i].Violations {
				if line := v.String(); denials[line] && !still[line] && !slices.Contains(ids, v.Rule) {
					ids = append(ids, v.Rule)
				}
			}
			return ids
		}
		var candidates, later []int
		for j := i + 1; j < len(e.objs); j++ {
			if !stored(e.objs[j]) || keyOf(e.objs[j]) == k {
				continue
			}
			candidates = append(candidates, j)
			if len(cleared(before[i].with(keyOf(e.objs[j]), e.objs[j].Object))) > 0 {
				later = append(later, j)
			}
		}
		if len(later) == 0 {
			later = candidates // only together, if at all
		}
		s := before[i]
		for _, j := range later {
			s = s.with(keyOf(e.objs[j]), e.objs[j].Object)
		}
		ids := cleared(s)
		if len(later) == 0 || len(ids) == 0 {
			continue
		}
		w := OrderWarning{Place: Place{Ref: obj.Ref(), Source: obj.Source}, Rules: ids}
		for _, j := range later {
			w.Later = append(w.Later, Place{Ref: e.objs[j].Ref(), Source: e.objs[j].Source})
		}
		out = append(out, w)
	}
	return out
}

// denialsOf is the set of the denying violations' lines.
func denialsOf(vs []rules.Violation) map[string]bool {
	out := map[string]bool{}
	for _, v := range vs {
		if v.Severity == rules.Deny {
			out[v.String()] = true
		}
	}
	return out
}
