package frames

import (
	"encoding/json"
	"flag"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/experimental"

	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func f(v float64) *float64 { return &v }
func st(s state.State) *state.State {
	return &s
}

func check(t *testing.T, name string, frames ...*data.Frame) {
	t.Helper()
	dr := backend.DataResponse{Frames: frames}
	experimental.CheckGoldenJSONResponse(t, "testdata", name+".golden", &dr, *update)
}

func TestStatusFrame(t *testing.T) {
	restarted := t0.Add(-5 * time.Minute)
	gen := int64(4)
	tests := []struct {
		name string
		rows []StatusRow
	}{
		{name: "status-empty"},
		{name: "status-every-state", rows: []StatusRow{
			{Agent: "standalone", Role: "standalone", Process: "replicator", State: state.OK, Reason: "running",
				RTTSeconds: f(0.004), BudgetSeconds: f(182), LagSeconds: f(1.5), LastRestart: &restarted, Generation: &gen},
			{Agent: "node-a", Cluster: "ha", Role: "active", Process: "replicator", State: state.Restarting, Reason: "restart requested by auto-restart", Generation: &gen},
			{Agent: "node-b", Cluster: "ha", Role: "passive", Process: "replicator", State: state.Standby, Reason: "passive cluster node"},
			{Agent: "node-c", Cluster: "ha", State: state.Grace, Reason: "awaiting failover: 12 s of 45 s", BudgetSeconds: f(45)},
			{Agent: "lagging", Process: "replicator", State: state.Degraded, Reason: "lag 95 s exceeds RPO 60 s", LagSeconds: f(95)},
			{Agent: "silent", State: state.Failed, Reason: "no answer for 120 s, budget 45 s"},
			{Agent: "new", State: state.Unknown, Reason: "not polled yet"},
		}},
		// Agents with processes in several states: the app counts each agent
		// under the worst (src/pages/Fleet reads this file).
		{name: "status-processes", rows: []StatusRow{
			{Agent: "db-1", Cluster: "sql-ha", Role: "active", Process: "cdp", State: state.Failed, Reason: "cannot restart: exit code 1"},
			{Agent: "db-1", Cluster: "sql-ha", Role: "active", Process: "index", State: state.Unknown, Reason: "the answer was not understood"},
			{Agent: "db-2", Cluster: "sql-ha", Role: "passive", Process: "cdp", State: state.Standby, Reason: "passive cluster node"},
			{Agent: "files", Role: "standalone", Process: "cdp", State: state.Degraded, Reason: "lag 95 s exceeds RPO 60 s", LagSeconds: f(95)},
			{Agent: "files", Role: "standalone", Process: "index", State: state.Unknown, Reason: "the answer was not understood"},
			{Agent: "web", Role: "standalone", Process: "cdp", State: state.OK, Reason: "running"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, tt.name, Status(tt.rows)) })
	}
}

func TestTimelineFrame(t *testing.T) {
	times := []time.Time{t0, t0.Add(10 * time.Second), t0.Add(20 * time.Second)}
	check(t, "timeline", Timeline(times, []TimelineSeries{
		{Agent: "node-a", Cluster: "ha", States: []*state.State{st(state.OK), st(state.Grace), st(state.Failed)}},
		{Agent: "node-a", Cluster: "ha", Process: "replicator", States: []*state.State{st(state.OK), nil, nil}},
		{Agent: "standalone", States: []*state.State{nil, st(state.Unknown), st(state.OK)}},
	}))
}

func TestMetricsFrames(t *testing.T) {
	times := []time.Time{t0, t0.Add(10 * time.Second)}
	check(t, "metrics", Metrics([]Series{
		{Metric: MetricStateCode, Agent: "node-a", Cluster: "ha", Times: times, Values: []*float64{f(0), f(3)}},
		{Metric: MetricUp, Agent: "node-a", Cluster: "ha", Times: times, Values: []*float64{f(1), f(0)}},
		{Metric: MetricProcessRunning, Agent: "node-a", Cluster: "ha", Process: "replicator", Times: times, Values: []*float64{f(1), nil}},
		{Metric: MetricProtectionLagSeconds, Agent: "standalone", Process: "replicator", Times: times, Values: []*float64{f(2.5), f(3)}},
		{Metric: MetricEngineStalenessSeconds, Times: times, Values: []*float64{f(1), f(11)}},
	})...)
}

func TestEventsFrame(t *testing.T) {
	ev := []history.Event{
		{Type: history.TypeState, Time: t0, Agent: "node-a", From: state.OK, To: state.Failed, Reason: "no answer for 120 s, budget 45 s", Diagnosis: "dns ok; tcp failed (connection refused); http not tried"},
		{Type: history.TypeAction, Time: t0.Add(time.Second), Agent: "standalone", Process: "replicator", Action: "restart", By: "alice", Result: "ok", Reason: "after maintenance", Generation: 5},
		{Type: history.TypeAction, Time: t0.Add(2 * time.Second), Agent: "standalone", Process: "replicator", Action: "restart", By: "auto", Result: "failed", Error: "agent answer: 500"},
		{Type: history.TypeNote, Time: t0.Add(3 * time.Second), Agent: "standalone", Process: "replicator", Reason: "auto-restart resumes"},
		{Type: history.TypeAgent, Time: t0.Add(4 * time.Second), Agent: "standalone", Process: "replicator", AgentEvent: json.RawMessage(`{"seq":3,"type":"crashed","reason":"exit code 1"}`)},
	}
	rows := make([]EventRow, 0, len(ev))
	for _, e := range ev {
		rows = append(rows, EventRowOf(e))
	}
	check(t, "events", Events(rows))
	check(t, "events-empty", Events(nil))
}

func TestAlertingFrames(t *testing.T) {
	check(t, "status-codes", StatusCodes([]StatusRow{
		{Agent: "standalone", Role: "standalone", Process: "replicator", State: state.OK},
		{Agent: "node-a", Cluster: "ha", Process: "replicator", State: state.Failed},
		{Agent: "new", State: state.Unknown},
	})...)
	check(t, "status-codes-empty", StatusCodes(nil)...)
	check(t, "event-counts", EventCounts([]EventCount{
		{Agent: "node-a", Cluster: "ha", Kind: "state", Count: 2},
		{Agent: "node-a", Cluster: "ha", Kind: "action", Count: 0},
		{Agent: "gone", Kind: "state", Count: 1},
	})...)
	times := []time.Time{t0}
	check(t, "metrics-labelled", WithDatasource(WithMetricLabel(Metrics([]Series{
		{Metric: MetricStateCode, Agent: "node-a", Cluster: "ha", Times: times, Values: []*float64{f(0)}},
		{Metric: MetricUp, Agent: "node-a", Cluster: "ha", Times: times, Values: []*float64{f(1)}},
		{Metric: MetricEngineStalenessSeconds, Times: times, Values: []*float64{f(1)}},
	})), "vigil-cdp")...)
}
