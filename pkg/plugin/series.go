package plugin

import (
	"fmt"
	"sort"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/frames"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/resample"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// gridFor is the query's grid.
func gridFor(q backend.DataQuery) resample.Grid {
	return resample.NewGrid(q.TimeRange.From, q.TimeRange.To, q.Interval, q.MaxDataPoints)
}

// gridOf is the query's grid. For an alert query the last step runs on to
// the snapshot when that is taken shortly after the range ends (liveSlack):
// Grafana fixes "now" before it asks, and the first query after a start
// waits for the monitor's first polls, which come after that "now".
func gridOf(src source, q backend.DataQuery) resample.Grid {
	g := gridFor(q)
	if now := src.snap.Time; src.alert && now.After(g.To) && !now.After(g.To.Add(liveSlack(g))) {
		g.Until = now
	}
	return g
}

// liveSlack is how long after a query's range the snapshot still is that
// range's "now": a step, and at least the longest an alert query waits for
// the first polls, plus a second.
func liveSlack(g resample.Grid) time.Duration { return max(g.Step, firstRoundWait+time.Second) }

// aggWorst combines state codes by pkg/state's severity, not by code: FAILED
// with UNKNOWN within one step is FAILED.
func aggWorst(a, b float64) float64 {
	return float64(state.Worst(state.State(int64(a)), state.State(int64(b))).Code())
}

// afterPoint: t comes after the point's last poll.
func afterPoint(t time.Time, p resample.Point) bool { return t.After(p.T) && t.After(p.Until) }

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// observations reads the observations of the given agents over the query's
// range, plus enough before it to carry the state into its first step.
func observations(src source, names []string, g resample.Grid) (map[string][]history.Observation, error) {
	out := make(map[string][]history.Observation, len(names))
	for _, name := range names {
		obs, err := src.hist.Observations(history.Query{Agent: name, From: g.From.Add(-carryFor(src)), To: g.Until.Add(time.Nanosecond)})
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
func unknownNow(src source, g resample.Grid, values []*float64) []*float64 {
	now := src.snap.Time
	if len(values) == 0 || now.Before(g.At(g.N-1)) || now.After(g.To.Add(liveSlack(g))) {
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
		var agentPts []resample.Point
		for _, o := range obs {
			agentPts = append(agentPts, resample.Point{T: o.Time, V: float64(o.State), Until: o.Until})
		}
		agentStates := resample.Sample(agentPts, g, aggWorst, carry)
		if src.unjudged(a) {
			agentStates = unknownNow(src, g, agentStates)
		}
		if matches(agentStates, f) {
			series = append(series, frames.TimelineSeries{Agent: a.Name, Cluster: a.Cluster, States: toStates(agentStates)})
		}
		for _, pname := range processNames(a, obs) {
			var pts []resample.Point
			for _, o := range obs {
				if agentWide(o.State) {
					// Silent or not understood: the process shares the agent's state.
					pts = append(pts, resample.Point{T: o.Time, V: float64(o.State), Until: o.Until})
					continue
				}
				for _, p := range o.Processes {
					if p.Name == pname {
						pts = append(pts, resample.Point{T: o.Time, V: float64(p.State), Until: o.Until})
					}
				}
			}
			states := resample.Sample(pts, g, aggWorst, carry)
			if src.unjudged(a) {
				states = unknownNow(src, g, states)
			}
			if matches(states, f) {
				series = append(series, frames.TimelineSeries{Agent: a.Name, Cluster: a.Cluster, Process: pname, States: toStates(states)})
			}
		}
	}
	return data.Frames{frames.Timeline(g.Times(), series)}, nil
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
	times := g.Times()
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
		var stateCode, up, rtt, budget []resample.Point
		for _, o := range obs {
			stateCode = append(stateCode, resample.Point{T: o.Time, V: float64(o.State), Until: o.Until})
			if o.Answered {
				up = append(up, resample.Point{T: o.Time, V: 1, Until: o.Until})
				rtt = append(rtt, resample.Point{T: o.Time, V: o.RTTHigh().Seconds(), Until: o.Until})
			} else {
				up = append(up, resample.Point{T: o.Time, V: 0, Until: o.Until})
			}
			if o.BudgetSeconds > 0 {
				budget = append(budget, resample.Point{T: o.Time, V: o.BudgetSeconds, Until: o.Until})
			}
		}
		codes := resample.Sample(stateCode, g, aggWorst, carry)
		if src.unjudged(a) {
			codes = unknownNow(src, g, codes)
		}
		if !matches(codes, f) {
			continue
		}
		add(frames.MetricStateCode, a, "", codes)
		add(frames.MetricUp, a, "", resample.Sample(up, g, resample.Min, carry))
		add(frames.MetricRTTSeconds, a, "", resample.Sample(rtt, g, resample.Max, carry))
		add(frames.MetricBudgetSeconds, a, "", resample.Sample(budget, g, resample.Last, carry))

		for _, pname := range processNames(a, obs) {
			var running, lag, restarts, suspended []resample.Point
			var lastGen *int64
			for _, o := range obs {
				for _, p := range o.Processes {
					if p.Name != pname {
						continue
					}
					if v, ok := processRunning(p.State); ok && !agentWide(o.State) {
						running = append(running, resample.Point{T: o.Time, V: v, Until: o.Until})
					}
					if l := p.LagHigh(); l != nil {
						lag = append(lag, resample.Point{T: o.Time, V: *l, Until: o.Until})
					}
					delta := 0.0
					if lastGen != nil && p.Generation > *lastGen {
						delta = float64(p.Generation - *lastGen)
					}
					gen := p.Generation
					lastGen = &gen
					restarts = append(restarts, resample.Point{T: o.Time, V: delta})
					suspended = append(suspended, resample.Point{T: o.Time, V: oneIf(p.AutoRestartSuspended), Until: o.Until})
				}
			}
			// The flap guard can change without a poll (a restart from Grafana lifts
			// it): the engine's current value comes after the observations.
			for _, p := range a.Processes {
				if p.Name == pname && (len(suspended) == 0 || afterPoint(src.snap.Time, suspended[len(suspended)-1])) {
					suspended = append(suspended, resample.Point{T: src.snap.Time, V: oneIf(p.AutoRestartSuspended)})
				}
			}
			add(frames.MetricProcessRunning, a, pname, resample.Sample(running, g, resample.Min, carry))
			add(frames.MetricProtectionLagSeconds, a, pname, resample.Sample(lag, g, resample.Max, carry))
			add(frames.MetricRestarts, a, pname, resample.Sample(restarts, g, resample.Sum, 0))
			add(frames.MetricAutoRestartSuspended, a, pname, resample.Sample(suspended, g, resample.Max, carry))
		}
	}
	if f.wantMetric(frames.MetricEngineStalenessSeconds) {
		t, v := staleness(src, obsBy, g)
		series = append(series, frames.Series{Metric: frames.MetricEngineStalenessSeconds, Times: t, Values: v})
	}
	if f.wantMetric(frames.MetricUnpolledAgents) && src.shared != nil && !src.shared.CheckedAt.IsZero() {
		// The live count only: when no monitor polls an agent, nothing
		// recorded it at the steps before.
		if at := src.snap.Time; !at.Before(g.From) && !at.After(g.To.Add(g.Step)) {
			stamp := at
			if stamp.After(g.To) {
				stamp = g.To
			}
			n := float64(len(src.shared.Unpolled))
			series = append(series, frames.Series{Metric: frames.MetricUnpolledAgents, Times: []time.Time{stamp}, Values: []*float64{&n}})
		}
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
func staleness(src source, obsBy map[string][]history.Observation, g resample.Grid) ([]time.Time, []*float64) {
	var times []time.Time
	var values []*float64
	idx := map[string]int{}
	for i := 0; i < g.N; i++ {
		t := g.At(i)
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
			if last := obs[j-1].LastPollBy(t); oldest.IsZero() || last.Before(oldest) {
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
	if now := src.snap.Time; !now.Before(g.From) && !now.After(g.To.Add(g.Step)) {
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
		if stamp.After(g.To) {
			stamp = g.To
		}
		if n := len(times); n > 0 && !times[n-1].Before(stamp) {
			times, values = times[:n-1], values[:n-1]
		}
		times = append(times, stamp)
		values = append(values, seconds(now.Sub(cycle)))
	}
	return times, values
}
