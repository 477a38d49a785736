package plugin

import (
	"context"
	"encoding/json"
	"flag"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/engine"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	readToken    = "read-s3cret"
	controlToken = "control-s3cret"
)

func settingsFor(jsonData string) backend.DataSourceInstanceSettings {
	secrets := map[string]string{"readToken": readToken, "controlToken": controlToken}
	if strings.Contains(jsonData, `"node-b"`) {
		secrets["agent.node-b.readToken"] = "node-b-" + readToken
	}
	return backend.DataSourceInstanceSettings{
		UID:                     "vigil-cdp",
		Name:                    "Vigil CDP",
		JSONData:                json.RawMessage(jsonData),
		DecryptedSecureJSONData: secrets,
	}
}

const threeAgents = `{"pollInterval":"10s","agents":[
	{"name":"standalone","url":"http://127.0.0.1:7071"},
	{"name":"node-a","url":"http://127.0.0.1:7072","cluster":"ha"},
	{"name":"node-b","url":"http://127.0.0.1:7073","cluster":"ha"}]}`

// badSettings keeps node-b so that its per-agent secret still names an agent.
const badSettings = `{"agents":[{"name":"node-b","url":"b:7073"}]}`

// testMonitors is a registry of its own for one test, with the history in a
// temporary folder, a fake clock and the given agent client.
func testMonitors(t *testing.T, client agentclient.API) *monitors {
	t.Helper()
	dir := t.TempDir()
	ms := newMonitors()
	ms.getenv = func(k string) string {
		if k == envDataPath {
			return dir
		}
		return ""
	}
	ms.executable = func() (string, error) { return "/nonexistent/gpx_vigil", nil }
	ms.packagedData = filepath.Join(dir, "no-packaged-data")
	ms.tempDir = func() string { return "/nonexistent-tmp" }
	ms.options = func() engine.Options {
		return engine.Options{Client: client, Clock: clock.NewFake(t0), Jitter: -1}
	}
	t.Cleanup(ms.stopAll)
	return ms
}

func TestNewDatasourceNeverFailsOnBadSettings(t *testing.T) {
	inst, err := NewDatasource(context.Background(), settingsFor(badSettings))
	if err != nil || inst == nil {
		t.Fatalf("NewDatasource = %v, %v; want an instance that reports the error in CheckHealth", inst, err)
	}
	inst.(*Datasource).Dispose()
}

func TestQueryDataErrors(t *testing.T) {
	tests := []struct {
		name      string
		settings  string
		queryType string
		want      string
	}{
		{"unknown type", threeAgents, "history", `unknown query type "history": known query types are status, timeline, metrics, events`},
		{"bad settings", badSettings, "status", "the Vigil datasource is misconfigured; fix its settings: invalid Vigil datasource settings: jsonData.agents[0].url: must be an absolute http or https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := newDatasource(settingsFor(tt.settings), agentclienttest.New(nil), testMonitors(t, agentclienttest.New(nil)))
			resp, _ := ds.QueryData(context.Background(), &backend.QueryDataRequest{
				Queries: []backend.DataQuery{{RefID: "A", QueryType: tt.queryType}, {RefID: "B"}},
			})
			a := resp.Responses["A"]
			if a.Error == nil || a.Error.Error() != tt.want {
				t.Errorf("error = %v, want %q", a.Error, tt.want)
			}
			if a.ErrorSource != backend.ErrorSourceDownstream || a.Status != backend.StatusBadRequest {
				t.Errorf("source = %q, status = %d", a.ErrorSource, a.Status)
			}
		})
	}
}

type capture struct {
	responses []*backend.CallResourceResponse
}

func (c *capture) Send(r *backend.CallResourceResponse) error {
	c.responses = append(c.responses, r)
	return nil
}

