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
//
// The local cluster is never guessed: it is Options.LocalCluster (--local-cluster), or, with a live
// cluster (Options.Live, from --kubeconfig), the Cluster whose service CIDR holds the API server's
// service IP, as the webhook finds it. Otherwise the pools and configs get the warning "alignment
// unchecked" instead of verdicts a misplaced pool could turn around, and Report.Unaligned says so.
// With Options.Live the manifests are judged as applied to that cluster: against its Submariner
// Clusters, networks, pools and namespaces, an object already there being updated.
//
// Objects no rule reads (a Service, a ConfigMap) get no line each: the report counts them by kind.
// Objects of an API group underlink reads whose kind or version that group does not serve (a typo such
// as SpiderIPPol) are denied (RuleKindKnown).
package validate

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/cli/live"
	"github.com/underlink/underlink/pkg/manifest"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/webhook/snapshot"
)

// RuleObjectsUnique is the ID of the set's own rule: an object is given once. It is not one of
// rules.Rules, which admission applies to one object at a time.
const RuleObjectsUnique = "objects-unique"

// RuleFieldsKnown is the ID of the decoder's warnings: a field the object's kind does not have (a typo
// such as spec.gatway), which the apiserver would drop.
const RuleFieldsKnown = "fields-known"

// Options are the inputs of one run.
type Options struct {
	// LocalCluster is the local cluster's Submariner ID (--local-cluster). Empty: the live cluster's,
	// found by the API server's service IP, or none (alignment unchecked). One that names no cluster is
	// an error of Evaluate (*rules.UnknownLocalClusterError).
	LocalCluster string
	// DefaultNetwork is the network the webhook injects into pods that name none (--default-network);
	// empty takes the live cluster's configured one. When known it is checked too.
	DefaultNetwork string
	// InOrder evaluates the objects as a `kubectl apply -f` in the given order would (--in-order); false
	// judges them as a set (see the package comment).
	InOrder bool
	// StaticClusters describe clusters without a Cluster object (--static-cluster, the webhook's
	// syntax); a Cluster object of the same ID wins.
	StaticClusters []submarinerv1.Cluster
	// Live is what was read from a cluster (--kubeconfig), or nil offline.
	Live *Live
}

// Result is the verdict on one object.
type Result struct {
	// Ref is "Kind/namespace/name" or "Kind/name".
	Ref string
	// Source is the file and document the object came from ("app.yaml#2"), or where a setting came
	// from ("--default-network").
	Source string
	// Checked is false for kinds no admission rule reads (context objects and others).
	Checked bool
	// Context is set for the objects the rules read as context (Submariner Clusters, Namespaces,
	// NetworkAttachmentDefinitions): they are not judged themselves.
	Context bool
	// Verdict is DENY, WARN or ALLOW.
	Verdict rules.Verdict
	// Violations are the rules the object broke.
	Violations []rules.Violation
	// Notes say what a context object contributes, or why an object is not judged.
	Notes []string

	// obj is the manifest, for the line of each violation; zero for a setting.
	obj manifest.Object
}

// Listed reports whether the object gets lines of its own: a checked object, or one with a finding.
// The others are counted by kind (Report.Skipped, Report.ContextKinds).
func (r Result) Listed() bool { return r.Checked || len(r.Violations) > 0 }

// Object is the manifest the result is about; its Object is nil for a setting (the default network).
func (r Result) Object() manifest.Object { return r.obj }

// Line is the line of the manifest's file where the violation's field is written, or 0.
func (r Result) Line(v rules.Violation) int {
	if r.obj.Object == nil {
		return 0
	}
	return r.obj.LineOf(FieldOf(v))
}

// FieldOf is the path of the field a violation is on, "" when it is on the whole object.
func FieldOf(v rules.Violation) string {
	if v.Field != nil {
		return v.Field.String()
	}
	if p, ok := v.Value.(string); ok && v.Rule == RuleFieldsKnown {
		return p
	}
	return ""
}

// Lines are the output lines of the result: one per violation, or one ALLOW line. Each names the
// result's source: "DENY app.yaml#2: Deployment/default/app: <field error> [rule]".
func (r Result) Lines() []string {
	var out []string
	for _, v := range r.Violations {
		tag := rules.VerdictWarn
		if v.Severity == rules.Deny {
			tag = rules.VerdictDeny
		}
		out = append(out, fmt.Sprintf("%s %s: %s: %s [%s]", tag, r.Source, r.Ref, v.String(), v.Rule))
	}
	if len(out) == 0 {
		msg := "passes every underlink rule"
		if len(r.Notes) > 0 {
			msg = r.Notes[len(r.Notes)-1]
		}
		out = append(out, fmt.Sprintf("%s %s: %s: %s", rules.VerdictAllow, r.Source, r.Ref, msg))
	}
	return out
}

