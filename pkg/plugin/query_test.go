package plugin

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/experimental"

	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/outage"
	"github.com/vigil-cdp/vigil/pkg/remediation"
	"github.com/vigil-cdp/vigil/pkg/state"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// memHistory is an in-memory history with the store's query semantics.
type memHistory struct {
	obs    []history.Observation
	events []history.Event
}

func inRange(q history.Query, agent string, t time.Time) bool {
	return (q.Agent == "" || q.Agent == agent) && (q.From.IsZero() || !t.Before(q.From)) && (q.To.IsZero() || t.Before(q.To))
}

func (m *memHistory) Observations(q history.Query) ([]history.Observation, error) {
	var out []history.Observation
	for _, o := range m.obs {
		if inRange(q, o.Agent, o.Time) {
			out = append(out, o)
		}
	}
	return out, nil
}

func (m *memHistory) Events(q history.Query) ([]history.Event, error) {
	var out []history.Event
	for _, e := range m.events {
		if inRange(q, e.Agent, e.Time) {
			out = append(out, e)
		}
	}
	return out, nil
}

func lag(v float64) *float64 { return &v }

// fixture is a three-agent fleet polled every 10 s for a minute: the
// standalone agent fine with a restart at +30 s, node-a going silent at
// +30 s (GRACE, then FAILED) with its auto-restart suspended from +21 s,
// node-b a passive cluster node.
func fixture() source {
	h := &memHistory{}
	for i := 0; i < 6; i++ {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		gen := int64(1)
		if i >= 3 {
			gen = 2
		}
		h.obs = append(h.obs, history.Observation{Time: at, Answered: true, Agent: "standalone", State: state.OK, Reason: "running",
			RTT: 4 * time.Millisecond, BudgetSeconds: 182, Role: "standalone",
			Processes: []history.ProcessObservation{{Name: "replicator", State: state.OK, Generation: gen, LagSeconds: lag(float64(i))}}})
		a := history.Observation{Time: at.Add(time.Second), Answered: true, Agent: "node-a", Cluster: "ha", Role: "active", State: state.OK,
			RTT: 6 * time.Millisecond, BudgetSeconds: 62,
			Processes: []history.ProcessObservation{{Name: "replicator", State: state.OK, Generation: 7}}}
		switch {
		case i == 2:
			// The flap guard stops node-a's automatic restarts at its last answer.
			a.Processes[0].AutoRestartSuspended = true
		case i == 3 || i == 4:
			a = history.Observation{Time: at.Add(time.Second), Agent: "node-a", Cluster: "ha", State: state.Grace, Reason: "awaiting failover", BudgetSeconds: 62}
		case i == 5:
			a = history.Observation{Time: at.Add(time.Second), Agent: "node-a", Cluster: "ha", State: state.Failed, Reason: "no answer", BudgetSeconds: 62}
		}
		h.obs = append(h.obs, a,
			history.Observation{Time: at.Add(2 * time.Second), Answered: true, Agent: "node-b", Cluster: "ha", Role: "passive", State: state.Standby,
				RTT: 5 * time.Millisecond, BudgetSeconds: 62,
				Processes: []history.ProcessObservation{{Name: "replicator", State: state.Standby, Generation: 3}}})
	}
	h.events = []history.Event{
		{Type: history.TypeAction, Time: t0.Add(25 * time.Second), Agent: "standalone", Process: "replicator", Action: "restart", By: "alice", Result: "ok", Reason: "after maintenance", Generation: 2},
		{Type: history.TypeState, Time: t0.Add(31 * time.Second), Agent: "node-a", From: state.OK, To: state.Grace, Reason: "awaiting failover"},
		{Type: history.TypeState, Time: t0.Add(51 * time.Second), Agent: "node-a", From: state.Grace, To: state.Failed, Reason: "no answer", Diagnosis: "dns ok; tcp failed (connection refused); http not tried"},
	}
	gen2, gen7, gen3 := int64(2), int64(7), int64(3)
	pid := int64(4242)
	restartedAt := t0.Add(25 * time.Second)
	now := t0.Add(55 * time.Second)
	budget := outage.Budget{Total: 62 * time.Second, ResponseTime: time.Second, Processing: time.Second,
		Allowances: []outage.Allowance{{Kind: outage.Failover, Value: 60 * time.Second, Configured: 60 * time.Second}}, Combine: "max", Mode: "configured"}
	return source{
		hist:         h,
		pollInterval: 10 * time.Second,
		startedAt:    t0.Add(-time.Minute),
		snap: engine.Snapshot{Time: now, Agents: []engine.AgentSnapshot{
			{Name: "standalone", Role: "standalone", State: state.OK, Reason: "running", RTT: 4 * time.Millisecond,
				LastPollAt: t0.Add(50 * time.Second), LastAnswerAt: t0.Add(50 * time.Second), Budget: budget,
				Processes: []engine.ProcessSnapshot{{Name: "replicator", State: state.OK, Reason: "running", Generation: gen2, PID: &pid, LagSeconds: lag(5),
					LastAction: &remediation.LastAction{Kind: remediation.Restart, At: restartedAt, By: "alice", Generation: 2, OK: true}}}},
			{Name: "node-a", Cluster: "ha", Role: "active", State: state.Failed, Reason: "no answer for 24 s, budget 62 s",
				LastPollAt: t0.Add(51 * time.Second), LastAnswerAt: t0.Add(21 * time.Second), RTT: 6 * time.Millisecond, Budget: budget,
				Processes: []engine.ProcessSnapshot{{Name: "replicator", State: state.OK, Generation: gen7, AutoRestartSuspended: true}}},
			{Name: "node-b", Cluster: "ha", Role: "passive", State: state.Standby, Reason: "passive cluster node",
				LastPollAt: t0.Add(52 * time.Second), LastAnswerAt: t0.Add(52 * time.Second), RTT: 5 * time.Millisecond, Budget: budget,
				Processes: []engine.ProcessSnapshot{{Name: "replicator", State: state.Standby, Reason: "not expected on a passive node", Generation: gen3}}},
		}},
	}
}

