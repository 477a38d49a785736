package engine

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// Several monitors can divide one fleet (docs/ha.md): they share a history
// (history.Shared, PostgreSQL) and a Membership (pkg/cluster) tells each
// which agents it owns. Only the owner polls an agent and acts on it. An
// agent another monitor owns shows what that monitor last recorded: its
// resume record and its latest polls, read every poll interval.
//
// When an agent changes hands (a monitor joins, leaves or dies), the new
// owner resumes it from the shared resume record before its first poll:
// the GRACE clock (the last answer and the start of the silence), the
// back-off and flap trackers, the RTTs and the event cursor carry over, so
// that a handover neither resets nor extends a budget. A restart that two
// monitors send during an overlap is refused by the agent's generation
// guard (a recorded 409), as with replicas that each poll everything.

// Membership divides agents among monitors.
type Membership interface {
	// Owns reports whether this monitor owns the agents of key (see OwnerKey).
	Owns(key string) bool
	// Changes receives after every change of the members.
	Changes() <-chan struct{}
}

// OwnerKey is what an agent's owner is chosen by: its configured cluster,
// so that both nodes of a failover pair are judged by one monitor, else its
// name.
func OwnerKey(a fleet.Agent) string {
	if a.Cluster != "" {
		return "cluster:" + a.Cluster
	}
	return "agent:" + a.Name
}

// SharedView is this monitor's part in a divided fleet.
type SharedView struct {
	// Divided: a Membership divides the fleet.
	Divided bool `json:"divided"`
	// Owned: how many agents this monitor polls.
	Owned int `json:"owned"`
	// Unpolled: agents no monitor has recorded a poll of for two poll
	// intervals (known once the monitor has run that long).
	Unpolled []string `json:"unpolled"`
	// CheckedAt: when Unpolled was last computed (zero: not yet).
	CheckedAt time.Time `json:"checkedAt"`
	// Error: the shared history could not be read at the last check.
	Error string `json:"error,omitempty"`
}

// sharedState is what the engine keeps of a divided fleet.
type sharedState struct {
	mu        sync.Mutex
	view      SharedView
	fetchedAt time.Time // the last read of the shared resume records
	startedAt time.Time
}

// owns reports whether this engine polls the agent.
func (e *Engine) owns(cfg fleet.Agent) bool {
	return e.opts.Membership == nil || e.opts.Membership.Owns(OwnerKey(cfg))
}

// adopt resumes rt from the shared history before its first poll as owner;
// rt.mu is held.
func (e *Engine) adopt(rt *agentRT, cfg fleet.Agent) {
	shared, ok := e.hist.(history.Shared)
	if !ok {
		return
	}
	recs, err := shared.AgentRecords([]string{cfg.Name}, time.Time{})
	if err != nil {
		e.log.Warn("cannot read the shared resume record; the agent resumes from this monitor's", "agent", cfg.Name, "error", err)
		return
	}
	raw, ok := recs[cfg.Name]
	if !ok {
		return
	}
	var r agentRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		e.log.Warn("ignoring an unreadable shared resume record", "agent", cfg.Name, "error", err)
		return
	}
	if last, err := shared.LastAnswer(cfg.Name); err == nil && last.After(r.LastAnswerAt) {
		r.LastAnswerAt, r.Snapshot.LastAnswerAt = last, last
		if !r.SilentSince.IsZero() && !last.Before(r.SilentSince) {
			r.SilentSince, r.Snapshot.SilentSince = time.Time{}, time.Time{}
		}
	}
	if r.Trackers == nil {
		r.Trackers = rt.rec.Trackers
	}
	if r.FirstPollAt.IsZero() || (!rt.rec.FirstPollAt.IsZero() && rt.rec.FirstPollAt.Before(r.FirstPollAt)) {
		r.FirstPollAt = rt.rec.FirstPollAt
	}
	e.mu.Lock()
	rt.rec = r
	snap := cloneSnap(r.Snapshot)
	snap.URL, snap.Name = cfg.URL, cfg.Name
	rt.snap = snap
	rt.budgetCurrent = false
	e.mu.Unlock()
}