// settle sets the verdict from the violations.
func (r *Result) settle() { r.Verdict = rules.VerdictOf(r.Violations) }

// Report is the outcome of a run.
type Report struct {
	// InOrder is Options.InOrder: the mode the objects were judged in.
	InOrder bool
	// Local is the local cluster's ID, "" when unknown; LocalBy says how it was found, LocalReason says
	// so in words, or why it is unknown.
	Local       string
	LocalBy     rules.LocalChoice
	LocalReason string
	// Remotes are the other clusters' IDs.
	Remotes []string
	// DefaultNetwork is the network checked to resolve and where it was configured, if any.
	DefaultNetwork live.DefaultNetwork
	// Server is the live cluster's address, "" offline.
	Server string
	// Results are one per object, in input order, then one for the default network.
	Results []Result
	// Order are the objects a first `kubectl apply -f` in the given order would deny although the set
	// admits them, in input order; empty with Options.InOrder.
	Order []OrderWarning
}

// Denied reports whether any object was denied.
func (r Report) Denied() bool {
	return slices.ContainsFunc(r.Results, func(res Result) bool { return res.Verdict == rules.VerdictDeny })
}

// Unaligned reports whether a pool or config could not be checked against the Submariner clusters (no
// clusters, or no local cluster): its alignment has no verdict.
func (r Report) Unaligned() bool {
	for _, res := range r.Results {
		if slices.ContainsFunc(res.Violations, func(v rules.Violation) bool { return v.Rule == rules.RuleClustersKnown }) {
			return true
		}
	}
	return false
}

// Counts are the results by verdict, of the objects that get lines (not the default network's).
func (r Report) Counts() (denied, warned, allowed int) {
	for _, res := range r.objectResults() {
		if !res.Listed() {
			continue
		}
		switch res.Verdict {
		case rules.VerdictDeny:
			denied++
		case rules.VerdictWarn:
			warned++
		default:
			allowed++
		}
	}
	return denied, warned, allowed
}

// Skipped counts by kind the objects no rule reads, which get no line.
func (r Report) Skipped() map[string]int {
	return r.countKinds(func(res Result) bool { return !res.Listed() && !res.Context })
}

// ContextKinds counts by kind the context objects (Clusters, Namespaces, NADs) without a finding.
func (r Report) ContextKinds() map[string]int {
	return r.countKinds(func(res Result) bool { return !res.Listed() && res.Context })
}

func (r Report) countKinds(keep func(Result) bool) map[string]int {
	out := map[string]int{}
	for _, res := range r.Results {
		if keep(res) && res.obj.Object != nil {
			out[res.obj.Kind]++
		}
	}
	return out
}

