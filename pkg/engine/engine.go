// Package engine is Vigil's monitor: it polls every agent of a fleet, judges
// each answer (package response), decides how long silence is tolerated
// (package outage), restarts or stops CDP where needed (package remediation),
// and records everything (package history). The CLI and the Grafana
// datasource both drive this one engine; it knows nothing of either.
//
// Use:
//
//	e, err := engine.New(cfg, engine.Options{History: store, Sink: engine.SinkFunc(print)})
//	go e.Run(ctx)                  // polls every cfg.PollInterval, with jitter
//	e.PollNow(ctx, "")             // poll every agent now and wait (or one agent by name)
//	e.PollIfOlder(ctx, "", time.Minute) // the same, sparing agents polled within the minute
//	snap := e.Snapshot()           // state per agent and process, reason, RTT, budget...
//	e.Restart(ctx, "node-a", "cdp", "alice", "after maintenance", engine.AnyGeneration)
//	e.Reconfigure(newCfg)
//
// Every state change and every action goes to the Sink as an Event, after it
// is written to the history. The first observation of an agent is a change
// from UNKNOWN; after a restart of the engine with the same history, agents
// resume in the state they were in, and an agent that was silent keeps its
// GRACE clock (the silence is counted from its last answer).
//
// Time comes only from Options.Clock, so every rule is testable with
// clock.Fake.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/handlers"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/outage"
	"github.com/vigil-cdp/vigil/pkg/poller"
	"github.com/vigil-cdp/vigil/pkg/remediation"
	"github.com/vigil-cdp/vigil/pkg/report"
	"github.com/vigil-cdp/vigil/pkg/response"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// Event is one state change or action (see history.Event for its JSON form).
type Event = history.Event

// Sink receives every event, in order per agent, after it is stored.
// Emit is called from polling goroutines; it must not block for long.
type Sink interface {
	Emit(Event)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Event)

// Emit implements Sink.
func (f SinkFunc) Emit(e Event) { f(e) }

// History is what the engine needs of a store; *history.Store implements it.
type History interface {
	// Append writes one poll's records durably before returning.
	Append(b history.Batch) error
	// Agents returns the resume records written by Append.
	Agents() (map[string][]byte, error)
	// Silences returns every known past silence.
	Silences() ([]history.Silence, error)
	// LastAnswers returns, by agent, the time of the latest answered poll.
	LastAnswers() (map[string]time.Time, error)
	// Prune deletes what is older than the store's retention.
	Prune(now time.Time) error
}

var (
	_ History = (*history.Store)(nil)
	_ History = (*history.PGStore)(nil)
)

// AnyGeneration, as ifGeneration, restarts whatever generation runs.
const AnyGeneration int64 = -1

// Options are the engine's collaborators; every one has a default.
type Options struct {
	// Clock: the system clock by default.
	Clock clock.Clock
	// Client talks to agents: agentclient.New(nil) by default.
	Client agentclient.API
	// History stores observations and events and lets the engine resume;
	// nil keeps nothing.
	History History
	// Logger: discarded by default.
	Logger *slog.Logger
	// Sink receives state changes and actions; nil drops them.
	Sink Sink
	// Concurrency limits polls in flight (poller.DefaultConcurrency).
	Concurrency int
	// Jitter spreads polls: the first within Jitter×interval, the following
	// ones interval ± Jitter/2×interval. Default 0.1; negative means none.
	Jitter float64
	// MinPollInterval lowers the fleet's 1 s minimum (tests with real
	// agents poll faster).
	MinPollInterval time.Duration
	// ActionTimeout bounds one restart or stop (default 60 s).
	ActionTimeout time.Duration
	// DiagnoseTimeout bounds the diagnosis of an agent turning FAILED
	// (default 3 s).
	DiagnoseTimeout time.Duration
	// RequestedBy is sent to agents as requestedBy for automatic actions
	// (default "vigil auto-restart"); events say "auto".
	RequestedBy string
	// Handlers configures how the fleet's handlers run (the datasource
	// refuses commands and limits URLs); its Clock is the engine's.
	Handlers handlers.Options
	// Membership divides the fleet among monitors sharing a history (see
	// shared.go); nil: this engine polls every agent.
	Membership Membership
}

