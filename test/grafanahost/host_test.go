package grafanahost

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// recordingBackend is an in-process Backend that keeps the PluginContext of
// every call, so tests can see exactly what the plugin would receive.
type recordingBackend struct {
	mu       sync.Mutex
	contexts []backend.PluginContext
	headers  []map[string]string
}

func (b *recordingBackend) record(pc backend.PluginContext, h map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.contexts = append(b.contexts, pc)
	b.headers = append(b.headers, h)
}

func (b *recordingBackend) last() (backend.PluginContext, map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.contexts[len(b.contexts)-1], b.headers[len(b.headers)-1]
}

func (b *recordingBackend) QueryData(_ context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	b.record(req.PluginContext, req.Headers)
	resp := backend.NewQueryDataResponse()
	for _, q := range req.Queries {
		if q.QueryType == "broken" {
			resp.Responses[q.RefID] = backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, "broken on purpose")
			continue
		}
		resp.Responses[q.RefID] = backend.DataResponse{Frames: data.Frames{
			data.NewFrame("echo", data.NewField("from", nil, []time.Time{q.TimeRange.From})),
		}}
	}
	return resp, nil
}

func (b *recordingBackend) CheckHealth(_ context.Context, req *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	b.record(req.PluginContext, req.Headers)
	return &backend.CheckHealthResult{Status: backend.HealthStatusOk, Message: "fine"}, nil
}

