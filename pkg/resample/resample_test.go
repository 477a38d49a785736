package resample

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(s float64, v float64) Point {
	return Point{T: t0.Add(time.Duration(s * float64(time.Second))), V: v}
}

func show(values []*float64) string {
	out := ""
	for i, v := range values {
		if i > 0 {
			out += " "
		}
		if v == nil {
			out += "_"
		} else {
			out += fmt.Sprint(*v)
		}
	}
	return out
}

func TestSample(t *testing.T) {
	g := NewGrid(t0, t0.Add(60*time.Second), 10*time.Second, 0) // 6 steps of 10 s
	pts := []Point{at(-5, 7), at(2, 1), at(8, 3), at(25, 2), at(59, 4), at(61, 9)}
	tests := []struct {
		name  string
		agg   Aggregation
		carry time.Duration
		until time.Duration
		want  string
	}{
		{"worst within a step, carried 20 s", Max, 20 * time.Second, 60 * time.Second, "3 3 2 2 2 4"},
		// A step without a point carries the last observation, not the aggregate of the step before.
		{"lowest", Min, 20 * time.Second, 60 * time.Second, "1 3 2 2 2 4"},
		{"sum, nothing carried", Sum, 0, 60 * time.Second, "4 _ 2 _ _ 4"},
		{"the last, carried 10 s", Last, 10 * time.Second, 60 * time.Second, "3 3 2 2 _ 4"},
		{"the last step runs on to a live value", Last, 0, 61 * time.Second, "3 _ 2 _ _ 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := g
			g.Until = t0.Add(tt.until)
			if got := show(Sample(pts, g, tt.agg, tt.carry)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNewGrid(t *testing.T) {
	g := NewGrid(t0, t0, 0, 10)
	if g.N != 1 || g.Step != time.Second || !g.Until.Equal(t0) {
		t.Errorf("an empty range: %+v", g)
	}
	g = NewGrid(t0, t0.Add(95*time.Second), 10*time.Second, 0)
	if g.N != 10 || g.At(9) != t0.Add(90*time.Second) || len(g.Times()) != 10 {
		t.Errorf("a range that is not a whole number of steps: %+v", g)
	}
}
