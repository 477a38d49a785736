// Package resample puts values observed at irregular times (polls) on a
// regular grid of steps, as a time series panel or an alert rule reads
// them. It knows nothing of Grafana: the datasource builds a Grid from a
// query and frames from the sampled values.
package resample

import (
	"math"
	"time"
)

// Grid divides a time range into equal steps: at least the query's
// interval and one second, and no more steps than maxDataPoints. Step i
// covers [From+i·Step, From+(i+1)·Step) and is stamped with its start.
type Grid struct {
	From, To time.Time
	Step     time.Duration
	N        int
	// Until is where the last step ends (inclusive): To, unless the caller
	// runs it on (to a live value taken just after the range).
	Until time.Time
}

// NewGrid is the grid of [from, to] for a query's interval and maximum
// number of data points (0: no maximum).
func NewGrid(from, to time.Time, interval time.Duration, maxDataPoints int64) Grid {
	span := to.Sub(from)
	step := max(interval, time.Second)
	if maxDataPoints > 0 {
		step = max(step, span/time.Duration(maxDataPoints))
	}
	step = step.Round(time.Second)
	if span <= 0 {
		return Grid{From: from, To: to, Step: step, N: 1, Until: to}
	}
	n := int(math.Ceil(float64(span) / float64(step)))
	if maxDataPoints > 0 && n > int(maxDataPoints) {
		n = int(maxDataPoints)
	}
	return Grid{From: from, To: to, Step: step, N: n, Until: to}
}

// At is the start of step i.
func (g Grid) At(i int) time.Time { return g.From.Add(time.Duration(i) * g.Step) }

// Times are the steps' stamps.
func (g Grid) Times() []time.Time {
	t := make([]time.Time, g.N)
	for i := range t {
		t[i] = g.At(i)
	}
	return t
}

// Point is one observed value. Until, when set, is the last poll of a run
// of polls that all had this value: the point counts in every step from T
// to Until, and is carried from Until.
type Point struct {
	T     time.Time
	V     float64
	Until time.Time
}

// holds: the point's run goes on at t.
func (p *Point) holds(t time.Time) bool { return !p.Until.IsZero() && !p.Until.Before(t) }

// end is the point's last poll.
func (p *Point) end() time.Time {
	if p.Until.After(p.T) {
		return p.Until
	}
	return p.T
}

// Aggregation combines the values within one step so that nothing bad is
// hidden by a coarse step: the worst state, the lowest "up", the sum of
// restarts.
type Aggregation func(a, b float64) float64

// The aggregations.
func Max(a, b float64) float64  { return math.Max(a, b) }
func Min(a, b float64) float64  { return math.Min(a, b) }
func Last(_, b float64) float64 { return b }
func Sum(a, b float64) float64  { return a + b }

// Sample puts time-ordered points on the grid. A step without a point keeps
// the previous value while that is at most carry old (polls are further
// apart than a fine step); beyond that it is null: nothing was known.
func Sample(points []Point, g Grid, agg Aggregation, carry time.Duration) []*float64 {
	out := make([]*float64, g.N)
	var last *Point
	j := 0
	for i := 0; i < g.N; i++ {
		start, end := g.At(i), g.At(i+1)
		if i == g.N-1 && !end.After(g.Until) {
			end = g.Until.Add(time.Nanosecond)
		}
		var v *float64
		in := func(x float64) {
			if v != nil {
				x = agg(*v, x)
			}
			v = &x
		}
		if last != nil && last.holds(start) {
			// A run of polls from an earlier step goes on in this one.
			in(last.V)
		}
		for j < len(points) && points[j].T.Before(end) {
			p := points[j]
			j++
			last = &p
			if p.T.Before(start) {
				if p.holds(start) {
					in(p.V)
				}
				continue
			}
			in(p.V)
		}
		if v == nil && carry > 0 && last != nil && start.Sub(last.end()) <= carry {
			x := last.V
			v = &x
		}
		out[i] = v
	}
	return out
}