// ProcessSnapshot is the state of one process.
type ProcessSnapshot struct {
	Name   string      `json:"name"`
	State  state.State `json:"state"`
	Reason string      `json:"reason"`
	// Verdict is what the latest answer said ("running", "down", ...).
	Verdict string `json:"verdict"`
	// AgentState is the agent's word: running, starting, stopping, stopped, crashed.
	AgentState           string                  `json:"agentState"`
	Expected             bool                    `json:"expected"`
	Generation           int64                   `json:"generation"`
	PID                  *int64                  `json:"pid,omitempty"`
	LagSeconds           *float64                `json:"lagSeconds,omitempty"`
	AutoRestartSuspended bool                    `json:"autoRestartSuspended"`
	LastAction           *remediation.LastAction `json:"lastAction,omitempty"`
}

// AgentSnapshot is the state of one agent.
type AgentSnapshot struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Cluster is the reported cluster, else the configured one.
	Cluster string `json:"cluster,omitempty"`
	Node    string `json:"node,omitempty"`
	// Role is standalone, active, passive or unknown ("" before any answer).
	Role   string      `json:"role,omitempty"`
	State  state.State `json:"state"`
	Reason string      `json:"reason"`
	// RTT of the latest answer.
	RTT          time.Duration `json:"rtt"`
	LastPollAt   time.Time     `json:"lastPollAt"`
	LastAnswerAt time.Time     `json:"lastAnswerAt"`
	// SilentSince is the first unanswered poll of the current silence.
	SilentSince time.Time `json:"silentSince"`
	// Budget is the timeout budget in force, with its parts.
	Budget outage.Budget `json:"budget"`
	// LastError is why the latest poll failed, if it did.
	LastError string `json:"lastError,omitempty"`
	// Diagnosis is from when the agent last turned FAILED.
	Diagnosis      string            `json:"diagnosis,omitempty"`
	AgentID        string            `json:"agentId,omitempty"`
	Version        string            `json:"version,omitempty"`
	Hostname       string            `json:"hostname,omitempty"`
	AgentStartedAt time.Time         `json:"agentStartedAt"`
	Processes      []ProcessSnapshot `json:"processes"`
	// Judged is true once this engine has polled and judged the agent; a
	// state restored from the history, or "not polled yet", is not judged.
	Judged bool `json:"-"`
}

// LastRestart is the most recent restart of any of the agent's processes.
func (a AgentSnapshot) LastRestart() *remediation.LastAction {
	var last *remediation.LastAction
	for _, p := range a.Processes {
		if la := p.LastAction; la != nil && la.Kind == remediation.Restart && (last == nil || la.At.After(last.At)) {
			last = la
		}
	}
	return last
}

// MaxLagSeconds is the largest protection lag reported, if any.
func (a AgentSnapshot) MaxLagSeconds() (float64, bool) {
	var lag float64
	found := false
	for _, p := range a.Processes {
		if p.LagSeconds != nil && (!found || *p.LagSeconds > lag) {
			lag, found = *p.LagSeconds, true
		}
	}
	return lag, found
}

// Snapshot is the whole fleet, agents in configuration order.
type Snapshot struct {
	Time   time.Time       `json:"time"`
	Agents []AgentSnapshot `json:"agents"`
}

// Agent returns one agent's snapshot.
func (s Snapshot) Agent(name string) (AgentSnapshot, bool) {
	for _, a := range s.Agents {
		if a.Name == name {
			return a, true
		}
	}
	return AgentSnapshot{}, false
}

// Engine monitors one fleet.
type Engine struct {
	clock   clock.Clock
	client  agentclient.API
	hist    History
	log     *slog.Logger
	sink    Sink
	opts    Options
	poller  *poller.Poller
	minPoll time.Duration

	mu       sync.RWMutex
	cfg      fleet.Config
	agents   map[string]*agentRT
	restored map[string]agentRecord
	silences map[string]map[outage.Kind][]time.Duration // by agent
	failover map[string][]time.Duration                 // failover silences by cluster
	// firstRound is closed once every agent of the fleet has been judged
	// by this engine (see FirstRound).
	firstRound chan struct{}

	sinkMu sync.Mutex

	// handlers runs the fleet's corrective actions; hwg waits for them.
	handlers *handlers.Runner
	hwg      sync.WaitGroup

	// shared: this monitor's part in a fleet divided among monitors.
	shared sharedState

	runMu sync.Mutex
	// sched polls every agent while Run runs (nil otherwise).
	sched *poller.Scheduler
	wg    sync.WaitGroup
}

