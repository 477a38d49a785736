package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/poller"
	"github.com/vigil-cdp/vigil/pkg/report"
)

// Errors a pushed report is refused with (see Report).
var (
	// ErrReportRefused: no push agent of that name, or a bad signature (one
	// error for both, so that a refusal says nothing about which).
	ErrReportRefused = fmt.Errorf("%w: no push agent of that name, or a bad signature", report.ErrRefused)
	// ErrReportStale: not newer than the last report accepted (a replay).
	ErrReportStale = fmt.Errorf("%w: not newer than the last accepted", report.ErrStale)
)

// maxClockSkew is how far in the future a report's time may be.
const maxClockSkew = 5 * time.Minute

// Report processes one report an agent pushed (raw is the request body) as
// a poll's answer: the same response processing, remediation and records.
// Restarts and stops the engine decides for a push agent cannot be sent to
// it: they go into the signed answer, which the agent acts on with the same
// generation guard. A report is refused unless it is signed with the
// agent's own report token and is newer (sequence and time) than the last
// one accepted.
func (e *Engine) Report(ctx context.Context, raw []byte) ([]byte, error) {
	env, name, err := report.Peek(raw)
	if err != nil {
		return nil, err
	}
	e.mu.RLock()
	rt, ok := e.agents[name]
	var cfg fleet.Agent
	if ok {
		cfg = rt.cfg
	}
	e.mu.RUnlock()
	if !ok || !cfg.Pushes() || !cfg.ReportToken.IsSet() {
		return nil, ErrReportRefused
	}
	r, err := report.Open(env, cfg.ReportToken.Reveal())
	if errors.Is(err, report.ErrSignature) {
		return nil, ErrReportRefused
	}
	if err != nil {
		return nil, err
	}
	if !e.owns(cfg) {
		return e.relayReport(rt, cfg, r, raw)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if err := e.acceptReport(ctx, rt, cfg, r); err != nil {
		return nil, err
	}
	answer, err := report.Seal(report.Answer{Agent: name, Seq: r.Seq, Actions: rt.outbox}, cfg.ReportToken.Reveal())
	rt.outbox = nil
	return answer, err
}

// acceptReport judges one verified report as a poll's answer, unless it is
// a replay; rt.mu is held.
func (e *Engine) acceptReport(ctx context.Context, rt *agentRT, cfg fleet.Agent, r report.Report) error {
	name := cfg.Name
	now := e.clock.Now()
	rec := &rt.rec
	switch {
	case r.Seq <= rec.ReportSeq:
		return fmt.Errorf("%w: report %d of agent %q, the last accepted was %d", ErrReportStale, r.Seq, name, rec.ReportSeq)
	case r.SentAt.Before(rec.ReportSentAt):
		return fmt.Errorf("%w: report %d of agent %q was made at %s, before the last accepted (%s)", ErrReportStale, r.Seq, name,
			r.SentAt.UTC().Format(time.RFC3339Nano), rec.ReportSentAt.UTC().Format(time.RFC3339Nano))
	case r.SentAt.After(now.Add(maxClockSkew)):
		return fmt.Errorf("%w: report %d of agent %q was made at %s, more than %s ahead of this monitor's clock", ErrReportStale, r.Seq, name,
			r.SentAt.UTC().Format(time.RFC3339), maxClockSkew)
	}
	rec.ReportSeq, rec.ReportSentAt = r.Seq, r.SentAt
	if rec.FirstPollAt.IsZero() {
		rec.FirstPollAt = now
	}
	// What was queued since the last answer (a restart by a person) goes
	// with what this report's processing decides.
	e.processPoll(ctx, rt, cfg, poller.Result{At: now, Answer: agentclient.Answer{Body: r.Status}})
	if r.Dropped > 0 {
		e.log.Warn("a push agent could not send every change", "agent", name, "dropped", r.Dropped)
	}
	return nil
}

var _ ReportRelay = (*history.PGStore)(nil)

// ReportRelay is a shared history that passes the reports reaching a
// monitor that does not own their agent to the one that does.
type ReportRelay interface {
	PutReport(agent string, seq int64, raw []byte) error
	TakeReports(agent string) ([][]byte, error)
}

// relayReport keeps a report for the agent's owner, which judges it at its
// next look at the agent (within a poll interval), and answers the agent
// without actions: those the owner decides go in its answer to the next
// report that reaches it.
func (e *Engine) relayReport(rt *agentRT, cfg fleet.Agent, r report.Report, raw []byte) ([]byte, error) {
	relay, ok := e.hist.(ReportRelay)
	if !ok {
		return nil, fmt.Errorf("%w: this monitor does not own the agent and has no shared history to pass its report on", report.ErrUnavailable)
	}
	if err := relay.PutReport(cfg.Name, r.Seq, raw); err != nil {
		return nil, fmt.Errorf("%w: this monitor does not own the agent and could not pass its report on: %w", report.ErrUnavailable, err)
	}
	e.log.Debug("report passed on to the agent's owner", "agent", cfg.Name, "seq", r.Seq)
	return report.Seal(report.Answer{Agent: cfg.Name, Seq: r.Seq}, cfg.ReportToken.Reveal())
}

// takeRelayed judges, in order, the reports other monitors received for a
// push agent this one owns; rt.mu is held.
func (e *Engine) takeRelayed(ctx context.Context, rt *agentRT, cfg fleet.Agent) {
	relay, ok := e.hist.(ReportRelay)
	if !ok || e.opts.Membership == nil {
		return
	}
	raws, err := relay.TakeReports(cfg.Name)
	if err != nil {
		e.log.Warn("cannot read the reports other monitors received", "agent", cfg.Name, "error", err)
		return
	}
	for _, raw := range raws {
		env, _, err := report.Peek(raw)
		if err != nil {
			continue
		}
		r, err := report.Open(env, cfg.ReportToken.Reveal())
		if err != nil {
			continue
		}
		if err := e.acceptReport(ctx, rt, cfg, r); err != nil {
			e.log.Debug("a passed-on report was not taken", "agent", cfg.Name, "error", err)
		}
	}
}

// freshness is a push agent's "poll": nothing while its reports come, a
// silence judged by its budget once none came for an interval (plus the
// budget's response time and processing), counted from the last report
// plus the interval. rt.mu is held.
func (e *Engine) freshness(ctx context.Context, rt *agentRT, cfg fleet.Agent, slack time.Duration) {
	now := e.clock.Now()
	last := rt.rec.LastAnswerAt
	if last.IsZero() {
		last = rt.rec.FirstPollAt
	}
	if now.Sub(last) <= cfg.ReportEvery+slack {
		return
	}
	detail := fmt.Sprintf("no report since %s (every %s expected)", last.UTC().Format(time.RFC3339), cfg.ReportEvery)
	if rt.rec.LastAnswerAt.IsZero() {
		detail = fmt.Sprintf("no report yet (every %s expected)", cfg.ReportEvery)
	}
	e.processPoll(ctx, rt, cfg, poller.Result{At: now, Err: &agentclient.Error{Fault: agentclient.FaultNetwork, Agent: cfg.Name, Detail: detail}})
}

// request queues a restart or stop for a push agent's next answer.
func (e *Engine) request(cfg fleet.Agent, action, process string, ifGen *int64, reason, requestedBy string) (int64, error) {
	e.mu.RLock()
	rt := e.agents[cfg.Name]
	e.mu.RUnlock()
	if rt == nil {
		return 0, fmt.Errorf("%w: %q", ErrUnknownAgent, cfg.Name)
	}
	gen := int64(-1)
	if ifGen != nil {
		gen = *ifGen
	}
	// rt.mu is held by the caller (a report's processing, or a restart by
	// a person).
	for _, q := range rt.outbox {
		if q.Action == action && q.Process == process && q.IfGeneration == gen && gen >= 0 {
			// Already waiting for the next answer (reports passed on by
			// another monitor are judged before one reaches this one).
			return gen, nil
		}
	}
	rt.outbox = append(rt.outbox, report.Request{Action: action, Process: process, IfGeneration: gen, Reason: reason, RequestedBy: requestedBy})
	return gen, nil
}
