package command

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/underlink/underlink/cli/doctor"
	"github.com/underlink/underlink/cli/validate"
	"github.com/underlink/underlink/test"
)

// The JSON schemas documented in cli/README.md list exactly the fields the Go types encode, so a field
// added, renamed or dropped fails here until the documentation says so.
func TestJSONSchemasAreDocumented(t *testing.T) {
	readme, err := os.ReadFile(test.Path("cli", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		marker string
		typ    reflect.Type
	}{
		{"<!-- json:validate -->", reflect.TypeFor[validate.JSONReport]()},
		{"<!-- json:doctor -->", reflect.TypeFor[doctor.Report]()},
	} {
		documented := documentedFields(t, string(readme), tt.marker)
		encoded := jsonFields(tt.typ, "")
		slices.Sort(documented)
		slices.Sort(encoded)
		if !slices.Equal(documented, encoded) {
			t.Errorf("%s documents\n  %s\nbut %s encodes\n  %s", tt.marker, strings.Join(documented, "\n  "), tt.typ, strings.Join(encoded, "\n  "))
		}
	}
}

// documentedFields are the first words of the lines of the fenced block after marker.
func documentedFields(t *testing.T, readme, marker string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, marker)
	if !ok {
		t.Fatalf("no %s in cli/README.md", marker)
	}
	_, rest, _ = strings.Cut(rest, "```text\n")
	block, _, _ := strings.Cut(rest, "```")
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(block), "\n") {
		out = append(out, strings.Fields(l)[0])
	}
	return out
}

// jsonFields are the leaf paths a type encodes: a.b for nested objects, a[].b inside lists; a list of
// scalars, a map and an any are leaves.
func jsonFields(typ reflect.Type, prefix string) []string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		path := prefix + name
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, jsonFields(ft, path+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, jsonFields(ft.Elem(), path+"[].")...)
		default:
			out = append(out, path)
		}
	}
	return out
}
