package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// step: at an offset from t0, change the fake agents, poll one agent, and
// check its state, reason and the events emitted.
type step struct {
	at         time.Duration
	do         func(f *agentclienttest.Fake)
	poll       string
	wantState  state.State
	wantReason string
	// wantEvents are the exact JSON lines emitted by this step (nil: not checked).
	wantEvents []string
}

func at(d time.Duration) string { return t0.Add(d).UTC().Format(time.RFC3339Nano) }

func stateLine(d time.Duration, agent, process, from, to, reason string, budget float64, extra ...string) string {
	s := fmt.Sprintf(`{"type":"state","time":%q,"agent":%q,"process":%q,"from":%q,"to":%q,"reason":%q,"budgetSeconds":%v`, at(d), agent, process, from, to, reason, budget)
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

func actionLine(d time.Duration, agent, action, by string, gen int64, result, errText string) string {
	return fmt.Sprintf(`{"type":"action","time":%q,"agent":%q,"process":"cdp","action":%q,"by":%q,"generation":%d,"result":%q,"error":%q}`, at(d), agent, action, by, gen, result, errText)
}

func TestScenarios(t *testing.T) {
	standalone := func(edit func(p *fleet.Policy)) fleet.Config {
		return fleetOf(policy(edit), fleet.Agent{Name: "a"})
	}
	ha := fleetOf(policy(nil), fleet.Agent{Name: "n1", Cluster: "ha"}, fleet.Agent{Name: "n2", Cluster: "ha"})
	set := func(name string, edit func(a *agentclienttest.Script)) func(f *agentclienttest.Fake) {
		return func(f *agentclienttest.Fake) { f.Set(name, edit) }
	}
	lag := func(v float64) func(f *agentclienttest.Fake) {
		return set("a", func(a *agentclienttest.Script) { a.Lag = &v })
	}
	silent := func(name string, on bool) func(f *agentclienttest.Fake) {
		return set(name, func(a *agentclienttest.Script) { a.Silent = on })
	}
	crash := func(name string) func(f *agentclienttest.Fake) {
		return set(name, func(a *agentclienttest.Script) { a.State = "crashed" })
	}
	const ok4 = "running (pid 1001, generation 1)"

	tests := []struct {
		name   string
		cfg    fleet.Config
		agents map[string]agentclienttest.Script
		steps  []step
	}{
		{name: "first observation is a change from UNKNOWN", cfg: standalone(nil), agents: map[string]agentclienttest.Script{"a": {}},
			steps: []step{
				{poll: "a", wantState: state.OK, wantReason: ok4, wantEvents: []string{
					stateLine(0, "a", "", "UNKNOWN", "OK", ok4, 32),
					stateLine(0, "a", "cdp", "UNKNOWN", "OK", ok4, 32),
				}},
				{at: 10 * time.Second, poll: "a", wantState: state.OK, wantEvents: []string{}},
			}},
		{name: "silent: GRACE spending each allowance, then FAILED at the budget with a diagnosis", cfg: standalone(nil), agents: map[string]agentclienttest.Script{"a": {}},
			steps: []step{
				{poll: "a", wantState: state.OK},
				{at: 10 * time.Second, do: silent("a", true), poll: "a", wantState: state.Grace, wantReason: "awaiting network interruption: 10 s of 12 s", wantEvents: []string{
					stateLine(10*time.Second, "a", "", "OK", "GRACE", "awaiting network interruption: 10 s of 12 s", 32),
					stateLine(10*time.Second, "a", "cdp", "OK", "GRACE", "awaiting network interruption: 10 s of 12 s", 32),
				}},
				{at: 20 * time.Second, poll: "a", wantState: state.Grace, wantReason: "awaiting app error recovery: 20 s of 22 s", wantEvents: []string{}},
				{at: 32 * time.Second, poll: "a", wantState: state.Grace, wantReason: "awaiting restart: 32 s of 32 s"},
				{at: 33 * time.Second, poll: "a", wantState: state.Failed, wantReason: "no answer for 33 s, budget 32 s", wantEvents: []string{
					stateLine(33*time.Second, "a", "", "GRACE", "FAILED", "no answer for 33 s, budget 32 s", 32,
						`"diagnosis":"dns ok (127.0.0.1); tcp failed (connect: connection refused); http not tried"`),
					stateLine(33*time.Second, "a", "cdp", "GRACE", "FAILED", "no answer for 33 s, budget 32 s", 32),
				}},
				{at: 40 * time.Second, do: silent("a", false), poll: "a", wantState: state.OK, wantReason: ok4},
			}},
		{name: "cluster member: the failover allowance applies", cfg: ha, agents: map[string]agentclienttest.Script{"n1": {Role: "active", Cluster: "ha"}, "n2": {Role: "passive", Cluster: "ha"}},
			steps: []step{
				{poll: "n1", wantState: state.OK},
				{at: 40 * time.Second, do: silent("n1", true), poll: "n1", wantState: state.Grace, wantReason: "awaiting failover: 40 s of 47 s"},
				{at: 48 * time.Second, poll: "n1", wantState: state.Failed, wantReason: "no answer for 48 s, budget 47 s"},
			}},
		{name: "never answered: GRACE from the first poll, then FAILED", cfg: standalone(nil), agents: map[string]agentclienttest.Script{"a": {Silent: true}},
			steps: []step{
				{poll: "a", wantState: state.Grace, wantReason: "never answered; awaiting an answer: 0 s of 2 s"},
				{at: 33 * time.Second, poll: "a", wantState: state.Failed, wantReason: "never answered; no answer for 33 s, budget 32 s"},
			}},
		{name: "crashed: restarted at the first poll with ifGeneration, OK at the next", cfg: standalone(nil), agents: map[string]agentclienttest.Script{"a": {}},
			steps: []step{
				{poll: "a", wantState: state.OK},
				{at: 10 * time.Second, do: crash("a"), poll: "a", wantState: state.Restarting, wantReason: "restarted (generation 2); awaiting confirmation", wantEvents: []string{
					actionLine(10*time.Second, "a", "restart", "auto", 2, "ok", ""),
					stateLine(10*time.Second, "a", "", "OK", "RESTARTING", "restarted (generation 2); awaiting confirmation", 32),
					stateLine(10*time.Second, "a", "cdp", "OK", "RESTARTING", "restarted (generation 2); awaiting confirmation", 32),
				}},
				{at: 20 * time.Second, poll: "a", wantState: state.OK, wantReason: "running (pid 1002, generation 2)"},
			}},
		{name: "restart keeps failing: back-off, then FAILED with reason restart failing", cfg: standalone(nil), agents: map[string]agentclienttest.Script{"a": {State: "crashed", RestartFails: true}},
			steps: []step{
				{poll: "a", wantState: state.Restarting, wantReason: "down where expected; restart failed (agent answer: POST http://127.0.0.1:7070/a/v1/processes/cdp/restart: HTTP 500 Internal Server Error: spawn ENOENT), next attempt in 5 s"},
				{at: 2 * time.Second, poll: "a", wantState: state.Restarting},
				{at: 5 * time.Second, poll: "a", wantState: state.Restarting},
				{at: 15 * time.Second, poll: "a", wantState: state.Failed, wantReason: "restart failing: 3 attempts failed (last: agent answer: POST http://127.0.0.1:7070/a/v1/processes/cdp/restart: HTTP 500 Internal Server Error: spawn ENOENT); next attempt in 20 s"},
				{at: 35 * time.Second, do: set("a", func(a *agentclienttest.Script) { a.RestartFails = false }), poll: "a", wantState: state.Restarting},
				{at: 45 * time.Second, poll: "a", wantState: state.OK},
			}},
		{name: "flap guard: crashing after successful restarts ends in DEGRADED", cfg: standalone(func(p *fleet.Policy) { p.AutoRestart.MaxRestarts = 2 }),
			agents: map[string]agentclienttest.Script{"a": {State: "crashed", CrashAfterRestart: true}},
			steps: []step{
				{poll: "a", wantState: state.Restarting},
				{at: 10 * time.Second, poll: "a", wantState: state.Restarting},
				{at: 20 * time.Second, poll: "a", wantState: state.Degraded, wantReason: "auto-restart suspended: 3 restarts within 10m0s; a person must act or the window pass"},
				{at: 30 * time.Second, poll: "a", wantState: state.Degraded, wantReason: "auto-restart suspended: 3 restarts within 10m0s (crashed where expected); a person must act or the window pass", wantEvents: []string{}},
			}},
		{name: "auto-restart off: down is FAILED and nothing is done", cfg: standalone(func(p *fleet.Policy) { p.AutoRestart.Enabled = false }),
			agents: map[string]agentclienttest.Script{"a": {State: "stopped"}},
			steps:  []step{{poll: "a", wantState: state.Failed, wantReason: "stopped where expected; auto-restart is off"}}},
		{name: "protection lag above the RPO is DEGRADED", cfg: standalone(nil), agents: map[string]agentclienttest.Script{"a": {}},
			steps: []step{
				{do: lag(30), poll: "a", wantState: state.OK},
				{at: 10 * time.Second, do: lag(95), poll: "a", wantState: state.Degraded, wantReason: "protection lag 95 s exceeds RPO 60 s"},
				{at: 20 * time.Second, do: lag(1), poll: "a", wantState: state.OK},
				// An absurd lag saturates: very large, never a negative duration.
				{at: 25 * time.Second, do: lag(1e308), poll: "a", wantState: state.Degraded, wantReason: "protection lag 9223372037 s exceeds RPO 60 s"},
				// Why the replicator lags is part of the reason, while catching up or while watching with paths it cannot cover.
				{at: 30 * time.Second, do: set("a", func(a *agentclienttest.Script) {
					v, st, msg := 120.0, "catching_up", ""
					a.Lag, a.ProtState, a.ProtMessage = &v, &st, &msg
				}), poll: "a", wantState: state.Degraded, wantReason: "protection lag 120 s exceeds RPO 60 s (catching_up)"},
				{at: 40 * time.Second, do: set("a", func(a *agentclienttest.Script) {
					v, st, msg := 130.0, "watching", "1 path(s) not covered: db (cannot be read (EACCES), since 2026-12-02T06:00:00.000Z)"
					a.Lag, a.ProtState, a.ProtMessage = &v, &st, &msg
				}), poll: "a", wantState: state.Degraded, wantReason: "protection lag 130 s exceeds RPO 60 s (1 path(s) not covered: db (cannot be read (EACCES), since 2026-12-02T06:00:00.000Z))"},
			}},
		{name: "an answer that is an error is UNKNOWN with the reason", cfg: standalone(nil), agents: map[string]agentclienttest.Script{"a": {}},
			steps: []step{
				{poll: "a", wantState: state.OK},
				{at: 10 * time.Second, do: set("a", func(a *agentclienttest.Script) { a.HTTPStatus = 500 }), poll: "a",
					wantState: state.Unknown, wantReason: "the agent answered with an error: HTTP 500 Internal Server Error: disk full"},
				{at: 20 * time.Second, do: set("a", func(a *agentclienttest.Script) { a.HTTPStatus, a.Body = 0, []byte("<html>") }), poll: "a",
					wantState: state.Unknown, wantReason: "the answer could not be understood: the answer is not JSON: invalid character '<' looking for beginning of value"},
				{at: 30 * time.Second, do: set("a", func(a *agentclienttest.Script) { a.Body = nil }), poll: "a", wantState: state.OK},
			}},
		{name: "role unknown is UNKNOWN", cfg: ha, agents: map[string]agentclienttest.Script{"n1": {Role: "unknown", Cluster: "ha", State: "stopped"}, "n2": {Role: "passive", Cluster: "ha"}},
			steps: []step{{poll: "n1", wantState: state.Unknown, wantReason: "cluster role unknown"}}},
		{name: "failover: started on the new active first, stopped on the old one only once confirmed", cfg: ha,
			agents: map[string]agentclienttest.Script{"n1": {Role: "active", Cluster: "ha"}, "n2": {Role: "passive", Cluster: "ha", State: "stopped"}},
			steps: []step{
				{poll: "n1", wantState: state.OK},
				{poll: "n2", wantState: state.Standby, wantReason: "not expected on passive node n2 of ha (stopped)"},
				// The cluster fails over: n1 passive (CDP still running there), n2 active.
				{at: 10 * time.Second, do: func(f *agentclienttest.Fake) {
					f.Set("n1", func(a *agentclienttest.Script) { a.Role = "passive" })
					f.Set("n2", func(a *agentclienttest.Script) { a.Role = "active" })
				}, poll: "n1", wantState: state.Standby,
					wantReason: "running on passive node n1 of ha, where it is not expected; stopped once CDP is confirmed on the active node", wantEvents: []string{
						stateLine(10*time.Second, "n1", "", "OK", "STANDBY", "running on passive node n1 of ha, where it is not expected; stopped once CDP is confirmed on the active node", 47),
						stateLine(10*time.Second, "n1", "cdp", "OK", "STANDBY", "running on passive node n1 of ha, where it is not expected; stopped once CDP is confirmed on the active node", 47),
					}},
				{at: 10 * time.Second, poll: "n2", wantState: state.Restarting, wantReason: "restarted (generation 2); awaiting confirmation"},
				// Restart answered, but not yet confirmed by a poll: n1 keeps running.
				{at: 11 * time.Second, poll: "n1", wantState: state.Standby, wantEvents: []string{}},
				{at: 20 * time.Second, poll: "n2", wantState: state.OK},
				{at: 20 * time.Second, poll: "n1", wantState: state.Standby, wantReason: "stopped: not expected on this node", wantEvents: []string{
					actionLine(20*time.Second, "n1", "stop", "auto", 1, "ok", ""),
				}},
				{at: 30 * time.Second, poll: "n1", wantState: state.Standby, wantReason: "not expected on passive node n1 of ha (stopped)"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg, nil)
			for name, a := range tt.agents {
				h.client.Add(name, a)
			}
			for i, s := range tt.steps {
				h.clk.Set(t0.Add(s.at))
				if s.do != nil {
					s.do(h.client)
				}
				got := h.poll(s.poll)
				if got.State != s.wantState || (s.wantReason != "" && got.Reason != s.wantReason) {
					t.Fatalf("step %d (%s at %s): %s %q\nwant %s %q", i, s.poll, s.at, got.State, got.Reason, s.wantState, s.wantReason)
				}
				events := h.take()
				if s.wantEvents != nil && strings.Join(events, "\n") != strings.Join(s.wantEvents, "\n") {
					t.Errorf("step %d events\n got: %s\nwant: %s", i, strings.Join(events, "\n      "), strings.Join(s.wantEvents, "\n      "))
				}
			}
		})
	}
}

func TestRestartOnlyOncePerGeneration(t *testing.T) {
	cfg := fleetOf(policy(nil), fleet.Agent{Name: "a"})
	h1 := newHarness(t, cfg, nil)
	h1.client.Add("a", agentclienttest.Script{})
	h2, err := New(cfg, Options{Clock: h1.clk, Client: h1.client})
	if err != nil {
		t.Fatal(err)
	}
	h1.poll("a")
	_ = h2.PollNow(context.Background(), "a")
	h1.client.Set("a", func(a *agentclienttest.Script) { a.State = "crashed" })
	h1.clk.Advance(10 * time.Second)
	_ = h1.eng.PollNow(context.Background(), "a")
	_ = h2.PollNow(context.Background(), "a")
	if n := len(h1.client.Restarts("a")); n != 1 {
		t.Fatalf("%d restarts, want 1", n)
	}
	if s, _ := h2.Snapshot().Agent("a"); s.State != state.OK {
		t.Errorf("second engine: %s %q", s.State, s.Reason)
	}
}

func TestManualRestart(t *testing.T) {
	cfg := fleetOf(policy(func(p *fleet.Policy) { p.AutoRestart.MaxRestarts = 0 }), fleet.Agent{Name: "a"})
	h := newHarness(t, cfg, newMemHistory())
	h.client.Add("a", agentclienttest.Script{State: "crashed", CrashAfterRestart: true})
	if s := h.poll("a"); s.State != state.Degraded {
		t.Fatalf("maxRestarts 0: %s %q", s.State, s.Reason)
	}
	// The history records the flap guard's state with the observation, for
	// the autoRestartSuspended metric over time.
	h.hist.mu.Lock()
	observed := h.hist.obs[len(h.hist.obs)-1]
	h.hist.mu.Unlock()
	if len(observed.Processes) != 1 || !observed.Processes[0].AutoRestartSuspended {
		t.Errorf("the observation of a suspended auto-restart: %+v", observed.Processes)
	}
	h.take()
	h.clk.Advance(time.Second)

	_, err := h.eng.Restart(context.Background(), "a", "cdp", "alice", "checked the disk", 1)
	var stale *agentclient.StaleGenerationError
	if !errors.As(err, &stale) || stale.Current != 2 {
		t.Fatalf("a stale generation: %v", err)
	}
	h.client.Set("a", func(a *agentclienttest.Script) { a.CrashAfterRestart = false })
	res, err := h.eng.Restart(context.Background(), "a", "cdp", "alice", "checked the disk", 2)
	if err != nil || res.Generation != 3 {
		t.Fatalf("Restart = %+v, %v", res, err)
	}
	ev := h.take()
	want := manualActionLine(time.Second, "a", "restart", "alice", 3, "ok", "")
	if len(ev) < 2 || ev[1] != want {
		t.Errorf("events:\n%s\nwant the second to be %s", strings.Join(ev, "\n"), want)
	}
	s, _ := h.eng.Snapshot().Agent("a")
	if s.State != state.Restarting || s.Processes[0].AutoRestartSuspended || s.LastRestart().By != "alice" {
		t.Errorf("after a person's restart: %+v", s)
	}
	last := h.client.Restarts("a")
	if r := last[len(last)-1]; r.RequestedBy != "alice" || r.Reason != "checked the disk" || *r.IfGeneration != 2 {
		t.Errorf("request %+v", r)
	}
	if _, err := h.eng.Restart(context.Background(), "a", "cdp", "", "", AnyGeneration); err == nil {
		t.Error("a restart without a login was accepted")
	}
	if _, err := h.eng.Restart(context.Background(), "nope", "cdp", "alice", "", AnyGeneration); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("unknown agent: %v", err)
	}
}

