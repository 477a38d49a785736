// Package ssecheck is TEST-ONLY: it reads a datasource's answer the way
// Grafana's server-side expressions (SSE) read it for an alert rule, so that
// Go tests can tell whether a rule built on a query would evaluate or fail.
// Nothing in the product imports it.
//
// What it reproduces, from Grafana's documented conversion rules (pkg/expr):
//
//   - An answer whose first frame carries a dataplane type and version is read
//     with the dataplane readers (github.com/grafana/dataplane/sdata): time
//     series kinds become series, numeric kinds become numbers.
//   - Any other answer: one frame without fields is no data; one frame with a
//     single numeric field and otherwise strings is a set of numbers
//     labelled by those strings; everything else must be wide time series,
//     else "input data must be a wide series but got type long" (or "not").
//   - A rule reduces each series to one number (here: last, dropping null,
//     NaN and infinite values, as the provisioned rules do); a series without
//     such a value reduces to no value.
//   - The rule's condition needs numbers that its labels alone tell apart:
//     "frame cannot uniquely be identified by its labels".
//
// Where the dataplane readers are lenient (a frame without a numeric field
// in a numeric answer is skipped, a value field of another type is read as
// a series), Check is strict and fails, so that a test notices.
package ssecheck

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/grafana/dataplane/sdata"
	"github.com/grafana/dataplane/sdata/numeric"
	"github.com/grafana/dataplane/sdata/reader"
	"github.com/grafana/dataplane/sdata/timeseries"
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// Kind says what an expression received.
type Kind string

const (
	// KindSeries is a time series (reduced by Reduce).
	KindSeries Kind = "series"
	// KindNumber is one number per label set.
	KindNumber Kind = "number"
)

// Value is one series or number as SSE holds it.
type Value struct {
	Kind   Kind
	Name   string
	Labels data.Labels
	// Points are a series' values, in time order; nil entries are nulls.
	Points []*float64
	// Number is a number's value (nil: no value).
	Number *float64
}

// Answer is what SSE made of one query's frames.
type Answer struct {
	// NoData is set when the answer holds nothing (Grafana's NoData).
	NoData bool
	// Dataplane is the frame type when the dataplane readers read it.
	Dataplane data.FrameType
	Values    []Value
}

// Read converts frames as SSE's datasource node does.
func Read(frames data.Frames) (Answer, error) {
	if len(frames) == 0 {
		return Answer{NoData: true}, nil
	}
	if t, ok := dataplaneType(frames); ok {
		a, err := readDataplane(t, frames)
		a.Dataplane = t
		return a, err
	}
	if len(frames) == 1 {
		f := frames[0]
		if len(f.Fields) == 0 {
			return Answer{NoData: true}, nil
		}
		if f.TimeSeriesSchema().Type == data.TimeSeriesTypeNot && isNumberTable(f) {
			return numberTable(f)
		}
	}
	var a Answer
	for _, f := range frames {
		schema := f.TimeSeriesSchema()
		if schema.Type != data.TimeSeriesTypeWide {
			return Answer{}, fmt.Errorf("input data must be a wide series but got type %s (input refid)", schema.Type)
		}
		for _, i := range schema.ValueIndices {
			s, err := seriesOf(f.Fields[schema.TimeIndex], f.Fields[i])
			if err != nil {
				return Answer{}, err
			}
			a.Values = append(a.Values, s)
		}
	}
	return a, nil
}

// dataplaneType is the frame type when SSE would use the dataplane readers:
// the first frame names a type and a version that sdata can read (a newer
// or older version is read too, with a warning).
func dataplaneType(frames data.Frames) (data.FrameType, bool) {
	first := frames[0]
	if first == nil || first.Meta == nil || first.Meta.Type == "" || first.Meta.TypeVersion.IsZero() {
		return "", false
	}
	t, err := reader.CanReadBasedOnMeta(frames)
	if err != nil {
		var vw *sdata.VersionWarning
		if !errors.As(err, &vw) {
			return "", false
		}
	}
	return t, true
}