func (b *recordingBackend) CallResource(_ context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	b.record(req.PluginContext, nil)
	return sender.Send(&backend.CallResourceResponse{
		Status:  http.StatusAccepted,
		Headers: map[string][]string{"Content-Type": {"text/plain"}},
		Body:    []byte(req.Method + " " + req.URL + " " + string(req.Body)),
	})
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const provisioningYAML = `apiVersion: 1
datasources:
  - name: Vigil CDP
    type: vigil-cdp-datasource
    uid: vigil-cdp
    jsonData:
      pollInterval: 10s
      agents:
        - name: a
          url: ${AGENT_URL}
    secureJsonData:
      readToken: $HOST_TEST_READ
      controlToken: literal-$$-dollar
`

func TestLoadProvisioning(t *testing.T) {
	t.Setenv("AGENT_URL", "http://127.0.0.1:7071")
	t.Setenv("HOST_TEST_READ", "tok-r")
	path := writeFile(t, t.TempDir(), "ds.yaml", provisioningYAML)
	dss, err := LoadProvisioning(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(dss) != 1 {
		t.Fatalf("got %d datasources", len(dss))
	}
	ds := dss[0]
	if ds.ID != 1 || ds.UID != "vigil-cdp" || ds.Name != "Vigil CDP" || ds.Type != "vigil-cdp-datasource" {
		t.Errorf("datasource = %+v", ds)
	}
	if want := `{"agents":[{"name":"a","url":"http://127.0.0.1:7071"}],"pollInterval":"10s"}`; string(ds.JSONData) != want {
		t.Errorf("jsonData = %s, want %s", ds.JSONData, want)
	}
	if ds.SecureJSONData["readToken"] != "tok-r" || ds.SecureJSONData["controlToken"] != "literal-$-dollar" {
		t.Errorf("secureJsonData not expanded as Grafana does")
	}
}

func TestLoadProvisioningErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"wrong api version", "apiVersion: 2\ndatasources: []\n", "apiVersion: 2 is not supported, want 1"},
		{"no datasources", "apiVersion: 1\n", "datasources: at least one datasource is required"},
		{"missing uid", "apiVersion: 1\ndatasources:\n  - name: x\n    type: t\n", "datasources[0].uid: is required"},
		{"missing type", "apiVersion: 1\ndatasources:\n  - name: x\n    uid: u\n", "datasources[0].type: is required"},
		{"duplicate uid", "apiVersion: 1\ndatasources:\n  - {uid: u, type: t}\n  - {uid: u, type: t}\n", `datasources[1].uid: "u" is already used by datasources[0] in org 1`},
		{"same uid in two orgs is fine, twice in one is not", "apiVersion: 1\ndatasources:\n  - {uid: u, type: t}\n  - {uid: u, type: t, orgId: 2}\n  - {uid: u, type: t, orgId: 2}\n", `datasources[2].uid: "u" is already used by datasources[1] in org 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "ds.yaml", tt.body)
			_, err := LoadProvisioning(path)
			if want := path + ": " + tt.want; err == nil || err.Error() != want {
				t.Errorf("error = %v, want %s", err, want)
			}
		})
	}
}

func newTestHost(t *testing.T, opts Options) (*recordingBackend, *httptest.Server) {
	t.Helper()
	rb := &recordingBackend{}
	opts.Backend = rb
	if opts.Datasources == nil {
		opts.Datasources = []Datasource{{
			ID: 7, UID: "vigil-cdp", Name: "Vigil CDP", Type: PluginID,
			JSONData:       json.RawMessage(`{"agents":[]}`),
			SecureJSONData: map[string]string{"readToken": "host-s3cret"},
			Updated:        time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		}}
	}
	opts.Now = func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(srv.Close)
	h.SetAppURL(srv.URL)
	return rb, srv
}

func do(t *testing.T, method, url, body string, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The PluginContext is what Grafana would send: org, plugin, datasource
// settings with decrypted secrets, the user from the role headers, and config.
func TestPluginContextPerRequest(t *testing.T) {
	rb, srv := newTestHost(t, Options{})
	tests := []struct {
		name     string
		headers  map[string]string
		wantUser *backend.User
	}{
		{"default viewer", nil, &backend.User{Login: "admin", Name: "admin", Email: "admin@vigil.test", Role: "Viewer"}},
		{"editor", map[string]string{HeaderRole: "Editor", HeaderLogin: "eve"}, &backend.User{Login: "eve", Name: "eve", Email: "eve@vigil.test", Role: "Editor"}},
		{"admin", map[string]string{HeaderRole: "Admin"}, &backend.User{Login: "admin", Name: "admin", Email: "admin@vigil.test", Role: "Admin"}},
		{"alerting has no user", map[string]string{HeaderAlerting: "1", HeaderRole: "Admin"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, call := range []struct{ method, path, body string }{
				{"POST", "/api/ds/query", `{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp"}}]}`},
				{"GET", "/api/datasources/uid/vigil-cdp/health", ""},
				{"GET", "/api/datasources/uid/vigil-cdp/resources/agents", ""},
			} {
				status, body := do(t, call.method, srv.URL+call.path, call.body, tt.headers)
				if status >= 300 {
					t.Fatalf("%s %s: %d %s", call.method, call.path, status, body)
				}
				pc, headers := rb.last()
				if call.path == "/api/ds/query" && tt.wantUser == nil && headers["FromAlert"] != "true" {
					t.Errorf("alerting query lacks the FromAlert header: %v", headers)
				}
				if (pc.User == nil) != (tt.wantUser == nil) || pc.User != nil && *pc.User != *tt.wantUser {
					t.Errorf("%s: user = %+v, want %+v", call.path, pc.User, tt.wantUser)
				}
				//lint:ignore SA1019 the host sends OrgID, as Grafana does
				org := pc.OrgID
				if org != 1 || pc.PluginID != "vigil-cdp-datasource" {
					t.Errorf("org/plugin = %d %q", org, pc.PluginID)
				}
				ds := pc.DataSourceInstanceSettings
				if ds == nil || ds.ID != 7 || ds.UID != "vigil-cdp" || ds.Name != "Vigil CDP" ||
					ds.DecryptedSecureJSONData["readToken"] != "host-s3cret" || ds.Updated.IsZero() || string(ds.JSONData) != `{"agents":[]}` {
					t.Errorf("datasource settings = %+v", ds)
				}
				appURL, err := pc.GrafanaConfig.AppURL()
				if err != nil || appURL != srv.URL+"/" {
					t.Errorf("GF_APP_URL = %q, %v", appURL, err)
				}
			}
		})
	}
}

func TestBadRoleIsRefused(t *testing.T) {
	_, srv := newTestHost(t, Options{})
	status, body := do(t, "GET", srv.URL+"/api/datasources/uid/vigil-cdp/health", "", map[string]string{HeaderRole: "Owner"})
	if status != 400 || body != `{"message":"X-Grafana-Role: \"Owner\" must be one of Viewer, Editor, Admin"}` {
		t.Errorf("got %d %s", status, body)
	}
}

