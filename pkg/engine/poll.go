// The per-poll pipeline: poll one agent, then turn its answer (or silence)
// into states, actions, history records and events.

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/outage"
	"github.com/vigil-cdp/vigil/pkg/poller"
	"github.com/vigil-cdp/vigil/pkg/remediation"
	"github.com/vigil-cdp/vigil/pkg/response"
	"github.com/vigil-cdp/vigil/pkg/state"
	"github.com/vigil-cdp/vigil/pkg/textlimit"
)

// budgetFor computes an agent's budget from its record; e.mu must be held
// for reading (or the engine not yet shared).
func (e *Engine) budgetFor(a fleet.Agent, rec agentRecord, cluster string) outage.Budget {
	// Compute only reads the silences: the agent's own map serves as it is,
	// copied only to add its cluster's failovers.
	sil := e.silences[a.Name]
	if cluster != "" {
		sil = maps.Clone(sil)
		if sil == nil {
			sil = map[outage.Kind][]time.Duration{}
		}
		sil[outage.Failover] = e.failover[cluster]
	}
	return outage.Compute(outage.Inputs{Policy: a.Policy, InCluster: cluster != "", RTTs: rec.RTTs, Silences: sil})
}

// pollOne polls one agent and processes the result. Polls and actions of one
// agent never overlap.
func (e *Engine) pollOne(ctx context.Context, rt *agentRT) { e.pollIfOlder(ctx, rt, 0) }

// pollIfOlder is pollOne when the agent's last poll was sent maxAge ago or
// more (or never); maxAge 0 always polls. The age is read once rt.mu is
// held, so a caller that waited for another's poll sees it.
func (e *Engine) pollIfOlder(ctx context.Context, rt *agentRT, maxAge time.Duration) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	e.mu.RLock()
	last := rt.snap.LastPollAt
	e.mu.RUnlock()
	if maxAge > 0 && !last.IsZero() && e.clock.Now().Sub(last) < maxAge {
		return
	}
	e.mu.RLock()
	cfg := rt.cfg
	e.mu.RUnlock()
	if !e.owns(cfg) {
		// Another monitor polls it (see shared.go).
		rt.owned = false
		return
	}
	if e.opts.Membership != nil && !rt.owned {
		e.adopt(rt, cfg)
		rt.owned = true
	}
	e.mu.RLock()
	// The poll's timeout is the budget's response time and processing. They
	// depend on the policy and the RTTs alone: after a poll, snap.Budget was
	// computed from both as they are, and serves until a reconfiguration.
	budget := rt.snap.Budget
	if !rt.budgetCurrent {
		budget = e.budgetFor(cfg, rt.rec, rt.snap.Cluster)
	}
	e.mu.RUnlock()
	if rt.rec.FirstPollAt.IsZero() {
		rt.rec.FirstPollAt = e.clock.Now()
	}
	if cfg.Pushes() {
		e.takeRelayed(ctx, rt, cfg)
		e.freshness(ctx, rt, cfg, budget.ResponseTime+budget.Processing)
		return
	}
	res := e.poller.Poll(ctx, poller.Target{Agent: toClient(cfg), Timeout: budget.ResponseTime + budget.Processing})
	if ctx.Err() != nil {
		// Shutting down: a cancelled poll says nothing about the agent.
		return
	}
	e.processPoll(ctx, rt, cfg, res)
}

