// Package validate is `underlink validate`: the admission rules of package rules run offline over
// manifests, for CI pipelines before anything reaches a cluster.
//
// By default the manifests are judged as a set, which answers a pipeline's question: is this set
// consistent once applied? Each pool, config, pod or workload is checked, as a create, against every
// other object of the input (its Submariner Cluster, Namespace, NetworkAttachmentDefinition,
// SpiderIPPool and SpiderMultusConfig objects) and never against itself, so the order of the files
// changes no verdict. A denied object stays in the world of the others: its denial is reported once, on
// it. An object given twice (same kind, namespace and name) is denied on its later copy when the copies
// differ, as the set then does not say which one is meant (`kubectl apply -f` keeps whichever comes
// last), and warned when they are the same; the others see the last copy.
//
// Where a first `kubectl apply -f` in the given order would deny an object that the set admits, because
// pools or configs it needs come after it, an ORDER line names them and their files. It is found by
// running the in-order evaluation below and comparing.
//
// With Options.InOrder (--in-order) objects are evaluated in the order given, as `kubectl apply -f`
// would send them: each pool, config, pod or workload is checked against the Submariner Cluster,
// Namespace and NetworkAttachmentDefinition objects of all the manifests plus the pools and configs
// admitted before it; a denied object does not enter the world (the apiserver would not store it), and
// an object seen again is checked as an update of the admitted one. That is what the live webhook sees
// when the same files are applied in the same order, so the two print the same verdicts.
package validate

import (
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/pkg/manifest"
	"github.com/underlink/underlink/pkg/rules"
)

// RuleObjectsUnique is the ID of the set's own rule: an object is given once. It is not one of
// rules.Rules, which admission applies to one object at a time.
const RuleObjectsUnique = "objects-unique"

// Options are the inputs of one run.
type Options struct {
	// LocalCluster is the local cluster's Submariner ID (--local-cluster); empty infers it (see
	// rules.NewWorld).
	LocalCluster string
	// DefaultNetwork is the network the webhook injects into pods that name none; when set it is checked too.
	DefaultNetwork string
	// InOrder evaluates the objects as a `kubectl apply -f` in the given order would (--in-order); false
	// judges them as a set (see the package comment).
	InOrder bool
}

// Result is the verdict on one object.
type Result struct {
	// Ref is "Kind/namespace/name" or "Kind/name".
	Ref string
	// Source is the file and document the object came from.
	Source string
	// Checked is false for kinds no admission rule reads (context objects and others).
	Checked bool
	// Verdict is DENY, WARN or ALLOW.
	Verdict rules.Verdict
	// Violations are the rules the object broke.
	Violations []rules.Violation
	// Notes are lines without a rule: fields the decoder dropped, what a context object contributes.
	Notes []string
}

// Lines are the output lines of the result: one per violation, or one ALLOW line.
func (r Result) Lines() []string {
	var out []string
	for _, n := range r.Notes {
		if strings.HasPrefix(n, "WARN ") {
			out = append(out, fmt.Sprintf("WARN %s: %s", r.Ref, strings.TrimPrefix(n, "WARN ")))
		}
	}
	for _, v := range r.Violations {
		tag := rules.VerdictWarn
		if v.Severity == rules.Deny {
			tag = rules.VerdictDeny
		}
		out = append(out, fmt.Sprintf("%s %s: %s [%s]", tag, r.Ref, v.String(), v.Rule))
	}
	if len(out) == 0 {
		msg := "passes every underlink rule"
		for _, n := range r.Notes {
			if !strings.HasPrefix(n, "WARN ") {
				msg = n
			}
		}
		out = append(out, fmt.Sprintf("%s %s: %s", rules.VerdictAllow, r.Ref, msg))
	}
	return out
}

// settle sets the verdict from the violations and the decoder's warnings.
func (r *Result) settle() {
	r.Verdict = rules.VerdictOf(r.Violations)
	if r.Verdict == rules.VerdictAllow && len(r.Notes) > 0 && strings.HasPrefix(r.Notes[0], "WARN ") {
		r.Verdict = rules.VerdictWarn
	}
}

// Report is the outcome of a run.
type Report struct {
	// Local says which cluster is local and how it was chosen.
	Local string
	// Results are one per object, in input order.
	Results []Result
	// Order are the objects a first `kubectl apply -f` in the given order would deny although the set
	// admits them, in input order; empty with Options.InOrder.
	Order []OrderWarning
}

// Denied reports whether any object was denied.
func (r Report) Denied() bool {
	for _, res := range r.Results {
		if res.Verdict == rules.VerdictDeny {
			return true
		}
	}
	return false
}

