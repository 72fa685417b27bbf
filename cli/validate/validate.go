// Package validate is `underlink validate`: the admission rules of package rules run offline over
// manifests, for CI pipelines before anything reaches a cluster.
//
// Objects are evaluated in the order given, as `kubectl apply -f` would send them: each pool, config, pod
// or workload is checked against the Submariner Cluster, Namespace and NetworkAttachmentDefinition
// objects of all the manifests plus the pools and configs admitted before it; a denied object does not
// enter the world (the apiserver would not store it), and an object seen again is checked as an update of
// the admitted one. That is what the live webhook sees when the same files are applied in the same order,
// so the two print the same verdicts.
package validate

import (
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/pkg/manifest"
)

// Options are the inputs of one run.
type Options struct {
	// LocalCluster is the local cluster's Submariner ID (--local-cluster); empty infers it (see
	// rules.NewWorld).
	LocalCluster string
	// DefaultNetwork is the network the webhook injects into pods that name none; when set it is checked too.
	DefaultNetwork string
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

// Report is the outcome of a run.
type Report struct {
	// Local says which cluster is local and how it was chosen.
	Local string
	// Results are one per object, in input order.
	Results []Result
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

// Write prints the report's lines.
func (r Report) Write(w io.Writer) error {
	for _, res := range r.Results {
		for _, l := range res.Lines() {
			if _, err := fmt.Fprintln(w, l); err != nil {
				return err
			}
		}
	}
	return nil
}

// key identifies an admitted object across versions.
type key struct{ kind, namespace, name string }

// Evaluate runs the rules over objects in order (see the package comment).
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
	rep := Report{Local: all.LocalReason}
	if all.Local != nil {
		in.LocalCluster = rules.ClusterID(all.Local)
	}
	in.Pools, in.MultusConfigs = nil, nil

	var poolOrder, configOrder []key
	pools := map[key]*spiderv2beta1.SpiderIPPool{}
	configs := map[key]*spiderv2beta1.SpiderMultusConfig{}
	world := func() *rules.World {
		cur := in
		for _, k := range poolOrder {
			cur.Pools = append(cur.Pools, *pools[k])
		}
		for _, k := range configOrder {
			cur.MultusConfigs = append(cur.MultusConfigs, *configs[k])
		}
		return rules.NewWorld(cur)
	}
	clusterVs := rules.CheckClusters(all)

	for _, obj := range objs {
		res := Result{Ref: obj.Ref(), Source: obj.Source}
		for _, wn := range obj.Warnings {
			res.Notes = append(res.Notes, "WARN "+wn)
		}
		k := key{obj.Kind, obj.Object.GetNamespace(), obj.Object.GetName()}
		switch x := obj.Object.(type) {
		case *submarinerv1.Cluster:
			res.Notes = append(res.Notes, clusterNote(all, x))
			for _, v := range clusterVs {
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
			var old runtime.Object
			if p, ok := pools[k]; ok {
				old = p
			} else if c, ok := configs[k]; ok {
				old = c
			}
			vs, handled := rules.Check(world(), obj.Object, old)
			res.Checked = handled
			res.Violations = vs
			if !handled {
				res.Notes = append(res.Notes, "no underlink rule applies to this kind")
				break
			}
			if rules.Denied(vs) {
				break
			}
			switch x := obj.Object.(type) {
			case *spiderv2beta1.SpiderIPPool:
				if _, seen := pools[k]; !seen {
					poolOrder = append(poolOrder, k)
				}
				pools[k] = x
			case *spiderv2beta1.SpiderMultusConfig:
				if _, seen := configs[k]; !seen {
					configOrder = append(configOrder, k)
				}
				configs[k] = x
			}
		}
		res.Verdict = rules.VerdictOf(res.Violations)
		if res.Verdict == rules.VerdictAllow && len(res.Notes) > 0 && strings.HasPrefix(res.Notes[0], "WARN ") {
			res.Verdict = rules.VerdictWarn
		}
		rep.Results = append(rep.Results, res)
	}
	if o.DefaultNetwork != "" {
		w := world()
		vs := rules.CheckDefaultNetwork(w)
		rep.Results = append(rep.Results, Result{Ref: "default network " + o.DefaultNetwork, Checked: true, Verdict: rules.VerdictOf(vs), Violations: vs,
			Notes: []string{"resolves"}})
	}
	return rep
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
// else 0.
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
	fmt.Fprintf(stderr, "underlink validate: %d objects; %s\n", len(objs), rep.Local)
	if err := rep.Write(stdout); err != nil {
		fmt.Fprintf(stderr, "underlink validate: %v\n", err)
		return 2
	}
	if rep.Denied() {
		return 1
	}
	return 0
}
