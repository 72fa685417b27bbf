package rules

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

// Drift: the controller re-evaluates alignment when a cluster joins, changes or leaves.
func TestAlignmentFollowsClustersJoiningAndLeaving(t *testing.T) {
	pools := []spiderv2beta1.SpiderIPPool{fixedPool()}
	smc := seedConfig()
	at := func(clusters ...submarinerv1.Cluster) AlignmentStatus {
		return Alignment(NewWorld(Input{Clusters: clusters, LocalCluster: "cluster-a", Pools: pools}), &smc)
	}
	st := at(clusterA, clusterB)
	if st.Status != metav1.ConditionTrue || st.Reason != ReasonAligned || !strings.Contains(st.Message, "local cluster-a, 1 remote") {
		t.Errorf("seed: %+v", st)
	}
	st = at(clusterA, clusterB, clusterC)
	if st.Status != metav1.ConditionFalse || st.Reason != "HijackCoversRemoteCidrs" ||
		!strings.Contains(st.Message, "missing 172.112.0.0/16 (pod CIDR of cluster cluster-c)") || !strings.Contains(st.Message, "missing 10.253.0.0/18") {
		t.Errorf("cluster-c joined: %+v", st)
	}
	if st = at(clusterA, clusterB); st.Status != metav1.ConditionTrue {
		t.Errorf("cluster-c left: %+v", st)
	}
	// A joining cluster whose pod CIDR holds the config's pool breaks rule 2 for the pool.
	smc.Spec.CoordinatorConfig.HijackCIDR = append(smc.Spec.CoordinatorConfig.HijackCIDR, "10.253.0.0/18", "172.110.1.0/24")
	st = at(clusterA, clusterB, cluster("cluster-d", "172.110.1.0/24", "10.253.0.0/18"))
	if st.Status != metav1.ConditionFalse || !strings.Contains(st.Message, "SpiderIPPool/cluster-a spec.subnet") {
		t.Errorf("cluster-d overlapping the pool: %+v", st)
	}
	smc = seedConfig()
	if st = at(); st.Status != metav1.ConditionUnknown || st.Reason != ReasonClustersUnknown || !strings.Contains(st.Message, "no Submariner Cluster objects found") {
		t.Errorf("no clusters: %+v", st)
	}
	custom := seedConfig()
	custom.Spec.CniType = ptr("custom")
	if st := Alignment(NewWorld(Input{}), &custom); st.Status != metav1.ConditionTrue || st.Reason != ReasonNotUnderlay {
		t.Errorf("custom config: %+v", st)
	}
	// Rules that do not depend on the clusters do not drive the condition.
	bad := seedConfig()
	bad.Spec.MacvlanConfig.Master = nil
	if st := Alignment(NewWorld(Input{Clusters: []submarinerv1.Cluster{clusterA, clusterB}, LocalCluster: "cluster-a", Pools: pools}), &bad); st.Status != metav1.ConditionTrue {
		t.Errorf("a spec error is not an alignment error: %+v", st)
	}
}

