package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/internal/pgtest"
	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
)

type owner struct {
	mu sync.Mutex
	to string
}

func (o *owner) set(name string) {
	o.mu.Lock()
	o.to = name
	o.mu.Unlock()
}

// sharedMember is one engine of a divided fleet, on the shared fake clock
// and fake agents.
type sharedMember struct {
	eng  *Engine
	hist *history.PGStore
}

func newSharedMember(t *testing.T, dsn string, cfg fleet.Config, clk *clock.Fake, client *agentclienttest.Fake, own *owner, self string) *sharedMember {
	t.Helper()
	hist, err := history.OpenPostgres(context.Background(), dsn, history.PGOptions{Scope: history.Scope{UID: "fleet"},
		SpoolDir: t.TempDir(), FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hist.Close() })
	m := &ownedBy{own: own, self: self}
	eng, err := New(cfg, Options{Clock: clk, Client: client, History: hist, Membership: m})
	if err != nil {
		t.Fatal(err)
	}
	return &sharedMember{eng: eng, hist: hist}
}

type ownedBy struct {
	own  *owner
	self string
}

func (o *ownedBy) Owns(string) bool {
	o.own.mu.Lock()
	defer o.own.mu.Unlock()
	return o.own.to == o.self
}

func (o *ownedBy) Changes() <-chan struct{} { return nil }

// twoMembers starts PostgreSQL and two engines of cfg sharing it, on one
// fake clock and fake agents, m1 owning everything until own.set("m2").
func twoMembers(t *testing.T, cfg fleet.Config) (*clock.Fake, *agentclienttest.Fake, *owner, *sharedMember, *sharedMember) {
	t.Helper()
	srv := pgtest.Start(t)
	clk := clock.NewFake(t0)
	client := agentclienttest.New(clk)
	own := &owner{to: "m1"}
	m1 := newSharedMember(t, srv.DSN(), cfg, clk, client, own, "m1")
	m2 := newSharedMember(t, srv.DSN(), cfg, clk, client, own, "m2")
	return clk, client, own, m1, m2
}

