package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/pkg/poolchoice"
)

// attachment is one network of a pod, on the interface Multus gives it, with the annotation naming it.
type attachment struct {
	sel   NetworkSelection
	iface string
	path  *field.Path
	raw   string
}

// checkPodPools judges the pod's pools with the pool choice the scheduler and the IPAM use
// (pkg/poolchoice), for every interface whose network takes its addresses from SpiderIPPools: a pod is
// denied exactly when, whatever the node, no pool can give one of its interfaces an address (a pool
// annotation that does not parse, a named pool that does not exist or is of the other family, an
// interface that ipam.spidernet.io/ippools leaves out, or candidates none of which admits the pod).
// Candidates that only a node, spec.disable or a deletion exclude, and a network whose configuration
// names a pool that does not exist, are warnings: they change without the pod changing. A pod that names pools but attaches no underlay network is judged as if its interfaces
// took those pools, the pools' spec.multusName then finding no network.
func checkPodPools(c *collector, w *World, ns string, meta *metav1.ObjectMeta, annos *field.Path, atts []attachment) {
	_, hasPools := meta.Annotations[spiderv2beta1.AnnoPodIPPools]
	single, hasSingle := meta.Annotations[spiderv2beta1.AnnoPodIPPool]
	warnUnknownKeys(c, annos, meta.Annotations)
	ann, err := poolchoice.ParseAnnotations(meta.Annotations)
	if err != nil {
		var ce *poolchoice.ConfigError
		if errors.As(err, &ce) {
			denyChoice(c, w, annos, ce, nil)
		}
		return
	}
	if hasPools && hasSingle {
		c.warn(RulePodPoolsAllowed, annos.Key(spiderv2beta1.AnnoPodIPPool), single, "ignored: "+spiderv2beta1.AnnoPodIPPools+" takes precedence", "keep one of the two annotations")
	}
	if n := len(ann.Mentioned()); n > MaxListEntries {
		c.add(Violation{Rule: RulePodPoolsAllowed, Field: annos, Type: field.ErrorTypeTooMany, Value: n, Severity: Deny,
			Message: fmt.Sprintf("the pool annotations name %d pools, more than %d", n, MaxListEntries), Fix: "name the few pools the pod needs"})
		return
	}
	nsLabels, nsKnown := w.namespaceLabels(ns)
	base := poolchoice.Subject{Namespace: ns, Pod: meta.Name, PodLabels: meta.Labels, PodAnnotations: meta.Annotations,
		NamespaceLabels: nsLabels, NamespaceUnknown: !nsKnown}
	subjects := poolSubjects(w, ann, base, atts, hasPools || hasSingle)
	pools := w.choicePools()
	warnedNS := false
	for _, sub := range subjects {
		plan, err := ann.Candidates(sub.s, sub.network, pools)
		var ce *poolchoice.ConfigError
		var np *poolchoice.NoPoolError
		switch {
		case errors.As(err, &ce):
			denyChoice(c, w, annos, ce, sub.att)
			continue
		case errors.As(err, &np):
			noPool(c, annos, np, sub.att)
			continue
		}
		annotation := sourceAnnotation(plan.Source)
		p := choiceField(annos, annotation, sub.att)
		if annotation != "" {
			for _, fp := range plan.Families {
				for _, r := range fp.Rejected {
					c.warn(RulePodPoolsAllowed, p, meta.Annotations[annotation],
						fmt.Sprintf("SpiderIPPool %s is passed over for %s: %s", r.Pool, sub.s.Interface, r.Reason),
						fmt.Sprintf("the pod takes its IPv%d address from %s instead; fix or drop the name", fp.Family, strings.Join(fp.Names(), ", ")))
				}
			}
		}
		if !nsKnown && !warnedNS {
			for _, fp := range plan.Families {
				for _, pl := range fp.Pools {
					if pl.ChecksNamespaceLabels() && !warnedNS {
						c.warn(RulePodPoolsAllowed, p, nil, fmt.Sprintf("the labels of namespace %s are unknown, so SpiderIPPool %s's spec.namespaceAffinity is unchecked", ns, pl.Name),
							"include the Namespace object")
						warnedNS = true
					}
				}
			}
		}
	}
}

// sourceAnnotation is the pod annotation a plan's pools come from, or "" when they come from the network
// or the default pools.
func sourceAnnotation(source string) string {
	switch source {
	case poolchoice.SourcePodIPPools:
		return spiderv2beta1.AnnoPodIPPools
	case poolchoice.SourcePodIPPool:
		return spiderv2beta1.AnnoPodIPPool
	}
	return ""
}

// poolSubject is one pod interface whose pools admission judges, with its network's pools.
type poolSubject struct {
	att     *attachment
	network poolchoice.NetworkPools
	s       poolchoice.Subject
}

