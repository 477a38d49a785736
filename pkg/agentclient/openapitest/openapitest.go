// Package openapitest checks Go wire types against agent/openapi.json, so the
// monitor's view of the agent API cannot drift from the contract. It is used
// only by tests.
//
// Rules, for every schema property and every struct field:
//   - each property has a field with that json name, and each field a property;
//   - types match: integer = int64, number = float64, string = string or
//     time.Time (format date-time), boolean = bool, object = struct,
//     array = slice;
//   - a nullable property is a pointer field; a pointer field is nullable or
//     optional;
//   - a field tagged vigil:"required" is exactly a required property;
//   - a field's vigil min=N and max=N are exactly the property's minimum and
//     maximum (none where it has none); exclusive bounds are not used;
//   - a property with an enum has a field with an enum tag: "-" (deliberately
//     not checked) or the same values.
package openapitest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/wiretag"
)

// Schema is the part of an OpenAPI schema object the checks read.
type Schema struct {
	Ref        string             `json:"$ref"`
	Type       string             `json:"type"`
	Format     string             `json:"format"`
	Nullable   bool               `json:"nullable"`
	Required   []string           `json:"required"`
	Properties map[string]*Schema `json:"properties"`
	Items      *Schema            `json:"items"`
	Enum       []any              `json:"enum"`
	Minimum    *float64           `json:"minimum"`
	Maximum    *float64           `json:"maximum"`
	// Exclusive bounds are refused: the parser's tags are inclusive.
	ExclusiveMinimum any `json:"exclusiveMinimum"`
	ExclusiveMaximum any `json:"exclusiveMaximum"`
}

// Doc is the loaded OpenAPI document.
type Doc struct {
	Components struct {
		Schemas map[string]*Schema `json:"schemas"`
	} `json:"components"`
}

// Load reads agent/openapi.json from the repository root.
func Load(t *testing.T) *Doc {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "..", "agent", "openapi.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the agent's API contract: %v", err)
	}
	var d Doc
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return &d
}

func (d *Doc) resolve(s *Schema) *Schema {
	for s != nil && s.Ref != "" {
		s = d.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	}
	return s
}

// Check compares the schema component name with the Go type t, recursively.
func (d *Doc) Check(t *testing.T, name string, typ reflect.Type) {
	t.Helper()
	s := d.Components.Schemas[name]
	if s == nil {
		t.Fatalf("the contract has no schema %q", name)
	}
	d.check(t, name, s, typ)
}

var timeType = reflect.TypeFor[time.Time]()

func (d *Doc) check(t *testing.T, path string, s *Schema, typ reflect.Type) {
	t.Helper()
	s = d.resolve(s)
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	kindOK := map[string]bool{
		"integer": typ.Kind() == reflect.Int64,
		"number":  typ.Kind() == reflect.Float64,
		"string":  typ.Kind() == reflect.String || (typ == timeType && s.Format == "date-time"),
		"boolean": typ.Kind() == reflect.Bool,
		"object":  typ.Kind() == reflect.Struct && typ != timeType,
		"array":   typ.Kind() == reflect.Slice,
	}
	if !kindOK[s.Type] {
		t.Errorf("%s: the contract says %s (format %q), the Go type is %s", path, s.Type, s.Format, typ)
		return
	}
	switch s.Type {
	case "array":
		d.check(t, path+"[]", s.Items, typ.Elem())
	case "object":
		fields := map[string]reflect.StructField{}
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Anonymous {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			fields[name] = f
		}
		for prop, ps := range s.Properties {
			ps = d.resolve(ps)
			fp := path + "." + prop
			f, ok := fields[prop]
			if !ok {
				t.Errorf("%s: in the contract, missing from Go type %s", fp, typ)
				continue
			}
			rules, err := wiretag.Of(f)
			if err != nil {
				t.Errorf("%s: %v", fp, err)
			}
			required := slices.Contains(s.Required, prop)
			if rules.Required != required {
				t.Errorf("%s: required in the contract = %v, tagged required in Go = %v", fp, required, !required)
			}
			if ps.ExclusiveMinimum != nil || ps.ExclusiveMaximum != nil {
				t.Errorf("%s: the contract has an exclusive bound; use minimum and maximum (the Go tags are inclusive)", fp)
			}
			for _, b := range []struct {
				name          string
				contract, tag *float64
			}{{"minimum", ps.Minimum, rules.Min}, {"maximum", ps.Maximum, rules.Max}} {
				if bound(b.contract) != bound(b.tag) {
					t.Errorf("%s: %s in the contract %s, in the Go tag %s", fp, b.name, bound(b.contract), bound(b.tag))
				}
			}
			ptr := f.Type.Kind() == reflect.Pointer
			if ps.Nullable && !ptr {
				t.Errorf("%s: nullable in the contract, but the Go field is not a pointer", fp)
			}
			if ptr && !ps.Nullable && required {
				t.Errorf("%s: the Go field is a pointer, but the contract says it is required and never null", fp)
			}
			if len(ps.Enum) > 0 {
				tag, has := f.Tag.Lookup("enum")
				switch {
				case !has:
					t.Errorf("%s: the contract has an enum; tag the Go field with enum:\"...\" or enum:\"-\"", fp)
				case tag != "-":
					var want []string
					for _, v := range ps.Enum {
						if s, ok := v.(string); ok {
							want = append(want, s)
						}
					}
					got := strings.Split(tag, ",")
					slices.Sort(want)
					slices.Sort(got)
					if !slices.Equal(want, got) {
						t.Errorf("%s: enum in the contract %v, in Go %v", fp, want, got)
					}
				}
			}
			d.check(t, fp, ps, f.Type)
		}
		for name := range fields {
			if _, ok := s.Properties[name]; !ok {
				t.Errorf("%s.%s: in Go type %s, not in the contract", path, name, typ)
			}
		}
	}
}

func bound(b *float64) string {
	if b == nil {
		return "(none)"
	}
	return wiretag.Format(*b)
}
