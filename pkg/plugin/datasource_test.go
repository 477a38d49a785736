package plugin

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/experimental"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	readToken    = "read-s3cret"
	controlToken = "control-s3cret"
)

func settingsFor(jsonData string) backend.DataSourceInstanceSettings {
	return backend.DataSourceInstanceSettings{
		UID:      "vigil-cdp",
		Name:     "Vigil CDP",
		JSONData: json.RawMessage(jsonData),
		DecryptedSecureJSONData: map[string]string{
			"readToken": readToken, "controlToken": controlToken,
			"agent.node-b.readToken": "node-b-" + readToken,
		},
	}
}

const threeAgents = `{"pollInterval":"10s","agents":[
	{"name":"standalone","url":"http://127.0.0.1:7071"},
	{"name":"node-a","url":"http://127.0.0.1:7072","cluster":"ha"},
	{"name":"node-b","url":"http://127.0.0.1:7073","cluster":"ha"}]}`

// badSettings keeps node-b so that its per-agent secret still names an agent.
const badSettings = `{"agents":[{"name":"node-b","url":"b:7073"}]}`

// fakeAgents answers Healthz from a table, for tests that need no network.
type fakeAgents struct {
	mu   sync.Mutex
	errs map[string]error
	seen map[string]string // agent name -> token used
}

func (f *fakeAgents) Healthz(_ context.Context, a agentclient.Agent) (agentclient.Health, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[string]string{}
	}
	f.seen[a.Name] = a.ReadToken
	if err := f.errs[a.Name]; err != nil {
		return agentclient.Health{}, err
	}
	return agentclient.Health{StatusCode: 200, RTT: 2 * time.Millisecond}, nil
}

func TestNewDatasourceNeverFailsOnBadSettings(t *testing.T) {
	inst, err := NewDatasource(context.Background(), settingsFor(badSettings))
	if err != nil || inst == nil {
		t.Fatalf("NewDatasource = %v, %v; want an instance that reports the error in CheckHealth", inst, err)
	}
	inst.(*Datasource).Dispose()
}

func TestQueryData(t *testing.T) {
	tests := []struct {
		name      string
		settings  string
		queryType string
	}{
		// Error answers are checked in TestQueryDataErrors: the SDK's golden
		// files only round-trip responses that carry frames.
		{name: "query-status", settings: threeAgents, queryType: "status"},
		{name: "query-default-type", settings: threeAgents, queryType: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := newDatasource(settingsFor(tt.settings), &fakeAgents{})
			resp, err := ds.QueryData(context.Background(), &backend.QueryDataRequest{
				Queries: []backend.DataQuery{{RefID: "A", QueryType: tt.queryType, JSON: json.RawMessage(`{}`)}},
			})
			if err != nil {
				t.Fatalf("QueryData: %v", err)
			}
			dr := resp.Responses["A"]
			experimental.CheckGoldenJSONResponse(t, "testdata", tt.name+".golden", &dr, *update)
		})
	}
}