// agentRT is one agent at run time. mu serialises its polls and actions;
// cfg and snap are guarded by Engine.mu.
type agentRT struct {
	name string
	mu   sync.Mutex
	rec  agentRecord
	// savedAt and savedEventsSince: when the resume record was last written.
	savedAt          time.Time
	savedEventsSince int64
	savedReportSeq   int64
	cfg              fleet.Agent
	snap             AgentSnapshot
	// budgetCurrent: snap.Budget was computed with cfg and the RTTs as they
	// are (e.mu guards it); a reconfiguration clears it.
	budgetCurrent bool
	// judged: this engine has judged the agent at least once.
	judged bool
	// notes: what the write limits held back since the last notice.
	notes limitNotes
	// outbox: restarts and stops for a push agent, sent in the answer to
	// its report (rt.mu guards it).
	outbox []report.Request
	// owned: this engine polled the agent as its owner last time (rt.mu
	// guards it); when it becomes owner again it resumes from the shared
	// history first.
	owned bool
}

// agentRecord is what the engine needs to resume an agent after a restart.
type agentRecord struct {
	FirstPollAt  time.Time                       `json:"firstPollAt"`
	LastAnswerAt time.Time                       `json:"lastAnswerAt"`
	SilentSince  time.Time                       `json:"silentSince"`
	LastStatus   *response.Status                `json:"lastStatus,omitempty"`
	RTTs         []time.Duration                 `json:"rtts,omitempty"`
	EventsSince  int64                           `json:"eventsSince"`
	EventsAgent  string                          `json:"eventsAgent,omitempty"`
	Snapshot     AgentSnapshot                   `json:"snapshot"`
	Trackers     map[string]*remediation.Tracker `json:"trackers,omitempty"`
	// ReportSeq and ReportSentAt: the last report a push agent made that was
	// accepted; an older one is a replay.
	ReportSeq    int64     `json:"reportSeq,omitempty"`
	ReportSentAt time.Time `json:"reportSentAt,omitzero"`

	// EventsMore: the agent has events left to read (a full page, or the
	// budget put them off); they are read at the next polls.
	EventsMore bool `json:"eventsMore,omitempty"`
	// EventBudget is the agent's history budget for its events; IDResets
	// the times its event log was read again from the start, within the
	// last hour (see limits.go).
	EventBudget eventBucket `json:"eventBudget"`
	IDResets    []time.Time `json:"idResets,omitempty"`
}

const keepRTTs = 100