// Write prints the report's lines: the results, then the ORDER lines.
func (r Report) Write(w io.Writer) error {
	var lines []string
	for _, res := range r.Results {
		lines = append(lines, res.Lines()...)
	}
	for _, o := range r.Order {
		lines = append(lines, o.Line())
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}

// Evaluate runs the rules over objects, as a set or in order (see the package comment).
func Evaluate(objs []manifest.Object, o Options) Report {
	in := rules.Input{LocalCluster: o.LocalCluster, DefaultNetwork: o.DefaultNetwork}
	for i := range objs {
		switch x := objs[i].Object.(type) {
		case *submarinerv1.Cluster:
			in.Clusters = append(in.Clusters, *x)
		case *corev1.Namespace:
			in.Namespaces = append(in.Namespaces, *x)
		case *nadv1.NetworkAttachmentDefinition:
			in.NADs = append(in.NADs, *x)
		case *spiderv2beta1.SpiderIPPool:
			in.Pools = append(in.Pools, *x)
		case *spiderv2beta1.SpiderMultusConfig:
			in.MultusConfigs = append(in.MultusConfigs, *x)
		}
	}
	// Choose the local cluster once, from every manifest, so the verdicts do not depend on the order.
	all := rules.NewWorld(in)
	if all.Local != nil {
		in.LocalCluster = rules.ClusterID(all.Local)
	}
	in.Pools, in.MultusConfigs = nil, nil
	e := &evaluation{objs: objs, base: in, all: all, clusterVs: rules.CheckClusters(all)}

	rep := Report{Local: all.LocalReason}
	var final *store
	if o.InOrder {
		rep.Results, _, final = e.inOrder()
	} else {
		rep.Results, final = e.asSet()
		seq, before, _ := e.inOrder()
		rep.Order = e.orderWarnings(rep.Results, seq, before)
	}
	if o.DefaultNetwork != "" {
		vs := rules.CheckDefaultNetwork(final.world(in))
		rep.Results = append(rep.Results, Result{Ref: "default network " + o.DefaultNetwork, Checked: true, Verdict: rules.VerdictOf(vs), Violations: vs,
			Notes: []string{"resolves"}})
	}
	return rep
}

// evaluation is one run's input: the objects and the world without pools and configs.
type evaluation struct {
	objs []manifest.Object
	// base holds every Cluster, Namespace and NAD, and the local cluster's ID.
	base rules.Input
	// all is the world of every manifest, which chose the local cluster.
	all       *rules.World
	clusterVs []rules.Violation
}

// inOrder evaluates the objects one after the other, as the apiserver would admit them. It returns the
// results, the pools and configs each object was judged against, and those admitted at the end.
func (e *evaluation) inOrder() ([]Result, []*store, *store) {
	admitted := &store{}
	results := make([]Result, len(e.objs))
	before := make([]*store, len(e.objs))
	for i, obj := range e.objs {
		before[i] = admitted
		k := keyOf(obj)
		results[i] = e.judge(obj, admitted.world(e.base), admitted.get(k))
		if results[i].Checked && !rules.Denied(results[i].Violations) && stored(obj) {
			admitted = admitted.with(k, obj.Object) // before[i] keeps what object i saw
		}
	}
	return results, before, admitted
}

// asSet judges every object as a create against all the others. The others see the last copy of an
// object given twice; each copy is judged with itself in the world, never with another copy.
func (e *evaluation) asSet() ([]Result, *store) {
	set := &store{}
	first := map[key]int{}
	for i, obj := range e.objs {
		k := keyOf(obj)
		if _, seen := first[k]; !seen {
			first[k] = i
		}
		if stored(obj) {
			set.put(k, obj.Object)
		}
	}
	w := set.world(e.base)
	results := make([]Result, len(e.objs))
	for i, obj := range e.objs {
		k := keyOf(obj)
		wi := w
		if stored(obj) && set.get(k) != runtime.Object(obj.Object) {
			wi = set.with(k, obj.Object).world(e.base)
		}
		results[i] = e.judge(obj, wi, nil)
		if j := first[k]; j != i {
			results[i].Violations = append(results[i].Violations, duplicate(e.objs[j], obj))
			results[i].settle()
		}
	}
	return results, set
}

// duplicate is the violation of a later copy of an object: a denial when it differs from the first
// copy, else a warning.
func duplicate(first, again manifest.Object) rules.Violation {
	v := rules.Violation{Rule: RuleObjectsUnique, Subject: again.Ref(), Severity: rules.Deny,
		Message: fmt.Sprintf("given more than once, differently (first at %s, again at %s): the set does not say which is meant, and `kubectl apply -f` keeps whichever comes last",
			first.Source, again.Source),
		Fix: "keep one of them"}
	if equality.Semantic.DeepEqual(first.Object, again.Object) {
		v.Severity = rules.Warn
		v.Message = fmt.Sprintf("given more than once, the same each time (first at %s, again at %s)", first.Source, again.Source)
	}
	return v
}

// judge is the verdict on one object against w; old is the stored version on update, else nil.
func (e *evaluation) judge(obj manifest.Object, w *rules.World, old runtime.Object) Result {
	res := Result{Ref: obj.Ref(), Source: obj.Source}
	for _, wn := range obj.Warnings {
		res.Notes = append(res.Notes, "WARN "+wn)
	}
	switch x := obj.Object.(type) {
	case *submarinerv1.Cluster:
		res.Notes = append(res.Notes, clusterNote(e.all, x))
		for _, v := range e.clusterVs {
			if v.Subject == res.Ref && v.Rule != rules.RuleClustersKnown {
				// No admission reads Cluster objects, so their problems warn here; the alignment
				// rules of the pools and configs that depend on them deny.
				v.Severity = rules.Warn
				res.Violations = append(res.Violations, v)
			}
		}
	case *corev1.Namespace, *nadv1.NetworkAttachmentDefinition:
		res.Notes = append(res.Notes, "context for the pod rules")
	default:
		vs, handled := rules.Check(w, obj.Object, old)
		res.Checked = handled
		res.Violations = vs
		if !handled {
			res.Notes = append(res.Notes, "no underlink rule applies to this kind")
		}
	}
	res.settle()
	return res
}

// key identifies an object across versions.
type key struct{ kind, namespace, name string }

func keyOf(obj manifest.Object) key {
	return key{obj.Kind, obj.Object.GetNamespace(), obj.Object.GetName()}
}

// stored reports whether the object is one a world holds version by version: a pool or a config.
func stored(obj manifest.Object) bool {
	switch obj.Object.(type) {
	case *spiderv2beta1.SpiderIPPool, *spiderv2beta1.SpiderMultusConfig:
		return true
	}
	return false
}

// store holds one version of each pool and config, in first-seen order: what a world is built from.
// A store is not changed once its world is built; with returns a changed copy.
type store struct {
	order []key
	objs  map[key]runtime.Object
	built *rules.World
}

func (s *store) get(k key) runtime.Object { return s.objs[k] }

func (s *store) put(k key, obj runtime.Object) {
	if s.objs == nil {
		s.objs = map[key]runtime.Object{}
	}
	if _, seen := s.objs[k]; !seen {
		s.order = append(s.order, k)
	}
	s.objs[k] = obj
}

// with is a copy of the store holding obj as the version of k.
func (s *store) with(k key, obj runtime.Object) *store {
	c := &store{order: append([]key(nil), s.order...), objs: make(map[key]runtime.Object, len(s.objs)+1)}
	for k, v := range s.objs {
		c.objs[k] = v
	}
	c.put(k, obj)
	return c
}

// world is base plus the stored pools and configs; base is the same for every call on one store.
func (s *store) world(base rules.Input) *rules.World {
	if s.built != nil {
		return s.built
	}
	for _, k := range s.order {
		switch x := s.objs[k].(type) {
		case *spiderv2beta1.SpiderIPPool:
			base.Pools = append(base.Pools, *x)
		case *spiderv2beta1.SpiderMultusConfig:
			base.MultusConfigs = append(base.MultusConfigs, *x)
		}
	}
	s.built = rules.NewWorld(base)
	return s.built
}

func clusterNote(w *rules.World, c *submarinerv1.Cluster) string {
	role := "remote cluster"
	if w.Local != nil && rules.ClusterID(w.Local) == rules.ClusterID(c) {
		role = "local cluster"
	} else if w.Local == nil {
		role = "cluster (local unknown)"
	}
	return fmt.Sprintf("%s %s: cluster_cidr %s, service_cidr %s", role, rules.ClusterID(c),
		strings.Join(c.Spec.ClusterCIDR, ","), strings.Join(c.Spec.ServiceCIDR, ","))
}

// Run reads the paths, evaluates them and writes the lines to stdout and the local-cluster note to
// stderr. It returns the process exit code: 1 when an object is denied, 2 when the input cannot be read,
// else 0 (ORDER lines do not change it).
func Run(paths []string, o Options, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "underlink validate: no manifests; pass -f FILE|DIR|- (repeatable)")
		return 2
	}
	objs, err := manifest.NewDecoder().ReadPaths(paths, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "underlink validate: %v\n", err)
		return 2
	}
	rep := Evaluate(objs, o)
	mode := "judged as a set"
	if o.InOrder {
		mode = "in the given order"
	}
	fmt.Fprintf(stderr, "underlink validate: %d objects, %s; %s\n", len(objs), mode, rep.Local)
	if err := rep.Write(stdout); err != nil {
		fmt.Fprintf(stderr, "underlink validate: %v\n", err)
		return 2
	}
	if rep.Denied() {
		return 1
	}
	return 0
}
