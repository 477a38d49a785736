// Package wiretag reads the vigil struct tag of the Go types that mirror
// agent/openapi.json (packages response and agentclient):
//
//	vigil:"required,min=0,max=2147483647"
//
// required: the contract requires the key. min and max: the contract's
// minimum and maximum for a number (inclusive). The contract tests keep these
// equal to agent/openapi.json; the status parser enforces them.
package wiretag

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Rules are what one field's tag says.
type Rules struct {
	Required bool
	// Min and Max are inclusive bounds; nil when the contract has none.
	Min, Max *float64
}

// Of reads the vigil tag of f.
func Of(f reflect.StructField) (Rules, error) {
	r, err := Parse(f.Tag.Get("vigil"))
	if err != nil {
		return Rules{}, fmt.Errorf("field %s: %w", f.Name, err)
	}
	return r, nil
}

// Parse reads a vigil tag's value.
func Parse(tag string) (Rules, error) {
	var r Rules
	if tag == "" {
		return r, nil
	}
	for _, part := range strings.Split(tag, ",") {
		key, value, hasValue := strings.Cut(part, "=")
		switch {
		case key == "required" && !hasValue:
			r.Required = true
		case (key == "min" || key == "max") && hasValue:
			b, err := strconv.ParseFloat(value, 64)
			if err != nil || math.IsNaN(b) || math.IsInf(b, 0) {
				return Rules{}, fmt.Errorf("vigil tag %q: %s=%s is not a finite number", tag, key, value)
			}
			if key == "min" {
				r.Min = &b
			} else {
				r.Max = &b
			}
		default:
			return Rules{}, fmt.Errorf("vigil tag %q: unknown part %q (want required, min=N or max=N)", tag, part)
		}
	}
	if r.Min != nil && r.Max != nil && *r.Min > *r.Max {
		return Rules{}, fmt.Errorf("vigil tag %q: min is above max", tag)
	}
	return r, nil
}

// Check says whether x is within the bounds, and if not, which one it
// breaks: "minimum 1" or "maximum 2147483647".
func (r Rules) Check(x float64) (ok bool, bound string) {
	if r.Min != nil && !(x >= *r.Min) {
		return false, "minimum " + Format(*r.Min)
	}
	if r.Max != nil && !(x <= *r.Max) {
		return false, "maximum " + Format(*r.Max)
	}
	return true, ""
}

// Format writes a bound as the contract does: 0, 1, 2147483647, 0.5.
func Format(b float64) string { return strconv.FormatFloat(b, 'f', -1, 64) }
