package plugin

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/frames"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// grid divides a query's time range into equal steps: at least the query's
// interval and one second, and no more steps than maxDataPoints. Step i
// covers [from+i·step, from+(i+1)·step) and is stamped with its start.
type grid struct {
	from, to time.Time
	step     time.Duration
	n        int
	// until is where the last step ends (inclusive): to, or the snapshot's
	// time for an alert query (see gridOf).
	until time.Time
}

func gridFor(q backend.DataQuery) grid {
	from, to := q.TimeRange.From, q.TimeRange.To
	span := to.Sub(from)
	step := max(q.Interval, time.Second)
	if q.MaxDataPoints > 0 {
		step = max(step, span/time.Duration(q.MaxDataPoints))
	}
	step = step.Round(time.Second)
	if span <= 0 {
		return grid{from: from, to: to, step: step, n: 1, until: to}
	}
	n := int(math.Ceil(float64(span) / float64(step)))
	if q.MaxDataPoints > 0 && n > int(q.MaxDataPoints) {
		n = int(q.MaxDataPoints)
	}
	return grid{from: from, to: to, step: step, n: n, until: to}
}

// gridOf is the query's grid. For an alert query the last step runs on to
// the snapshot when that is taken shortly after the range ends (liveSlack):
// Grafana fixes "now" before it asks, and the first query after a start
// waits for the monitor's first polls, which come after that "now".
func gridOf(src source, q backend.DataQuery) grid {
	g := gridFor(q)
	if now := src.snap.Time; src.alert && now.After(g.to) && !now.After(g.to.Add(liveSlack(g))) {
		g.until = now
	}
	return g
}

// liveSlack is how long after a query's range the snapshot still is that
// range's "now": a step, and at least the longest an alert query waits for
// the first polls, plus a second.
func liveSlack(g grid) time.Duration { return max(g.step, firstRoundWait+time.Second) }

func (g grid) at(i int) time.Time { return g.from.Add(time.Duration(i) * g.step) }

func (g grid) times() []time.Time {
	t := make([]time.Time, g.n)
	for i := range t {
		t[i] = g.at(i)
	}
	return t
}

// point is one observed value.
type point struct {
	t time.Time
	v float64
}

// aggregation combines the values within one step so that nothing bad is
// hidden by a coarse step: the worst state, the lowest "up", the sum of
// restarts.
type aggregation func(a, b float64) float64

func aggMax(a, b float64) float64  { return math.Max(a, b) }
func aggMin(a, b float64) float64  { return math.Min(a, b) }
func aggLast(_, b float64) float64 { return b }
func aggSum(a, b float64) float64  { return a + b }

// aggWorst combines state codes by pkg/state's severity, not by code.
func aggWorst(a, b float64) float64 {
	return float64(state.Worst(state.State(int64(a)), state.State(int64(b))).Code())
}

// sample puts time-ordered points on the grid. A step without a point keeps
// the previous value while that is at most carry old (polls are further
// apart than a fine step); beyond that it is null: nothing was known.
func sample(points []point, g grid, agg aggregation, carry time.Duration) []*float64 {
	out := make([]*float64, g.n)
	var last *point
	j := 0
	for i := 0; i < g.n; i++ {
		start, end := g.at(i), g.at(i+1)
		if i == g.n-1 {
			end = maxTime(end, g.until.Add(time.Nanosecond))
		}
		var v *float64
		for j < len(points) && points[j].t.Before(end) {
			p := points[j]
			j++
			last = &p
			if p.t.Before(start) {
				continue
			}
			if v == nil {
				x := p.v
				v = &x
			} else {
				x := agg(*v, p.v)
				v = &x
			}
		}
		if v == nil && carry > 0 && last != nil && start.Sub(last.t) <= carry {
			x := last.v
			v = &x
		}
		out[i] = v
	}
	return out
}

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// observations reads the observations of the given agents over the query's
// range, plus enough before it to carry the state into its first step.
func observations(src source, names []string, g grid) (map[string][]history.Observation, error) {
	out := make(map[string][]history.Observation, len(names))
	for _, name := range names {
		obs, err := src.hist.Observations(history.Query{Agent: name, From: g.from.Add(-carryFor(src)), To: g.until.Add(time.Nanosecond)})
		if err != nil {
			return nil, fmt.Errorf("read the history: %w", err)
		}
		out[name] = obs
	}
	return out, nil
}

// carryFor is how long a value holds without a new observation: two poll
// intervals, so one late poll leaves no gap.
func carryFor(src source) time.Duration { return 2 * max(src.pollInterval, time.Second) }

