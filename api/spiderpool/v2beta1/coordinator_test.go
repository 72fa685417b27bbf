package v2beta1

import (
	"reflect"
	"testing"
)

func ptrTo[T any](v T) *T { return &v }

// TestWithDefaultsCoversEveryField: a config that sets nothing takes every field of the cluster
// defaults (a field added to CoordinatorSpec and forgotten in WithDefaults fails here), and a field
// the config sets is kept.
func TestWithDefaultsCoversEveryField(t *testing.T) {
	def := &CoordinatorSpec{}
	v := reflect.ValueOf(def).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Pointer:
			e := reflect.New(f.Type().Elem())
			switch e.Elem().Kind() {
			case reflect.String:
				e.Elem().SetString("x")
			case reflect.Bool:
				e.Elem().SetBool(true)
			case reflect.Int32, reflect.Int64:
				e.Elem().SetInt(7)
			}
			f.Set(e)
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		default:
			t.Fatalf("field %s of kind %s: teach this test and WithDefaults about it", v.Type().Field(i).Name, f.Kind())
		}
	}
	got := (&CoordinatorSpec{}).WithDefaults(def)
	if !reflect.DeepEqual(got, def) {
		t.Errorf("an empty config with the defaults = %+v, want every default %+v", got, def)
	}
	own := &CoordinatorSpec{Mode: ptrTo("underlay"), HijackCIDR: []string{"10.0.0.0/8"}, TunePodRoutes: ptrTo(false)}
	got = own.WithDefaults(def)
	if *got.Mode != "underlay" || len(got.HijackCIDR) != 1 || got.HijackCIDR[0] != "10.0.0.0/8" || *got.TunePodRoutes || *got.PodMACPrefix != "x" {
		t.Errorf("the config's own fields must win: %+v", got)
	}
	if *own.Mode != "underlay" || own.PodMACPrefix != nil {
		t.Errorf("WithDefaults changed the config: %+v", own)
	}
	if (*CoordinatorSpec)(nil).WithDefaults(nil) != nil || (*CoordinatorSpec)(nil).WithDefaults(def) == nil {
		t.Error("nil handling")
	}
}
