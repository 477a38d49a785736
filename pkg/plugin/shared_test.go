package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-cdp/vigil/internal/pgtest"
	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/history"
)

// replica is one Grafana replica's plugin process: its own registry and
// data folder, the fake clock and agents of the test.
func replica(t *testing.T, clk *clock.Fake, client *agentclienttest.Fake) *monitors {
	t.Helper()
	ms := testMonitors(t, client)
	ms.clock = clk
	ms.options = func() engine.Options { return engine.Options{Client: client, Clock: clk, Jitter: -1} }
	t.Cleanup(ms.stopAll)
	return ms
}

func timeline(t *testing.T, ds *Datasource, from, to time.Time) string {
	t.Helper()
	resp, err := ds.QueryData(context.Background(), &backend.QueryDataRequest{
		//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
		PluginContext: backend.PluginContext{OrgID: 1},
		Queries: []backend.DataQuery{{RefID: "A", QueryType: QueryTypeTimeline, JSON: json.RawMessage(`{}`),
			TimeRange: backend.TimeRange{From: from, To: to}, Interval: 10 * time.Second, MaxDataPoints: 1000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dr := resp.Responses["A"]
	if dr.Error != nil {
		t.Fatal(dr.Error)
	}
	b, err := json.Marshal(dr.Frames)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Two replicas of one datasource answer a timeline from the same rows in
// PostgreSQL: the same frames, including the hours the second replica was
// not running.
func TestTwoReplicasAnswerTheSameFrames(t *testing.T) {
	pg := pgtest.Start(t)
	clk := clock.NewFake(t0)
	client := agentclienttest.New(clk)
	client.Add("node-a", agentclienttest.Script{})
	client.Add("node-b", agentclienttest.Script{})
	jsonData := fmt.Sprintf(`{"pollInterval":"10s","agents":[{"name":"node-a","url":"http://127.0.0.1:7071"},{"name":"node-b","url":"http://127.0.0.1:7072"}],
		"history":{"postgres":%q}}`, pg.DSN())
	ident, settings := inOrg(1, 3, "vigil-cdp", jsonData)

	ms1 := replica(t, clk, client)
	ds1 := newDatasourceIn(ident, settings, client, ms1)
	if dr := alertEvaluation(t, ds1); dr.Error != nil {
		t.Fatal(dr.Error)
	}
	eng1 := ms1.byKey[ident.key()].eng
	// Twenty minutes of polls by replica 1 alone, with an outage of node-b.
	for i := 1; i <= 120; i++ {
		clk.Set(t0.Add(time.Duration(i) * 10 * time.Second))
		client.Set("node-b", func(s *agentclienttest.Script) { s.Silent = i >= 40 && i < 50 })
		if err := eng1.PollNow(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
	}
	// Replica 2 starts now.
	ms2 := replica(t, clk, client)
	ds2 := newDatasourceIn(ident, settings, client, ms2)
	from, to := t0, t0.Add(20*time.Minute)
	a, b := timeline(t, ds1, from, to), timeline(t, ds2, from, to)
	if a != b {
		t.Fatalf("the replicas answer differently:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "GRACE") && !strings.Contains(a, `"FAILED"`) {
		t.Errorf("the timeline does not show node-b's outage: %s", a)
	}
	st := ms2.status(ds2)
	if st.Postgres == nil || !st.Postgres.Writable || !strings.Contains(ms2.byKey[ident.key()].store.Path(), "org 1, id 3") {
		t.Errorf("replica 2's status: %+v", st.Postgres)
	}
	// The events query too.
	ev := func(ds *Datasource) string {
		resp, _ := ds.QueryData(context.Background(), &backend.QueryDataRequest{
			//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
			PluginContext: backend.PluginContext{OrgID: 1},
			Queries: []backend.DataQuery{{RefID: "A", QueryType: QueryTypeEvents, JSON: json.RawMessage(`{}`),
				TimeRange: backend.TimeRange{From: from, To: to}, MaxDataPoints: 1000}},
		})
		b, _ := json.Marshal(resp.Responses["A"].Frames)
		return string(b)
	}
	if a, b := ev(ds1), ev(ds2); a != b || !strings.Contains(a, "node-b") {
		t.Fatalf("events differ or lack node-b's:\n%s\n%s", a, b)
	}
	// The count of agents no replica polls is a metric (0 here: both poll).
	waitFor(t, "replica 2's first look at the shared history", func() bool {
		return !ms2.byKey[ident.key()].eng.Shared().CheckedAt.IsZero()
	})
	resp, err := ds2.QueryData(context.Background(), &backend.QueryDataRequest{
		//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
		PluginContext: backend.PluginContext{OrgID: 1},
		Queries: []backend.DataQuery{{RefID: "A", QueryType: QueryTypeMetrics, JSON: json.RawMessage(`{"metrics":["unpolledAgents"]}`),
			TimeRange: backend.TimeRange{From: from, To: to}, Interval: 10 * time.Second, MaxDataPoints: 1000}},
	})
	if err != nil || resp.Responses["A"].Error != nil {
		t.Fatal(err, resp.Responses["A"].Error)
	}
	fr := resp.Responses["A"].Frames
	if len(fr) != 1 || fr[0].Rows() != 1 {
		t.Fatalf("unpolledAgents: %d frames", len(fr))
	}
	if v, _ := fr[0].Fields[1].At(0).(float64); v != 0 {
		t.Errorf("unpolledAgents = %v, want 0", fr[0].Fields[1].At(0))
	}
	// The local folder holds only the buffer.
	if _, ok := ms2.byKey[ident.key()].store.(*history.PGStore); !ok {
		t.Errorf("replica 2's history is %T", ms2.byKey[ident.key()].store)
	}
}

// A replica's own cluster address and name come from its environment
// (VIGIL_CLUSTER_* forwarded by Grafana, or grafana.ini's
// [plugin.vigil-cdp-datasource] cluster_* as GF_PLUGIN_CLUSTER_*); Save &
// test and the monitor status say who the members are.
func TestReplicaJoinsItsClusterFromTheEnvironment(t *testing.T) {
	pg := pgtest.Start(t)
	clk := clock.NewFake(t0)
	client := agentclienttest.New(clk)
	client.Add("node-a", agentclienttest.Script{})
	client.Add("node-b", agentclienttest.Script{})
	ms := replica(t, clk, client)
	data := ms.getenv(envDataPath)
	env := map[string]string{envDataPath: data, "GF_PLUGIN_CLUSTER_BIND": "127.0.0.1:0", EnvClusterName: "replica-a"}
	ms.getenv = func(k string) string { return env[k] }
	jsonData := fmt.Sprintf(`{"pollInterval":"10s","agents":[{"name":"node-a","url":"http://127.0.0.1:7071"},{"name":"node-b","url":"http://127.0.0.1:7072"}],
		"history":{"postgres":%q},"cluster":{"join":[]}}`, pg.DSN())
	ident, settings := inOrg(1, 4, "vigil-cdp", jsonData)
	ds := newDatasourceIn(ident, settings, client, ms)
	if dr := alertEvaluation(t, ds); dr.Error != nil {
		t.Fatal(dr.Error)
	}
	st := ms.status(ds)
	if st.Cluster == nil || st.Cluster.Self != "replica-a" || len(st.Cluster.Members) != 1 || st.Cluster.Owned != 2 || st.Cluster.Agents != 2 {
		t.Fatalf("cluster status: %+v", st.Cluster)
	}
	res, err := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{
		//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
		PluginContext: backend.PluginContext{OrgID: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if details := string(res.JSONDetails); !strings.Contains(details, "cluster: this replica is replica-a at 127.0.0.1:") ||
		!strings.Contains(details, "this replica polls 2 of 2 agents") || !strings.Contains(details, "shared history in PostgreSQL: written") {
		t.Errorf("Save & test details: %s", details)
	}
	// Grafana scrapes the same as Prometheus metrics.
	m := ms.byKey[ident.key()]
	waitFor(t, "the first look at the shared history", func() bool { return !m.eng.Shared().CheckedAt.IsZero() })
	if err := m.store.Flush(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(sharedCollector{ms})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if m.GetGauge() != nil {
				got[f.GetName()] = m.GetGauge().GetValue()
			} else {
				got[f.GetName()] = m.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{"vigil_history_postgres_writable": 1, "vigil_history_buffer_bytes": 0, "vigil_history_buffer_dropped_observations_total": 0,
		"vigil_cluster_members": 1, "vigil_cluster_owned_agents": 2, "vigil_unpolled_agents": 0}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("metric %s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	// Its group is the datasource's identity, so that another datasource's
	// members never take its agents.
	if !ms.byKey[ident.key()].members.Owns("agent:node-a") {
		t.Errorf("the only member does not own its agents")
	}
}