func TestResumeKeepsGraceClock(t *testing.T) {
	cfg := fleetOf(policy(nil), fleet.Agent{Name: "a"})
	hist := newMemHistory()
	h := newHarness(t, cfg, hist)
	h.client.Add("a", agentclienttest.Script{})
	h.poll("a")
	h.clk.Set(t0.Add(10 * time.Second))
	h.client.Set("a", func(a *agentclienttest.Script) { a.Silent = true })
	h.poll("a")

	// A new engine on the same history, 15 s later: the silence is 25 s old.
	h2 := newHarness(t, cfg, hist)
	h2.client = h.client
	var err error
	h2.eng, err = New(cfg, Options{Clock: h2.clk, Client: h.client, History: hist, Sink: SinkFunc(func(e Event) {
		h2.mu.Lock()
		h2.events = append(h2.events, e)
		h2.mu.Unlock()
	})})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := h2.eng.Snapshot().Agent("a"); s.State != state.Grace {
		t.Fatalf("resumed as %s, want GRACE", s.State)
	}
	h2.clk.Set(t0.Add(25 * time.Second))
	s := h2.poll("a")
	if s.State != state.Grace || s.Reason != "awaiting restart: 25 s of 32 s" {
		t.Errorf("%s %q", s.State, s.Reason)
	}
	if ev := h2.take(); len(ev) != 0 {
		t.Errorf("no change expected, got %v", ev)
	}
	h2.clk.Set(t0.Add(33 * time.Second))
	if s := h2.poll("a"); s.State != state.Failed {
		t.Errorf("%s %q", s.State, s.Reason)
	}
}