// sharedLoop keeps the agents other monitors own up to date and finds the
// agents nobody polls, every poll interval.
func (e *Engine) sharedLoop(ctx context.Context) {
	e.shared.mu.Lock()
	e.shared.startedAt = e.clock.Now()
	e.shared.mu.Unlock()
	var changes <-chan struct{}
	if e.opts.Membership != nil {
		changes = e.opts.Membership.Changes()
	}
	for {
		e.refreshShared()
		e.mu.RLock()
		every := e.cfg.PollInterval
		e.mu.RUnlock()
		t := e.clock.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-changes:
			t.Stop()
		case <-t.C():
		}
	}
}

// refreshShared reads what other monitors recorded.
func (e *Engine) refreshShared() {
	shared, ok := e.hist.(history.Shared)
	if !ok {
		return
	}
	now := e.clock.Now()
	e.shared.mu.Lock()
	since := e.shared.fetchedAt
	startedAt := e.shared.startedAt
	e.shared.mu.Unlock()
	if !since.IsZero() {
		// Records are stamped by the database's clock: a margin.
		since = since.Add(-time.Minute)
	}
	fetchStart := time.Now()
	// Only the records written since the last read: an agent's record
	// changes with its state, and the times come from the runs.
	recs, err := shared.AgentRecords(nil, since)
	var polls, answers map[string]time.Time
	if err == nil {
		polls, answers, err = shared.LastTimes()
	}
	e.mu.Lock()
	view := SharedView{Divided: e.opts.Membership != nil, CheckedAt: now}
	if err != nil {
		view.Error = err.Error()
	}
	for _, a := range e.cfg.Agents {
		rt := e.agents[a.Name]
		if rt == nil {
			continue
		}
		if e.owns(a) {
			view.Owned++
		} else if err == nil {
			e.showShared(rt, a, recs[a.Name], polls[a.Name], answers[a.Name])
		}
		if err == nil && now.Sub(startedAt) >= 2*e.cfg.PollInterval && now.Sub(polls[a.Name]) > 2*e.cfg.PollInterval {
			view.Unpolled = append(view.Unpolled, a.Name)
			if !e.owns(a) {
				// What its owner last recorded is no longer the agent's state.
				since := "the monitor started"
				if last := polls[a.Name]; !last.IsZero() {
					since = last.UTC().Format(time.RFC3339)
				}
				rt.snap.State, rt.snap.Reason = state.Unknown, "no monitor sharing the history has polled it since "+since
				for i := range rt.snap.Processes {
					rt.snap.Processes[i].State, rt.snap.Processes[i].Reason = state.Unknown, rt.snap.Reason
				}
			}
		}
	}
	e.mu.Unlock()
	slices.Sort(view.Unpolled)
	e.shared.mu.Lock()
	if err == nil {
		e.shared.fetchedAt = fetchStart
	}
	if err != nil && !e.shared.view.CheckedAt.IsZero() {
		// Keep the last known list; say why it is old.
		view.Unpolled = e.shared.view.Unpolled
	}
	e.shared.view = view
	e.shared.mu.Unlock()
}

// showShared makes a non-owned agent show what its owner recorded; e.mu is
// held for writing.
func (e *Engine) showShared(rt *agentRT, cfg fleet.Agent, raw []byte, lastPoll, lastAnswer time.Time) {
	if raw != nil {
		var r agentRecord
		// Only the snapshot: the record itself is rt.mu's, and is read
		// again when this monitor becomes the owner (adopt).
		if json.Unmarshal(raw, &r) == nil {
			snap := cloneSnap(r.Snapshot)
			snap.URL, snap.Name = cfg.URL, cfg.Name
			rt.snap = snap
			rt.budgetCurrent = false
			rt.judged = true
		}
	}
	if lastPoll.After(rt.snap.LastPollAt) {
		rt.snap.LastPollAt = lastPoll
	}
	if lastAnswer.After(rt.snap.LastAnswerAt) {
		rt.snap.LastAnswerAt = lastAnswer
	}
	e.checkFirstRound()
}

// Shared returns this monitor's part in a divided fleet.
func (e *Engine) Shared() SharedView {
	e.shared.mu.Lock()
	v := e.shared.view
	e.shared.mu.Unlock()
	v.Unpolled = slices.Clone(v.Unpolled)
	if v.CheckedAt.IsZero() {
		v.Divided = e.opts.Membership != nil
		e.mu.RLock()
		for _, a := range e.cfg.Agents {
			if e.owns(a) {
				v.Owned++
			}
		}
		e.mu.RUnlock()
	}
	return v
}
