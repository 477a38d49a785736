package plugin

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/history"
)

// fakeMonitors is a registry whose engines and idle checks share one fake
// clock, with Grafana's data folder at data.
func fakeMonitors(t *testing.T, data string) (*monitors, *clock.Fake) {
	t.Helper()
	fake := clock.NewFake(t0)
	ms := testMonitors(t, agentclienttest.New(nil))
	ms.getenv = func(k string) string {
		if k == envDataPath {
			return data
		}
		return ""
	}
	ms.clock = fake
	ms.options = func() engine.Options {
		return engine.Options{Client: agentclienttest.New(nil), Clock: fake, Jitter: -1}
	}
	return ms, fake
}

func inOrg(org, id int64, uid, jsonData string) (identity, backend.DataSourceInstanceSettings) {
	s := settingsFor(jsonData)
	s.ID, s.UID = id, uid
	return identity{org: org, id: id, uid: uid}, s
}

func alertEvaluation(t *testing.T, ds *Datasource) backend.DataResponse {
	t.Helper()
	resp, err := ds.QueryData(context.Background(), &backend.QueryDataRequest{
		//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
		PluginContext: backend.PluginContext{OrgID: ds.ident.org},
		Headers:       map[string]string{backend.FromAlertHeaderName: "true"},
		Queries: []backend.DataQuery{{RefID: "A", QueryType: QueryTypeStatus, JSON: json.RawMessage(`{}`),
			TimeRange: backend.TimeRange{From: t0.Add(-time.Hour), To: t0}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Responses["A"]
}

// The registry keys monitors by identity: two orgs' datasources with the
// same UID get two engines, two histories, and their own agents.
func TestTwoOrgsWithTheSameUID(t *testing.T) {
	data := t.TempDir()
	ms, _ := fakeMonitors(t, data)
	id1, s1 := inOrg(1, 1, "vigil-cdp", `{"agents":[{"name":"node-a","url":"http://127.0.0.1:7071"}]}`)
	id2, s2 := inOrg(2, 7, "vigil-cdp", `{"agents":[{"name":"node-a","url":"http://127.0.0.2:7071"},{"name":"node-b","url":"http://127.0.0.2:7072"}]}`)
	ds1 := newDatasourceIn(id1, s1, agentclienttest.New(nil), ms)
	ds2 := newDatasourceIn(id2, s2, agentclienttest.New(nil), ms)
	for _, ds := range []*Datasource{ds1, ds2} {
		if dr := alertEvaluation(t, ds); dr.Error != nil {
			t.Fatal(dr.Error)
		}
	}
	m1, m2 := ms.byKey[id1.key()], ms.byKey[id2.key()]
	if m1 == nil || m2 == nil || m1 == m2 || m1.eng == m2.eng || m1.store == m2.store {
		t.Fatalf("one monitor for two orgs: %+v %+v", m1, m2)
	}
	if got := m1.eng.Config().Agents[0].URL; got != "http://127.0.0.1:7071" {
		t.Errorf("org 1's engine polls %s", got)
	}
	if n := len(m2.eng.Config().Agents); n != 2 {
		t.Errorf("org 2's engine has %d agents", n)
	}
	want1, want2 := filepath.Join(data, "vigil-cdp", "org1-id1-vigil-cdp"), filepath.Join(data, "vigil-cdp", "org2-id7-vigil-cdp")
	if m1.place.Dir != want1 || m2.place.Dir != want2 {
		t.Errorf("history folders %s, %s; want %s, %s", m1.place.Dir, m2.place.Dir, want1, want2)
	}
	// A request naming the other org is refused, whatever instance it reaches.
	resp, _ := ds1.QueryData(context.Background(), &backend.QueryDataRequest{
		//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
		PluginContext: backend.PluginContext{OrgID: 2},
		Queries:       []backend.DataQuery{{RefID: "A", QueryType: QueryTypeStatus}},
	})
	if err := resp.Responses["A"].Error; err == nil || !strings.Contains(err.Error(), "belongs to org 1; the request came from org 2") {
		t.Errorf("cross-org query: %v", err)
	}
	var c capture
	_ = ds2.CallResource(context.Background(), &backend.CallResourceRequest{
		//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
		PluginContext: backend.PluginContext{OrgID: 1, User: &backend.User{Login: "eve", Role: "Admin"}},
		Method:        "GET", Path: "agents",
	}, &c)
	if c.responses[0].Status != 403 || strings.Contains(string(c.responses[0].Body), "127.0.0.2") {
		t.Errorf("cross-org resource: %d %s", c.responses[0].Status, c.responses[0].Body)
	}
}

func TestOrgOf(t *testing.T) {
	for _, tt := range []struct {
		pc   backend.PluginContext
		want int64
	}{
		//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
		{backend.PluginContext{OrgID: 3}, 3},
		{backend.PluginContext{Namespace: "default"}, 1},
		{backend.PluginContext{Namespace: "org-12"}, 12},
		{backend.PluginContext{Namespace: "stacks-5"}, 0},
		{backend.PluginContext{}, 0},
	} {
		if got := orgOf(tt.pc); got != tt.want {
			t.Errorf("orgOf(%+v) = %d, want %d", tt.pc, got, tt.want)
		}
	}
	//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
	ctx := backend.WithPluginContext(context.Background(), backend.PluginContext{OrgID: 4})
	if got := identityOf(ctx, backend.DataSourceInstanceSettings{ID: 9, UID: "u"}); got != (identity{org: 4, id: 9, uid: "u"}) {
		t.Errorf("identityOf = %+v", got)
	}
}

// A monitor nothing uses for idleStop stops, says why in its history and in
// its status, and the next query starts it again.
func TestIdleStop(t *testing.T) {
	data := t.TempDir()
	ms, fake := fakeMonitors(t, data)
	id, s := inOrg(1, 1, "vigil-cdp", `{"idleStop":"5m","agents":[{"name":"a","url":"http://127.0.0.1:7071"}]}`)
	ds := newDatasourceIn(id, s, agentclienttest.New(nil), ms)
	if dr := query(t, ds, QueryTypeStatus); dr.Error != nil {
		t.Fatal(dr.Error)
	}
	m := ms.byKey[id.key()]
	fake.Advance(4 * time.Minute)
	if dr := query(t, ds, QueryTypeStatus); dr.Error != nil { // used: the 5 minutes start again
		t.Fatal(dr.Error)
	}
	fake.Advance(4 * time.Minute)
	if !isRunning(ms, m) {
		t.Fatal("stopped although used 4 minutes ago")
	}
	fake.Advance(time.Minute + time.Second)
	waitFor(t, "the idle monitor to stop", func() bool { return !isRunning(ms, m) })

	st := ms.status(ds)
	if st.Running || st.StoppedAt == nil || !strings.Contains(st.StopReason, "no request for 5m0s (jsonData.idleStop)") {
		t.Errorf("status after the idle stop: %+v", st)
	}
	if !strings.Contains(st.Summary, "the monitor is not running: it stopped 0s ago (no request for 5m0s") {
		t.Errorf("summary = %q", st.Summary)
	}
	// The next query starts it again and the history tells both.
	if dr := query(t, ds, QueryTypeStatus); dr.Error != nil {
		t.Fatal(dr.Error)
	}
	if !isRunning(ms, m) {
		t.Fatal("the next query did not start the monitor")
	}
	ms.mu.Lock()
	events, err := m.store.Events(history.Query{})
	ms.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, e := range events {
		if e.Type == history.TypeNote && e.Agent == "" {
			notes = append(notes, e.Reason)
		}
	}
	if len(notes) != 3 || !strings.HasPrefix(notes[0], "monitor started") || !strings.HasPrefix(notes[1], "monitor stopped: no request for 5m0s") || !strings.HasPrefix(notes[2], "monitor started") {
		t.Errorf("notes = %q", notes)
	}
}

func isRunning(ms *monitors, m *monitor) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return m.eng != nil
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIdleStopSetting(t *testing.T) {
	for _, tt := range []struct{ jsonData, want string }{
		{`{"idleStop":"500ms","agents":[{"name":"a","url":"http://a"}]}`, `jsonData.idleStop: "500ms" is below the minimum of 1s`},
		{`{"idleStop":"soon","agents":[{"name":"a","url":"http://a"}]}`, `jsonData.idleStop: "soon" is not a duration`},
		{`{"idleStop":true,"agents":[{"name":"a","url":"http://a"}]}`, `jsonData.idleStop: "true" is not a duration`},
	} {
		ds := newDatasource(settingsFor(tt.jsonData), agentclienttest.New(nil), newMonitors())
		if ds.settingsErr == nil || !strings.Contains(ds.settingsErr.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.jsonData, ds.settingsErr, tt.want)
		}
	}
	for jsonData, want := range map[string]time.Duration{
		`{"agents":[{"name":"a","url":"http://a"}]}`:                   15 * time.Minute,
		`{"idleStop":"1s","agents":[{"name":"a","url":"http://a"}]}`:   time.Second,
		`{"idleStop":3600,"agents":[{"name":"a","url":"http://a"}]}`:   time.Hour,
		`{"idleStop":"","agents":[{"name":"a","url":"http://a"}]}`:     15 * time.Minute,
		`{"idleStop":null,"agents":[{"name":"a","url":"http://a"}]}`:   15 * time.Minute,
		`{"idleStop":"2h","agents":[{"name":"a","url":"http://a"}]}`:   2 * time.Hour,
		`{"idleStop":" 90 ","agents":[{"name":"a","url":"http://a"}]}`: 90 * time.Second,
	} {
		ds := newDatasource(settingsFor(jsonData), agentclienttest.New(nil), newMonitors())
		if ds.settingsErr != nil || ds.settings.IdleStop != want {
			t.Errorf("%s: %v, %v; want %s", jsonData, ds.settingsErr, ds.settings, want)
		}
	}
}

// Alert evaluations are what keep the monitor running; the status says
// whether they do.
func TestKeptAliveByAlerts(t *testing.T) {
	ms, fake := fakeMonitors(t, t.TempDir())
	id, s := inOrg(1, 1, "vigil-cdp", `{"agents":[{"name":"a","url":"http://127.0.0.1:7071"}]}`)
	ds := newDatasourceIn(id, s, agentclienttest.New(nil), ms)

	st := ms.status(ds)
	if st.Running || st.KeptAliveByAlerts || !strings.Contains(st.Warning, "no alert rule has queried this datasource since the plugin started") {
		t.Errorf("before any query: %+v", st)
	}
	if dr := query(t, ds, QueryTypeStatus); dr.Error != nil { // a dashboard
		t.Fatal(dr.Error)
	}
	if st = ms.status(ds); !st.Running || st.KeptAliveByAlerts || st.Warning == "" {
		t.Errorf("after a dashboard query: %+v", st)
	}
	if dr := alertEvaluation(t, ds); dr.Error != nil {
		t.Fatal(dr.Error)
	}
	fake.Advance(40 * time.Second)
	st = ms.status(ds)
	if !st.KeptAliveByAlerts || st.Warning != "" || !strings.HasSuffix(st.Summary, "kept alive by alert rules: last evaluation 40s ago") {
		t.Errorf("after an alert evaluation: %+v", st)
	}
}

// Where the history lives when Grafana forwards no environment.
func TestHistoryPlace(t *testing.T) {
	grafana := t.TempDir()
	exe := filepath.Join(grafana, "data", "plugins", "vigil-cdp-app", "datasource", "gpx_vigil_linux_amd64")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	packaged := t.TempDir()
	id, s := inOrg(1, 3, "vigil-cdp", `{"agents":[{"name":"a","url":"http://a"}]}`)
	for _, tt := range []struct {
		name, env, exe, packaged string
		wantDir, wantSource      string
		durable                  bool
	}{
		{"GF_PATHS_DATA", "/srv/grafana", exe, packaged, "/srv/grafana/vigil-cdp/org1-id3-vigil-cdp", sourceEnv, true},
		{"from the plugin's location", "", exe, packaged, filepath.Join(grafana, "data", "vigil-cdp", "org1-id3-vigil-cdp"), sourceExecutable, true},
		{"packaged install", "", "/usr/local/bin/gpx_vigil", packaged, filepath.Join(packaged, "vigil-cdp", "org1-id3-vigil-cdp"), sourcePackaged, true},
		{"nothing found", "", "/usr/local/bin/gpx_vigil", "/nonexistent", "/tmp-of-the-test/vigil-cdp/org1-id3-vigil-cdp", sourceTemp, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ms := newMonitors()
			ms.getenv = func(k string) string {
				if k == envDataPath {
					return tt.env
				}
				return ""
			}
			ms.executable = func() (string, error) { return tt.exe, nil }
			ms.packagedData = tt.packaged
			ms.tempDir = func() string { return "/tmp-of-the-test" }
			p := ms.placeHistory(newDatasourceIn(id, s, agentclienttest.New(nil), ms))
			if p.Dir != tt.wantDir || p.Source != tt.wantSource || p.Durable != tt.durable {
				t.Errorf("got %+v\nwant %s from %s, durable %v", p, tt.wantDir, tt.wantSource, tt.durable)
			}
			if !tt.durable && !strings.Contains(p.Note, "set jsonData.historyPath") {
				t.Errorf("note = %q", p.Note)
			}
		})
	}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		ms := newMonitors()
		ms.tempDir = func() string { return "/tmp-of-the-test" }
		p := ms.durability(historyPlace{Dir: "/dev/shm/vigil/history", Source: sourceSetting})
		if p.Durable || !strings.Contains(p.Note, "tmpfs") {
			t.Errorf("a history on tmpfs: %+v", p)
		}
	}
}

// A history an earlier version kept under the UID alone goes to exactly one
// identity, the lowest datasource ID; the other starts its own and cannot
// open the moved one.
func TestLegacyHistoryGoesToTheLowestID(t *testing.T) {
	data := t.TempDir()
	legacy := filepath.Join(data, "vigil-cdp", "vigil-cdp")
	old, err := history.Open(legacy, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Append(history.Batch{Events: []history.Event{{Type: history.TypeNote, Time: t0.Add(-time.Hour), Agent: "a", Reason: "from before"}}}); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	ms, _ := fakeMonitors(t, data)
	idHigh, sHigh := inOrg(2, 8, "vigil-cdp", `{"agents":[{"name":"a","url":"http://127.0.0.1:7071"}]}`)
	idLow, sLow := inOrg(1, 2, "vigil-cdp", `{"agents":[{"name":"a","url":"http://127.0.0.1:7071"}]}`)
	high := newDatasourceIn(idHigh, sHigh, agentclienttest.New(nil), ms)
	low := newDatasourceIn(idLow, sLow, agentclienttest.New(nil), ms)
	// The higher ID asks first: it must not take the history.
	for _, ds := range []*Datasource{high, low} {
		if dr := query(t, ds, QueryTypeStatus); dr.Error != nil {
			t.Fatal(dr.Error)
		}
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("the legacy folder is still there: %v", err)
	}
	has := func(ds *Datasource) bool {
		ms.mu.Lock()
		defer ms.mu.Unlock()
		evs, err := ms.byKey[ds.ident.key()].store.Events(history.Query{Agent: "a"})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Reason == "from before" {
				return true
			}
		}
		return false
	}
	if !has(low) || has(high) {
		t.Errorf("the old history went to the wrong datasource: low %v, high %v", has(low), has(high))
	}
	// The higher ID pointed at the moved folder is refused.
	ms.stopAll()
	moved := filepath.Join(data, "vigil-cdp", idLow.key())
	_, sHigh2 := inOrg(2, 8, "vigil-cdp", `{"historyPath":"`+moved+`","agents":[{"name":"a","url":"http://127.0.0.1:7071"}]}`)
	dr := query(t, newDatasourceIn(idHigh, sHigh2, agentclienttest.New(nil), ms), QueryTypeStatus)
	want := moved + ` is the history of datasource "vigil-cdp" (ID 2, org 1), not of "vigil-cdp" (ID 8, org 2)`
	if dr.Error == nil || !strings.Contains(dr.Error.Error(), want) {
		t.Errorf("error = %v\nwant %s", dr.Error, want)
	}
}

// GET monitor is for admins and neither starts nor keeps the monitor.
func TestMonitorResource(t *testing.T) {
	ms, _ := fakeMonitors(t, t.TempDir())
	id, s := inOrg(1, 1, "vigil-cdp", threeAgents)
	ds := newDatasourceIn(id, s, agentclienttest.New(nil), ms)
	call := func(role string) *backend.CallResourceResponse {
		var c capture
		if err := ds.CallResource(context.Background(), &backend.CallResourceRequest{
			//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
			PluginContext: backend.PluginContext{OrgID: 1, User: &backend.User{Login: "x", Role: role}},
			Method:        "GET", Path: "monitor",
		}, &c); err != nil {
			t.Fatal(err)
		}
		return c.responses[0]
	}
	if r := call("Editor"); r.Status != 403 || strings.Contains(string(r.Body), "vigil-cdp/org1") {
		t.Errorf("Editor: %d %s", r.Status, r.Body)
	}
	r := call("Admin")
	var st monitorStatus
	if err := json.Unmarshal(r.Body, &st); err != nil || r.Status != 200 {
		t.Fatalf("%d %s: %v", r.Status, r.Body, err)
	}
	if st.Running || st.History.Dir == "" || st.IdleStopSeconds != 900 || ms.byKey[id.key()].eng != nil {
		t.Errorf("GET monitor: %s", r.Body)
	}
}