func TestMeasuredModeLearnsFromSilences(t *testing.T) {
	cfg := fleetOf(policy(func(p *fleet.Policy) {
		p.Budget.Mode = fleet.ModeMeasured
		p.Measured.MinSamples, p.Measured.Floor = 2, 0
	}), fleet.Agent{Name: "a"})
	hist := newMemHistory()
	h := newHarness(t, cfg, hist)
	h.client.Add("a", agentclienttest.Script{})
	now := time.Duration(0)
	for i := range 2 {
		h.clk.Set(t0.Add(now))
		h.poll("a")
		h.client.Set("a", func(x *agentclienttest.Script) { x.Silent = true })
		now += 4 * time.Second
		h.clk.Set(t0.Add(now))
		h.poll("a")
		// The agent comes back restarted: a restart silence of 8 s.
		h.client.Set("a", func(x *agentclienttest.Script) { x.Silent, x.StartedAt = false, t0.Add(time.Duration(i+1)*time.Hour) })
		now += 4 * time.Second
		h.clk.Set(t0.Add(now))
		h.poll("a")
	}
	s, _ := h.eng.Snapshot().Agent("a")
	r, _ := s.Budget.Allowance("restart")
	if !r.Measured || r.Value != 8*time.Second || r.Samples != 2 {
		t.Errorf("restart allowance %+v", r)
	}
	if s.Budget.Total != 2*time.Second+20*time.Second {
		t.Errorf("budget %s, want 22 s (app error recovery 20 s now the largest)", s.Budget.Total)
	}
	if len(hist.silences) != 2 || hist.silences[0].Kind != "restart" {
		t.Errorf("silences %+v", hist.silences)
	}
}

