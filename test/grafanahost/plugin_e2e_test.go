package grafanahost

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// buildPlugin compiles gpx_vigil into dir, as the release build does.
func buildPlugin(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "gpx_vigil")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/vigil-cdp/vigil/cmd/gpx_vigil")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build gpx_vigil: %v\n%s", err, out.String())
	}
	return bin
}

// agentStandIn serves /healthz like a vigil-agent and records the
// Authorization header it was sent.
type agentStandIn struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

func newAgentStandIn(t *testing.T) *agentStandIn {
	a := &agentStandIn{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such path"}}`))
			return
		}
		a.mu.Lock()
		a.auth = append(a.auth, r.Header.Get("Authorization"))
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *agentStandIn) authHeaders() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.auth...)
}

const e2eProvisioning = `apiVersion: 1
datasources:
  - name: Vigil CDP
    type: vigil-cdp-datasource
    uid: vigil-cdp
    jsonData:
      pollInterval: 10s
      agents:
        - name: demo-standalone
          url: $E2E_AGENT_URL
        - name: demo-node-a
          url: ${E2E_AGENT_URL}/
          cluster: demo-ha
    secureJsonData:
      readToken: $E2E_READ_TOKEN
      controlToken: $E2E_CONTROL_TOKEN
  - name: Vigil broken fleet
    type: vigil-cdp-datasource
    uid: vigil-broken
    jsonData:
      agents:
        - name: up
          url: $E2E_AGENT_URL
        - name: gone
          url: $E2E_DEAD_URL
  - name: Vigil misconfigured
    type: vigil-cdp-datasource
    uid: vigil-misconfigured
    jsonData:
      pollInterval: 10ms
      agents:
        - name: a
          url: http://127.0.0.1:7071
`