// Write prints the report's lines: a line per finding, an ALLOW line per checked object that passes
// (unless quiet), then the ORDER lines.
func (r Report) Write(w io.Writer, quiet bool) error {
	var lines []string
	for _, res := range r.Results {
		if !res.Listed() || quiet && res.Verdict == rules.VerdictAllow {
			continue
		}
		for _, l := range res.Lines() {
			if !quiet || !strings.HasPrefix(l, string(rules.VerdictAllow)+" ") {
				lines = append(lines, l)
			}
		}
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

// Summary is the run in two lines for people: what was judged and how, what was not listed; which
// cluster is local and why.
func (r Report) Summary() string {
	mode := "judged as a set"
	if r.InOrder {
		mode = "judged in the given order"
	}
	denied, warned, allowed := r.Counts()
	var b strings.Builder
	n := len(r.objectResults())
	fmt.Fprintf(&b, "%d %s %s: %d denied, %d with warnings, %d allowed", n, map[bool]string{true: "object", false: "objects"}[n == 1], mode, denied, warned, allowed)
	if ctx := r.ContextKinds(); len(ctx) > 0 {
		fmt.Fprintf(&b, "; context: %s", kindCounts(ctx))
	}
	if sk := r.Skipped(); len(sk) > 0 {
		fmt.Fprintf(&b, "; not read by any rule, not listed: %s", kindCounts(sk))
	}
	if r.Local != "" {
		b.WriteString("\nlocal cluster: " + strings.TrimPrefix(r.LocalReason, "local cluster "))
		if len(r.Remotes) > 0 {
			fmt.Fprintf(&b, "; remote clusters: %s", strings.Join(r.Remotes, ", "))
		}
	} else {
		b.WriteString("\nlocal cluster: unknown: " + r.LocalReason)
	}
	if r.Server != "" {
		fmt.Fprintf(&b, "; read from %s", r.Server)
	}
	return b.String()
}

// objectResults are the results of manifests, without the default network's.
func (r Report) objectResults() []Result {
	return slices.DeleteFunc(slices.Clone(r.Results), func(res Result) bool { return res.obj.Object == nil })
}

// kindCounts is "2 Cluster, 1 Service", the most numerous first.
func kindCounts(m map[string]int) string {
	kinds := slices.Collect(maps.Keys(m))
	sort.Slice(kinds, func(i, j int) bool {
		if m[kinds[i]] != m[kinds[j]] {
			return m[kinds[i]] > m[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

// Evaluate runs the rules over objects, as a set or in order (see the package comment). Its only error
// is a LocalCluster that names no cluster (*rules.UnknownLocalClusterError).
func Evaluate(objs []manifest.Object, o Options) (Report, error) {
	in := rules.Input{LocalCluster: o.LocalCluster, DefaultNetwork: o.DefaultNetwork, NoLocalInference: true}
	var fromManifests []submarinerv1.Cluster
	base := &store{}
	rep := Report{InOrder: o.InOrder}
	if o.DefaultNetwork != "" {
		rep.DefaultNetwork = live.DefaultNetwork{Name: o.DefaultNetwork, Source: "--default-network"}
	}
	if l := o.Live; l != nil {
		in.APIServerServiceIP = l.APIServerServiceIP
		in.Namespaces = append(in.Namespaces, l.Namespaces...)
		in.NADs = append(in.NADs, l.NADs...)
		for i := range l.Pools {
			base.put(key{"SpiderIPPool", "", l.Pools[i].Name}, &l.Pools[i])
		}
		for i := range l.MultusConfigs {
			base.put(key{"SpiderMultusConfig", l.MultusConfigs[i].Namespace, l.MultusConfigs[i].Name}, &l.MultusConfigs[i])
		}
		for _, o := range l.Workloads {
			if t, ok := rules.PodTemplateOf(o); ok {
				base.put(key{t.Kind, t.Object.Namespace, t.Object.Name}, o)
			}
		}
		if o.DefaultNetwork == "" {
			rep.DefaultNetwork = l.DefaultNetwork
		}
		rep.Server = l.Server
	}
	in.DefaultNetwork = rep.DefaultNetwork.Name
	for i := range objs {
		switch x := objs[i].Object.(type) {
		case *submarinerv1.Cluster:
			fromManifests = append(fromManifests, *x)
		case *corev1.Namespace:
			in.Namespaces = append(in.Namespaces, *x)
		case *nadv1.NetworkAttachmentDefinition:
			in.NADs = append(in.NADs, *x)
		}
	}
	var liveClusters []submarinerv1.Cluster
	if o.Live != nil {
		liveClusters = o.Live.Clusters
	}
	in.Clusters = snapshot.Merge(snapshot.Merge(fromManifests, liveClusters), o.StaticClusters)
	if err := rules.CheckLocalCluster(o.LocalCluster, in.Clusters); err != nil {
		return Report{}, err
	}
	// Choose the local cluster once, so the verdicts do not depend on the order.
	all := rules.NewWorld(in)
	if all.Local != nil {
		in.LocalCluster = rules.ClusterID(all.Local)
		rep.Local = in.LocalCluster
	}
	rep.LocalBy, rep.LocalReason = all.LocalBy, all.LocalReason
	for i := range all.Remotes {
		rep.Remotes = append(rep.Remotes, rules.ClusterID(&all.Remotes[i]))
	}
	e := &evaluation{objs: objs, base: in, live: base, all: all, clusterVs: rules.CheckClusters(all)}

	var final *store
	if o.InOrder {
		rep.Results, _, final = e.inOrder()
	} else {
		rep.Results, final = e.asSet()
		seq, before, _ := e.inOrder()
		rep.Order = e.orderWarnings(rep.Results, seq, before)
	}
	if rep.DefaultNetwork.Name != "" {
		vs := rules.CheckDefaultNetwork(final.world(in))
		rep.Results = append(rep.Results, Result{Ref: "default network " + rep.DefaultNetwork.Name, Source: rep.DefaultNetwork.Source,
			Checked: true, Verdict: rules.VerdictOf(vs), Violations: vs, Notes: []string{"resolves"}})
	}
	return rep, nil
}

// evaluation is one run's input: the objects and the world without pools and configs.
type evaluation struct {
	objs []manifest.Object
	// base holds every Cluster, Namespace and NAD, and the local cluster's ID.
	base rules.Input
	// live holds the pools and configs of the live cluster, which the manifests' replace.
	live *store
	// all is the world of every manifest, which chose the local cluster.
	all       *rules.World
	clusterVs []rules.Violation
}

// inOrder evaluates the objects one after the other, as the apiserver would admit them. It returns the
// results, the pools and configs each object was judged against, and those admitted at the end.
func (e *evaluation) inOrder() ([]Result, []*store, *store) {
	admitted := e.live
	results := make([]Result, len(e.objs))
	before := make([]*store, len(e.objs))
	for i, obj := range e.objs {
		before[i] = admitted
		k := keyOf(obj)
		results[i] = e.judge(obj, admitted.world(e.base), admitted.get(k))
		// An object no rule reads (a SpiderReservedIP) is admitted as it is.
		if stored(obj) && (!results[i].Checked || !rules.Denied(results[i].Violations)) {
			admitted = admitted.with(k, obj.Object) // before[i] keeps what object i saw
		}
	}
	return results, before, admitted
}

// asSet judges every object as a create (an update of the live object, if any) against all the
// others. The others see the last copy of an object given twice; each copy is judged with itself in
// the world, never with another copy.
func (e *evaluation) asSet() ([]Result, *store) {
	set := e.live.with(key{}, nil)
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
		results[i] = e.judge(obj, wi, e.live.get(k))
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
	res := Result{Ref: obj.Ref(), Source: obj.Source, obj: obj}
	for _, wn := range obj.Warnings {
		res.Violations = append(res.Violations, fieldWarning(obj, wn))
	}
	switch x := obj.Object.(type) {
	case *submarinerv1.Cluster:
		res.Context = true
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
		res.Context = true
		res.Notes = append(res.Notes, "context for the pod rules")
	default:
		if v := unknownKind(obj); v != nil {
			res.Checked = true
			res.Violations = append(res.Violations, *v)
			break
		}
		vs, handled := rules.Check(w, obj.Object, old)
		res.Checked = handled
		res.Violations = append(res.Violations, vs...)
		if !handled {
			res.Notes = append(res.Notes, "no underlink rule applies to this kind")
		}
	}
	res.settle()
	return res
}

// fieldWarning is a field the decoder dropped (unknown or duplicate), as a warning: the apiserver drops
// it too, so a typo in a field name changes what is applied.
func fieldWarning(obj manifest.Object, msg string) rules.Violation {
	v := rules.Violation{Rule: RuleFieldsKnown, Subject: obj.Ref(), Severity: rules.Warn, Message: msg,
		Fix: "correct the field's name or remove it; the apiserver drops fields the kind does not have"}
	if _, rest, ok := strings.Cut(msg, `field "`); ok {
		if path, _, ok := strings.Cut(rest, `"`); ok {
			v.Value = path
		}
	}
	return v
}

// key identifies an object across versions.
type key struct{ kind, namespace, name string }

func keyOf(obj manifest.Object) key {
	return key{obj.Kind, obj.Object.GetNamespace(), obj.Object.GetName()}
}

// stored reports whether the object is one a store holds version by version: a pool or a config (which
// the world is built from), or a workload (whose stored version an update ratchets against).
func stored(obj manifest.Object) bool {
	if _, ok := rules.PodTemplateOf(obj.Object); ok {
		return obj.Kind != "Pod"
	}
	switch obj.Object.(type) {
	case *spiderv2beta1.SpiderIPPool, *spiderv2beta1.SpiderMultusConfig, *spiderv2beta1.SpiderReservedIP, *spiderv2beta1.SpiderCoordinator:
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

// with is a copy of the store holding obj as the version of k; the zero key adds nothing.
func (s *store) with(k key, obj runtime.Object) *store {
	c := &store{order: append([]key(nil), s.order...), objs: make(map[key]runtime.Object, len(s.objs)+1)}
	for k, v := range s.objs {
		c.objs[k] = v
	}
	if k != (key{}) {
		c.put(k, obj)
	}
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
		case *spiderv2beta1.SpiderReservedIP:
			base.ReservedIPs = append(base.ReservedIPs, *x)
		case *spiderv2beta1.SpiderCoordinator:
			if x.Name == spiderv2beta1.CoordinatorDefaultName {
				base.CoordinatorDefaults = &x.Spec
			}
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

// Read decodes the manifests of paths ("-" is stdin).
func Read(paths []string, stdin io.Reader) ([]manifest.Object, error) {
	if len(paths) == 0 {
		return nil, errors.New("no manifests; pass -f FILE|DIR|- (repeatable) or paths")
	}
	return manifest.NewDecoder().ReadPaths(paths, stdin)
}
