package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/remediation"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// manualActionLine is actionLine for an action by a person.
func manualActionLine(d time.Duration, agent, action, by string, gen int64, result, errText string) string {
	return strings.TrimSuffix(actionLine(d, agent, action, by, gen, result, errText), "}") + `,"manual":true}`
}

// record is the agent's resume record as last written to the history.
func (m *memHistory) record(t *testing.T, agent string) agentRecord {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var r agentRecord
	if raw := m.agents[agent]; raw != nil {
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func TestRestartOfAnUnknownProcessLeavesNothing(t *testing.T) {
	hist := newMemHistory()
	h := newHarness(t, fleetOf(policy(nil), fleet.Agent{Name: "a"}), hist)
	h.client.Add("a", agentclienttest.Script{})
	h.poll("a")
	h.take()
	hist.mu.Lock()
	events, records := len(hist.events), len(hist.agents)
	hist.mu.Unlock()
	before, _ := h.eng.Snapshot().Agent("a")

	for i := range 50 {
		_, err := h.eng.Restart(context.Background(), "a", fmt.Sprintf("typo-%d", i), "alice", "", AnyGeneration)
		var ae *agentclient.Error
		if !errors.As(err, &ae) || ae.StatusCode != 404 {
			t.Fatalf("restart of typo-%d: %v, want the agent's 404", i, err)
		}
	}
	if ev := h.take(); len(ev) != 0 {
		t.Errorf("events emitted: %v", ev)
	}
	hist.mu.Lock()
	if len(hist.events) != events || len(hist.agents) != records {
		t.Errorf("the history grew: %d events (was %d)", len(hist.events), events)
	}
	hist.mu.Unlock()
	if trackers := h.eng.agents["a"].rec.Trackers; len(trackers) != 1 || trackers["cdp"] == nil {
		t.Errorf("trackers: %v", trackers)
	}
	if after, _ := h.eng.Snapshot().Agent("a"); after.State != before.State || len(after.Processes) != 1 {
		t.Errorf("snapshot changed: %+v", after)
	}
	h.clk.Advance(10 * time.Second)
	h.poll("a")
	if r := hist.record(t, "a"); len(r.Trackers) != 1 {
		t.Errorf("resume record trackers: %v", r.Trackers)
	}
}

func TestRestartBeforeTheFirstAnswer(t *testing.T) {
	hist := newMemHistory()
	h := newHarness(t, fleetOf(policy(nil), fleet.Agent{Name: "a"}), hist)
	h.client.Add("a", agentclienttest.Script{Silent: true})

	// Nothing reported yet: an unreachable agent confirms nothing.
	if _, err := h.eng.Restart(context.Background(), "a", "cdp", "alice", "", AnyGeneration); err == nil {
		t.Fatal("a restart on a silent agent succeeded")
	}
	if ev := h.take(); len(ev) != 0 || len(h.eng.agents["a"].rec.Trackers) != 0 {
		t.Errorf("a failed restart of a process never reported left events %v, trackers %v", ev, h.eng.agents["a"].rec.Trackers)
	}
	// The agent has it: the restart is recorded as any other.
	h.client.Set("a", func(a *agentclienttest.Script) { a.Silent = false })
	if _, err := h.eng.Restart(context.Background(), "a", "cdp", "alice", "", AnyGeneration); err != nil {
		t.Fatal(err)
	}
	if ev := h.take(); len(ev) != 1 || ev[0] != manualActionLine(0, "a", "restart", "alice", 2, "ok", "") {
		t.Errorf("events: %v", ev)
	}
	if tr := h.eng.agents["a"].rec.Trackers["cdp"]; tr == nil || tr.LastAction == nil || tr.LastAction.By != "alice" {
		t.Errorf("tracker: %+v", tr)
	}
	if n := len(h.client.Restarts("a")); n != 1 {
		t.Errorf("%d restarts reached the agent", n)
	}
}

func TestAPersonNamedAuto(t *testing.T) {
	cfg := fleetOf(policy(func(p *fleet.Policy) { p.AutoRestart.MaxRestarts = 0 }), fleet.Agent{Name: "a"})
	h := newHarness(t, cfg, newMemHistory())
	h.client.Add("a", agentclienttest.Script{State: "crashed", CrashAfterRestart: true})
	if s := h.poll("a"); s.State != state.Degraded || !s.Processes[0].AutoRestartSuspended {
		t.Fatalf("maxRestarts 0: %s %q", s.State, s.Reason)
	}
	if ev := h.take(); len(ev) == 0 || ev[0] != actionLine(0, "a", "restart", "auto", 2, "ok", "") {
		t.Errorf("the engine's restart: %v", ev)
	}
	h.clk.Advance(time.Second)
	h.client.Set("a", func(a *agentclienttest.Script) { a.CrashAfterRestart = false })
	res, err := h.eng.Restart(context.Background(), "a", "cdp", remediation.Auto, "my login is auto", AnyGeneration)
	if err != nil || res.Generation != 3 {
		t.Fatalf("Restart by the person auto = %+v, %v", res, err)
	}
	if ev := h.take(); len(ev) < 1 || ev[0] != manualActionLine(time.Second, "a", "restart", "auto", 3, "ok", "") {
		t.Errorf("events: %v", ev)
	}
	s, _ := h.eng.Snapshot().Agent("a")
	// A person's restart lifts the flap guard; the engine's would not.
	if la := s.Processes[0].LastAction; la == nil || la.By != "auto" || !la.Manual || s.Processes[0].AutoRestartSuspended {
		t.Errorf("after the person auto's restart: %+v %+v", s.Processes[0], la)
	}
	reqs := h.client.Restarts("a")
	if reqs[0].RequestedBy != "vigil auto-restart" || reqs[1].RequestedBy != "auto" {
		t.Errorf("requestedBy: %q then %q", reqs[0].RequestedBy, reqs[1].RequestedBy)
	}
}

func TestTrackersOfProcessesNoLongerReportedAreForgotten(t *testing.T) {
	cfg := fleetOf(policy(nil), fleet.Agent{Name: "a"})
	hist := newMemHistory()
	// A record written by an older version that kept a tracker per name asked for.
	legacy := agentRecord{Trackers: map[string]*remediation.Tracker{"cdp": {}, "typo": {FailedAttempts: 1}}}
	raw, _ := json.Marshal(legacy)
	hist.agents["a"] = raw
	h := newHarness(t, cfg, hist)
	h.client.Add("a", agentclienttest.Script{})
	h.poll("a")
	if r := hist.record(t, "a"); len(r.Trackers) != 1 || r.Trackers["cdp"] == nil {
		t.Errorf("trackers after an answer: %v", r.Trackers)
	}
}