func TestQueryRoute(t *testing.T) {
	_, srv := newTestHost(t, Options{})
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"epoch range", `{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp","type":"vigil-cdp-datasource"}}],"from":"1764158400000","to":"1764162000000"}`, 200,
			`{"results":{"A":{"status":200,"frames":[{"schema":{"name":"echo","fields":[{"name":"from","type":"time","typeInfo":{"frame":"time.Time"}}]},"data":{"values":[[1764158400000]]}}]}}}`},
		{"relative range", `{"queries":[{"refId":"B","datasource":{"uid":"vigil-cdp"}}],"from":"now-1h","to":"now"}`, 200,
			`{"results":{"B":{"status":200,"frames":[{"schema":{"name":"echo","fields":[{"name":"from","type":"time","typeInfo":{"frame":"time.Time"}}]},"data":{"values":[[1795690800000]]}}]}}}`},
		{"a failed query makes it 400", `{"queries":[{"refId":"A","queryType":"broken","datasource":{"uid":"vigil-cdp"}}]}`, 400,
			`{"results":{"A":{"error":"broken on purpose","errorSource":"downstream","status":400}}}`},
		{"unknown datasource", `{"queries":[{"refId":"A","datasource":{"uid":"nope"}}]}`, 404,
			`{"message":"Data source not found: no provisioned datasource has uid \"nope\" in org 1"}`},
		{"no datasource", `{"queries":[{"refId":"A"}]}`, 400,
			`{"message":"bad request data: queries[0].datasource.uid: is required"}`},
		{"bad time", `{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp"}}],"from":"yesterday"}`, 400,
			`{"message":"bad request data: from: \"yesterday\" is not a time: use epoch milliseconds, now or now-\u003cn\u003e\u003cs|m|h|d|w\u003e"}`},
		{"no queries", `{"queries":[]}`, 400, `{"message":"bad request data: queries: at least one query is required"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(t, "POST", srv.URL+"/api/ds/query", tt.body, nil)
			if status != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d %s\nwant %d %s", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestResourceRoute(t *testing.T) {
	_, srv := newTestHost(t, Options{})
	status, body := do(t, "POST", srv.URL+"/api/datasources/uid/vigil-cdp/resources/agents/a/restart?why=test", `{"x":1}`, nil)
	if status != http.StatusAccepted || body != `POST agents/a/restart?why=test {"x":1}` {
		t.Errorf("got %d %s", status, body)
	}
	status, _ = do(t, "GET", srv.URL+"/api/datasources/uid/nope/resources/agents", "", nil)
	if status != 404 {
		t.Errorf("unknown uid: %d", status)
	}
}

func TestHarnessDatasourcesNeverServeSecrets(t *testing.T) {
	_, srv := newTestHost(t, Options{})
	status, body := do(t, "GET", srv.URL+"/api/harness/datasources", "", nil)
	want := `[{"id":7,"uid":"vigil-cdp","name":"Vigil CDP","type":"vigil-cdp-datasource","url":"","jsonData":{"agents":[]},"secureJsonFields":{"readToken":true}}]`
	if status != 200 || body != want {
		t.Errorf("got %d %s\nwant %s", status, body, want)
	}
	if strings.Contains(body, "host-s3cret") {
		t.Errorf("secret served")
	}
}

func TestStaticFiles(t *testing.T) {
	dist, harness := t.TempDir(), t.TempDir()
	writeFile(t, dist, "module.js", "app")
	writeFile(t, dist, "datasource/module.js", "datasource")
	writeFile(t, dist, "panels/restart/module.js", "panel")
	writeFile(t, harness, "index.html", "<html>harness</html>")
	writeFile(t, harness, "bundle.js", "bundle")
	_, srv := newTestHost(t, Options{DistDir: dist, HarnessDir: harness})
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/public/plugins/vigil-cdp-app/module.js", 200, "app"},
		{"/public/plugins/vigil-cdp-app/datasource/module.js", 200, "datasource"},
		{"/public/plugins/vigil-cdp-datasource/module.js", 200, "datasource"},
		{"/public/plugins/vigil-restart-panel/module.js", 200, "panel"},
		{"/harness/bundle.js", 200, "bundle"},
		{"/", 200, "<html>harness</html>"},
		{"/harness-page", 200, "<html>harness</html>"},
		{"/harness-page/agents/demo-node-a", 200, "<html>harness</html>"},
		{"/public/plugins/other-app/module.js", 404, "404 page not found\n"},
		{"/api/unknown", 404, `{"message":"Not found: /api/unknown"}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body := do(t, "GET", srv.URL+tt.path, "", nil)
			if status != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestParseGrafanaTime(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"now", now},
		{"now-30s", now.Add(-30 * time.Second)},
		{"now-15m", now.Add(-15 * time.Minute)},
		{"now-6h", now.Add(-6 * time.Hour)},
		{"now-2d", now.Add(-48 * time.Hour)},
		{"now-1w", now.Add(-7 * 24 * time.Hour)},
		{"1764158400000", time.UnixMilli(1764158400000).UTC()},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseGrafanaTime(tt.in, now)
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "now-", "now-5y", "now+1h", "soon"} {
		if _, err := parseGrafanaTime(bad, now); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