func names(agents []engine.AgentSnapshot) []string {
	out := make([]string, len(agents))
	for i, a := range agents {
		out[i] = a.Name
	}
	return out
}

// processNames are the processes an agent reported in the range or reports
// now, sorted.
func processNames(a engine.AgentSnapshot, obs []history.Observation) []string {
	seen := map[string]bool{}
	for _, p := range a.Processes {
		seen[p.Name] = true
	}
	for _, o := range obs {
		for _, p := range o.Processes {
			seen[p.Name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// unknownNow makes the last step UNKNOWN when it holds the snapshot's time
// (or the snapshot came shortly after it, liveSlack): an alert query's
// answer for an agent the engine has not judged since it started. The steps
// before keep the history.
func unknownNow(src source, g grid, values []*float64) []*float64 {
	now := src.snap.Time
	if len(values) == 0 || now.Before(g.at(g.n-1)) || now.After(g.to.Add(liveSlack(g))) {
		return values
	}
	u := float64(state.Unknown.Code())
	values[len(values)-1] = &u
	return values
}

func stateOf(v *float64) *state.State {
	if v == nil {
		return nil
	}
	s := state.State(int64(*v))
	return &s
}

func queryTimeline(src source, q backend.DataQuery, f filter) (data.Frames, error) {
	g := gridOf(src, q)
	agents := f.selected(src.snap)
	obsBy, err := observations(src, names(agents), g)
	if err != nil {
		return nil, err
	}
	carry := carryFor(src)
	var series []frames.TimelineSeries
	for _, a := range agents {
		obs := obsBy[a.Name]
		var agentPts []point
		for _, o := range obs {
			agentPts = append(agentPts, point{o.Time, float64(o.State)})
		}
		agentStates := sample(agentPts, g, aggWorst, carry)
		if src.unjudged(a) {
			agentStates = unknownNow(src, g, agentStates)
		}
		if matches(agentStates, f) {
			series = append(series, frames.TimelineSeries{Agent: a.Name, Cluster: a.Cluster, States: toStates(agentStates)})
		}
		for _, pname := range processNames(a, obs) {
			var pts []point
			for _, o := range obs {
				if agentWide(o.State) {
					// Silent or not understood: the process shares the agent's state.
					pts = append(pts, point{o.Time, float64(o.State)})
					continue
				}
				for _, p := range o.Processes {
					if p.Name == pname {
						pts = append(pts, point{o.Time, float64(p.State)})
					}
				}
			}
			states := sample(pts, g, aggWorst, carry)
			if src.unjudged(a) {
				states = unknownNow(src, g, states)
			}
			if matches(states, f) {
				series = append(series, frames.TimelineSeries{Agent: a.Name, Cluster: a.Cluster, Process: pname, States: toStates(states)})
			}
		}
	}
	return data.Frames{frames.Timeline(g.times(), series)}, nil
}

// matches keeps a timeline series when it was in one of the filter's
// states at some time of the range.
func matches(values []*float64, f filter) bool {
	if f.states == nil {
		return true
	}
	for _, v := range values {
		if v != nil && f.states[state.State(int64(*v))] {
			return true
		}
	}
	return false
}

func toStates(values []*float64) []*state.State {
	out := make([]*state.State, len(values))
	for i, v := range values {
		out[i] = stateOf(v)
	}
	return out
}

// processRunning is 1 for a process that runs where it should, 0 for one
// that should run and does not, and no value otherwise (not expected here,
// or the agent is silent).
func processRunning(s state.State) (float64, bool) {
	switch s {
	case state.OK, state.Degraded:
		return 1, true
	case state.Restarting, state.Failed:
		return 0, true
	}
	return 0, false
}

func queryMetrics(src source, q backend.DataQuery, f filter) (data.Frames, error) {
	g := gridOf(src, q)
	times := g.times()
	carry := carryFor(src)
	agents := f.selected(src.snap)
	obsBy, err := observations(src, names(agents), g)
	if err != nil {
		return nil, err
	}
	var series []frames.Series
	add := func(metric string, a engine.AgentSnapshot, process string, values []*float64) {
		if !f.wantMetric(metric) {
			return
		}
		series = append(series, frames.Series{Metric: metric, Agent: a.Name, Cluster: a.Cluster, Process: process, Times: times, Values: values})
	}
	for _, a := range agents {
		obs := obsBy[a.Name]
		var stateCode, up, rtt, budget []point
		for _, o := range obs {
			stateCode = append(stateCode, point{o.Time, float64(o.State)})
			if o.Answered {
				up = append(up, point{o.Time, 1})
				rtt = append(rtt, point{o.Time, o.RTT.Seconds()})
			} else {
				up = append(up, point{o.Time, 0})
			}
			if o.BudgetSeconds > 0 {
				budget = append(budget, point{o.Time, o.BudgetSeconds})
			}
		}
		codes := sample(stateCode, g, aggWorst, carry)
		if src.unjudged(a) {
			codes = unknownNow(src, g, codes)
		}
		if !matches(codes, f) {
			continue
		}
		add(frames.MetricStateCode, a, "", codes)
		add(frames.MetricUp, a, "", sample(up, g, aggMin, carry))
		add(frames.MetricRTTSeconds, a, "", sample(rtt, g, aggMax, carry))
		add(frames.MetricBudgetSeconds, a, "", sample(budget, g, aggLast, carry))

		for _, pname := range processNames(a, obs) {
			var running, lag, restarts, suspended []point
			var lastGen *int64
			for _, o := range obs {
				for _, p := range o.Processes {
					if p.Name != pname {
						continue
					}
					if v, ok := processRunning(p.State); ok && !agentWide(o.State) {
						running = append(running, point{o.Time, v})
					}
					if p.LagSeconds != nil {
						lag = append(lag, point{o.Time, *p.LagSeconds})
					}
					delta := 0.0
					if lastGen != nil && p.Generation > *lastGen {
						delta = float64(p.Generation - *lastGen)
					}
					gen := p.Generation
					lastGen = &gen
					restarts = append(restarts, point{o.Time, delta})
					suspended = append(suspended, point{o.Time, oneIf(p.AutoRestartSuspended)})
				}
			}
			// The flap guard can change without a poll (a restart from Grafana lifts
			// it): the engine's current value comes after the observations.
			for _, p := range a.Processes {
				if p.Name == pname && (len(suspended) == 0 || src.snap.Time.After(suspended[len(suspended)-1].t)) {
					suspended = append(suspended, point{src.snap.Time, oneIf(p.AutoRestartSuspended)})
				}
			}
			add(frames.MetricProcessRunning, a, pname, sample(running, g, aggMin, carry))
			add(frames.MetricProtectionLagSeconds, a, pname, sample(lag, g, aggMax, carry))
			add(frames.MetricRestarts, a, pname, sample(restarts, g, aggSum, 0))
			add(frames.MetricAutoRestartSuspended, a, pname, sample(suspended, g, aggMax, carry))
		}
	}
	if f.wantMetric(frames.MetricEngineStalenessSeconds) {
		t, v := staleness(src, obsBy, g)
		series = append(series, frames.Series{Metric: frames.MetricEngineStalenessSeconds, Times: t, Values: v})
	}
	if src.alert && len(f.metrics) != 1 {
		// Several metrics per agent: their labels alone must tell them apart.
		return frames.WithMetricLabel(frames.Metrics(series)), nil
	}
	return frames.Metrics(series), nil
}

// staleness is the engine's series: at each step, the seconds since the
// least recently polled agent was last polled (the last completed poll
// cycle), then the live value at the snapshot's time. The steps look at the
// selected agents only (reading every agent's history for a one-agent
// dashboard would cost too much); the live value looks at all of them.
func staleness(src source, obsBy map[string][]history.Observation, g grid) ([]time.Time, []*float64) {
	var times []time.Time
	var values []*float64
	idx := map[string]int{}
	for i := 0; i < g.n; i++ {
		t := g.at(i)
		if !t.Before(src.snap.Time) {
			break
		}
		var oldest time.Time
		for name, obs := range obsBy {
			j := idx[name]
			for j < len(obs) && !obs[j].Time.After(t) {
				j++
			}
			idx[name] = j
			if j == 0 {
				continue
			}
			if last := obs[j-1].Time; oldest.IsZero() || last.Before(oldest) {
				oldest = last
			}
		}
		times = append(times, t)
		if oldest.IsZero() {
			values = append(values, nil)
		} else {
			values = append(values, seconds(t.Sub(oldest)))
		}
	}
	// A query's "now" is taken just before the snapshot: a snapshot within
	// one step after the range still is its live value, stamped at its end.
	if now := src.snap.Time; !now.Before(g.from) && !now.After(g.to.Add(g.step)) {
		cycle := now
		for _, a := range src.snap.Agents {
			polled := a.LastPollAt
			if polled.Before(src.startedAt) {
				polled = src.startedAt
			}
			if polled.Before(cycle) {
				cycle = polled
			}
		}
		stamp := now
		if stamp.After(g.to) {
			stamp = g.to
		}
		if n := len(times); n > 0 && !times[n-1].Before(stamp) {
			times, values = times[:n-1], values[:n-1]
		}
		times = append(times, stamp)
		values = append(values, seconds(now.Sub(cycle)))
	}
	return times, values
}
