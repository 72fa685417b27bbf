package bed

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/underlink/underlink/test"
)

// CreateNamespace creates a namespace with labels and annotations unless it exists.
func CreateNamespace(t testing.TB, c client.Client, name string, labels, annotations map[string]string) {
	t.Helper()
	if err := EnsureNamespace(context.Background(), c, name, labels, annotations); err != nil {
		t.Fatal(err)
	}
}

// EnsureNamespace is CreateNamespace for a goroutine other than the test's: it returns the error.
func EnsureNamespace(ctx context.Context, c client.Client, name string, labels, annotations map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// SeedObject decodes the first document of a seed manifest (test/testdata/seed), unchanged, as
// unstructured.
func SeedObject(t testing.TB, name string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	test.DecodeSeed(t, name, &u.Object)
	return u
}

// ApplySeed creates the first object of a seed manifest as the user wrote it.
func ApplySeed(t testing.TB, c client.Client, name string) {
	t.Helper()
	if err := c.Create(context.Background(), SeedObject(t, name)); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// ApplyYAML creates the object of a YAML manifest.
func ApplyYAML(t testing.TB, c client.Client, manifest string) {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(context.Background(), u); err != nil {
		t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}
