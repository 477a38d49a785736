// Package response decodes and judges one answer of an agent to
// GET /v1/status.
//
// Parse turns the raw body into a Status, or into an error whose text is a
// precise reason ("processes[0].generation: missing", "processes[0].pid: -1 is
// out of range (minimum 1)"): the caller shows it as
// the reason of an UNKNOWN state. Parse never panics, whatever the input (it
// is fuzzed), ignores unknown keys, and refuses bodies over 1 MiB.
//
// Classify then gives every process a Verdict: running where expected,
// starting, down where expected (remediation restarts it), not expected
// (passive node: STANDBY), still running where not expected (a node that is
// no longer active), or not expected because the role is unknown.
package response

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/vigil-cdp/vigil/pkg/textlimit"
	"github.com/vigil-cdp/vigil/pkg/wiretag"
)

// MaxBody is the largest answer Parse accepts.
const MaxBody = 1 << 20

// ErrDecodePanic wraps the error of a Parse that panicked and recovered.
// The checks make a panic impossible as far as we know; the fuzz target fails
// on this error, since a recovered panic would otherwise pass as any error.
var ErrDecodePanic = errors.New("the answer could not be decoded")

// Parse decodes a status answer. The error says exactly what is wrong.
func Parse(body []byte) (Status, error) {
	return recovered(func() (Status, error) { return parse(body) })
}

// recovered runs decode; should it panic, an answer must still never bring
// the monitor down: the panic becomes an error wrapping ErrDecodePanic.
func recovered(decode func() (Status, error)) (st Status, err error) {
	defer func() {
		if r := recover(); r != nil {
			st, err = Status{}, fmt.Errorf("%w (%v)", ErrDecodePanic, r)
		}
	}()
	return decode()
}

func parse(body []byte) (st Status, err error) {
	if len(body) > MaxBody {
		return Status{}, fmt.Errorf("the answer is larger than 1 MiB (%d bytes)", len(body))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return Status{}, errors.New("the answer is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return Status{}, fmt.Errorf("the answer is not JSON: %s", err.Error())
	}
	if dec.More() {
		return Status{}, errors.New("the answer is not JSON: more than one value")
	}
	if err := fill(tree, reflect.ValueOf(&st).Elem(), "", wiretag.Rules{}); err != nil {
		return Status{}, err
	}
	return st, nil
}

var timeType = reflect.TypeFor[time.Time]()

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func at(path string) string {
	if path == "" {
		return "the answer"
	}
	return path
}

// fill checks a decoded JSON value against a Go type of this package (using
// the tags described in types.go; rules are the tag of the field being
// filled) and stores it in rv, in one pass.
func fill(v any, rv reflect.Value, path string, rules wiretag.Rules) error {
	t := rv.Type()
	if t.Kind() == reflect.Pointer {
		if v == nil {
			return nil
		}
		p := reflect.New(t.Elem())
		if err := fill(v, p.Elem(), path, rules); err != nil {
			return err
		}
		rv.Set(p)
		return nil
	}
	if v == nil {
		return fmt.Errorf("%s: must not be null", at(path))
	}
	want := func(what string) error { return fmt.Errorf("%s: want %s, got %s", at(path), what, describe(v)) }
	switch {
	case t == timeType:
		s, ok := v.(string)
		if !ok {
			return want("a date-time string")
		}
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("%s: %q is not an RFC 3339 date-time", at(path), truncate(s))
		}
		rv.Set(reflect.ValueOf(tm))
	case t.Kind() == reflect.String:
		s, ok := v.(string)
		if !ok {
			return want("a string")
		}
		rv.SetString(s)
	case t.Kind() == reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return want("true or false")
		}
		rv.SetBool(b)
	case t.Kind() == reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			return want("an integer")
		}
		i, err := n.Int64()
		if err != nil {
			return fmt.Errorf("%s: %s is not a 64-bit integer", at(path), truncate(n.String()))
		}
		if err := inRange(float64(i), n, path, rules); err != nil {
			return err
		}
		rv.SetInt(i)
	case t.Kind() == reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			return want("a number")
		}
		f, err := n.Float64()
		if err != nil {
			return fmt.Errorf("%s: %s is out of range", at(path), truncate(n.String()))
		}
		if err := inRange(f, n, path, rules); err != nil {
			return err
		}
		rv.SetFloat(f)
	case t.Kind() == reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			return want("a list")
		}
		sl := reflect.MakeSlice(t, len(items), len(items))
		for i, item := range items {
			if err := fill(item, sl.Index(i), fmt.Sprintf("%s[%d]", path, i), wiretag.Rules{}); err != nil {
				return err
			}
		}
		rv.Set(sl)
	case t.Kind() == reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return want("an object")
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name := jsonName(f)
			fp := name
			if path != "" {
				fp = path + "." + name
			}
			rules, err := wiretag.Of(f)
			if err != nil {
				return fmt.Errorf("%s: %w", fp, err)
			}
			fv, present := obj[name]
			if !present {
				if rules.Required {
					return fmt.Errorf("%s: missing", fp)
				}
				continue
			}
			if enum := f.Tag.Get("enum"); enum != "" && enum != "-" {
				if s, ok := fv.(string); ok && !contains(strings.Split(enum, ","), s) {
					return fmt.Errorf("%s: %q is not one of %s", fp, truncate(s), strings.ReplaceAll(enum, ",", ", "))
				}
			}
			if err := fill(fv, rv.Field(i), fp, rules); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%s: no rule for %s", at(path), t)
	}
	return nil
}

// inRange checks a number against the contract's minimum and maximum (the
// field's min and max tags); the error quotes the number as the agent sent it.
func inRange(x float64, n json.Number, path string, rules wiretag.Rules) error {
	if ok, bound := rules.Check(x); !ok {
		return fmt.Errorf("%s: %s is out of range (%s)", at(path), truncate(n.String()), bound)
	}
	return nil
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// truncate bounds a value an agent sent, quoted in an error: never inside a character.
func truncate(s string) string { return textlimit.Clip(s, 80) }
