package plugin

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/experimental"

	"github.com/vigil-cdp/vigil/internal/ssecheck"
	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/frames"
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
			{Name: "standalone", Judged: true, Role: "standalone", State: state.OK, Reason: "running", RTT: 4 * time.Millisecond,
				LastPollAt: t0.Add(50 * time.Second), LastAnswerAt: t0.Add(50 * time.Second), Budget: budget,
				Processes: []engine.ProcessSnapshot{{Name: "replicator", State: state.OK, Reason: "running", Generation: gen2, PID: &pid, LagSeconds: lag(5),
					LastAction: &remediation.LastAction{Kind: remediation.Restart, At: restartedAt, By: "alice", Generation: 2, OK: true}}}},
			{Name: "node-a", Judged: true, Cluster: "ha", Role: "active", State: state.Failed, Reason: "no answer for 24 s, budget 62 s",
				LastPollAt: t0.Add(51 * time.Second), LastAnswerAt: t0.Add(21 * time.Second), RTT: 6 * time.Millisecond, Budget: budget,
				Processes: []engine.ProcessSnapshot{{Name: "replicator", State: state.OK, Generation: gen7, AutoRestartSuspended: true}}},
			{Name: "node-b", Judged: true, Cluster: "ha", Role: "passive", State: state.Standby, Reason: "passive cluster node",
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
		alert     bool
	}{
		{name: "status", queryType: QueryTypeStatus, model: `{}`},
		{name: "status-failed-only", queryType: QueryTypeStatus, model: `{"states":["FAILED"]}`},
		{name: "timeline", queryType: QueryTypeTimeline, model: `{"agents":["standalone","node-a"]}`},
		{name: "timeline-coarse", queryType: QueryTypeTimeline, model: `{"cluster":"ha"}`, maxPoints: 2},
		{name: "metrics", queryType: QueryTypeMetrics, model: `{"agents":["standalone","node-a"]}`},
		{name: "metrics-alert-state-code", queryType: QueryTypeMetrics, model: `{"metrics":["stateCode"]}`},
		{name: "events", queryType: QueryTypeEvents, model: `{}`},
		{name: "events-failed", queryType: QueryTypeEvents, model: `{"agents":["node-a"],"states":["FAILED"]}`},
		// What Grafana Alerting gets (the FromAlert header).
		{name: "alert-status", queryType: QueryTypeStatus, model: `{}`, alert: true},
		{name: "alert-events", queryType: QueryTypeEvents, model: `{"cluster":"ha"}`, alert: true},
		{name: "alert-metrics-two", queryType: QueryTypeMetrics, model: `{"agents":["node-a"],"metrics":["stateCode","engineStalenessSeconds"]}`, alert: true},
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
			src := fixture()
			src.alert = tt.alert
			fr, err := queryHandlers[tt.queryType](src, q, f)
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
		{"unknown metric", `{"metrics":["cpu"]}`, `metrics[0]: unknown metric "cpu": known metrics are stateCode, up, rttSeconds, budgetSeconds, processRunning, protectionLagSeconds, restarts, autoRestartSuspended, engineStalenessSeconds, unpolledAgents`},
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
			if g.Step != tt.wantStep || g.N != tt.wantN {
				t.Errorf("step %s n %d, want %s %d", g.Step, g.N, tt.wantStep, tt.wantN)
			}
		})
	}
}

// alertQuery answers q as it is answered to Grafana Alerting (FromAlert).
func alertQuery(t *testing.T, src source, queryType, model string) data.Frames {
	t.Helper()
	src.alert = true
	return queryAs(t, src, queryType, model)
}

func queryAs(t *testing.T, src source, queryType, model string) data.Frames {
	t.Helper()
	q := dataQuery(queryType, model)
	handlerType := queryType
	if handlerType == "" {
		handlerType = QueryTypeStatus
	}
	f, err := parseFilter(q.JSON, handlerType)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := queryHandlers[handlerType](src, q, f)
	if err != nil {
		t.Fatal(err)
	}
	return fr
}

func num(v float64) *float64 { return &v }