func readDataplane(t data.FrameType, frames data.Frames) (Answer, error) {
	switch t.Kind() {
	case data.KindTimeSeries:
		r, err := timeseries.CollectionReaderFromFrames(frames)
		if err != nil {
			return Answer{}, err
		}
		c, err := r.GetCollection(false)
		if err != nil {
			return Answer{}, err
		}
		if c.NoData() {
			return Answer{NoData: true}, nil
		}
		var a Answer
		for _, ref := range c.Refs {
			s, err := seriesOf(ref.TimeField, ref.ValueField)
			if err != nil {
				return Answer{}, err
			}
			a.Values = append(a.Values, s)
		}
		return a, nil
	case data.KindNumeric:
		for i, f := range frames {
			if f != nil && len(f.Fields) > 0 && len(f.TypeIndices(data.NumericFieldTypes()...)) == 0 {
				return Answer{}, fmt.Errorf("frame %d (%q) of a numeric answer has no numeric field", i, f.Name)
			}
		}
		r, err := numeric.CollectionReaderFromFrames(frames)
		if err != nil {
			return Answer{}, err
		}
		c, err := r.GetCollection(false)
		if err != nil {
			return Answer{}, err
		}
		if c.NoData() {
			return Answer{NoData: true}, nil
		}
		var a Answer
		for _, ref := range c.Refs {
			if !ref.ValueField.Type().Numeric() {
				return Answer{}, fmt.Errorf("value %q of type %s is not numeric", ref.GetMetricName(), ref.ValueField.Type())
			}
			v, empty, err := ref.NullableFloat64Value()
			if err != nil {
				return Answer{}, err
			}
			if empty {
				return Answer{}, fmt.Errorf("number %q %s holds %d values, not one", ref.GetMetricName(), ref.GetLabels(), ref.ValueField.Len())
			}
			a.Values = append(a.Values, Value{Kind: KindNumber, Name: ref.GetMetricName(), Labels: ref.GetLabels(), Number: v})
		}
		return a, nil
	case data.KindUnknown:
		return Answer{NoData: true}, nil
	}
	return Answer{}, fmt.Errorf("kind %s (type %s) not supported by server side expressions", t.Kind(), t)
}

func seriesOf(timeField, valueField *data.Field) (Value, error) {
	if !valueField.Type().Numeric() {
		return Value{}, fmt.Errorf("series %q %s has values of type %s, not numbers", valueField.Name, valueField.Labels, valueField.Type())
	}
	if timeField.Len() != valueField.Len() {
		return Value{}, fmt.Errorf("series %q %s: %d times but %d values", valueField.Name, valueField.Labels, timeField.Len(), valueField.Len())
	}
	s := Value{Kind: KindSeries, Name: valueField.Name, Labels: valueField.Labels}
	for i := 0; i < valueField.Len(); i++ {
		v, err := valueField.NullableFloatAt(i)
		if err != nil {
			return Value{}, err
		}
		s.Points = append(s.Points, v)
	}
	return s, nil
}

func isNumberTable(f *data.Frame) bool {
	numbers, others := 0, 0
	for _, field := range f.Fields {
		switch t := field.Type(); {
		case t.Numeric():
			numbers++
		case t == data.FieldTypeString || t == data.FieldTypeNullableString:
		default:
			others++
		}
	}
	return numbers == 1 && others == 0
}

func numberTable(f *data.Frame) (Answer, error) {
	var a Answer
	for row := 0; row < f.Rows(); row++ {
		v := Value{Kind: KindNumber}
		for _, field := range f.Fields {
			if field.Type().Numeric() {
				n, err := field.NullableFloatAt(row)
				if err != nil {
					return Answer{}, err
				}
				v.Name, v.Number = field.Name, n
				continue
			}
			if v.Labels == nil {
				v.Labels = data.Labels{}
			}
			s, _ := f.ConcreteAt(indexOf(f, field), row)
			v.Labels[field.Name], _ = s.(string)
		}
		a.Values = append(a.Values, v)
	}
	return a, nil
}

func indexOf(f *data.Frame, field *data.Field) int {
	for i, x := range f.Fields {
		if x == field {
			return i
		}
	}
	return -1
}

// Instance is one alert instance: its labels and the value its condition
// would see (nil: no value, NoData for that instance).
type Instance struct {
	Labels data.Labels
	Value  *float64
}

// Reduce turns every series into a number, last non-null value first
// (reducer "last", mode "dropNN"); numbers pass through. It fails where the
// rule's condition would: two values with the same labels.
func Reduce(a Answer) ([]Instance, error) {
	out := make([]Instance, 0, len(a.Values))
	seen := map[string]bool{}
	for _, v := range a.Values {
		inst := Instance{Labels: v.Labels}
		switch v.Kind {
		case KindNumber:
			inst.Value = v.Number
		case KindSeries:
			for i := len(v.Points) - 1; i >= 0; i-- {
				if p := v.Points[i]; p != nil && !math.IsNaN(*p) && !math.IsInf(*p, 0) {
					inst.Value = p
					break
				}
			}
		}
		key := v.Labels.String()
		if seen[key] {
			return nil, fmt.Errorf("invalid format of evaluation results for the alert definition: frame cannot uniquely be identified by its labels: has duplicate results with labels {%s}", key)
		}
		seen[key] = true
		out = append(out, inst)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Labels.String() < out[j].Labels.String() })
	return out, nil
}

// Evaluate is Read then Reduce: the instances an alert rule on this answer
// would have, or the error it would report.
func Evaluate(frames data.Frames) ([]Instance, Answer, error) {
	a, err := Read(frames)
	if err != nil {
		return nil, a, err
	}
	inst, err := Reduce(a)
	return inst, a, err
}

// ByLabels indexes instances by their labels' string form
// ("agent=a, cluster=b").
func ByLabels(inst []Instance) map[string]*float64 {
	out := make(map[string]*float64, len(inst))
	for _, i := range inst {
		out[i.Labels.String()] = i.Value
	}
	return out
}