// poolSubjects are the interfaces whose networks take their addresses from SpiderIPPools. When the pod
// attaches none but names pools, they are the interfaces the annotations name (eth0 for
// ipam.spidernet.io/ippool), each with the network attached there, if any.
func poolSubjects(w *World, ann poolchoice.Annotations, base poolchoice.Subject, atts []attachment, namesPools bool) []poolSubject {
	var subjects []poolSubject
	for i := range atts {
		a := &atts[i]
		n, ok := w.network(a.sel.Namespace, a.sel.Name)
		if !ok || n.Problem != "" || !n.IPAM {
			continue // a missing network is denied by pod-network-exists; without IPAM it takes no pool
		}
		s := base
		s.Interface, s.Network = a.iface, a.sel.String()
		subjects = append(subjects, poolSubject{att: a, s: s, network: poolchoice.NetworkPools{
			Names: poolchoice.Names{IPv4: n.Pools.IPv4, IPv6: n.Pools.IPv6}, IPv4Field: n.Pools.IPv4Field, IPv6Field: n.Pools.IPv6Field}})
	}
	if len(subjects) > 0 || !namesPools {
		return subjects
	}
	ifaces := ann.Interfaces()
	if !ann.HasPools() {
		ifaces = []string{podnet.DefaultInterface}
	}
	for _, iface := range ifaces {
		s := base
		s.Interface = iface
		for _, a := range atts {
			if a.iface == iface {
				s.Network = a.sel.String()
			}
		}
		subjects = append(subjects, poolSubject{s: s})
	}
	return subjects
}

// choiceField is where a pool-choice error points: the pod annotation at fault, or the annotation that
// attaches the network whose configuration is.
func choiceField(annos *field.Path, annotation string, att *attachment) *field.Path {
	switch {
	case annotation != "":
		return annos.Key(annotation)
	case att != nil:
		return att.path
	}
	return annos
}

// denyChoice turns a pool choice the IPAM would refuse into a denial naming the field, or a warning when
// the network's configuration, not the pod, names the missing pool.
func denyChoice(c *collector, w *World, annos *field.Path, ce *poolchoice.ConfigError, att *attachment) {
	v := Violation{Rule: RulePodPoolsAllowed, Field: choiceField(annos, ce.Annotation, att), Value: ce.Value, Severity: Deny, Message: ce.Msg, Fix: ce.Fix}
	switch {
	case ce.Annotation == "" && att != nil:
		// The network's configuration is at fault, not the pod: a warning, since the pool may be created
		// a moment later (kubectl apply -f dir/) and the SpiderMultusConfig's own admission reports it.
		v.Severity, v.Value = Warn, att.raw
		v.Message = fmt.Sprintf("network %s: %s: %s; the pod gets no address until that is fixed", att.sel, ce.Where(), ce.Msg)
		if ce.Value != "" {
			v.Message = fmt.Sprintf("network %s: %s %q: %s; the pod gets no address until that is fixed", att.sel, ce.Where(), ce.Value, ce.Msg)
		}
	case ce.Field != "":
		v.Message = ce.Field + " " + ce.Msg
	}
	if ce.Annotation != "" && strings.Contains(ce.Field, "ipv") && ce.Value != "" {
		v.Message = fmt.Sprintf("%s: SpiderIPPool %s: %s", ce.Field, ce.Value, ce.Msg)
		if ce.Msg == poolchoice.MsgNoSuchPool {
			v.Type, v.Object = field.ErrorTypeNotFound, ObjectRef("SpiderIPPool", "", ce.Value)
			v.Message = fmt.Sprintf("%s: SpiderIPPool %s does not exist", ce.Field, ce.Value)
			if near := nearest(ce.Value, w.poolNames()); near != "" {
				v.Fix = "did you mean " + near + "?"
			}
		}
	}
	for _, x := range c.vs {
		if x.Rule == v.Rule && x.Field.String() == v.Field.String() && x.Message == v.Message {
			return // the same annotation judged for another interface
		}
	}
	c.add(v)
}

// noPool reports an interface whose candidate pools all refuse the pod: a denial, or a warning when
// only states an operator changes (spec.disable, a deletion) refuse it.
func noPool(c *collector, annos *field.Path, np *poolchoice.NoPoolError, att *attachment) {
	p := choiceField(annos, sourceAnnotation(np.Source), att)
	why := make([]string, len(np.Rejections))
	for i, r := range np.Rejections {
		why[i] = "SpiderIPPool " + r.Pool + ": " + r.Reason
	}
	msg := fmt.Sprintf("no IPv%d pool from %s serves this pod on %s: %s", np.Family, np.Source, np.Interface, strings.Join(why, "; "))
	if np.OnlyTransient() {
		c.warn(RulePodPoolsAllowed, p, nil, msg+"; the pod gets no address until one serves again", "enable the pool, or name another")
		return
	}
	c.add(Violation{Rule: RulePodPoolsAllowed, Field: p, Type: field.ErrorTypeForbidden, Severity: Deny, Message: msg,
		Fix: "name a pool that admits the pod's namespace, labels and network, or change one of these pools' selectors"})
}

// warnUnknownKeys warns about keys of the pool annotations that Spiderpool ignores: often a typo such as
// "ipv4s" that would silently fall back to the default pools.
func warnUnknownKeys(c *collector, annos *field.Path, annotations map[string]string) {
	for _, a := range []struct {
		key     string
		into    any
		example string
	}{
		{spiderv2beta1.AnnoPodIPPool, &spiderv2beta1.AnnoPodIPPoolValue{}, `{"ipv4":["<pool>"],"ipv6":["<pool>"]}`},
		{spiderv2beta1.AnnoPodIPPools, &spiderv2beta1.AnnoPodIPPoolsValue{}, `[{"interface":"eth0","ipv4":["<pool>"]}]`},
	} {
		raw, ok := annotations[a.key]
		if !ok || !json.Valid([]byte(raw)) {
			continue // what does not parse is denied, with the parser's message
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(a.into); err != nil {
			c.warn(RulePodPoolsAllowed, annos.Key(a.key), raw, fmt.Sprintf("has keys Spiderpool ignores: %v", err), "write it like "+a.example)
		}
	}
}
