package pools

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/underlink/underlink/api/scheme"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// countingReader counts the whole-pool reads the view makes of the apiserver.
type countingReader struct {
	client.Reader
	gets int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*spv2.SpiderIPPool); ok {
		c.gets++
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

func newWorld(t *testing.T, objs ...client.Object) (client.Client, *countingReader, *View) {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(objs...).WithStatusSubresource(&spv2.SpiderIPPool{}).Build()
	live := &countingReader{Reader: c}
	return c, live, New(c, live)
}

func pool(name string) *spv2.SpiderIPPool {
	return &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1}, Spec: spv2.IPPoolSpec{Subnet: "172.110.1.0/24"}}
}

func TestListReadsAPoolOnceWhileItsSpecStands(t *testing.T) {
	ctx := context.Background()
	c, live, v := newWorld(t, pool("b"), pool("a"))
	got, err := v.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("List = %v, want a, b", names(got))
	}
	if live.gets != 2 {
		t.Fatalf("first List read %d pools, want 2", live.gets)
	}
	// A status write (another agent's allocation) changes the resourceVersion, not the generation.
	var a spv2.SpiderIPPool
	if err := c.Get(ctx, client.ObjectKey{Name: "a"}, &a); err != nil {
		t.Fatal(err)
	}
	allocated := `{"172.110.1.5":{"interface":"eth0","pod":"ns/p","podUid":"u"}}`
	a.Status.AllocatedIPs = &allocated
	if err := c.Status().Update(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if _, err := v.List(ctx); err != nil {
		t.Fatal(err)
	}
	if live.gets != 2 {
		t.Errorf("List after a status write read %d pools in all, want still 2: choice needs the spec only", live.gets)
	}
	// A spec change bumps the generation: the pool is read again.
	if err := c.Get(ctx, client.ObjectKey{Name: "b"}, &a); err != nil {
		t.Fatal(err)
	}
	a.Spec.Subnet = "172.110.2.0/24"
	a.Generation = 2
	if err := c.Update(ctx, &a); err != nil {
		t.Fatal(err)
	}
	got, err = v.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if live.gets != 3 || got[1].Spec.Subnet != "172.110.2.0/24" {
		t.Errorf("after a spec change: %d reads, b's subnet %s; want 3 reads and 172.110.2.0/24", live.gets, got[1].Spec.Subnet)
	}
}

func TestLatestReadsOnlyWhenSomeoneElseWrote(t *testing.T) {
	ctx := context.Background()
	c, live, v := newWorld(t, pool("a"))
	first, err := v.Latest(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Latest(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if live.gets != 1 {
		t.Fatalf("Latest twice with no write between: %d reads, want 1", live.gets)
	}
	// This agent's own write: the view is told, and serves it without a read.
	mine := first.DeepCopy()
	one := int64(1)
	mine.Status.AllocatedIPCount = &one
	if err := c.Status().Update(ctx, mine); err != nil {
		t.Fatal(err)
	}
	v.Observe(mine)
	got, err := v.Latest(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if live.gets != 1 || got.ResourceVersion != mine.ResourceVersion {
		t.Errorf("after its own write: %d reads, version %s; want 1 read and version %s", live.gets, got.ResourceVersion, mine.ResourceVersion)
	}
	// Another agent's write: the metadata shows a newer version, so the pool is read.
	theirs := mine.DeepCopy()
	two := int64(2)
	theirs.Status.AllocatedIPCount = &two
	if err := c.Status().Update(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	got, err = v.Latest(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if live.gets != 2 || *got.Status.AllocatedIPCount != 2 {
		t.Errorf("after another's write: %d reads, count %d; want 2 reads and count 2", live.gets, *got.Status.AllocatedIPCount)
	}
}

func TestObserveKeepsTheNewerVersion(t *testing.T) {
	v := New(nil, nil)
	newer, older := pool("a"), pool("a")
	newer.ResourceVersion, older.ResourceVersion = "20", "10"
	v.Observe(newer)
	v.Observe(older)
	if held := v.Held(); len(held) != 1 || held[0].ResourceVersion != "20" {
		t.Errorf("Held = %v, want version 20 only", held)
	}
}

func TestADeletedPoolIsForgotten(t *testing.T) {
	ctx := context.Background()
	c, _, v := newWorld(t, pool("a"))
	if _, err := v.Latest(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, pool("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Latest(ctx, "a"); !apierrors.IsNotFound(err) {
		t.Errorf("Latest of a deleted pool: %v, want NotFound", err)
	}
	if held := v.Held(); len(held) != 0 {
		t.Errorf("Held after deletion = %v, want none", names(held))
	}
	if got, err := v.List(ctx); err != nil || len(got) != 0 {
		t.Errorf("List after deletion = %v, %v; want none", names(got), err)
	}
}

func TestARecreatedPoolIsReadAgain(t *testing.T) {
	ctx := context.Background()
	c, live, v := newWorld(t, pool("a"))
	if _, err := v.List(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, pool("a")); err != nil {
		t.Fatal(err)
	}
	again := pool("a")
	again.UID = "second"
	again.Spec.Subnet = "172.110.9.0/24"
	if err := c.Create(ctx, again); err != nil {
		t.Fatal(err)
	}
	got, err := v.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if live.gets != 2 || len(got) != 1 || got[0].Spec.Subnet != "172.110.9.0/24" {
		t.Errorf("after re-creation: %d reads, %v; want 2 reads and the new subnet", live.gets, names(got))
	}
}

func TestNewerComparesRevisionsAndDistrustsOthers(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{{"11", "9", true}, {"9", "11", false}, {"9", "9", false}, {"x", "9", true}, {"9", "x", true}} {
		if got := Newer(c.a, c.b); got != c.want {
			t.Errorf("Newer(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func names(ps []*spv2.SpiderIPPool) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name + "@" + p.ResourceVersion
	}
	return out
}