func dataQuery(queryType, model string) backend.DataQuery {
	return backend.DataQuery{
		RefID: "A", QueryType: queryType, JSON: json.RawMessage(model),
		TimeRange:     backend.TimeRange{From: t0, To: t0.Add(time.Minute)},
		Interval:      10 * time.Second,
		MaxDataPoints: 100,
	}
}

func TestQueryGolden(t *testing.T) {
	tests := []struct {
		name      string
		queryType string
		model     string
		maxPoints int64
	}{
		{name: "status", queryType: QueryTypeStatus, model: `{}`},
		{name: "status-failed-only", queryType: QueryTypeStatus, model: `{"states":["FAILED"]}`},
		{name: "timeline", queryType: QueryTypeTimeline, model: `{"agents":["standalone","node-a"]}`},
		{name: "timeline-coarse", queryType: QueryTypeTimeline, model: `{"cluster":"ha"}`, maxPoints: 2},
		{name: "metrics", queryType: QueryTypeMetrics, model: `{"agents":["standalone","node-a"]}`},
		{name: "metrics-alert-state-code", queryType: QueryTypeMetrics, model: `{"metrics":["stateCode"]}`},
		{name: "events", queryType: QueryTypeEvents, model: `{}`},
		{name: "events-failed", queryType: QueryTypeEvents, model: `{"agents":["node-a"],"states":["FAILED"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := dataQuery(tt.queryType, tt.model)
			if tt.maxPoints > 0 {
				q.MaxDataPoints = tt.maxPoints
			}
			f, err := parseFilter(q.JSON, tt.queryType)
			if err != nil {
				t.Fatal(err)
			}
			fr, err := queryHandlers[tt.queryType](fixture(), q, f)
			if err != nil {
				t.Fatal(err)
			}
			dr := backend.DataResponse{Frames: fr}
			experimental.CheckGoldenJSONResponse(t, "testdata", "query-"+tt.name+".golden", &dr, *update)
		})
	}
}

// An alert rule gets one instance per agent: one stateCode series per
// agent, each with distinct labels.
func TestMetricsOneLabelledSeriesPerAgent(t *testing.T) {
	q := dataQuery(QueryTypeMetrics, `{"metrics":["stateCode"]}`)
	f, _ := parseFilter(q.JSON, QueryTypeMetrics)
	fr, err := queryMetrics(fixture(), q, f)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, frame := range fr {
		if frame.Meta.Type != data.FrameTypeTimeSeriesMulti || frame.Meta.TypeVersion != (data.FrameTypeVersion{0, 1}) {
			t.Errorf("frame %q meta %+v", frame.Name, frame.Meta)
		}
		v := frame.Fields[1]
		if v.Name != "stateCode" {
			t.Errorf("field %q", v.Name)
		}
		key := v.Labels.String()
		if seen[key] {
			t.Errorf("two series with labels %s", key)
		}
		seen[key] = true
	}
	if len(fr) != 3 || !seen["agent=standalone"] || !seen["agent=node-a, cluster=ha"] || !seen["agent=node-b, cluster=ha"] {
		t.Errorf("series: %v", seen)
	}
}

func TestParseFilterErrors(t *testing.T) {
	tests := []struct {
		name, model, want string
	}{
		{"unknown state", `{"states":["OK","BROKEN"]}`, `states[1]: unknown state "BROKEN": known states are OK, STANDBY, RESTARTING, GRACE, DEGRADED, FAILED, UNKNOWN`},
		{"unknown metric", `{"metrics":["cpu"]}`, `metrics[0]: unknown metric "cpu": known metrics are stateCode, up, rttSeconds, budgetSeconds, processRunning, protectionLagSeconds, restarts, autoRestartSuspended, engineStalenessSeconds`},
		{"not a list", `{"agents":"a"}`, `the query is not valid: json: cannot unmarshal string into Go struct field queryModel.agents of type []string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFilter(json.RawMessage(tt.model), QueryTypeMetrics)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestGrid(t *testing.T) {
	tests := []struct {
		name     string
		span     time.Duration
		interval time.Duration
		max      int64
		wantStep time.Duration
		wantN    int
	}{
		{"interval rules", time.Minute, 10 * time.Second, 100, 10 * time.Second, 6},
		{"max data points rule", time.Hour, time.Second, 60, time.Minute, 60},
		{"at least a second", 10 * time.Second, 0, 0, time.Second, 10},
		{"alert rule: 10 min, 10 s, 43200 points", 10 * time.Minute, 10 * time.Second, 43200, 10 * time.Second, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := gridFor(backend.DataQuery{TimeRange: backend.TimeRange{From: t0, To: t0.Add(tt.span)}, Interval: tt.interval, MaxDataPoints: tt.max})
			if g.step != tt.wantStep || g.n != tt.wantN {
				t.Errorf("step %s n %d, want %s %d", g.step, g.n, tt.wantStep, tt.wantN)
			}
		})
	}
}