// New builds an engine for cfg. It validates cfg and, with a History,
// restores every agent's state from it.
func New(cfg fleet.Config, opts Options) (*Engine, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Client == nil {
		opts.Client = agentclient.New(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Jitter == 0 {
		opts.Jitter = 0.1
	} else if opts.Jitter < 0 {
		opts.Jitter = 0
	}
	if opts.ActionTimeout <= 0 {
		opts.ActionTimeout = 60 * time.Second
	}
	if opts.DiagnoseTimeout <= 0 {
		opts.DiagnoseTimeout = 3 * time.Second
	}
	if opts.RequestedBy == "" {
		opts.RequestedBy = "vigil auto-restart"
	}
	e := &Engine{
		clock: opts.Clock, client: opts.Client, hist: opts.History, log: opts.Logger, sink: opts.Sink, opts: opts,
		poller:   poller.New(opts.Client, opts.Clock, opts.Concurrency),
		minPoll:  fleet.MinPollInterval,
		agents:   map[string]*agentRT{},
		restored: map[string]agentRecord{},
		silences: map[string]map[outage.Kind][]time.Duration{},
		failover: map[string][]time.Duration{},

		firstRound: make(chan struct{}),
	}
	hopts := opts.Handlers
	hopts.Clock = opts.Clock
	e.handlers = handlers.New(hopts)
	if opts.MinPollInterval > 0 {
		e.minPoll = opts.MinPollInterval
	}
	if err := cfg.ValidateMin(e.minPoll); err != nil {
		return nil, err
	}
	if e.hist != nil {
		if err := e.restore(); err != nil {
			return nil, fmt.Errorf("resume from history: %w", err)
		}
	}
	e.cfg = cfg
	for _, a := range cfg.Agents {
		e.agents[a.Name] = e.newAgent(a)
	}
	return e, nil
}

func (e *Engine) restore() error {
	recs, err := e.hist.Agents()
	if err != nil {
		return err
	}
	last, err := e.hist.LastAnswers()
	if err != nil {
		return err
	}
	for name, raw := range recs {
		var r agentRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			e.log.Warn("ignoring an unreadable resume record", "agent", name, "error", err)
			continue
		}
		// The record is written on changes; every observation carries the
		// time of an answer.
		if t := last[name]; t.After(r.LastAnswerAt) {
			r.LastAnswerAt = t
			r.Snapshot.LastAnswerAt = t
			if !r.SilentSince.IsZero() && !t.Before(r.SilentSince) {
				r.SilentSince, r.Snapshot.SilentSince = time.Time{}, time.Time{}
			}
		}
		e.restored[name] = r
	}
	sil, err := e.hist.Silences()
	if err != nil {
		return err
	}
	for _, s := range sil {
		e.addSilence(s)
	}
	return nil
}

// addSilence files a past silence for measured mode; e.mu must be held (or
// the engine not yet shared).
func (e *Engine) addSilence(s history.Silence) {
	k := outage.Kind(s.Kind)
	if k == outage.Failover && s.Cluster != "" {
		e.failover[s.Cluster] = append(e.failover[s.Cluster], s.Duration)
	}
	m := e.silences[s.Agent]
	if m == nil {
		m = map[outage.Kind][]time.Duration{}
		e.silences[s.Agent] = m
	}
	m[k] = append(m[k], s.Duration)
}

func (e *Engine) newAgent(a fleet.Agent) *agentRT {
	rt := &agentRT{name: a.Name, cfg: a}
	if r, ok := e.restored[a.Name]; ok {
		// Used once: an agent removed and added again later starts afresh.
		delete(e.restored, a.Name)
		rt.rec = r
		rt.snap = r.Snapshot
		rt.snap.URL = a.URL
	} else {
		rt.snap = AgentSnapshot{Name: a.Name, URL: a.URL, Cluster: a.Cluster, State: state.Unknown, Reason: "not polled yet"}
	}
	if rt.rec.Trackers == nil {
		rt.rec.Trackers = map[string]*remediation.Tracker{}
	}
	rt.snap.Budget = e.budgetFor(a, rt.rec, rt.snap.Cluster)
	return rt
}

// Run polls every agent every pollInterval until ctx ends, then waits for
// polls in flight. It returns ctx's error.
func (e *Engine) Run(ctx context.Context) error {
	e.runMu.Lock()
	if e.sched != nil {
		e.runMu.Unlock()
		return errors.New("engine is already running")
	}
	e.mu.RLock()
	s := poller.NewScheduler(e.clock, e.cfg.PollInterval, e.opts.Jitter)
	for _, rt := range e.agents {
		e.schedule(s, rt)
	}
	e.mu.RUnlock()
	e.sched = s
	e.runMu.Unlock()

	if e.hist != nil {
		e.wg.Go(func() { e.pruneLoop(ctx) })
	}
	if _, ok := e.hist.(history.Shared); ok {
		e.wg.Go(func() { e.sharedLoop(ctx) })
	}
	err := s.Run(ctx)
	e.runMu.Lock()
	e.sched = nil
	e.runMu.Unlock()
	e.wg.Wait()
	e.WaitHandlers()
	return err
}

// schedule adds an agent's polls to the scheduler.
func (e *Engine) schedule(s *poller.Scheduler, rt *agentRT) {
	s.Add(rt.name, func(ctx context.Context) { e.pollOne(ctx, rt) })
}

func (e *Engine) pruneLoop(ctx context.Context) {
	if err := e.hist.Prune(e.clock.Now()); err != nil {
		e.log.Warn("history prune failed", "error", err)
	}
	for {
		t := e.clock.NewTimer(time.Hour)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		if err := e.hist.Prune(e.clock.Now()); err != nil {
			e.log.Warn("history prune failed", "error", err)
		}
	}
}

// Reconfigure replaces the fleet. Agents that stay keep their state; new
// ones start polling at once when running; removed ones stop.
func (e *Engine) Reconfigure(cfg fleet.Config) error {
	if err := cfg.ValidateMin(e.minPoll); err != nil {
		return err
	}
	e.runMu.Lock()
	defer e.runMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	keep := map[string]bool{}
	for _, a := range cfg.Agents {
		keep[a.Name] = true
		if rt, ok := e.agents[a.Name]; ok {
			rt.cfg = a
			rt.snap.URL = a.URL
			rt.budgetCurrent = false
			continue
		}
		rt := e.newAgent(a)
		e.agents[a.Name] = rt
		if e.sched != nil {
			e.schedule(e.sched, rt)
		}
	}
	for name := range e.agents {
		if !keep[name] {
			if e.sched != nil {
				e.sched.Remove(name)
			}
			delete(e.agents, name)
			e.handlers.Forget(name)
		}
	}
	if e.sched != nil {
		e.sched.SetInterval(cfg.PollInterval)
	}
	e.cfg = cfg
	e.checkFirstRound()
	return nil
}

// Config returns the fleet in force.
func (e *Engine) Config() fleet.Config {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.cfg
}

// ErrUnknownAgent is returned for an agent name not in the fleet.
var ErrUnknownAgent = errors.New("no such agent in the fleet")

// PollNow polls one agent (by name), or every agent when name is "", now,
// and returns once the answers are judged, acted on and recorded. A backup
// job can call it to check before it starts.
func (e *Engine) PollNow(ctx context.Context, name string) error {
	return e.pollTargets(ctx, name, 0)
}

// PollIfOlder is PollNow for callers who must not drive the polling (a
// Grafana Viewer, a backup job): an agent is polled only when its last poll
// was sent maxAge ago or more, or never; otherwise its latest state stands.
// Concurrent callers wait for the poll in flight instead of sending their
// own, so an agent is polled at most once per maxAge however many ask.
func (e *Engine) PollIfOlder(ctx context.Context, name string, maxAge time.Duration) error {
	return e.pollTargets(ctx, name, maxAge)
}

func (e *Engine) pollTargets(ctx context.Context, name string, maxAge time.Duration) error {
	e.mu.RLock()
	var targets []*agentRT
	if name == "" {
		for _, a := range e.cfg.Agents {
			targets = append(targets, e.agents[a.Name])
		}
	} else if rt, ok := e.agents[name]; ok {
		targets = append(targets, rt)
	}
	e.mu.RUnlock()
	if len(targets) == 0 && name != "" {
		return fmt.Errorf("%w: %q", ErrUnknownAgent, name)
	}
	var wg sync.WaitGroup
	for _, rt := range targets {
		wg.Go(func() { e.pollIfOlder(ctx, rt, maxAge) })
	}
	wg.Wait()
	return ctx.Err()
}

// Snapshot returns the current state of every agent.
func (e *Engine) Snapshot() Snapshot {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := Snapshot{Time: e.clock.Now(), Agents: make([]AgentSnapshot, 0, len(e.cfg.Agents))}
	for _, a := range e.cfg.Agents {
		if rt, ok := e.agents[a.Name]; ok {
			as := cloneSnap(rt.snap)
			as.Judged = rt.judged
			s.Agents = append(s.Agents, as)
		}
	}
	return s
}

// FirstRound is closed once this engine has polled and judged every agent
// of its fleet at least once (by Run or PollNow), so that a caller can tell
// states it judged from states restored from the history. Agents added by
// Reconfigure before then are waited for too; removed ones are not.
func (e *Engine) FirstRound() <-chan struct{} { return e.firstRound }

// WaitFirstRound waits for FirstRound, at most d on the engine's clock or
// until ctx ends, and reports whether the round is complete.
func (e *Engine) WaitFirstRound(ctx context.Context, d time.Duration) bool {
	select {
	case <-e.firstRound:
		return true
	default:
	}
	t := e.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.firstRound:
		return true
	case <-t.C():
	case <-ctx.Done():
	}
	select {
	case <-e.firstRound:
		return true
	default:
		return false
	}
}

// checkFirstRound closes firstRound when every agent is judged; e.mu is
// held for writing.
func (e *Engine) checkFirstRound() {
	select {
	case <-e.firstRound:
		return
	default:
	}
	for _, rt := range e.agents {
		if !rt.judged {
			return
		}
	}
	close(e.firstRound)
}

func cloneSnap(s AgentSnapshot) AgentSnapshot {
	s.Processes = slices.Clone(s.Processes)
	s.Budget.Allowances = slices.Clone(s.Budget.Allowances)
	return s
}

func (e *Engine) emit(events []Event) {
	if e.sink == nil || len(events) == 0 {
		return
	}
	e.sinkMu.Lock()
	defer e.sinkMu.Unlock()
	for _, ev := range events {
		e.sink.Emit(ev)
	}
}

func toClient(a fleet.Agent) agentclient.Agent {
	return agentclient.Agent{Name: a.Name, URL: a.URL, ReadToken: a.ReadToken.Reveal(), ControlToken: a.ControlToken.Reveal()}
}