// processPoll turns one poll into states, actions, records and events. rt.mu is held.
func (e *Engine) processPoll(ctx context.Context, rt *agentRT, cfg fleet.Agent, res poller.Result) {
	now := e.clock.Now()
	rec := &rt.rec
	e.mu.RLock()
	prev := cloneSnap(rt.snap)
	e.mu.RUnlock()
	snap := cloneSnap(prev)
	snap.LastPollAt, snap.LastError = res.At, ""
	var events []Event
	var batch history.Batch

	switch {
	case res.Silent():
		snap.LastError = errText(res.Err)
		if rec.SilentSince.IsZero() {
			rec.SilentSince = res.At
		}
		snap.SilentSince = rec.SilentSince
		since := rec.LastAnswerAt
		if since.IsZero() {
			since = rec.FirstPollAt
		}
		if cfg.Pushes() {
			// A report was due an interval after the last one.
			since = since.Add(cfg.ReportEvery)
		}
		e.mu.RLock()
		snap.Budget = e.budgetFor(cfg, *rec, snap.Cluster)
		e.mu.RUnlock()
		j := snap.Budget.Judge(now.Sub(since))
		snap.State, snap.Reason = j.State, j.Reason
		if rec.LastAnswerAt.IsZero() {
			snap.Reason = "never answered; " + j.Reason
		}
		for i := range snap.Processes {
			snap.Processes[i].State, snap.Processes[i].Reason = j.State, j.Reason
		}
		if j.State == state.Failed && prev.State != state.Failed {
			if cfg.Pushes() {
				snap.Diagnosis = "not diagnosed: a push agent is not reachable from the monitor"
			} else {
				dctx, cancel := context.WithTimeout(ctx, e.opts.DiagnoseTimeout)
				snap.Diagnosis = e.client.Diagnose(dctx, toClient(cfg)).String()
				cancel()
			}
			e.log.Warn("agent failed", "agent", cfg.Name, "reason", snap.Reason, "diagnosis", snap.Diagnosis, "error", snap.LastError)
		}

	case res.Err != nil:
		snap.LastError = errText(res.Err)
		var ae *agentclient.Error
		if errors.As(res.Err, &ae) && ae.Fault == agentclient.FaultConfig {
			// Nothing was sent: this says nothing about the agent's silence.
			e.unknown(&snap, "cannot poll this agent: "+ae.Detail)
		} else {
			// It answered, so it is not silent, but not with a status.
			e.answered(rec, snap.Cluster, nil, res)
			snap.SilentSince, snap.LastAnswerAt, snap.RTT = time.Time{}, res.At, res.Answer.RTT
			e.unknown(&snap, "the agent answered with an error: "+errText(res.Err))
		}
		e.mu.RLock()
		snap.Budget = e.budgetFor(cfg, *rec, snap.Cluster)
		e.mu.RUnlock()

	default:
		st, err := response.Parse(res.Answer.Body)
		if err == nil && len(st.Processes) > MaxProcesses {
			err = fmt.Errorf("processes: %d listed, the monitor judges at most %d", len(st.Processes), MaxProcesses)
		}
		if err != nil {
			e.answered(rec, snap.Cluster, nil, res)
			snap.SilentSince, snap.LastAnswerAt, snap.RTT = time.Time{}, res.At, res.Answer.RTT
			snap.LastError = err.Error()
			e.unknown(&snap, "the answer could not be understood: "+err.Error())
			e.mu.RLock()
			snap.Budget = e.budgetFor(cfg, *rec, snap.Cluster)
			e.mu.RUnlock()
			break
		}
		boundStatus(&st)
		obs := response.Classify(st)
		cluster := obs.Cluster
		if cluster == "" {
			cluster = cfg.Cluster
		}
		if sil, ok := e.silenceEnded(cfg.Name, rec, prev.Role, obs, cluster, res.At); ok {
			batch.Silences = append(batch.Silences, sil)
			e.mu.Lock()
			e.addSilence(sil)
			e.mu.Unlock()
		}
		e.answered(rec, cluster, &st, res)
		snap.SilentSince, snap.LastAnswerAt, snap.RTT, snap.Diagnosis = time.Time{}, res.At, res.Answer.RTT, ""
		snap.Cluster, snap.Node, snap.Role = cluster, obs.Node, obs.Role
		snap.AgentID, snap.Version, snap.Hostname, snap.AgentStartedAt = st.Agent.ID, st.Agent.Version, st.Agent.Hostname, st.Agent.StartedAt
		e.mu.RLock()
		snap.Budget = e.budgetFor(cfg, *rec, cluster)
		e.mu.RUnlock()
		events = append(events, e.remediate(ctx, rt, cfg, &snap, obs)...)
		if !cfg.Pushes() {
			e.fetchAgentEvents(ctx, rt, cfg, &batch, prev, st)
		}
	}

	// Everything recorded from this answer is bounded (see limits.go).
	boundSnapshot(&snap)
	for i := range events {
		boundEvent(&events[i])
	}
	// Actions were stamped when they happened; state changes follow them.
	changes := stateChanges(prev, snap, e.clock.Now())
	events = append(events, changes...)
	rec.Snapshot = snap
	batch.Events = append(batch.Events, events...)
	if ev, ok := rt.notes.notice(cfg.Name, now); ok {
		batch.Events = append(batch.Events, ev)
	}
	batch.Observations = append(batch.Observations, observation(snap, res.At, snap.LastAnswerAt.Equal(res.At)))
	// The resume record is written when something in it matters; the time of
	// the last answer is also in every observation, so a quiet agent's record
	// can wait.
	// A push agent's last accepted report is kept at once: after a crash of
	// the monitor, a replay of a report it accepted must still be refused.
	urgent := len(batch.Events) > 0 || len(batch.Silences) > 0 || significant(prev, snap) || rt.savedEventsSince != rec.EventsSince ||
		rt.savedReportSeq != rec.ReportSeq
	if e.hist != nil && (urgent || now.Sub(rt.savedAt) >= recordEvery) {
		if raw, err := marshalRecord(rec); err == nil {
			batch.Agents = map[string][]byte{cfg.Name: raw}
			// Only counters changed: the store may write it later (see pkg/history).
			batch.AgentsCanWait = !urgent
			rt.savedAt, rt.savedEventsSince, rt.savedReportSeq = now, rec.EventsSince, rec.ReportSeq
		}
	}
	if e.hist != nil {
		if err := e.hist.Append(batch); err != nil {
			e.log.Error("history write failed", "agent", cfg.Name, "error", err)
		}
	}
	e.mu.Lock()
	if cur, ok := e.agents[cfg.Name]; ok && cur == rt {
		rt.snap = snap
		// Unless a reconfiguration changed the policy during the poll.
		rt.budgetCurrent = rt.cfg.Policy == cfg.Policy
		rt.judged = true
		e.checkFirstRound()
	}
	e.mu.Unlock()
	e.emit(onlyPublic(events))
	e.runHandlers(ctx, snap.Cluster, changes)
}