func TestReconfigureAndPollNow(t *testing.T) {
	h := newHarness(t, fleetOf(policy(nil), fleet.Agent{Name: "a"}), nil)
	h.client.Add("a", agentclienttest.Script{})
	h.client.Add("b", agentclienttest.Script{})
	if err := h.eng.PollNow(context.Background(), "b"); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("PollNow of an unknown agent: %v", err)
	}
	if err := h.eng.Reconfigure(fleetOf(policy(nil), fleet.Agent{Name: "a"}, fleet.Agent{Name: "b"})); err != nil {
		t.Fatal(err)
	}
	if err := h.eng.PollNow(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	snap := h.eng.Snapshot()
	if len(snap.Agents) != 2 || snap.Agents[0].State != state.OK || snap.Agents[1].State != state.OK {
		t.Errorf("snapshot %+v", snap)
	}
	if err := h.eng.Reconfigure(fleetOf(policy(nil), fleet.Agent{Name: "b"})); err != nil {
		t.Fatal(err)
	}
	if snap := h.eng.Snapshot(); len(snap.Agents) != 1 || snap.Agents[0].Name != "b" {
		t.Errorf("after removing a: %+v", snap)
	}
	bad := fleetOf(policy(nil))
	if err := h.eng.Reconfigure(bad); err == nil {
		t.Error("an empty fleet was accepted")
	}
}