func TestAuditListsEveryRule(t *testing.T) {
	w := NewWorld(Input{
		Clusters: []submarinerv1.Cluster{clusterA, clusterB}, LocalCluster: "cluster-a",
		Pools:          []spiderv2beta1.SpiderIPPool{seedPool()},
		MultusConfigs:  []spiderv2beta1.SpiderMultusConfig{config("kube-system", "macvlan-conf", []string{"cluster-a"}, "172.111.0.0/16")},
		DefaultNetwork: "kube-system/macvlan-conf",
	})
	res := Audit(w)
	if len(res) != len(Rules) {
		t.Fatalf("%d results for %d rules", len(res), len(Rules))
	}
	verdicts := map[string]Verdict{}
	for i, r := range res {
		if r.Rule.ID != Rules[i].ID {
			t.Errorf("result %d is %s, want %s", i, r.Rule.ID, Rules[i].ID)
		}
		verdicts[r.Rule.ID] = r.Verdict()
	}
	want := map[string]Verdict{
		RulePoolGatewayInSubnet: VerdictDeny, RuleHijackCoversRemotes: VerdictDeny,
		RuleClustersKnown: VerdictAllow, RuleDefaultNetworkExists: VerdictAllow, RulePoolInLocalClusterCIDR: VerdictAllow, RuleConfigPoolsExist: VerdictAllow,
	}
	for id, v := range want {
		if verdicts[id] != v {
			t.Errorf("%s: %s, want %s", id, verdicts[id], v)
		}
	}
	// "alignment unchecked" appears once, not once per object.
	n := 0
	for _, v := range AuditViolations(NewWorld(Input{Pools: []spiderv2beta1.SpiderIPPool{fixedPool()}, MultusConfigs: []spiderv2beta1.SpiderMultusConfig{seedConfig()}})) {
		if v.Rule == RuleClustersKnown {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d 'alignment unchecked' warnings, want 1", n)
	}
	if got := GroupByRule([]Violation{{Rule: "made-up", Severity: Warn}}); len(got) != len(Rules)+1 || got[len(Rules)].Rule.ID != "made-up" {
		t.Errorf("an unknown rule's violation is lost: %v", got[len(got)-1])
	}
}

func TestRulesAreUniqueAndDescribed(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules {
		if seen[r.ID] || r.Description == "" || r.Applies == "" {
			t.Errorf("rule %+v: duplicate or undescribed", r)
		}
		seen[r.ID] = true
	}
	if RuleReason("hijack-covers-remote-cidrs") != "HijackCoversRemoteCidrs" || RuleReason("--a--b") != "AB" {
		t.Error("RuleReason")
	}
}

func TestViolationsBecomeFieldErrorsAndWarnings(t *testing.T) {
	vs := []Violation{
		{Rule: RulePoolGatewayInSubnet, Field: field.NewPath("spec", "gateway"), Value: "172.110.0.1", Severity: Deny, Message: "outside", Fix: "move it"},
		{Rule: RuleHijackCoversRemotes, Field: field.NewPath("spec", "coordinator", "hijackCIDR"), Value: []string{"172.111.0.0/16"}, Severity: Deny, Message: "missing 10.243.0.0/18", Fix: "add it"},
		{Rule: RuleClustersKnown, Severity: Warn, Message: "no Submariner Cluster objects found, alignment unchecked", Fix: "join"},
		{Rule: RuleConfigPoolsExist, Field: field.NewPath("spec"), Type: field.ErrorTypeNotFound, Value: "p", Severity: Warn, Message: "m"},
	}
	list := ToErrorList(vs)
	if len(list) != 2 || list[0].Error() != `spec.gateway: Invalid value: "172.110.0.1": outside; move it` ||
		list[1].Error() != `spec.coordinator.hijackCIDR: Invalid value: ["172.111.0.0/16"]: missing 10.243.0.0/18; add it` {
		t.Errorf("error list: %v", list)
	}
	ws := Warnings(vs)
	if len(ws) != 2 || ws[0] != "no Submariner Cluster objects found, alignment unchecked; join" || ws[1] != `spec: Not found: "p": m` {
		t.Errorf("warnings: %q", ws)
	}
	if !Denied(vs) || Denied(vs[2:]) || VerdictOf(vs) != VerdictDeny || VerdictOf(vs[2:]) != VerdictWarn || VerdictOf(nil) != VerdictAllow {
		t.Error("verdicts")
	}
}

func TestNearest(t *testing.T) {
	cands := []string{"kube-system/macvlan-conf", "kube-system/ipvlan-conf", "default/plain-nad"}
	for in, want := range map[string]string{
		"kube-system/macvlan-confg": "kube-system/macvlan-conf",
		"kube-system/Macvlan-Conf":  "kube-system/macvlan-conf",
		"kube-system/macvlan-conf":  "", // itself is no suggestion
		"default/macvlan-conf":      "", // 11 edits away
		"x":                         "",
		"kube-system/ipvlan-con":    "kube-system/ipvlan-conf",
	} {
		if got := nearest(in, cands); got != want {
			t.Errorf("nearest(%q) = %q, want %q", in, got, want)
		}
	}
	if d := editDistance("kitten", "sitting"); d != 3 {
		t.Errorf("editDistance = %d", d)
	}
}

// Two overlapping pools that both got in (created at the same instant, so neither admission saw the
// other) are reported by the audit, which is what `underlink doctor` prints.
func TestAuditReportsPoolsThatGotInTogether(t *testing.T) {
	w := seedWorld([]spiderv2beta1.SpiderIPPool{
		pool("first", "172.110.10.0/24", "172.110.10.254", []string{"172.110.10.1-172.110.10.100"}),
		pool("second", "172.110.10.0/24", "172.110.10.254", []string{"172.110.10.50-172.110.10.150"}),
	})
	var got []string
	for _, v := range AuditViolations(w) {
		if v.Rule == RulePoolNoOverlap {
			got = append(got, v.Subject+": "+v.String())
		}
	}
	if len(got) != 2 || !strings.Contains(strings.Join(got, "\n"), "shares 172.110.10.50-172.110.10.100 with SpiderIPPool/first") {
		t.Errorf("audit of two overlapping pools, want each named against the other:\n%s", strings.Join(got, "\n"))
	}
}
