//go:build integration

package webhook

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/test/admissioncases"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/webhook/app"
	"github.com/underlink/underlink/webhook/snapshot"
	"github.com/underlink/underlink/webhook/webhooktest"
)

// TestWebhookVerdictsEqualTheSharedCases applies every case of the shared table
// (test/testdata/admission-cases, which `underlink validate` is tested on offline) to a real
// apiserver through the live webhook, object by object in the case's order, and holds each answer to
// the case's expectation: DENY is a denial by underlink, WARN an admission with warnings, ALLOW a clean
// admission; the expected lines must appear in the denial's field errors or in the warnings.
func TestWebhookVerdictsEqualTheSharedCases(t *testing.T) {
	all, err := admissioncases.Load(admissioncases.Dir())
	if err != nil {
		t.Fatal(err)
	}
	env := controlplane.StartEnv(t, controlplane.EnvOptions{ServiceCIDR: "10.233.0.0/18"})
	c, warnings := warningClient(t, env.Config)
	bed.CreateNamespace(t, c, "submariner-operator", nil, nil)
	for _, cs := range all {
		t.Run(cs.Name, func(t *testing.T) {
			if cs.OfflineOnly != "" {
				t.Skip("offline only: " + cs.OfflineOnly)
			}
			var created []client.Object
			// Stored objects exist before the webhook judges anything: they were admitted before the world
			// changed under them (a network deleted, a cluster joined).
			for _, o := range cs.StoredObjects {
				obj := o.Object.DeepCopyObject().(client.Object)
				if obj.GetNamespace() == "" && namespaced(t, env, obj) {
					obj.SetNamespace(metav1.NamespaceDefault)
				}
				if err := env.Client.Create(context.Background(), obj); err != nil {
					t.Fatalf("store %s (%s): %v", o.Ref(), o.Source, err)
				}
				created = append(created, obj)
			}
			opts := app.Options{Snapshot: snapshot.Options{LocalCluster: cs.LocalCluster}, DisableController: true}
			srv := webhooktest.Start(t, env.Config, env.Client, opts)
			defer func() {
				// Stop this case's webhook first, so clean-up is not judged by it.
				if err := srv.Unregister(context.Background(), env.Client); err != nil {
					t.Error(err)
				}
				for i := len(created) - 1; i >= 0; i-- {
					if len(created[i].GetFinalizers()) > 0 {
						_ = env.Client.Patch(context.Background(), created[i], client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
					}
					if err := env.Client.Delete(context.Background(), created[i]); err != nil && !apierrors.IsNotFound(err) {
						t.Errorf("clean up %s: %v", client.ObjectKeyFromObject(created[i]), err)
					}
				}
			}()
			seen := map[string]int{}
			for _, o := range cs.Objects {
				obj := o.Object.DeepCopyObject().(client.Object)
				if obj.GetNamespace() == "" && namespaced(t, env, obj) {
					obj.SetNamespace(metav1.NamespaceDefault)
				}
				warnings.take()
				err := apply(c, obj)
				ws := warnings.take()
				if err == nil && !isNamespace(obj) {
					created = append(created, obj)
				}
				exps := cs.Expected(o.Ref())
				n := seen[o.Ref()]
				seen[o.Ref()]++
				if n >= len(exps) {
					if err != nil {
						t.Fatalf("%s (%s, no expectation): %v", o.Ref(), o.Source, err)
					}
					continue
				}
				verdict, text := rules.VerdictAllow, strings.Join(ws, "\n")
				switch {
				case err != nil && deniedByUnderlink(err):
					verdict, text = rules.VerdictDeny, denialText(err)+text
				case err != nil:
					t.Fatalf("%s (%s): refused by something other than underlink: %v", o.Ref(), o.Source, err)
				case len(ws) > 0:
					verdict = rules.VerdictWarn
				}
				if err := exps[n].Check(verdict, text); err != nil {
					t.Errorf("live webhook, %s: %v", o.Source, err)
				}
			}
		})
	}
}

// apply creates obj, or updates it when it exists (a case may apply an object twice, or update a stored
// one), as kubectl apply does: a create of an existing object would be judged as a create first.
func apply(c client.Client, obj client.Object) error {
	ctx := context.Background()
	current := obj.DeepCopyObject().(client.Object)
	err := c.Get(ctx, client.ObjectKeyFromObject(obj), current)
	if apierrors.IsNotFound(err) {
		return c.Create(ctx, obj.DeepCopyObject().(client.Object))
	}
	if err != nil {
		return err
	}
	update := obj.DeepCopyObject().(client.Object)
	update.SetResourceVersion(current.GetResourceVersion())
	return c.Update(ctx, update)
}

func namespaced(t *testing.T, env *controlplane.Env, obj client.Object) bool {
	ok, err := env.Client.IsObjectNamespaced(obj)
	if err != nil {
		t.Fatalf("%T: %v", obj, err)
	}
	return ok
}

func isNamespace(obj client.Object) bool {
	return obj.GetObjectKind().GroupVersionKind().Kind == "Namespace"
}