func TestQueryDataErrors(t *testing.T) {
	tests := []struct {
		name      string
		settings  string
		queryType string
		want      string
	}{
		{"unknown type", threeAgents, "history", `unknown query type "history": known query types are status`},
		{"bad settings", badSettings, "status", "the Vigil datasource is misconfigured; fix its settings: invalid Vigil datasource settings: jsonData.agents[0].url: must be an absolute http or https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := newDatasource(settingsFor(tt.settings), &fakeAgents{})
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

func TestCheckHealth(t *testing.T) {
	tests := []struct {
		name        string
		settings    string
		errs        map[string]error
		wantStatus  backend.HealthStatus
		wantMessage string
		wantVerbose string
	}{
		{
			name: "all answered", settings: threeAgents,
			wantStatus: backend.HealthStatusOk, wantMessage: "3 of 3 agents answered",
			wantVerbose: "standalone: answered in 2ms\nnode-a: answered in 2ms\nnode-b: answered in 2ms",
		},
		{
			name: "one silent", settings: threeAgents,
			errs:       map[string]error{"node-a": &agentclient.Error{Fault: agentclient.FaultNetwork, URL: "http://127.0.0.1:7072/healthz", Detail: "no answer (connection refused)"}},
			wantStatus: backend.HealthStatusError, wantMessage: "2 of 3 agents answered",
			wantVerbose: "standalone: answered in 2ms\nnode-a: network: GET http://127.0.0.1:7072/healthz: no answer (connection refused)\nnode-b: answered in 2ms",
		},
		{
			name: "bad settings", settings: badSettings,
			wantStatus:  backend.HealthStatusError,
			wantMessage: "invalid Vigil datasource settings: jsonData.agents[0].url: must be an absolute http or https URL",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agents := &fakeAgents{errs: tt.errs}
			ds := newDatasource(settingsFor(tt.settings), agents)
			res, err := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
			if err != nil {
				t.Fatalf("CheckHealth: %v", err)
			}
			if res.Status != tt.wantStatus || res.Message != tt.wantMessage {
				t.Errorf("got %v %q, want %v %q", res.Status, res.Message, tt.wantStatus, tt.wantMessage)
			}
			var details struct {
				VerboseMessage string `json:"verboseMessage"`
			}
			if len(res.JSONDetails) > 0 {
				if err := json.Unmarshal(res.JSONDetails, &details); err != nil {
					t.Fatalf("JSONDetails %s: %v", res.JSONDetails, err)
				}
			}
			if details.VerboseMessage != tt.wantVerbose {
				t.Errorf("verboseMessage\n got: %q\nwant: %q", details.VerboseMessage, tt.wantVerbose)
			}
			if tt.wantVerbose != "" && agents.seen["node-b"] != "node-b-"+readToken || tt.wantVerbose != "" && agents.seen["node-a"] != readToken {
				t.Errorf("tokens used = %v", agents.seen)
			}
		})
	}
}

// Against real HTTP agents: concurrency, the per-agent timeout and the
// bearer token on the wire.
func TestCheckHealthOverHTTP(t *testing.T) {
	var mu sync.Mutex
	auth := map[string]string{}
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth[r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer ok.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)

	jsonData := `{"agents":[{"name":"fast","url":"` + ok.URL + `"},{"name":"slow","url":"` + slow.URL + `"}]}`
	ds := newDatasource(backend.DataSourceInstanceSettings{
		JSONData:                json.RawMessage(jsonData),
		DecryptedSecureJSONData: map[string]string{"readToken": readToken},
	}, agentclient.New(nil))
	ds.healthTimeout = 100 * time.Millisecond

	res, err := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != backend.HealthStatusError || res.Message != "1 of 2 agents answered" {
		t.Errorf("got %v %q", res.Status, res.Message)
	}
	if !strings.Contains(string(res.JSONDetails), `slow: network: GET `+slow.URL+`/healthz: no answer before the timeout`) {
		t.Errorf("details = %s", res.JSONDetails)
	}
	if strings.Contains(string(res.JSONDetails), readToken) || strings.Contains(res.Message, readToken) {
		t.Errorf("token leaked into the health answer")
	}
	mu.Lock()
	defer mu.Unlock()
	if auth["/healthz"] != "Bearer "+readToken {
		t.Errorf("Authorization = %q", auth["/healthz"])
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
	tests := []struct {
		name       string
		settings   string
		method     string
		path       string
		wantStatus int
		wantBody   string
		wantAllow  string
	}{
		{
			name: "list agents", settings: threeAgents, method: "GET", path: "agents", wantStatus: 200,
			wantBody: `{"agents":[{"name":"standalone","url":"http://127.0.0.1:7071","cluster":""},{"name":"node-a","url":"http://127.0.0.1:7072","cluster":"ha"},{"name":"node-b","url":"http://127.0.0.1:7073","cluster":"ha"}]}`,
		},
		{
			name: "trailing slash", settings: threeAgents, method: "GET", path: "/agents/", wantStatus: 200,
			wantBody: `{"agents":[{"name":"standalone","url":"http://127.0.0.1:7071","cluster":""},{"name":"node-a","url":"http://127.0.0.1:7072","cluster":"ha"},{"name":"node-b","url":"http://127.0.0.1:7073","cluster":"ha"}]}`,
		},
		{
			name: "unknown path", settings: threeAgents, method: "GET", path: "secrets", wantStatus: 404,
			wantBody: `{"error":{"code":"not_found","message":"no resource \"secrets\": known resources are GET agents"}}`,
		},
		{
			name: "wrong method", settings: threeAgents, method: "POST", path: "agents", wantStatus: 405, wantAllow: "GET",
			wantBody: `{"error":{"code":"method_not_allowed","message":"POST agents is not allowed: use GET"}}`,
		},
		{
			name: "bad settings", settings: badSettings, method: "GET", path: "agents", wantStatus: 500,
			wantBody: `{"error":{"code":"invalid_settings","message":"the Vigil datasource is misconfigured; fix its settings: invalid Vigil datasource settings: jsonData.agents[0].url: must be an absolute http or https URL"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := newDatasource(settingsFor(tt.settings), &fakeAgents{})
			var c capture
			if err := ds.CallResource(context.Background(), &backend.CallResourceRequest{Method: tt.method, Path: tt.path}, &c); err != nil {
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
		})
	}
}
