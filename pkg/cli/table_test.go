package cli

import (
	"bytes"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/outage"
	"github.com/vigil-cdp/vigil/pkg/state"
)

func TestTableShowsLagWhereCDPShouldRun(t *testing.T) {
	lag := func(s float64) *float64 { return &s }
	now := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	snap := engine.Snapshot{Agents: []engine.AgentSnapshot{
		{
			Name: "db-1", Cluster: "sql-ha", Role: "active", State: state.OK, Reason: "running", RTT: 2 * time.Millisecond,
			LastPollAt: now, LastAnswerAt: now, Judged: true, Budget: outage.Budget{Total: 182 * time.Second},
			Processes: []engine.ProcessSnapshot{{Name: "cdp", State: state.OK, Reason: "running", LagSeconds: lag(12.4)}},
		},
		{
			Name: "db-2", Cluster: "sql-ha", Role: "passive", State: state.Standby, Reason: "not expected",
			LastPollAt: now, LastAnswerAt: now, Judged: true, Budget: outage.Budget{Total: 182 * time.Second},
			Processes: []engine.ProcessSnapshot{{Name: "cdp", State: state.Standby, Reason: "not expected", LagSeconds: lag(300)}},
		},
	}}
	var out bytes.Buffer
	(&watchOutput{w: &out}).table(snap, now, false)
	lines := strings.Split(out.String(), "\n")
	if !strings.HasPrefix(lines[0], "2026-11-26T05:00:00Z  2 agents: 1 OK, 1 STANDBY") {
		t.Errorf("summary line %q", lines[0])
	}
	fields := func(prefix string) []string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return strings.Fields(l)
			}
		}
		t.Fatalf("no line starting %q in:\n%s", prefix, out.String())
		return nil
	}
	// AGENT CLUSTER/ROLE STATE RTT BUDGET LAG LAST-RESTART REASON
	if f := fields("db-1 "); f[5] != "12s" {
		t.Errorf("db-1 lag column %q, want 12s: %v", f[5], f)
	}
	if f := fields("db-2 "); f[5] != "-" {
		t.Errorf("standby db-2 lag column %q, want -: %v", f[5], f)
	}
	if strings.Contains(out.String(), "5m0s") {
		t.Errorf("a standby process's lag is shown:\n%s", out.String())
	}
}

// An agent that did not answer the latest poll with a status (silent: GRACE,
// FAILED; an error answer: UNKNOWN; a state restored from the history, not
// polled yet) has no current RTT or lag: the table says "?", for the agent
// and its processes, instead of what an earlier answer said.
func TestTableShowsUnknownRTTAndLagWithoutACurrentAnswer(t *testing.T) {
	lag := func(s float64) *float64 { return &s }
	now := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	before := now.Add(-30 * time.Second)
	agent := func(name string, st state.State, edit func(*engine.AgentSnapshot)) engine.AgentSnapshot {
		a := engine.AgentSnapshot{
			Name: name, State: st, Reason: "r", RTT: 2 * time.Millisecond, Judged: true,
			LastPollAt: now, LastAnswerAt: before, Budget: outage.Budget{Total: 14 * time.Second},
			Processes: []engine.ProcessSnapshot{{Name: "cdp", State: st, Reason: "r", LagSeconds: lag(0)}},
		}
		edit(&a)
		return a
	}
	snap := engine.Snapshot{Agents: []engine.AgentSnapshot{
		agent("answered", state.OK, func(a *engine.AgentSnapshot) { a.LastAnswerAt = now }),
		agent("failed", state.Failed, func(a *engine.AgentSnapshot) {
			a.SilentSince = before.Add(10 * time.Second)
			a.LastError = "network: no answer"
		}),
		agent("grace", state.Grace, func(a *engine.AgentSnapshot) { a.SilentSince = now; a.LastError = "network: no answer" }),
		agent("error-answer", state.Unknown, func(a *engine.AgentSnapshot) { a.LastAnswerAt = now; a.LastError = "HTTP 401" }),
		agent("restored", state.OK, func(a *engine.AgentSnapshot) { a.Judged = false; a.LastPollAt = before }),
	}}
	var out bytes.Buffer
	(&watchOutput{w: &out}).table(snap, now, false)
	rows := map[string][]string{}
	var processRows [][]string
	for _, l := range strings.Split(out.String(), "\n")[2:] {
		f := strings.Fields(l)
		switch {
		case len(f) == 0:
		case strings.HasPrefix(l, "  "):
			processRows = append(processRows, f)
		default:
			rows[f[0]] = f
		}
	}
	// AGENT CLUSTER/ROLE STATE RTT BUDGET LAG LAST-RESTART REASON; a process: NAME STATE LAG REASON
	if f := rows["answered"]; f[3] != "2ms" || f[5] != "0s" {
		t.Errorf("an agent that answered: RTT %q, lag %q; want 2ms, 0s", f[3], f[5])
	}
	for _, name := range []string{"failed", "grace", "error-answer", "restored"} {
		if f := rows[name]; f[3] != "?" || f[5] != "?" {
			t.Errorf("%s: RTT %q, lag %q; want ?, ? in\n%s", name, f[3], f[5], out.String())
		}
	}
	if len(processRows) != 5 || processRows[0][2] != "0s" {
		t.Fatalf("process rows %v", processRows)
	}
	for _, f := range processRows[1:] {
		if f[2] != "?" {
			t.Errorf("process row %v: lag %q, want ?", f, f[2])
		}
	}
}

// Watch's human output has one zone, UTC, written with every time: the
// header and every event line, whatever the machine's zone.
func TestWatchTimesAreUTC(t *testing.T) {
	local := time.Local
	time.Local = time.FixedZone("UTC+5", 5*3600)
	t.Cleanup(func() { time.Local = local })
	at := time.Date(2026, 11, 26, 5, 43, 32, 400e6, time.UTC).In(time.Local)
	if got := describeEvent(engine.Event{Type: history.TypeState, Time: at, Agent: "db-1", From: state.OK, To: state.Grace, Reason: "silent"}); got != "2026-11-26T05:43:32Z db-1 OK -> GRACE: silent" {
		t.Errorf("state line %q", got)
	}
	if got := describeEvent(engine.Event{Type: history.TypeAction, Time: at, Agent: "db-1", Process: "cdp", Action: "restart", By: "auto", Result: "ok", Generation: 2}); got != "2026-11-26T05:43:32Z db-1/cdp restart by auto: ok, generation 2" {
		t.Errorf("action line %q", got)
	}
	var out bytes.Buffer
	(&watchOutput{w: &out}).table(engine.Snapshot{}, at, false)
	if !strings.HasPrefix(out.String(), "2026-11-26T05:43:32Z  0 agents") {
		t.Errorf("header %q", out.String())
	}
	// The engine's warnings (stderr) too.
	out.Reset()
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{ReplaceAttr: utcLogTime}))
	log.Warn("agent failed")
	if !regexp.MustCompile(`^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=WARN`).MatchString(out.String()) {
		t.Errorf("log line %q", out.String())
	}
}
