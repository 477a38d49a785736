package history

import (
	"slices"
	"time"
)

// A run is one Observation that stands for consecutive polls of one agent
// within one minute whose answers differed only in what changes at every
// poll: the time, RTT, protection lag and budget. It keeps the first poll's
// time (Time), the last poll's (Until), how many polls (Polls), the last
// values (RTT, BudgetSeconds, LagSeconds) and the minimum and maximum of RTT
// and lag over the run.

// runStep is the longest a run lasts: RTT and lag are kept as min/max/last
// per minute at most.
const runStep = time.Minute

// End is the time of the last poll the observation stands for.
func (o Observation) End() time.Time {
	if o.Until.After(o.Time) {
		return o.Until
	}
	return o.Time
}

// PollCount is how many polls the observation stands for (at least 1).
func (o Observation) PollCount() int {
	return max(o.Polls, 1)
}

// LastPollBy is the time of the last poll the observation stands for that
// was sent at or before t, assuming its polls were evenly spaced (zero when
// t is before the first).
func (o Observation) LastPollBy(t time.Time) time.Time {
	if t.Before(o.Time) {
		return time.Time{}
	}
	end := o.End()
	if !end.After(t) || o.PollCount() < 2 {
		if end.After(t) {
			return o.Time
		}
		return end
	}
	step := end.Sub(o.Time) / time.Duration(o.PollCount()-1)
	if step <= 0 {
		return o.Time
	}
	return o.Time.Add(t.Sub(o.Time) / step * step)
}

// RTTHigh is the highest RTT of the polls the observation stands for.
func (o Observation) RTTHigh() time.Duration {
	if o.PollCount() > 1 {
		return o.RTTMax
	}
	return o.RTT
}

// LagHigh is the highest protection lag of the polls, nil when none was known.
func (p ProcessObservation) LagHigh() *float64 {
	if p.LagMax != nil {
		return p.LagMax
	}
	return p.LagSeconds
}

// sameShape: b can join a's run (everything but the counters is equal).
func sameShape(a, b *Observation) bool {
	if a.Agent != b.Agent || a.Answered != b.Answered || a.State != b.State || a.Reason != b.Reason ||
		a.Role != b.Role || a.Cluster != b.Cluster || len(a.Processes) != len(b.Processes) {
		return false
	}
	for i := range a.Processes {
		p, q := &a.Processes[i], &b.Processes[i]
		if p.Name != q.Name || p.State != q.State || p.Reason != q.Reason || p.Generation != q.Generation ||
			p.AutoRestartSuspended != q.AutoRestartSuspended || (p.LagSeconds == nil) != (q.LagSeconds == nil) {
			return false
		}
	}
	return a.Time.Truncate(runStep).Equal(b.Time.Truncate(runStep))
}

func lowF(a, b *float64) *float64 {
	if a == nil || (b != nil && *b < *a) {
		return b
	}
	return a
}

func highF(a, b *float64) *float64 {
	if a == nil || (b != nil && *b > *a) {
		return b
	}
	return a
}

func pf(v float64) *float64 { return &v }

// absorb makes r stand also for o, which comes after it.
func absorb(r *Observation, o Observation) {
	lowRTT, highRTT := r.RTT, r.RTT
	if r.PollCount() > 1 {
		lowRTT, highRTT = r.RTTMin, r.RTTMax
	}
	oLow, oHigh := o.RTT, o.RTT
	if o.PollCount() > 1 {
		oLow, oHigh = o.RTTMin, o.RTTMax
	}
	r.RTTMin, r.RTTMax = min(lowRTT, oLow), max(highRTT, oHigh)
	for i := range r.Processes {
		p, q := &r.Processes[i], o.Processes[i]
		lo, hi := p.LagSeconds, p.LagSeconds
		if p.LagMin != nil {
			lo, hi = p.LagMin, p.LagMax
		}
		qlo, qhi := q.LagSeconds, q.LagSeconds
		if q.LagMin != nil {
			qlo, qhi = q.LagMin, q.LagMax
		}
		if l := lowF(lo, qlo); l != nil {
			p.LagMin = pf(*l)
		}
		if h := highF(hi, qhi); h != nil {
			p.LagMax = pf(*h)
		}
		p.LagSeconds = q.LagSeconds
	}
	r.Polls = r.PollCount() + o.PollCount()
	r.Until = o.End()
	r.RTT, r.BudgetSeconds = o.RTT, o.BudgetSeconds
}

// thin turns one agent's observations (in time order; some may be runs
// already) into runs. Observations with the same time are the same poll:
// the later copy is dropped.
func thin(obs []Observation) []Observation {
	var out []Observation
	for _, o := range obs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if o.Time.Equal(last.Time) || (!o.Time.After(last.End())) {
				continue
			}
			if sameShape(last, &o) {
				absorb(last, o)
				continue
			}
		}
		o.Processes = slices.Clone(o.Processes)
		out = append(out, o)
	}
	return out
}

// sortByTime orders observations by time, stable.
func sortByTime(obs []Observation) {
	slices.SortStableFunc(obs, func(a, b Observation) int { return a.Time.Compare(b.Time) })
}