func (m *sharedMember) poll(t *testing.T) AgentSnapshot {
	t.Helper()
	if err := m.eng.PollNow(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	// What the flush loop does every second.
	if err := m.hist.Flush(); err != nil {
		t.Fatal(err)
	}
	s, _ := m.eng.Snapshot().Agent("a")
	return s
}

// The new owner of a silent agent judges it from the last answer its
// previous owner recorded: FAILED at the budget, not at budget plus
// handover. Only the owner polls; the other shows what the owner recorded.
func TestHandoverKeepsTheGraceClock(t *testing.T) {
	clk, client, own, m1, m2 := twoMembers(t, fleetOf(policy(nil), fleet.Agent{Name: "a"}))
	client.Add("a", agentclienttest.Script{})

	m1.poll(t)
	if s := m2.poll(t); client.Polls("a") != 1 {
		t.Fatalf("the member that does not own the agent polled it (%d polls, %s)", client.Polls("a"), s.State)
	}
	clk.Set(t0.Add(10 * time.Second))
	client.Set("a", func(s *agentclienttest.Script) { s.Silent = true })
	if s := m1.poll(t); s.State != state.Grace {
		t.Fatalf("owner: %s %q", s.State, s.Reason)
	}
	// The other member shows what the owner recorded.
	m2.eng.refreshShared()
	if s, _ := m2.eng.Snapshot().Agent("a"); s.State != state.Grace || !s.LastAnswerAt.Equal(t0) {
		t.Fatalf("non-owner shows %s %q, last answer %v", s.State, s.Reason, s.LastAnswerAt)
	}

	// m1 dies; m2 owns the agent from now on.
	own.set("m2")
	clk.Set(t0.Add(25 * time.Second))
	if s := m2.poll(t); s.State != state.Grace || s.Reason != "awaiting restart: 25 s of 32 s" {
		t.Fatalf("new owner: %s %q", s.State, s.Reason)
	}
	clk.Set(t0.Add(33 * time.Second))
	if s := m2.poll(t); s.State != state.Failed {
		t.Fatalf("new owner at the budget: %s %q", s.State, s.Reason)
	}
	ev, err := m2.hist.Events(history.Query{Agent: "a"})
	if err != nil {
		t.Fatal(err)
	}
	var states []state.State
	for _, e := range ev {
		if e.Type == history.TypeState && e.Process == "" {
			states = append(states, e.To)
		}
	}
	if len(states) != 3 || states[1] != state.Grace || states[2] != state.Failed {
		t.Fatalf("agent state events %v, want OK GRACE FAILED once each", states)
	}
}

// The flap guard's count of restarts made by the previous owner carries
// over: the new owner suspends auto-restart at the same restart as one
// monitor would have (the fourth within the window), not later.
func TestHandoverKeepsTheFlapGuard(t *testing.T) {
	clk, client, own, m1, m2 := twoMembers(t, fleetOf(policy(nil), fleet.Agent{Name: "a"}))
	client.Add("a", agentclienttest.Script{})
	m1.poll(t)
	client.Set("a", func(s *agentclienttest.Script) { s.State, s.CrashAfterRestart = "crashed", true })
	for _, at := range []int{10, 12, 16} {
		clk.Set(t0.Add(time.Duration(at) * time.Second))
		m1.poll(t)
	}
	if n := len(client.Restarts("a")); n != 3 {
		t.Fatalf("%d restarts by the first owner, want 3", n)
	}
	own.set("m2")
	var s AgentSnapshot
	for _, at := range []int{20, 30, 40} {
		clk.Set(t0.Add(time.Duration(at) * time.Second))
		s = m2.poll(t)
	}
	if n := len(client.Restarts("a")); n != 4 || !s.Processes[0].AutoRestartSuspended {
		t.Fatalf("%d restarts in all, suspended %v (%s %q); want 4, suspended as one monitor would",
			n, s.Processes[0].AutoRestartSuspended, s.State, s.Reason)
	}
}

// An agent nobody polls for two intervals is listed, by every member.
func TestUnpolledAgentsAreListed(t *testing.T) {
	clk, client, _, m1, m2 := twoMembers(t, fleetOf(policy(nil), fleet.Agent{Name: "a"}))
	client.Add("a", agentclienttest.Script{})
	m2.eng.shared.startedAt = t0
	m1.poll(t)
	clk.Set(t0.Add(15 * time.Second))
	m2.eng.refreshShared()
	if v := m2.eng.Shared(); len(v.Unpolled) != 0 || v.Owned != 0 || !v.Divided {
		t.Fatalf("after one poll: %+v", v)
	}
	// m1 owns it and is gone; nobody polls.
	clk.Set(t0.Add(25 * time.Second))
	m2.eng.refreshShared()
	if v := m2.eng.Shared(); len(v.Unpolled) != 1 || v.Unpolled[0] != "a" {
		t.Fatalf("after two intervals without a poll: %+v", v)
	}
	if s, _ := m2.eng.Snapshot().Agent("a"); s.State != state.Unknown || !strings.Contains(s.Reason, "no monitor sharing the history has polled it since 2026-11-26T04:00:00Z") {
		t.Fatalf("an agent nobody polls shows %s %q", s.State, s.Reason)
	}
}

// A report that reaches a monitor which does not own its push agent is
// kept in the shared history and judged by the owner at its next look;
// the receiver answers without actions. The owner refuses a replay of it.
func TestReportToANonOwnerIsJudgedByTheOwner(t *testing.T) {
	clk, _, _, m1, m2 := twoMembers(t, pushFleet())
	ctx := context.Background()
	if _, err := m1.eng.Report(ctx, signed(t, 1, t0, statusJSON("nat-id", "nat-host", 3), pushToken)); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(5 * time.Second))
	raw := signed(t, 2, t0.Add(5*time.Second), crashedJSON(3), pushToken)
	ans, err := m2.eng.Report(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if a := openAnswer(t, ans); a.Seq != 2 || len(a.Actions) != 0 {
		t.Fatalf("the non-owner's answer: %+v", a)
	}
	// A forged report is refused by the non-owner as by the owner, and kept for nobody.
	if _, err := m2.eng.Report(ctx, signed(t, 9, t0.Add(5*time.Second), crashedJSON(3), "not-the-token-0123456789")); !errors.Is(err, ErrReportRefused) {
		t.Fatalf("a forged report to the non-owner: %v", err)
	}
	if kept, err := m2.hist.TakeReports("nat"); err != nil || len(kept) != 1 {
		t.Fatalf("reports kept for the owner: %d (%v), want the one genuine report", len(kept), err)
	} else if err := m2.hist.PutReport("nat", 2, kept[0]); err != nil {
		t.Fatal(err)
	}
	if s, _ := m2.eng.Snapshot().Agent("nat"); s.State == state.Degraded || s.State == state.Restarting {
		t.Fatalf("the non-owner judged the report: %s", s.State)
	}
	// The owner's next look at the agent takes it.
	clk.Set(t0.Add(10 * time.Second))
	if err := m1.eng.PollNow(ctx, "nat"); err != nil {
		t.Fatal(err)
	}
	s, _ := m1.eng.Snapshot().Agent("nat")
	if s.State != state.Restarting && s.State != state.Degraded {
		t.Fatalf("the owner after taking the passed-on crash report: %s %q", s.State, s.Reason)
	}
	// The restart it decided goes in its answer to the next report.
	clk.Set(t0.Add(15 * time.Second))
	ans, err = m1.eng.Report(ctx, signed(t, 3, t0.Add(15*time.Second), crashedJSON(3), pushToken))
	if err != nil {
		t.Fatal(err)
	}
	if a := openAnswer(t, ans); len(a.Actions) != 1 || a.Actions[0].Action != "restart" || a.Actions[0].IfGeneration != 3 {
		t.Fatalf("the owner's answer: %+v", a)
	}
	if _, err := m1.eng.Report(ctx, raw); !errors.Is(err, ErrReportStale) {
		t.Fatalf("a replay of the passed-on report: %v", err)
	}
}