func TestCallResource(t *testing.T) {
	editor := &backend.User{Login: "ed", Role: "Editor"}
	viewer := &backend.User{Login: "vi", Role: "Viewer"}
	noControl := backend.DataSourceInstanceSettings{UID: "vigil-cdp", JSONData: json.RawMessage(threeAgents),
		DecryptedSecureJSONData: map[string]string{"readToken": readToken}}
	restartBody := `{"reason":"after maintenance","ifGeneration":3}`
	const agentsBody = `{"agents":[{"name":"standalone","url":"http://127.0.0.1:7071","cluster":""},{"name":"node-a","url":"http://127.0.0.1:7072","cluster":"ha"},{"name":"node-b","url":"http://127.0.0.1:7073","cluster":"ha"}]}`
	tests := []struct {
		name       string
		settings   backend.DataSourceInstanceSettings
		method     string
		path       string
		user       *backend.User
		body       string
		wantStatus int
		wantBody   string
		wantAllow  string
	}{
		{name: "list agents", method: "GET", path: "agents", wantStatus: 200, wantBody: agentsBody},
		{name: "trailing slash", method: "GET", path: "/agents/", wantStatus: 200, wantBody: agentsBody},
		{
			name: "unknown path", method: "GET", path: "secrets", wantStatus: 404,
			wantBody: `{"error":{"code":"not_found","message":"no resource \"secrets\": known resources are GET agents, GET agents/{name}, POST agents/{name}/processes/{process}/restart, POST poll, POST reports, GET monitor"}}`,
		},
		{
			name: "wrong method", method: "POST", path: "agents", wantStatus: 405, wantAllow: "GET",
			wantBody: `{"error":{"code":"method_not_allowed","message":"POST agents is not allowed: use GET"}}`,
		},
		{
			name: "unknown agent", method: "GET", path: "agents/nope", wantStatus: 404,
			wantBody: `{"error":{"code":"unknown_agent","message":"no agent \"nope\" in this datasource"}}`,
		},
		{
			name: "bad settings", settings: settingsFor(badSettings), method: "GET", path: "agents", wantStatus: 500,
			wantBody: `{"error":{"code":"invalid_settings","message":"the Vigil datasource is misconfigured; fix its settings: invalid Vigil datasource settings: jsonData.agents[0].url: must be an absolute http or https URL"}}`,
		},
		{
			name: "restart as Viewer", method: "POST", path: "agents/node-a/processes/cdp/restart", user: viewer, body: restartBody, wantStatus: 403,
			wantBody: `{"error":{"code":"forbidden","message":"restarting CDP needs the Grafana role Editor or higher (jsonData.restartRole); vi has the role Viewer"}}`,
		},
		{
			name: "restart without a user (alerting, service)", method: "POST", path: "agents/node-a/processes/cdp/restart", body: restartBody, wantStatus: 403,
			wantBody: `{"error":{"code":"forbidden","message":"restarting CDP needs a signed-in Grafana user with the role Editor or higher"}}`,
		},
		{
			// A reason is optional (it defaults); the generation is what is missing here.
			name: "restart without a reason or a generation", method: "POST", path: "agents/node-a/processes/cdp/restart", user: editor, body: `{}`, wantStatus: 400,
			wantBody: `{"error":{"code":"invalid_request","message":"ifGeneration: is required: the process generation you saw (GET agents/node-a), or -1 for whatever runs"}}`,
		},
		{
			name: "restart without a generation", method: "POST", path: "agents/node-a/processes/cdp/restart", user: editor, body: `{"reason":"x"}`, wantStatus: 400,
			wantBody: `{"error":{"code":"invalid_request","message":"ifGeneration: is required: the process generation you saw (GET agents/node-a), or -1 for whatever runs"}}`,
		},
		{
			name: "restart with no control token configured", settings: noControl, method: "POST", path: "agents/node-a/processes/cdp/restart", user: editor, body: restartBody, wantStatus: 500,
			wantBody: `{"error":{"code":"no_control_token","message":"no control token is configured for agent \"node-a\": set secureJsonData.controlToken (or agent.node-a.controlToken) in the datasource settings"}}`,
		},
		{
			name: "restart is a POST", method: "GET", path: "agents/node-a/processes/cdp/restart", wantStatus: 405, wantAllow: "POST",
			wantBody: `{"error":{"code":"method_not_allowed","message":"GET agents/node-a/processes/cdp/restart is not allowed: use POST"}}`,
		},
		{
			name: "poll an unknown agent", method: "POST", path: "poll", body: `{"agent":"nope"}`, wantStatus: 404,
			wantBody: `{"error":{"code":"unknown_agent","message":"no agent \"nope\" in this datasource"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			settings := tt.settings
			if settings.UID == "" {
				settings = settingsFor(threeAgents)
			}
			agents := agentclienttest.New(nil)
			ds := newDatasource(settings, agents, testMonitors(t, agents))
			var c capture
			req := &backend.CallResourceRequest{Method: tt.method, Path: tt.path, Body: []byte(tt.body),
				PluginContext: backend.PluginContext{User: tt.user}}
			if err := ds.CallResource(context.Background(), req, &c); err != nil {
				t.Fatalf("CallResource: %v", err)
			}
			if len(c.responses) != 1 {
				t.Fatalf("got %d responses", len(c.responses))
			}
			r := c.responses[0]
			if r.Status != tt.wantStatus || string(r.Body) != tt.wantBody {
				t.Errorf("got %d %s\nwant %d %s", r.Status, r.Body, tt.wantStatus, tt.wantBody)
			}
			if ct := r.Headers["Content-Type"]; len(ct) != 1 || ct[0] != "application/json" {
				t.Errorf("Content-Type = %v", ct)
			}
			if tt.wantAllow != "" && strings.Join(r.Headers["Allow"], ",") != tt.wantAllow {
				t.Errorf("Allow = %v", r.Headers["Allow"])
			}
			if strings.Contains(string(r.Body), "s3cret") {
				t.Errorf("token leaked: %s", r.Body)
			}
			if n := agents.StatusCalls(); n != 0 {
				t.Errorf("%d polls for a request that needs none", n)
			}
		})
	}
}

func query(t *testing.T, ds *Datasource, queryType string) backend.DataResponse {
	t.Helper()
	resp, err := ds.QueryData(context.Background(), &backend.QueryDataRequest{
		Queries: []backend.DataQuery{{RefID: "A", QueryType: queryType, JSON: json.RawMessage(`{}`),
			TimeRange: backend.TimeRange{From: t0.Add(-time.Hour), To: t0}, Interval: 10 * time.Second, MaxDataPoints: 100}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Responses["A"]
}

func TestEngineLifecycle(t *testing.T) {
	agents := agentclienttest.New(nil)
	ms := testMonitors(t, agents)
	v1 := settingsFor(threeAgents)
	v1.Updated = t0

	ds1 := newDatasource(v1, agents, ms)
	if _, err := ds1.CheckHealth(context.Background(), &backend.CheckHealthRequest{}); err != nil {
		t.Fatal(err)
	}
	// Save & test polls each agent once itself, not through the engine.
	if ms.byKey[identity{uid: "vigil-cdp"}.key()].eng != nil || agents.StatusCalls() != 3 {
		t.Fatal("the engine started before the first request that needs it")
	}
	healthPolls := agents.StatusCalls()

	if dr := query(t, ds1, QueryTypeStatus); dr.Error != nil || dr.Frames[0].Rows() != 3 {
		t.Fatalf("status: %+v", dr)
	}
	eng := ms.byKey[identity{uid: "vigil-cdp"}.key()].eng
	if eng == nil {
		t.Fatal("the first query did not start the engine")
	}
	var c capture
	if err := ds1.CallResource(context.Background(), &backend.CallResourceRequest{Method: "POST", Path: "poll"}, &c); err != nil || c.responses[0].Status != 200 {
		t.Fatalf("poll: %v %+v", err, c.responses)
	}
	if n := agents.StatusCalls() - healthPolls; n < 3 {
		t.Errorf("POST poll made %d status calls, want one per agent", n)
	}

	// A settings change: the new instance takes the engine over.
	v2 := settingsFor(`{"agents":[{"name":"standalone","url":"http://127.0.0.1:7071"},{"name":"node-a","url":"http://127.0.0.1:7072","cluster":"ha"}]}`)
	v2.Updated = t0.Add(time.Minute)
	ds2 := newDatasource(v2, agents, ms)
	if m := ms.byKey[identity{uid: "vigil-cdp"}.key()]; m.eng != eng || len(eng.Config().Agents) != 2 {
		t.Fatalf("the engine was not reconfigured in place (same engine %v, %d agents)", m.eng == eng, len(eng.Config().Agents))
	}
	// An instance from older settings does not take over.
	stale := newDatasource(v1, agents, ms)
	if len(eng.Config().Agents) != 2 || ms.byKey[identity{uid: "vigil-cdp"}.key()].owner != ds2 {
		t.Fatal("an older instance took the engine over")
	}
	stale.Dispose()
	// The old instance is disposed a few seconds later: the engine stays.
	ds1.Dispose()
	if ms.byKey[identity{uid: "vigil-cdp"}.key()].eng != eng {
		t.Fatal("disposing a replaced instance stopped the engine")
	}
	if dr := query(t, ds2, QueryTypeStatus); dr.Error != nil || dr.Frames[0].Rows() != 2 {
		t.Fatalf("status after the change: %+v", dr)
	}
	// The newest instance disposed (idle): the engine stops.
	ds2.Dispose()
	if _, ok := ms.byKey[identity{uid: "vigil-cdp"}.key()]; ok {
		t.Fatal("the engine outlived the newest instance")
	}
	// The next request starts it again, from the same history.
	ds3 := newDatasource(v2, agents, ms)
	if dr := query(t, ds3, QueryTypeEvents); dr.Error != nil {
		t.Fatalf("events: %v", dr.Error)
	}
	if ms.byKey[identity{uid: "vigil-cdp"}.key()].eng == nil || ms.byKey[identity{uid: "vigil-cdp"}.key()].eng == eng {
		t.Fatal("no new engine")
	}
}

func TestInvalidNewSettingsStopTheEngine(t *testing.T) {
	agents := agentclienttest.New(nil)
	ms := testMonitors(t, agents)
	ds1 := newDatasource(settingsFor(threeAgents), agents, ms)
	if dr := query(t, ds1, QueryTypeStatus); dr.Error != nil {
		t.Fatal(dr.Error)
	}
	bad := settingsFor(badSettings)
	bad.Updated = time.Now()
	ds2 := newDatasource(bad, agents, ms)
	if ms.byKey[identity{uid: "vigil-cdp"}.key()].eng != nil {
		t.Fatal("the engine runs on after its settings became invalid")
	}
	dr := query(t, ds2, QueryTypeStatus)
	if dr.Error == nil || !strings.Contains(dr.Error.Error(), "jsonData.agents[0].url") {
		t.Errorf("error = %v", dr.Error)
	}
}

func TestHistoryDir(t *testing.T) {
	tests := []struct {
		name, uid, jsonData, dataPath, want string
	}{
		{"historyPath wins", "ds", `{"historyPath":"/srv/vigil/history","agents":[{"name":"a","url":"http://a"}]}`, "/var/lib/grafana-data", "/srv/vigil/history"},
		{"under Grafana's data folder, per identity", "vigil-cdp", `{"agents":[{"name":"a","url":"http://a"}]}`, "/data", "/data/vigil-cdp/org0-id0-vigil-cdp"},
		{"odd uid characters", "a/../b", `{"agents":[{"name":"a","url":"http://a"}]}`, "/data", "/data/vigil-cdp/org0-id0-a____b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := newMonitors()
			ms.getenv = func(k string) string {
				if k == envDataPath {
					return tt.dataPath
				}
				return ""
			}
			s := settingsFor(tt.jsonData)
			s.UID = tt.uid
			ds := newDatasource(s, agentclienttest.New(nil), ms)
			if got := ms.placeHistory(ds).Dir; got != tt.want {
				t.Errorf("historyDir = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTwoDatasourcesCannotShareAHistory(t *testing.T) {
	agents := agentclienttest.New(nil)
	ms := testMonitors(t, agents)
	shared := t.TempDir()
	a := settingsFor(`{"historyPath":"` + shared + `","agents":[{"name":"a","url":"http://127.0.0.1:1"}]}`)
	b := a
	b.UID = "other"
	dsA, dsB := newDatasource(a, agents, ms), newDatasource(b, agents, ms)
	if dr := query(t, dsA, QueryTypeStatus); dr.Error != nil {
		t.Fatal(dr.Error)
	}
	dr := query(t, dsB, QueryTypeStatus)
	want := `the Vigil monitor cannot run: jsonData.historyPath: ` + shared + ` is already the history of datasource "vigil-cdp" (ID 0, org 0): give each datasource its own folder`
	if dr.Error == nil || dr.Error.Error() != want {
		t.Errorf("error = %v\nwant %s", dr.Error, want)
	}
}

// Queries keep being answered while settings change and old instances are
// disposed (for the race detector).
func TestSettingsChangeDuringQueries(t *testing.T) {
	agents := agentclienttest.New(nil)
	ms := testMonitors(t, agents)
	first := settingsFor(threeAgents)
	first.Updated = t0
	current := newDatasource(first, agents, ms)
	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				mu.Lock()
				ds := current
				mu.Unlock()
				for _, qt := range []string{QueryTypeStatus, QueryTypeMetrics, QueryTypeTimeline, QueryTypeEvents} {
					dr := query(t, ds, qt)
					if dr.Error != nil && !strings.Contains(dr.Error.Error(), "disposed") {
						t.Errorf("%s: %v", qt, dr.Error)
					}
				}
			}
		})
	}
	for i := 1; i <= 20; i++ {
		s := settingsFor(threeAgents)
		s.Updated = t0.Add(time.Duration(i) * time.Second)
		next := newDatasource(s, agents, ms)
		mu.Lock()
		old := current
		current = next
		mu.Unlock()
		old.Dispose()
	}
	close(done)
	wg.Wait()
}
