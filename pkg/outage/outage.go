// Package outage decides how long an agent may stay silent (its timeout
// budget) and judges a silence against it: GRACE within the budget, FAILED
// beyond.
//
//	budget = response time + processing time + combine(applicable allowances)
//
// Response time is the configured value, or the measured RTT p99 when that is
// larger. The allowances are failover (only for cluster members), restart (of
// the machine or the agent), network interruption and application error
// recovery; combine is max (they are alternative explanations) or sum. In
// measured mode each allowance is learned from past silences of its kind: a
// percentile, clamped between a floor and a ceiling, once enough silences are
// known. Nothing a diagnosis finds ever shortens a budget.
package outage

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/response"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// Kind is a kind of disruption that legitimately silences an agent.
type Kind string

// The allowance kinds, in the order they are listed everywhere.
const (
	Failover            Kind = "failover"
	Restart             Kind = "restart"
	NetworkInterruption Kind = "network interruption"
	AppErrorRecovery    Kind = "app error recovery"
)

// Kinds lists every kind.
func Kinds() []Kind { return []Kind{Failover, Restart, NetworkInterruption, AppErrorRecovery} }

// Allowance is one part of a budget.
type Allowance struct {
	Kind  Kind          `json:"kind"`
	Value time.Duration `json:"value"`
	// Configured is the configured value; Value differs from it only when
	// Measured.
	Configured time.Duration `json:"configured"`
	Measured   bool          `json:"measured"`
	// Samples is how many past silences of this kind are known.
	Samples int `json:"samples"`
}

// Budget is the timeout budget in force for one agent, with its parts.
type Budget struct {
	Total time.Duration `json:"total"`
	// ResponseTime is the part in force: the configured value or the
	// measured RTT p99, whichever is larger.
	ResponseTime time.Duration `json:"responseTime"`
	RTTp99       time.Duration `json:"rttP99"`
	Processing   time.Duration `json:"processing"`
	// Allowances are the applicable ones only (failover only in a cluster).
	Allowances []Allowance   `json:"allowances"`
	Combine    fleet.Combine `json:"combine"`
	Mode       fleet.Mode    `json:"mode"`
}

// Inputs is what a budget is computed from.
type Inputs struct {
	Policy fleet.Policy
	// InCluster makes the failover allowance apply.
	InCluster bool
	// RTTs are recent round-trip times of successful polls.
	RTTs []time.Duration
	// Silences are the durations of past silences by kind (measured mode);
	// failover silences may come from the whole cluster.
	Silences map[Kind][]time.Duration
}

// Compute returns the budget in force.
func Compute(in Inputs) Budget {
	b := in.Policy.Budget
	out := Budget{ResponseTime: b.ResponseTime, Processing: b.Processing, Combine: b.Combine, Mode: b.Mode}
	if len(in.RTTs) > 0 {
		out.RTTp99 = Percentile(in.RTTs, 99)
		out.ResponseTime = max(out.ResponseTime, out.RTTp99)
	}
	configured := func(k Kind) time.Duration {
		switch k {
		case Failover:
			return b.Failover
		case Restart:
			return b.Restart
		case NetworkInterruption:
			return b.NetworkInterruption
		case AppErrorRecovery:
			return b.AppErrorRecovery
		}
		return 0
	}
	var combined time.Duration
	out.Allowances = make([]Allowance, 0, len(Kinds()))
	for _, k := range Kinds() {
		if k == Failover && !in.InCluster {
			continue
		}
		a := Allowance{Kind: k, Value: configured(k), Configured: configured(k), Samples: len(in.Silences[k])}
		m := in.Policy.Measured
		if b.Mode == fleet.ModeMeasured && a.Samples >= m.MinSamples && a.Samples > 0 {
			learned := Percentile(in.Silences[k], m.Percentile)
			a.Value = min(max(learned, m.Floor), m.Ceiling)
			a.Measured = true
		}
		out.Allowances = append(out.Allowances, a)
		if b.Combine == fleet.CombineSum {
			combined += a.Value
		} else {
			combined = max(combined, a.Value)
		}
	}
	out.Total = out.ResponseTime + out.Processing + combined
	return out
}