// TestRealPlugin builds gpx_vigil, starts it as Grafana does and talks to it
// through gRPC and through the host's HTTP routes.
func TestRealPlugin(t *testing.T) {
	bin := buildPlugin(t, t.TempDir())
	agent := newAgentStandIn(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	t.Setenv("E2E_AGENT_URL", agent.URL)
	t.Setenv("E2E_DEAD_URL", deadURL)
	t.Setenv("E2E_READ_TOKEN", "e2e-read-s3cret")
	t.Setenv("E2E_CONTROL_TOKEN", "e2e-control-s3cret")

	dss, err := LoadProvisioning(writeFile(t, t.TempDir(), "vigil.yaml", e2eProvisioning))
	if err != nil {
		t.Fatal(err)
	}
	var pluginLog syncBuffer
	plugin, err := StartPlugin(bin, &pluginLog)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		plugin.Close()
		if !plugin.Exited() {
			t.Error("plugin still running after Close")
		}
		if strings.Contains(pluginLog.String(), "s3cret") {
			t.Errorf("a secret reached the plugin log:\n%s", pluginLog.String())
		}
	}()
	host, err := New(Options{Backend: plugin, Datasources: dss})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(host.Handler())
	defer srv.Close()
	host.SetAppURL(srv.URL)
	user := &backend.User{Login: "admin", Role: "Admin"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("gRPC QueryData answers the status frame", func(t *testing.T) {
		resp, err := plugin.QueryData(ctx, &backend.QueryDataRequest{
			PluginContext: host.pluginContext(dss[0], user),
			Queries:       []backend.DataQuery{{RefID: "A", QueryType: "status", JSON: json.RawMessage(`{}`)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		dr := resp.Responses["A"]
		if dr.Error != nil || len(dr.Frames) != 1 {
			t.Fatalf("response = %+v", dr)
		}
		f := dr.Frames[0]
		if f.Name != "status" || f.Rows() != 2 || len(f.Fields) != 6 {
			t.Fatalf("frame %q with %d rows and %d fields", f.Name, f.Rows(), len(f.Fields))
		}
		if got := f.Fields[0].At(1); got != "demo-node-a" {
			t.Errorf("agent[1] = %v", got)
		}
		if got := f.Fields[3].At(0); got != "UNKNOWN" {
			t.Errorf("state[0] = %v", got)
		}
		if got := f.Fields[4].At(0); got != int64(6) {
			t.Errorf("stateCode[0] = %v", got)
		}
	})

	t.Run("gRPC CheckHealth polls every agent with the read token", func(t *testing.T) {
		res, err := plugin.CheckHealth(ctx, &backend.CheckHealthRequest{PluginContext: host.pluginContext(dss[0], user)})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != backend.HealthStatusOk || res.Message != "2 of 2 agents answered" {
			t.Errorf("health = %v %q %s", res.Status, res.Message, res.JSONDetails)
		}
		for _, h := range agent.authHeaders() {
			if h != "Bearer e2e-read-s3cret" {
				t.Errorf("agent saw Authorization %q", h)
			}
		}
		if len(agent.authHeaders()) < 2 {
			t.Errorf("agent was called %d times, want 2", len(agent.authHeaders()))
		}
	})

	httpTests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		check      func(t *testing.T, body string)
	}{
		{
			name: "query", method: "POST", path: "/api/ds/query", wantStatus: 200,
			body: `{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp","type":"vigil-cdp-datasource"},"queryType":"status"}],"from":"now-1h","to":"now"}`,
			check: func(t *testing.T, body string) {
				var parsed struct {
					Results map[string]struct {
						Status int `json:"status"`
						Frames []struct {
							Schema struct {
								Name   string `json:"name"`
								RefID  string `json:"refId"`
								Fields []struct {
									Name string `json:"name"`
								} `json:"fields"`
							} `json:"schema"`
							Data struct {
								Values [][]any `json:"values"`
							} `json:"data"`
						} `json:"frames"`
					} `json:"results"`
				}
				if err := json.Unmarshal([]byte(body), &parsed); err != nil {
					t.Fatal(err)
				}
				a := parsed.Results["A"]
				if a.Status != 200 || len(a.Frames) != 1 || a.Frames[0].Schema.Name != "status" || a.Frames[0].Schema.RefID != "A" {
					t.Fatalf("results = %s", body)
				}
				var names []string
				for _, f := range a.Frames[0].Schema.Fields {
					names = append(names, f.Name)
				}
				if strings.Join(names, ",") != "agent,cluster,process,state,stateCode,reason" {
					t.Errorf("fields = %v", names)
				}
				if v := a.Frames[0].Data.Values; len(v) != 6 || v[4][0] != float64(6) || v[5][0] != "not polled yet: the monitor engine arrives in a later release" {
					t.Errorf("values = %v", v)
				}
			},
		},
		{
			name: "query of an unknown type", method: "POST", path: "/api/ds/query", wantStatus: 400,
			body:  `{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp"},"queryType":"nope"}]}`,
			check: equals(`{"results":{"A":{"error":"unknown query type \"nope\": known query types are status","errorSource":"downstream","status":400,"frames":[]}}}`),
		},
		{
			name: "resources agents", method: "GET", path: "/api/datasources/uid/vigil-cdp/resources/agents", wantStatus: 200,
			check: func(t *testing.T, body string) {
				want := `{"agents":[{"name":"demo-standalone","url":"` + agent.URL + `","cluster":""},{"name":"demo-node-a","url":"` + agent.URL + `/","cluster":"demo-ha"}]}`
				equals(want)(t, body)
			},
		},
		{
			name: "resources unknown path", method: "GET", path: "/api/datasources/uid/vigil-cdp/resources/nope", wantStatus: 404,
			check: equals(`{"error":{"code":"not_found","message":"no resource \"nope\": known resources are GET agents"}}`),
		},
		{
			name: "resources wrong method", method: "POST", path: "/api/datasources/uid/vigil-cdp/resources/agents", wantStatus: 405,
			check: equals(`{"error":{"code":"method_not_allowed","message":"POST agents is not allowed: use GET"}}`),
		},
		{
			name: "health ok", method: "GET", path: "/api/datasources/uid/vigil-cdp/health", wantStatus: 200,
			check: func(t *testing.T, body string) {
				if !strings.HasPrefix(body, `{"status":"OK","message":"2 of 2 agents answered","details":{"verboseMessage":"demo-standalone: answered in `) {
					t.Errorf("body = %s", body)
				}
			},
		},
		{
			name: "health with a silent agent", method: "GET", path: "/api/datasources/uid/vigil-broken/health", wantStatus: 400,
			check: func(t *testing.T, body string) {
				var parsed struct {
					Status  string `json:"status"`
					Message string `json:"message"`
					Details struct {
						VerboseMessage string `json:"verboseMessage"`
					} `json:"details"`
				}
				if err := json.Unmarshal([]byte(body), &parsed); err != nil {
					t.Fatal(err)
				}
				if parsed.Status != "ERROR" || parsed.Message != "1 of 2 agents answered" ||
					!strings.Contains(parsed.Details.VerboseMessage, "gone: network: GET "+deadURL+"/healthz: no answer") {
					t.Errorf("body = %s", body)
				}
			},
		},
		{
			name: "health of misconfigured settings names the field", method: "GET", path: "/api/datasources/uid/vigil-misconfigured/health", wantStatus: 400,
			check: equals(`{"status":"ERROR","message":"invalid Vigil datasource settings: jsonData.pollInterval: 10ms is below the minimum of 1s"}`),
		},
		{
			name: "harness datasources hide secrets", method: "GET", path: "/api/harness/datasources", wantStatus: 200,
			check: func(t *testing.T, body string) {
				if strings.Contains(body, "s3cret") || strings.Contains(body, "secureJsonData") {
					t.Errorf("secret served: %s", body)
				}
				if !strings.Contains(body, `"secureJsonFields":{"controlToken":true,"readToken":true}`) {
					t.Errorf("secureJsonFields missing: %s", body)
				}
			},
		},
	}
	for _, tt := range httpTests {
		t.Run("HTTP "+tt.name, func(t *testing.T) {
			status, body := do(t, tt.method, srv.URL+tt.path, tt.body, map[string]string{HeaderRole: "Editor"})
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d: %s", status, tt.wantStatus, body)
			}
			if strings.Contains(body, "s3cret") {
				t.Errorf("a secret was served: %s", body)
			}
			tt.check(t, body)
		})
	}
}

func equals(want string) func(t *testing.T, body string) {
	return func(t *testing.T, body string) {
		t.Helper()
		if body != want {
			t.Errorf("body\n got: %s\nwant: %s", body, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the plugin's log writer goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
