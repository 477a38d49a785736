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
	"runtime"
	"slices"
	"strings"
	"sync"
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
//
// The decoding runs on one of a few long-lived parser goroutines. Decoding
// recurses deeply; on the engine's per-agent goroutines, whose small stacks
// the garbage collector shrinks between polls, every parse grew the stack
// again (copying it: about 15 % of the engine's CPU at 3,000 agents). The
// parser goroutines keep their stacks grown between parses.
func Parse(body []byte) (Status, error) {
	startParsers.Do(func() {
		parseJobs = make(chan *parseJob)
		for range max(2, runtime.GOMAXPROCS(0)) {
			go func() {
				for j := range parseJobs {
					j.st, j.err = recovered(func() (Status, error) { return parse(j.body) })
					j.done <- struct{}{}
				}
			}()
		}
	})
	j := jobPool.Get().(*parseJob)
	j.body = body
	parseJobs <- j
	<-j.done
	st, err := j.st, j.err
	*j = parseJob{done: j.done}
	jobPool.Put(j)
	return st, err
}

// parseJob is one answer handed to a parser goroutine.
type parseJob struct {
	body []byte
	st   Status
	err  error
	done chan struct{}
}

var (
	startParsers sync.Once
	parseJobs    chan *parseJob
	jobPool      = sync.Pool{New: func() any { return &parseJob{done: make(chan struct{}, 1)} }}
)

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
	f := filler{path: make([]step, 0, 8)}
	if err := f.fill(tree, reflect.ValueOf(&st).Elem(), wiretag.Rules{}); err != nil {
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

// step is one step of the path to a value: a key, or an index in a list.
type step struct {
	key   string
	index int
}

// filler fills one answer. The path to the value being filled is kept as a
// stack and written out only for an error, so a good answer builds no path
// strings.
type filler struct {
	path []step
}

func (f *filler) at() string {
	var b strings.Builder
	for i, s := range f.path {
		if s.key == "" {
			fmt.Fprintf(&b, "[%d]", s.index)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return at(b.String())
}

// fieldPlan is what fill needs of one struct field, read from its tags once
// per type (see types.go).
type fieldPlan struct {
	index int
	name  string
	rules wiretag.Rules
	// rulesErr is a malformed vigil tag, reported when the field is filled.
	rulesErr error
	// enum lists the values accepted (nil: any); enumText names them.
	enum     []string
	enumText string
}

var plans sync.Map // reflect.Type -> []fieldPlan

func planOf(t reflect.Type) []fieldPlan {
	if p, ok := plans.Load(t); ok {
		return p.([]fieldPlan)
	}
	plan := make([]fieldPlan, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		fp := fieldPlan{index: i, name: jsonName(f)}
		fp.rules, fp.rulesErr = wiretag.Of(f)
		if enum := f.Tag.Get("enum"); enum != "" && enum != "-" {
			fp.enum = strings.Split(enum, ",")
			fp.enumText = strings.ReplaceAll(enum, ",", ", ")
		}
		plan[i] = fp
	}
	plans.Store(t, plan)
	return plan
}

// fill checks a decoded JSON value against a Go type of this package (using
// the tags described in types.go; rules are the tag of the field being
// filled) and stores it in rv, in one pass.
func (f *filler) fill(v any, rv reflect.Value, rules wiretag.Rules) error {
	t := rv.Type()
	if t.Kind() == reflect.Pointer {
		if v == nil {
			return nil
		}
		p := reflect.New(t.Elem())
		if err := f.fill(v, p.Elem(), rules); err != nil {
			return err
		}
		rv.Set(p)
		return nil
	}
	if v == nil {
		return fmt.Errorf("%s: must not be null", f.at())
	}
	want := func(what string) error { return fmt.Errorf("%s: want %s, got %s", f.at(), what, describe(v)) }
	switch {
	case t == timeType:
		s, ok := v.(string)
		if !ok {
			return want("a date-time string")
		}
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("%s: %q is not an RFC 3339 date-time", f.at(), truncate(s))
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
			return fmt.Errorf("%s: %s is not a 64-bit integer", f.at(), truncate(n.String()))
		}
		if err := f.inRange(float64(i), n, rules); err != nil {
			return err
		}
		rv.SetInt(i)
	case t.Kind() == reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			return want("a number")
		}
		x, err := n.Float64()
		if err != nil {
			return fmt.Errorf("%s: %s is out of range", f.at(), truncate(n.String()))
		}
		if err := f.inRange(x, n, rules); err != nil {
			return err
		}
		rv.SetFloat(x)
	case t.Kind() == reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			return want("a list")
		}
		sl := reflect.MakeSlice(t, len(items), len(items))
		for i, item := range items {
			f.path = append(f.path, step{index: i})
			if err := f.fill(item, sl.Index(i), wiretag.Rules{}); err != nil {
				return err
			}
			f.path = f.path[:len(f.path)-1]
		}
		rv.Set(sl)
	case t.Kind() == reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return want("an object")
		}
		for _, fp := range planOf(t) {
			f.path = append(f.path, step{key: fp.name})
			if fp.rulesErr != nil {
				return fmt.Errorf("%s: %w", f.at(), fp.rulesErr)
			}
			fv, present := obj[fp.name]
			if !present {
				if fp.rules.Required {
					return fmt.Errorf("%s: missing", f.at())
				}
				f.path = f.path[:len(f.path)-1]
				continue
			}
			if fp.enum != nil {
				if s, ok := fv.(string); ok && !slices.Contains(fp.enum, s) {
					return fmt.Errorf("%s: %q is not one of %s", f.at(), truncate(s), fp.enumText)
				}
			}
			if err := f.fill(fv, rv.Field(fp.index), fp.rules); err != nil {
				return err
			}
			f.path = f.path[:len(f.path)-1]
		}
	default:
		return fmt.Errorf("%s: no rule for %s", f.at(), t)
	}
	return nil
}

// inRange checks a number against the contract's minimum and maximum (the
// field's min and max tags); the error quotes the number as the agent sent it.
func (f *filler) inRange(x float64, n json.Number, rules wiretag.Rules) error {
	if ok, bound := rules.Check(x); !ok {
		return fmt.Errorf("%s: %s is out of range (%s)", f.at(), truncate(n.String()), bound)
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

// truncate bounds a value an agent sent, quoted in an error: never inside a character.
func truncate(s string) string { return textlimit.Clip(s, 80) }