// Percentile is the nearest-rank percentile p (0 < p <= 100) of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// Allowance returns the allowance of a kind, if it applies.
func (b Budget) Allowance(k Kind) (Allowance, bool) {
	for _, a := range b.Allowances {
		if a.Kind == k {
			return a, true
		}
	}
	return Allowance{}, false
}

// Judgement is the state of a silent agent with its reason.
type Judgement struct {
	State  state.State
	Reason string
	// Spending names the allowance being spent (empty when FAILED or still
	// within the response time).
	Spending []Kind
	// Until is how long the current explanation lasts, counted from the last
	// answer.
	Until time.Duration
}

// Judge judges a silence of silentFor (since the last answer): GRACE while
// within the budget, with a reason that names the allowance being spent and
// how much of it is used ("awaiting failover: 12 s of 45 s"), FAILED beyond.
//
// With combine max every allowance is an alternative explanation; the reason
// names the shortest one that still covers the silence. With sum they are
// spent one after the other, shortest first.
func (b Budget) Judge(silentFor time.Duration) Judgement {
	if silentFor > b.Total {
		return Judgement{State: state.Failed, Reason: fmt.Sprintf("no answer for %s, budget %s", Seconds(silentFor), Seconds(b.Total))}
	}
	base := b.ResponseTime + b.Processing
	if silentFor <= base {
		return Judgement{State: state.Grace, Until: base,
			Reason: fmt.Sprintf("awaiting an answer: %s of %s", Seconds(silentFor), Seconds(base))}
	}
	type step struct {
		until time.Duration
		kinds []Kind
	}
	allow := slices.Clone(b.Allowances)
	sort.SliceStable(allow, func(i, j int) bool { return allow[i].Value < allow[j].Value })
	var steps []step
	acc := base
	for _, a := range allow {
		until := base + a.Value
		if b.Combine == fleet.CombineSum {
			acc += a.Value
			until = acc
		}
		if n := len(steps); n > 0 && steps[n-1].until == until {
			steps[n-1].kinds = append(steps[n-1].kinds, a.Kind)
			continue
		}
		steps = append(steps, step{until: until, kinds: []Kind{a.Kind}})
	}
	for _, s := range steps {
		if silentFor <= s.until {
			names := make([]string, len(s.kinds))
			for i, k := range s.kinds {
				names[i] = string(k)
			}
			return Judgement{State: state.Grace, Spending: s.kinds, Until: s.until,
				Reason: fmt.Sprintf("awaiting %s: %s of %s", strings.Join(names, " or "), Seconds(silentFor), Seconds(s.until))}
		}
	}
	// Only reachable when rounding puts silentFor between the last step and
	// Total, which are equal by construction.
	return Judgement{State: state.Grace, Until: b.Total, Reason: fmt.Sprintf("awaiting an answer: %s of %s", Seconds(silentFor), Seconds(b.Total))}
}

// Seconds formats a duration for a reason: whole seconds from 10 s, one
// decimal below ("0.4 s", "12 s").
func Seconds(d time.Duration) string {
	s := d.Seconds()
	if s >= 10 || s == math.Trunc(s) {
		return fmt.Sprintf("%d s", int64(math.Round(s)))
	}
	return fmt.Sprintf("%.1f s", s)
}

// KindOfSilence says what a silence turned out to be, from the answers
// before and after it. failover is true when the cluster's active node
// changed meanwhile (the caller knows the whole cluster).
func KindOfSilence(before, after response.Status, failover bool) Kind {
	switch {
	case failover:
		return Failover
	case !before.Agent.StartedAt.Equal(after.Agent.StartedAt) || before.Agent.ID != after.Agent.ID:
		return Restart
	}
	prev := map[string]response.Process{}
	for _, p := range before.Processes {
		prev[p.Name] = p
	}
	for _, p := range after.Processes {
		q, ok := prev[p.Name]
		if !ok || q.Generation != p.Generation || (p.LastExit != nil && p.LastExit.At.After(before.Time)) {
			return AppErrorRecovery
		}
	}
	return NetworkInterruption
}
