package engine

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/report"
	"github.com/vigil-cdp/vigil/pkg/state"
)

const pushToken = "push-token-0123456789"

func pushFleet() fleet.Config {
	cfg := fleetOf(policy(nil), fleet.Agent{Name: "nat"})
	cfg.Agents[0].URL = ""
	cfg.Agents[0].Transport, cfg.Agents[0].ReportEvery, cfg.Agents[0].ReportToken = fleet.TransportPush, 10*time.Second, pushToken
	return cfg
}

func signed(t *testing.T, seq int64, at time.Time, status []byte, token string) []byte {
	t.Helper()
	raw, err := report.Make(report.Report{Agent: "nat", Seq: seq, SentAt: at, Reason: "schedule", Status: status}, token)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func openAnswer(t *testing.T, raw []byte) report.Answer {
	t.Helper()
	var env report.Envelope
	if err := json.Unmarshal(raw, &env); err != nil || report.Sign(pushToken, env.Answer) != env.MAC {
		t.Fatalf("answer %s: not signed with the agent's token (%v)", raw, err)
	}
	var a report.Answer
	if err := json.Unmarshal([]byte(env.Answer), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func crashedJSON(gen int64) []byte {
	s := string(statusJSON("nat-id", "nat-host", gen))
	s = strings.Replace(s, `"state":"running"`, `"state":"crashed"`, 1)
	return []byte(strings.Replace(s, `"pid":5,`, `"pid":null,`, 1))
}

// A push agent's report goes through the same processing as a poll; a
// restart the engine decides goes into the signed answer with the
// generation guard; replays and forgeries are refused; a missed report is
// a silence judged by the budget from the last report plus the interval.
func TestPushedReports(t *testing.T) {
	hist := newMemHistory()
	h := newHarness(t, pushFleet(), hist)
	ctx := context.Background()
	ans, err := h.eng.Report(ctx, signed(t, 1, t0, statusJSON("nat-id", "nat-host", 3), pushToken))
	if err != nil {
		t.Fatal(err)
	}
	if a := openAnswer(t, ans); a.Seq != 1 || len(a.Actions) != 0 {
		t.Errorf("answer to a healthy report: %+v", a)
	}
	if s, _ := h.eng.Snapshot().Agent("nat"); s.State != state.OK {
		t.Fatalf("after a healthy report: %s %q", s.State, s.Reason)
	}

	h.clk.Set(t0.Add(5 * time.Second))
	ans, err = h.eng.Report(ctx, signed(t, 2, t0.Add(5*time.Second), crashedJSON(3), pushToken))
	if err != nil {
		t.Fatal(err)
	}
	a := openAnswer(t, ans)
	if len(a.Actions) != 1 || a.Actions[0] != (report.Request{Action: "restart", Process: "cdp", IfGeneration: 3, Reason: a.Actions[0].Reason, RequestedBy: "vigil auto-restart"}) {
		t.Fatalf("answer to a crash: %+v", a)
	}
	if s, _ := h.eng.Snapshot().Agent("nat"); s.State != state.Restarting {
		t.Errorf("after the restart request: %s %q", s.State, s.Reason)
	}
	if ev := strings.Join(h.take(), "\n"); !strings.Contains(ev, `"action":"restart","by":"auto","generation":4,"result":"requested"`) {
		t.Errorf("events:\n%s", ev)
	}

	// The agent restarted it: the next report shows generation 4.
	h.clk.Set(t0.Add(6 * time.Second))
	if _, err := h.eng.Report(ctx, signed(t, 3, t0.Add(6*time.Second), statusJSON("nat-id", "nat-host", 4), pushToken)); err != nil {
		t.Fatal(err)
	}
	if s, _ := h.eng.Snapshot().Agent("nat"); s.State != state.OK {
		t.Errorf("after the restart: %s %q", s.State, s.Reason)
	}

	for _, tc := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"a replay", signed(t, 3, t0.Add(6*time.Second), statusJSON("nat-id", "nat-host", 4), pushToken), ErrReportStale},
		{"an older time", signed(t, 9, t0.Add(time.Second), statusJSON("nat-id", "nat-host", 4), pushToken), ErrReportStale},
		{"from the future", signed(t, 9, t0.Add(time.Hour), statusJSON("nat-id", "nat-host", 4), pushToken), ErrReportStale},
		{"a forgery", signed(t, 10, t0.Add(7*time.Second), crashedJSON(4), "not-the-token-0123456"), ErrReportRefused},
		{"a polled agent's name", []byte(`{"report":"{\"agent\":\"other\"}","mac":"00"}`), ErrReportRefused},
		{"not an envelope", []byte(`{"status":{}}`), report.ErrMalformed},
	} {
		if _, err := h.eng.Report(ctx, tc.raw); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if s, _ := h.eng.Snapshot().Agent("nat"); s.State != state.OK {
		t.Errorf("refused reports changed the state: %s", s.State)
	}

	// No more reports. Budget 32 s (1 + 1 + max(30, 10, 20)), counted from
	// the last report (6 s) plus the interval (10 s): FAILED after 48 s.
	for _, c := range []struct {
		at   time.Duration
		want state.State
	}{{15, state.OK}, {20, state.Grace}, {47, state.Grace}, {49, state.Failed}} {
		h.clk.Set(t0.Add(c.at * time.Second))
		s := h.poll("nat")
		if s.State != c.want {
			t.Errorf("at %d s: %s %q, want %s", c.at, s.State, s.Reason, c.want)
		}
		if c.want == state.Failed && !strings.Contains(s.Diagnosis, "push agent") {
			t.Errorf("diagnosis: %q", s.Diagnosis)
		}
	}

	// A monitor restarted on the same history still refuses the replay.
	h2 := newHarness(t, pushFleet(), hist)
	if _, err := h2.eng.Report(ctx, signed(t, 3, t0.Add(6*time.Second), statusJSON("nat-id", "nat-host", 4), pushToken)); !errors.Is(err, ErrReportStale) {
		t.Errorf("a replay after the monitor's restart: %v", err)
	}
}

// A restart from Grafana's restart panel for a push agent waits for its
// next report, and goes in the answer with the generation the person saw.
func TestPushAgentRestartByAPerson(t *testing.T) {
	h := newHarness(t, pushFleet(), newMemHistory())
	ctx := context.Background()
	if _, err := h.eng.Report(ctx, signed(t, 1, t0, statusJSON("nat-id", "nat-host", 3), pushToken)); err != nil {
		t.Fatal(err)
	}
	started, err := h.eng.Restart(ctx, "nat", "cdp", "alice", "stuck", 3)
	if err != nil || started.Generation != 4 {
		t.Fatalf("restart by alice: %+v %v", started, err)
	}
	ans, err := h.eng.Report(ctx, signed(t, 2, t0.Add(time.Second), statusJSON("nat-id", "nat-host", 3), pushToken))
	if err != nil {
		t.Fatal(err)
	}
	a := openAnswer(t, ans)
	if len(a.Actions) != 1 || a.Actions[0] != (report.Request{Action: "restart", Process: "cdp", IfGeneration: 3, Reason: "stuck", RequestedBy: "alice"}) {
		t.Fatalf("answer: %+v", a)
	}
	ans, _ = h.eng.Report(ctx, signed(t, 3, t0.Add(2*time.Second), statusJSON("nat-id", "nat-host", 4), pushToken))
	if a := openAnswer(t, ans); len(a.Actions) != 0 {
		t.Errorf("asked twice: %+v", a)
	}
}
