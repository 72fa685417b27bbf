//go:build integration

package crds

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/controlplane"
)

// TestSeedManifestsApplyAndReadBack applies the seed's pools and multus configs byte for byte to a real
// apiserver and checks that every field the user wrote reads back unchanged through the typed API.
// Each cluster of the seed gets its own apiserver, as in the user's two data centres (both clusters name
// their config kube-system/macvlan-conf).
func TestSeedManifestsApplyAndReadBack(t *testing.T) {
	for _, c := range []struct{ cluster, serviceCIDR string }{{"cluster-a", "10.233.0.0/18"}, {"cluster-b", "10.243.0.0/18"}} {
		t.Run(c.cluster, func(t *testing.T) {
			env := controlplane.StartEnv(t, controlplane.EnvOptions{ServiceCIDR: c.serviceCIDR})
			applyAndReadBack(t, env, c.cluster)
		})
	}
}

func applyAndReadBack(t *testing.T, env *controlplane.Env, cluster string) {
	ctx := context.Background()
	for _, name := range []string{cluster + "-ippool", cluster + "-multusconfig"} {
		raw, err := test.SeedManifest(name + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := yaml.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: want}
		obj := u.DeepCopy()
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatalf("%s: apply: %v", name, err)
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(schema.FromAPIVersionAndKind(u.GetAPIVersion(), u.GetKind()))
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: u.GetNamespace(), Name: u.GetName()}, got); err != nil {
			t.Fatal(err)
		}
		assertSubset(t, name, "spec", want["spec"], got.Object["spec"])
	}
	var pool spv2.SpiderIPPool
	if err := env.Client.Get(ctx, types.NamespacedName{Name: cluster}, &pool); err != nil {
		t.Fatal(err)
	}
	if pool.Spec.Gateway == nil || len(pool.Spec.IPs) != 1 || pool.Spec.Default == nil || !*pool.Spec.Default {
		t.Errorf("typed read of pool %s lost fields of the seed: %+v", cluster, pool.Spec)
	}
	var smc spv2.SpiderMultusConfig
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "kube-system", Name: "macvlan-conf"}, &smc); err != nil {
		t.Fatal(err)
	}
	if smc.Spec.MacvlanConfig == nil || len(smc.Spec.MacvlanConfig.Master) != 1 || smc.Spec.MacvlanConfig.Master[0] != "ens224" {
		t.Errorf("typed read of macvlan-conf lost spec.macvlan.master: %+v", smc.Spec.MacvlanConfig)
	}
}

// assertSubset checks that every value in want is present and equal in got (the apiserver may add defaults).
func assertSubset(t *testing.T, obj, path string, want, got any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: %s: want an object, got %#v", obj, path, got)
			return
		}
		for k, v := range w {
			assertSubset(t, obj, path+"."+k, v, g[k])
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			t.Errorf("%s: %s: want %#v, got %#v", obj, path, want, got)
			return
		}
		for i := range w {
			assertSubset(t, obj, path, w[i], g[i])
		}
	default:
		if normalize(want) != normalize(got) {
			t.Errorf("%s: %s: want %#v, got %#v", obj, path, want, got)
		}
	}
}

func normalize(v any) any {
	switch n := v.(type) {
	case int:
		return int64(n)
	case float64:
		return int64(n)
	}
	return v
}