func TestRunPollsOnTheClock(t *testing.T) {
	h := newHarness(t, fleetOf(policy(nil), fleet.Agent{Name: "a"}), nil)
	h.eng.opts.Jitter = 0
	h.client.Add("a", agentclienttest.Script{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.eng.Run(ctx) }()
	waitFor(t, func() bool { s, _ := h.eng.Snapshot().Agent("a"); return s.State == state.OK })
	h.client.Set("a", func(a *agentclienttest.Script) { a.Silent = true })
	h.clk.BlockUntil(1)
	h.clk.Advance(10 * time.Second)
	waitFor(t, func() bool { s, _ := h.eng.Snapshot().Agent("a"); return s.State == state.Grace })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConfigurationFaultIsNamed(t *testing.T) {
	e, err := New(fleetOf(policy(nil), fleet.Agent{Name: "a"}), Options{Client: configFault()})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.PollNow(context.Background(), "a")
	s, _ := e.Snapshot().Agent("a")
	if s.State != state.Unknown || s.Reason != "cannot poll this agent: the agent URL has a typo" {
		t.Errorf("%s %q", s.State, s.Reason)
	}
}

// configFault is an agent whose calls cannot even be built.
func configFault() *agentclienttest.Fake {
	f := agentclienttest.New(nil)
	f.Add("a", agentclienttest.Script{Err: &agentclient.Error{Fault: agentclient.FaultConfig, Agent: "a", Detail: "the agent URL has a typo"}})
	return f
}

// Polls, restarts, snapshots and reconfigurations at once: for the race detector.
func TestConcurrentUse(t *testing.T) {
	cfg := fleetOf(policy(nil), fleet.Agent{Name: "a"}, fleet.Agent{Name: "b"})
	h := newHarness(t, cfg, newMemHistory())
	h.client.Add("a", agentclienttest.Script{})
	h.client.Add("b", agentclienttest.Script{State: "crashed"})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { _ = h.eng.Run(ctx) })
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_ = h.eng.PollNow(ctx, "")
				_, _ = h.eng.Restart(ctx, "a", "cdp", "alice", "test", AnyGeneration)
				_ = h.eng.Snapshot()
				_ = h.eng.Reconfigure(cfg)
				h.clk.Advance(time.Second)
			}
		})
	}
	wg.Wait()
	if s := h.eng.Snapshot(); len(s.Agents) != 2 {
		t.Errorf("snapshot %+v", s)
	}
}