func valueString(v *float64) string {
	if v == nil {
		return "null"
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

// wantInstances checks the alert instances an expression would see: label
// sets (as "agent=a, cluster=b") and their values; nil is no value.
func wantInstances(t *testing.T, got []ssecheck.Instance, want map[string]*float64) {
	t.Helper()
	byLabels := ssecheck.ByLabels(got)
	for labels, w := range want {
		g, ok := byLabels[labels]
		if !ok {
			t.Errorf("no instance {%s}; instances: %v", labels, keys(byLabels))
			continue
		}
		if valueString(g) != valueString(w) {
			t.Errorf("{%s} = %s, want %s", labels, valueString(g), valueString(w))
		}
	}
}

func keys(m map[string]*float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// A rule built by hand in Grafana's rule editor starts from a query of any
// type: each one must evaluate under the server-side expressions' rules,
// one labelled number per agent (and process) once reduced.
func TestAlertQueriesEvaluate(t *testing.T) {
	tests := []struct {
		name, queryType, model string
		wantCount              int
		want                   map[string]*float64
	}{
		{
			name: "status (the default type)", queryType: "", model: `{}`, wantCount: 3,
			want: map[string]*float64{
				"agent=standalone, process=replicator":         num(0),
				"agent=node-a, cluster=ha, process=replicator": num(5),
				"agent=node-b, cluster=ha, process=replicator": num(1),
			},
		},
		{
			name: "status of failed agents", queryType: QueryTypeStatus, model: `{"states":["FAILED"]}`, wantCount: 1,
			want: map[string]*float64{"agent=node-a, cluster=ha, process=replicator": num(5)},
		},
		{
			name: "events: a count per agent and kind over the range", queryType: QueryTypeEvents, model: `{}`, wantCount: 12,
			want: map[string]*float64{
				"agent=standalone, kind=action":        num(1),
				"agent=standalone, kind=state":         num(0),
				"agent=node-a, cluster=ha, kind=state": num(2),
				"agent=node-b, cluster=ha, kind=agent": num(0),
			},
		},
		{
			name: "events into FAILED", queryType: QueryTypeEvents, model: `{"agents":["node-a"],"states":["FAILED"]}`, wantCount: 1,
			want: map[string]*float64{"agent=node-a, cluster=ha, kind=state": num(1)},
		},
		{
			name: "metrics without a metric chosen", queryType: QueryTypeMetrics, model: `{}`, wantCount: 3*4 + 3*4 + 1,
			want: map[string]*float64{
				"agent=node-a, cluster=ha, metric=stateCode":                                num(5),
				"agent=node-a, cluster=ha, metric=up":                                       num(0),
				"agent=standalone, metric=budgetSeconds":                                    num(182),
				"agent=standalone, metric=protectionLagSeconds, process=replicator":         num(5),
				"agent=node-a, cluster=ha, metric=autoRestartSuspended, process=replicator": num(1),
				"metric=engineStalenessSeconds":                                             num(5),
			},
		},
		{
			name: "metrics: two chosen", queryType: QueryTypeMetrics, model: `{"metrics":["stateCode","up"]}`, wantCount: 6,
			want: map[string]*float64{"agent=node-b, cluster=ha, metric=up": num(1)},
		},
		{
			name: "metrics: the agent state (no metric label)", queryType: QueryTypeMetrics, model: `{"metrics":["stateCode"]}`, wantCount: 3,
			want: map[string]*float64{"agent=standalone": num(0), "agent=node-a, cluster=ha": num(5), "agent=node-b, cluster=ha": num(1)},
		},
		{
			name: "timeline", queryType: QueryTypeTimeline, model: `{}`, wantCount: 6,
			want: map[string]*float64{"agent=node-a, cluster=ha": num(5), "agent=node-a, cluster=ha, process=replicator": num(5), "agent=node-b, cluster=ha, process=replicator": num(1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := ssecheck.Evaluate(alertQuery(t, fixture(), tt.queryType, tt.model))
			if err != nil {
				t.Fatalf("the rule fails: %v", err)
			}
			if len(got) != tt.wantCount {
				t.Errorf("%d instances, want %d: %v", len(got), tt.wantCount, keys(ssecheck.ByLabels(got)))
			}
			wantInstances(t, got, tt.want)
		})
	}
}

// Dashboards keep their frames, which server-side expressions cannot read:
// the reason alert queries are answered differently.
func TestDashboardFramesDoNotEvaluate(t *testing.T) {
	tests := []struct{ queryType, model, wantErr string }{
		{QueryTypeStatus, `{}`, "input data must be a wide series but got type long"},
		{QueryTypeEvents, `{}`, "input data must be a wide series but got type not"},
		{QueryTypeMetrics, `{}`, "frame cannot uniquely be identified by its labels: has duplicate results with labels {agent=standalone}"},
	}
	for _, tt := range tests {
		t.Run(tt.queryType, func(t *testing.T) {
			fr := queryAs(t, fixture(), tt.queryType, tt.model)
			if _, _, err := ssecheck.Evaluate(fr); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if fr := queryAs(t, fixture(), QueryTypeStatus, `{}`); len(fr) != 1 || fr[0].Name != "status" || fr[0].Rows() != 3 {
		t.Errorf("the dashboard status table changed: %v", fr)
	}
}

// An agent the engine has not judged since it started (its state is only
// the one restored from the history) is UNKNOWN to an alert rule: the
// history stays in the series before the current step.
func TestAlertQueryUnjudgedAgentIsUnknown(t *testing.T) {
	src := fixture()
	src.snap.Agents[1].Judged = false // node-a: FAILED before the restart
	unknown := num(6)
	for _, tt := range []struct {
		queryType, model string
		want             map[string]*float64
	}{
		{QueryTypeStatus, `{}`, map[string]*float64{"agent=node-a, cluster=ha, process=replicator": unknown, "agent=standalone, process=replicator": num(0)}},
		{QueryTypeMetrics, `{"metrics":["stateCode"]}`, map[string]*float64{"agent=node-a, cluster=ha": unknown, "agent=node-b, cluster=ha": num(1)}},
		{QueryTypeTimeline, `{}`, map[string]*float64{"agent=node-a, cluster=ha": unknown, "agent=node-a, cluster=ha, process=replicator": unknown}},
	} {
		t.Run(tt.queryType, func(t *testing.T) {
			got, a, err := ssecheck.Evaluate(alertQuery(t, src, tt.queryType, tt.model))
			if err != nil {
				t.Fatal(err)
			}
			wantInstances(t, got, tt.want)
			if tt.queryType != QueryTypeMetrics {
				return
			}
			for _, v := range a.Values {
				if v.Labels["agent"] == "node-a" {
					if got := valuesString(v.Points); got != "0 0 0 3 3 6" {
						t.Errorf("node-a's series = %s, want its history then UNKNOWN", got)
					}
				}
			}
		})
	}
	// Dashboards show what they showed.
	if fr := queryAs(t, src, QueryTypeStatus, `{}`); fr[0].Fields[4].At(1) != "FAILED" {
		t.Errorf("dashboard state of node-a = %v", fr[0].Fields[4].At(1))
	}
}

func valuesString(values []*float64) string {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = valueString(v)
	}
	return strings.Join(parts, " ")
}

// slowAgents are agents that never answer, node-a's status poll waiting
// for release (or for the poll's timeout) first.
func slowAgents(release <-chan struct{}) *agentclienttest.Fake {
	f := agentclienttest.New(nil)
	f.Add("node-a", agentclienttest.Script{Silent: true, Hold: release})
	return f
}

// restartedMonitors is a registry whose history already holds a few
// minutes of OK observations of the three agents of threeAgents, as after a
// restart of Grafana: the engine resumes from it.
func restartedMonitors(t *testing.T, client agentclient.API) *monitors {
	t.Helper()
	dataDir := t.TempDir()
	store, err := history.Open(filepath.Join(dataDir, "vigil-cdp", "vigil-cdp"), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var obs []history.Observation
	for at := t0.Add(-5 * time.Minute); at.Before(t0); at = at.Add(10 * time.Second) {
		for _, name := range []string{"standalone", "node-a", "node-b"} {
			obs = append(obs, history.Observation{Time: at, Answered: true, Agent: name, State: state.OK, Reason: "running", BudgetSeconds: 182})
		}
	}
	if err := store.Append(history.Batch{Observations: obs}); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	ms := newMonitors()
	ms.getenv = func(k string) string {
		if k == envDataPath {
			return dataDir
		}
		return ""
	}
	clk := clock.NewFake(t0)
	ms.options = func() engine.Options { return engine.Options{Client: client, Clock: clk, Jitter: -1} }
	t.Cleanup(ms.stopAll)
	return ms
}

func alertRequest(model string, queryType string) *backend.QueryDataRequest {
	return &backend.QueryDataRequest{
		Headers: map[string]string{backend.FromAlertHeaderName: "true"},
		Queries: []backend.DataQuery{{RefID: "A", QueryType: queryType, JSON: json.RawMessage(model),
			TimeRange: backend.TimeRange{From: t0.Add(-10 * time.Minute), To: t0}, Interval: 10 * time.Second, MaxDataPoints: 43200}},
	}
}

func evaluate(t *testing.T, ds *Datasource, ctx context.Context, req *backend.QueryDataRequest) map[string]*float64 {
	t.Helper()
	resp, err := ds.QueryData(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	dr := resp.Responses["A"]
	if dr.Error != nil {
		t.Fatal(dr.Error)
	}
	got, _, err := ssecheck.Evaluate(dr.Frames)
	if err != nil {
		t.Fatalf("the rule fails: %v", err)
	}
	return ssecheck.ByLabels(got)
}

// The first alert query after a start waits for the monitor's first poll of
// every agent, and answers what it found.
func TestFirstAlertQueryWaitsForTheFirstPolls(t *testing.T) {
	release := make(chan struct{})
	agents := slowAgents(release)
	ds := newDatasource(settingsFor(threeAgents), agents, restartedMonitors(t, agents))
	time.AfterFunc(100*time.Millisecond, func() { close(release) })
	got := evaluate(t, ds, context.Background(), alertRequest(`{"metrics":["stateCode"]}`, QueryTypeMetrics))
	// Every agent was polled (and found silent: GRACE, 3), node-a too.
	for _, labels := range []string{"agent=standalone", "agent=node-a, cluster=ha", "agent=node-b, cluster=ha"} {
		if v := got[labels]; valueString(v) != "3" {
			t.Errorf("{%s} = %s, want 3 (GRACE, from the first poll)", labels, valueString(v))
		}
	}
}

// When an agent's first poll takes longer than the query may wait, the
// others are answered from their first poll and that agent as UNKNOWN, its
// history before the restart kept in the series: a rule never sees it OK.
func TestFirstAlertQueryAnswersAnUnpolledAgentUnknown(t *testing.T) {
	release := make(chan struct{})
	agents := slowAgents(release)
	t.Cleanup(func() { close(release) })
	// node-a's poll may take 31 s (response time and processing).
	slowPolls := strings.Replace(threeAgents, `"pollInterval":"10s",`, `"pollInterval":"10s","defaults":{"budget":{"responseTime":"30s"}},`, 1)
	ds := newDatasource(settingsFor(slowPolls), agents, restartedMonitors(t, agents))
	// Grafana gives an evaluation a deadline; the query waits half of it at most.
	deadline := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	started := time.Now()
	got := evaluate(t, ds, deadline(), alertRequest(`{"metrics":["stateCode"]}`, QueryTypeMetrics))
	if waited := time.Since(started); waited > 1500*time.Millisecond {
		t.Errorf("the query waited %s, more than half of its deadline", waited)
	}
	if v := got["agent=node-a, cluster=ha"]; valueString(v) != "6" {
		t.Errorf("node-a = %s, want 6 (UNKNOWN: not polled since the start)", valueString(v))
	}
	if v := got["agent=standalone"]; valueString(v) != "3" {
		t.Errorf("standalone = %s, want 3 (GRACE, from its first poll)", valueString(v))
	}

	resp, err := ds.QueryData(deadline(), alertRequest(`{"metrics":["stateCode"],"agents":["node-a"]}`, QueryTypeMetrics))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ssecheck.Read(resp.Responses["A"].Frames)
	if err != nil || len(a.Values) != 1 {
		t.Fatalf("%v %+v", err, a)
	}
	points := a.Values[0].Points
	if len(points) != 60 || valueString(points[40]) != "0" || valueString(points[59]) != "6" {
		t.Errorf("node-a's series = %s, want its OK history, then UNKNOWN now", valuesString(points))
	}

	codes := evaluate(t, ds, deadline(), alertRequest(`{}`, QueryTypeStatus))
	if v := codes["agent=node-a, cluster=ha"]; valueString(v) != "6" {
		t.Errorf("status of node-a = %s, want 6: %v", valueString(v), keys(codes))
	}
}

// Alert queries are told by the FromAlert header; every frame names its
// datasource in meta.custom.datasourceUid.
func TestQueryDataFromAlert(t *testing.T) {
	agents := agentclienttest.New(nil)
	ds := newDatasource(settingsFor(threeAgents), agents, testMonitors(t, agents))
	for _, tt := range []struct {
		headers   map[string]string
		wantAlert bool
	}{
		{nil, false},
		{map[string]string{"FromAlert": "true"}, true},
		{map[string]string{"fromalert": "TRUE"}, true},
		{map[string]string{"FromAlert": "false"}, false},
	} {
		for _, queryType := range []string{QueryTypeStatus, QueryTypeTimeline, QueryTypeMetrics, QueryTypeEvents} {
			req := alertRequest(`{}`, queryType)
			req.Headers = tt.headers
			resp, err := ds.QueryData(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			dr := resp.Responses["A"]
			if dr.Error != nil || len(dr.Frames) == 0 {
				t.Fatalf("%s %v: %+v", queryType, tt.headers, dr)
			}
			for _, f := range dr.Frames {
				if f.Meta == nil || f.Meta.Custom != (frames.Custom{DatasourceUID: "vigil-cdp"}) {
					t.Errorf("%s: frame %q meta %+v, want custom.datasourceUid", queryType, f.Name, f.Meta)
				}
			}
			_, _, err = ssecheck.Evaluate(dr.Frames)
			if tt.wantAlert && err != nil {
				t.Errorf("%s with %v: %v", queryType, tt.headers, err)
			}
			if isTable := dr.Frames[0].Name == queryType && dr.Frames[0].Meta.Type == ""; isTable != (!tt.wantAlert && queryType != QueryTypeMetrics && queryType != QueryTypeTimeline) {
				t.Errorf("%s with %v: frame %q type %q", queryType, tt.headers, dr.Frames[0].Name, dr.Frames[0].Meta.Type)
			}
		}
	}
}

// A step that holds several states shows the worst by pkg/state's one order,
// not the highest code: FAILED (5) with UNKNOWN (6) is FAILED, UNKNOWN with
// DEGRADED is UNKNOWN. Timeline and stateCode metric alike, agent and process.
func TestCoarseStepShowsTheWorstState(t *testing.T) {
	tests := []struct {
		name   string
		states []state.State
		want   state.State
	}{
		{"failed and unknown", []state.State{state.Failed, state.Unknown}, state.Failed},
		{"unknown and failed", []state.State{state.Unknown, state.Failed}, state.Failed},
		{"degraded and unknown", []state.State{state.Degraded, state.Unknown, state.OK}, state.Unknown},
		{"standby and restarting", []state.State{state.Restarting, state.Standby}, state.Restarting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &memHistory{}
			for i, s := range tt.states {
				h.obs = append(h.obs, history.Observation{Time: t0.Add(time.Duration(i) * 10 * time.Second), Answered: true,
					Agent: "node-a", State: s, Processes: []history.ProcessObservation{{Name: "replicator", State: s}}})
			}
			src := source{hist: h, pollInterval: 10 * time.Second, startedAt: t0.Add(-time.Minute), snap: engine.Snapshot{
				Time:   t0.Add(2 * time.Minute),
				Agents: []engine.AgentSnapshot{{Name: "node-a", Judged: true, State: tt.want}},
			}}
			q := dataQuery(QueryTypeTimeline, `{}`)
			q.MaxDataPoints = 1
			timeline, err := queryTimeline(src, q, filter{})
			if err != nil {
				t.Fatal(err)
			}
			fields := timeline[0].Fields[1:]
			if len(fields) != 2 {
				t.Fatalf("timeline has %d series, want node-a and node-a/replicator", len(fields))
			}
			for _, f := range fields {
				if got, _ := f.ConcreteAt(0); got != tt.want.Code() {
					t.Errorf("timeline %s = %v, want %s (%d)", f.Name, got, tt.want, tt.want.Code())
				}
			}
			metrics, err := queryMetrics(src, q, filter{metrics: map[string]bool{frames.MetricStateCode: true}})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := metrics[0].Fields[1].ConcreteAt(0); got != float64(tt.want.Code()) {
				t.Errorf("stateCode metric = %v, want %s (%d)", got, tt.want, tt.want.Code())
			}
		})
	}
}

// The query types the frontend offers (QueryTypes, generated into the contract) are exactly those the
// backend answers.
func TestQueryTypesAreTheHandledOnes(t *testing.T) {
	listed := map[string]bool{}
	for _, qt := range QueryTypes() {
		if queryHandlers[qt] == nil {
			t.Errorf("QueryTypes lists %q, which no handler answers", qt)
		}
		listed[qt] = true
	}
	for qt := range queryHandlers {
		if !listed[qt] {
			t.Errorf("query type %q is answered but not in QueryTypes", qt)
		}
	}
}
