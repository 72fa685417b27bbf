package controller

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/api/scheme"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/webhook/snapshot"
)

func ptr[T any](v T) *T { return &v }

func cluster(id, pods, services string) *submarinerv1.Cluster {
	return &submarinerv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: "submariner-operator", Name: id},
		Spec: submarinerv1.ClusterSpec{ClusterID: id, ClusterCIDR: []string{pods}, ServiceCIDR: []string{services}}}
}

func seed() (*spv2.SpiderIPPool, *spv2.SpiderMultusConfig) {
	pool := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "cluster-a"},
		Spec: spv2.IPPoolSpec{Subnet: "172.110.1.0/24", IPs: []string{"172.110.1.1-172.110.1.200"}, Gateway: ptr("172.110.1.254")}}
	smc := &spv2.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "macvlan-conf", UID: "smc-1", Generation: 1},
		Spec: spv2.MultusCNIConfigSpec{CniType: ptr("macvlan"),
			MacvlanConfig:     &spv2.SpiderMacvlanCniConfig{Master: []string{"ens224"}, SpiderpoolConfigPools: &spv2.SpiderpoolPools{IPv4IPPool: []string{"cluster-a"}}},
			CoordinatorConfig: &spv2.CoordinatorSpec{HijackCIDR: []string{"10.243.0.0/18", "172.111.0.0/16"}}}}
	return pool, smc
}

type harness struct {
	c   client.Client
	rec *events.FakeRecorder
	r   *Reconciler
}

func newHarness(objs ...client.Object) *harness {
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(objs...).WithStatusSubresource(&spv2.SpiderMultusConfig{}).Build()
	rec := events.NewFakeRecorder(10)
	return &harness{c: c, rec: rec, r: &Reconciler{Client: c, Recorder: rec, Snapshot: snapshot.Options{LocalCluster: "cluster-a"}}}
}

func (h *harness) reconcile(t *testing.T) *spv2.SpiderMultusConfig {
	t.Helper()
	key := client.ObjectKey{Namespace: "kube-system", Name: "macvlan-conf"}
	if _, err := h.r.Reconcile(context.Background(), reconcile.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	smc := &spv2.SpiderMultusConfig{}
	if err := h.c.Get(context.Background(), key, smc); err != nil {
		t.Fatal(err)
	}
	return smc
}

func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func condition(t *testing.T, smc *spv2.SpiderMultusConfig, typ string) metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(smc.Status.Conditions, typ)
	if c == nil {
		t.Fatalf("no %s condition in %+v", typ, smc.Status.Conditions)
	}
	return *c
}

// The seed's config gets its NAD and Aligned=True; cluster-c joining flips Aligned with one Event, and
// its leaving flips it back with another; a reconcile that changes nothing records nothing.
func TestReconcileAlignmentFlipsWithEvents(t *testing.T) {
	pool, smc := seed()
	h := newHarness(cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18"), cluster("cluster-b", "172.111.0.0/16", "10.243.0.0/18"), pool, smc)
	got := h.reconcile(t)
	if c := condition(t, got, ConditionAligned); c.Status != metav1.ConditionTrue || c.Reason != rules.ReasonAligned {
		t.Fatalf("Aligned = %+v", c)
	}
	if c := condition(t, got, ConditionReady); c.Status != metav1.ConditionTrue || c.ObservedGeneration != 1 {
		t.Fatalf("Ready = %+v", c)
	}
	nad := &nadv1.NetworkAttachmentDefinition{}
	if err := h.c.Get(context.Background(), client.ObjectKeyFromObject(smc), nad); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(nad, got) || !strings.Contains(nad.Spec.Config, `"serviceCIDR":["10.233.0.0/18"]`) {
		t.Errorf("NAD %+v", nad)
	}
	if ev := h.events(); len(ev) != 0 {
		t.Errorf("first reconcile to Aligned=True recorded %v", ev)
	}

	if err := h.c.Create(context.Background(), cluster("cluster-c", "172.112.0.0/16", "10.253.0.0/18")); err != nil {
		t.Fatal(err)
	}
	got = h.reconcile(t)
	c := condition(t, got, ConditionAligned)
	if c.Status != metav1.ConditionFalse || c.Reason != rules.RuleReason(rules.RuleHijackCoversRemotes) || !strings.Contains(c.Message, "cluster-c") {
		t.Fatalf("after cluster-c joined, Aligned = %+v", c)
	}
	if ev := h.events(); len(ev) != 1 || !strings.Contains(ev[0], "Warning "+EventReasonDrifted) || !strings.Contains(ev[0], "cluster-c") {
		t.Errorf("events %v, want one Warning %s naming cluster-c", ev, EventReasonDrifted)
	}
	h.reconcile(t)
	if ev := h.events(); len(ev) != 0 {
		t.Errorf("a reconcile without change recorded %v", ev)
	}

	if err := h.c.Delete(context.Background(), cluster("cluster-c", "", "")); err != nil {
		t.Fatal(err)
	}
	got = h.reconcile(t)
	if c := condition(t, got, ConditionAligned); c.Status != metav1.ConditionTrue {
		t.Fatalf("after cluster-c left, Aligned = %+v", c)
	}
	if ev := h.events(); len(ev) != 1 || !strings.Contains(ev[0], "Normal "+EventReasonAligned) {
		t.Errorf("events %v, want one Normal %s", ev, EventReasonAligned)
	}
}

func TestReconcileReadyReasons(t *testing.T) {
	pool, smc := seed()
	clusters := []client.Object{cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18"), cluster("cluster-b", "172.111.0.0/16", "10.243.0.0/18"), pool}

	t.Run("unsupported cniType", func(t *testing.T) {
		s := smc.DeepCopy()
		s.Spec.CniType = ptr("ipvlan")
		h := newHarness(append(clusters, s)...)
		if c := condition(t, h.reconcile(t), ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != ReasonUnsupported {
			t.Errorf("Ready = %+v", c)
		}
		err := h.c.Get(context.Background(), client.ObjectKeyFromObject(s), &nadv1.NetworkAttachmentDefinition{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("a NAD was written for an unsupported config: %v", err)
		}
	})
	t.Run("a NAD someone else owns is left alone", func(t *testing.T) {
		theirs := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "macvlan-conf"}, Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: "{}"}}
		h := newHarness(append(clusters, smc.DeepCopy(), theirs)...)
		if c := condition(t, h.reconcile(t), ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != ReasonNADNotOwned {
			t.Errorf("Ready = %+v", c)
		}
		nad := &nadv1.NetworkAttachmentDefinition{}
		if err := h.c.Get(context.Background(), client.ObjectKeyFromObject(theirs), nad); err != nil || nad.Spec.Config != "{}" {
			t.Errorf("their NAD was changed: %+v %v", nad.Spec, err)
		}
	})
	t.Run("a stale NAD is rewritten", func(t *testing.T) {
		s := smc.DeepCopy()
		stale := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "macvlan-conf",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: spv2.GroupVersion.String(), Kind: "SpiderMultusConfig", Name: s.Name, UID: s.UID, Controller: ptr(true)}}},
			Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: "{}"}}
		h := newHarness(append(clusters, s, stale)...)
		h.reconcile(t)
		nad := &nadv1.NetworkAttachmentDefinition{}
		if err := h.c.Get(context.Background(), client.ObjectKeyFromObject(stale), nad); err != nil || !strings.Contains(nad.Spec.Config, `"type":"underlink-macvlan"`) {
			t.Errorf("stale NAD not rewritten: %+v %v", nad.Spec, err)
		}
	})
}