func marshalRecord(rec *agentRecord) ([]byte, error) { return json.Marshal(rec) }

// recordEvery bounds how old a quiet agent's resume record may get.
const recordEvery = time.Minute

// significant reports a change worth writing the resume record for.
func significant(prev, next AgentSnapshot) bool {
	if prev.State != next.State || prev.Reason != next.Reason || prev.Role != next.Role || prev.Cluster != next.Cluster ||
		!prev.SilentSince.Equal(next.SilentSince) || !prev.AgentStartedAt.Equal(next.AgentStartedAt) || len(prev.Processes) != len(next.Processes) {
		return true
	}
	for i, p := range next.Processes {
		q := prev.Processes[i]
		if p.Name != q.Name || p.State != q.State || p.Reason != q.Reason || p.Generation != q.Generation ||
			p.AutoRestartSuspended != q.AutoRestartSuspended || p.LastAction != q.LastAction {
			return true
		}
	}
	return false
}

func onlyPublic(events []Event) []Event {
	out := events[:0:0]
	for _, ev := range events {
		if ev.Type == history.TypeState || ev.Type == history.TypeAction || ev.Type == history.TypeHandler {
			out = append(out, ev)
		}
	}
	return out
}

func errText(err error) string {
	var ae *agentclient.Error
	if errors.As(err, &ae) {
		return ae.Detail
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// unknown makes the agent and its processes UNKNOWN with one reason.
func (e *Engine) unknown(snap *AgentSnapshot, reason string) {
	snap.State, snap.Reason = state.Unknown, reason
	for i := range snap.Processes {
		snap.Processes[i].State, snap.Processes[i].Reason = state.Unknown, reason
	}
}

// answered records an answer: the silence is over.
func (e *Engine) answered(rec *agentRecord, cluster string, st *response.Status, res poller.Result) {
	rec.LastAnswerAt = res.At
	rec.SilentSince = time.Time{}
	if st != nil {
		rec.LastStatus = st
		rec.RTTs = append(rec.RTTs, res.Answer.RTT)
		if len(rec.RTTs) > keepRTTs {
			rec.RTTs = slices.Clone(rec.RTTs[len(rec.RTTs)-keepRTTs:])
		}
	}
}

// silenceEnded files the silence an answer ends, with its kind, for
// measured mode.
func (e *Engine) silenceEnded(name string, rec *agentRecord, prevRole string, obs response.Observation, cluster string, at time.Time) (history.Silence, bool) {
	if rec.SilentSince.IsZero() || rec.LastStatus == nil || rec.LastAnswerAt.IsZero() {
		return history.Silence{}, false
	}
	failover := prevRole != "" && obs.Role != prevRole
	kind := outage.KindOfSilence(*rec.LastStatus, obs.Status, failover)
	return history.Silence{Agent: name, Cluster: cluster, Kind: string(kind), Start: rec.LastAnswerAt, Duration: at.Sub(rec.LastAnswerAt)}, true
}

// peer says whether process name is confirmed running on the active node of
// cluster, other than self.
func (e *Engine) peer(cluster, self, name string) remediation.Peer {
	if cluster == "" {
		return remediation.Peer{}
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, rt := range e.agents {
		s := rt.snap
		if rt.name == self || s.Cluster != cluster || s.Role != response.RoleActive {
			continue
		}
		switch s.State {
		case state.Grace, state.Failed, state.Unknown:
			continue
		}
		for _, p := range s.Processes {
			if p.Name == name && p.Verdict == response.Running.String() {
				return remediation.Peer{Confirmed: true, Node: s.Name}
			}
		}
	}
	return remediation.Peer{}
}

// remediate judges every process, acts where needed and fills snap.
func (e *Engine) remediate(ctx context.Context, rt *agentRT, cfg fleet.Agent, snap *AgentSnapshot, obs response.Observation) []Event {
	var events []Event
	procs := make([]ProcessSnapshot, 0, len(obs.Processes))
	for _, v := range obs.Processes {
		tr := rt.rec.Trackers[v.Name]
		if tr == nil {
			tr = &remediation.Tracker{}
			rt.rec.Trackers[v.Name] = tr
		}
		var peer remediation.Peer
		if v.Verdict == response.RunningNotExpected {
			peer = e.peer(snap.Cluster, cfg.Name, v.Name)
		}
		now := e.clock.Now()
		d := tr.Decide(cfg.AutoRestart, now, v, peer)
		st, reason := d.State, d.Reason
		if d.Note != "" {
			events = append(events, Event{Type: history.TypeNote, Time: now, Agent: cfg.Name, Process: v.Name, Reason: d.Note})
			e.log.Info(d.Note, "agent", cfg.Name, "process", v.Name)
		}
		if d.Action != remediation.None {
			var ev Event
			var o remediation.Outcome
			ev, o, _, _ = e.act(ctx, cfg, tr, d.Action, v.Name, remediation.Automatic, v.Reason, &d.IfGeneration)
			events = append(events, ev)
			st, reason = o.State, o.Reason
			if o.Tripped {
				e.log.Warn("flap guard tripped: auto-restart suspended", "agent", cfg.Name, "process", v.Name, "reason", o.Reason)
			}
		}
		ps := ProcessSnapshot{
			Name: v.Name, State: st, Reason: reason, Verdict: v.Verdict.String(), AgentState: v.State,
			Expected: v.Expected, Generation: v.Generation, PID: v.PID,
			AutoRestartSuspended: tr.Suspended, LastAction: tr.LastAction,
		}
		if lag, ok := v.LagSeconds(); ok {
			ps.LagSeconds = &lag
			if fleet.LagBeyondRPO(lag, cfg.RPO) && ps.State == state.OK {
				ps.State = state.Degraded
				ps.Reason = fmt.Sprintf("protection lag %s exceeds RPO %s", outage.Seconds(response.Duration(lag)), outage.Seconds(cfg.RPO))
				// Why it lags: what the replicator is doing instead of watching, and what it says
				// (while watching too: paths it cannot cover keep the lag growing).
				if pr := v.Protection; pr != nil {
					var why []string
					if pr.State != nil && *pr.State != "watching" {
						why = append(why, *pr.State)
					}
					if pr.Message != nil && *pr.Message != "" {
						why = append(why, *pr.Message)
					}
					if len(why) > 0 {
						ps.Reason += " (" + strings.Join(why, ": ") + ")"
					}
				}
			}
		}
		procs = append(procs, ps)
	}
	snap.Processes = procs
	snap.State, snap.Reason = worst(procs)
	// A tracker is the memory of a process the agent supervises: one it no
	// longer reports (removed from its configuration, or a name that never
	// existed, kept by an older version) is forgotten.
	for name := range rt.rec.Trackers {
		if !slices.ContainsFunc(procs, func(p ProcessSnapshot) bool { return p.Name == name }) {
			delete(rt.rec.Trackers, name)
		}
	}
	return events
}

// act performs one restart or stop and records its outcome in tr.
func (e *Engine) act(ctx context.Context, cfg fleet.Agent, tr *remediation.Tracker, kind remediation.Kind, process string, by remediation.Actor, reason string, ifGen *int64) (Event, remediation.Outcome, agentclient.StartResult, error) {
	actx, cancel := context.WithTimeout(ctx, e.opts.ActionTimeout)
	defer cancel()
	requestedBy := by.Login
	if !by.Person {
		requestedBy = e.opts.RequestedBy
	}
	req := agentclient.ControlRequest{IfGeneration: ifGen, Reason: reason, RequestedBy: requestedBy}
	var gen int64
	if ifGen != nil {
		gen = *ifGen
	}
	var err error
	var started agentclient.StartResult
	switch {
	case cfg.Pushes():
		// The monitor cannot call a push agent: the request goes into the
		// answer to its report, and the next report shows the outcome.
		gen, err = e.request(cfg, string(kind), process, ifGen, reason, requestedBy)
		if err == nil && kind == remediation.Restart {
			gen++
			started.Generation = gen
		}
	case kind == remediation.Restart:
		started, err = e.client.Restart(actx, toClient(cfg), process, req)
		if err == nil {
			gen = started.Generation
		}
	case kind == remediation.Stop:
		var r agentclient.StopResult
		r, err = e.client.Stop(actx, toClient(cfg), process, req)
		if err == nil {
			gen = r.Generation
		}
	}
	now := e.clock.Now()
	var stale *agentclient.StaleGenerationError
	isStale := errors.As(err, &stale)
	if isStale {
		gen = stale.Current
	}
	ev := Event{Type: history.TypeAction, Time: now, Agent: cfg.Name, Process: process, Action: string(kind), By: by.Login, Manual: by.Person, Generation: gen, Result: "ok"}
	if cfg.Pushes() && err == nil {
		ev.Result = "requested"
	}
	if err != nil {
		ev.Result, ev.Error = "failed", err.Error()
	}
	var o remediation.Outcome
	var recErr error
	if !isStale {
		recErr = err
	}
	if kind == remediation.Restart {
		o = tr.RecordRestart(cfg.AutoRestart, now, by, gen, isStale, recErr)
	} else {
		o = tr.RecordStop(cfg.AutoRestart, now, by, gen, isStale, recErr)
	}
	// The error may quote the agent: it is kept in the resume record.
	tr.LastError = textlimit.Clip(tr.LastError, MaxTextBytes)
	if tr.LastAction != nil {
		tr.LastAction.Error = textlimit.Clip(tr.LastAction.Error, MaxTextBytes)
	}
	o.Reason = textlimit.Clip(o.Reason, MaxTextBytes)
	e.log.Info("action", "agent", cfg.Name, "process", process, "action", kind, "by", by.Login, "person", by.Person, "generation", gen, "result", ev.Result, "error", ev.Error)
	return ev, o, started, err
}

func worst(procs []ProcessSnapshot) (state.State, string) {
	if len(procs) == 0 {
		return state.Unknown, "the agent supervises no process"
	}
	w := procs[0]
	for _, p := range procs[1:] {
		if p.State.Severity() > w.State.Severity() {
			w = p
		}
	}
	if len(procs) == 1 {
		return w.State, w.Reason
	}
	return w.State, w.Name + ": " + w.Reason
}

// stateChanges compares two snapshots: the agent as a whole, then every
// process (a new one is a change from UNKNOWN).
func stateChanges(prev, next AgentSnapshot, now time.Time) []Event {
	budget := next.Budget.Total.Seconds()
	var out []Event
	if prev.State != next.State {
		ev := Event{Type: history.TypeState, Time: now, Agent: next.Name, From: prev.State, To: next.State, Reason: next.Reason, BudgetSeconds: budget}
		if next.State == state.Failed {
			ev.Diagnosis = next.Diagnosis
		}
		out = append(out, ev)
	}
	before := map[string]state.State{}
	for _, p := range prev.Processes {
		before[p.Name] = p.State
	}
	for _, p := range next.Processes {
		from, ok := before[p.Name]
		if !ok {
			from = state.Unknown
		}
		if from != p.State {
			out = append(out, Event{Type: history.TypeState, Time: now, Agent: next.Name, Process: p.Name, From: from, To: p.State, Reason: p.Reason, BudgetSeconds: budget})
		}
	}
	return out
}

func observation(s AgentSnapshot, at time.Time, answered bool) history.Observation {
	o := history.Observation{Time: at, Answered: answered, Agent: s.Name, State: s.State, Reason: s.Reason, RTT: s.RTT,
		BudgetSeconds: s.Budget.Total.Seconds(), Role: s.Role, Cluster: s.Cluster}
	for _, p := range s.Processes {
		o.Processes = append(o.Processes, history.ProcessObservation{Name: p.Name, State: p.State, Reason: p.Reason, Generation: p.Generation, LagSeconds: p.LagSeconds,
			AutoRestartSuspended: p.AutoRestartSuspended})
	}
	return o
}

// fetchAgentEvents copies the agent's own events into the history when its
// answer shows that something happened (or on the first answer, or when
// events were left to read), so none is lost across an engine restart. It
// keeps within the agent's bounds (limits.go): one page per poll, each event
// cut to its size, the history budget, and few re-reads from the start
// after agent.id changes; what they hold back is noted in rt.notes.
func (e *Engine) fetchAgentEvents(ctx context.Context, rt *agentRT, cfg fleet.Agent, batch *history.Batch, prev AgentSnapshot, st response.Status) {
	if e.hist == nil {
		return
	}
	rec := &rt.rec
	now := e.clock.Now()
	switch {
	case rec.EventsAgent == "":
		rec.EventsAgent, rec.EventsSince, rec.EventsMore = st.Agent.ID, 0, true
	case rec.EventsAgent != st.Agent.ID:
		rt.notes.idChanged(now)
		rec.IDResets = slices.DeleteFunc(rec.IDResets, func(t time.Time) bool { return now.Sub(t) >= time.Hour })
		if len(rec.IDResets) >= MaxIDResetsPerHour {
			// Still polled and judged; its log is read once its id settles.
			rt.notes.unread++
			return
		}
		rec.IDResets = append(rec.IDResets, now)
		rec.EventsAgent, rec.EventsSince, rec.EventsMore = st.Agent.ID, 0, true
	case !rec.EventsMore && !changed(prev, st):
		return
	}
	if rec.EventBudget.available(now) < fetchAtLeast {
		rt.notes.deferred++
		rec.EventsMore = true
		return
	}
	ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	page, err := e.client.Events(ectx, toClient(cfg), rec.EventsSince, MaxAgentEventsPerPoll)
	if err != nil {
		e.log.Debug("agent events not fetched", "agent", cfg.Name, "error", err)
		return
	}
	evs := page.Events
	if len(evs) > MaxAgentEventsPerPoll {
		rt.notes.dropped += len(evs) - MaxAgentEventsPerPoll
		evs = evs[:MaxAgentEventsPerPoll]
	}
	for i, ev := range evs {
		raw, cut := boundAgentEvent(ev)
		out := Event{Type: history.TypeAgent, Time: ev.Time, Agent: cfg.Name, Process: textlimit.Clip(ev.Process, MaxNameBytes), AgentEvent: raw}
		if !rec.EventBudget.take(now, storedSize(out)) {
			// The rest waits for the budget: the cursor stays after the
			// last event stored.
			rt.notes.deferred++
			rec.EventsMore = true
			if i > 0 && evs[i-1].Seq > rec.EventsSince {
				rec.EventsSince = evs[i-1].Seq
			}
			return
		}
		if cut {
			rt.notes.cut++
		}
		batch.Events = append(batch.Events, out)
	}
	rec.EventsMore = len(page.Events) >= MaxAgentEventsPerPoll && page.Next > rec.EventsSince
	rec.EventsSince = page.Next
}

// fetchAtLeast: the agent's events are read only when its budget can take
// this many bytes, so that an agent whose budget is spent is not asked for
// a page at every poll.
const fetchAtLeast = 64 << 10

// changed reports whether a status differs from the last snapshot in a way
// the agent records events for.
func changed(prev AgentSnapshot, st response.Status) bool {
	if !prev.AgentStartedAt.Equal(st.Agent.StartedAt) || len(prev.Processes) != len(st.Processes) {
		return true
	}
	if role := response.Classify(response.Status{Cluster: st.Cluster}).Role; role != prev.Role {
		return true
	}
	for i, p := range st.Processes {
		q := prev.Processes[i]
		if q.Name != p.Name || q.Generation != p.Generation || q.AgentState != p.State {
			return true
		}
	}
	return false
}
