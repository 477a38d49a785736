package grafanahost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/internal/agentproc"
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

const e2eProvisioning = `apiVersion: 1
datasources:
  - name: Vigil CDP
    type: vigil-cdp-datasource
    uid: vigil-cdp
    jsonData:
      pollInterval: 1s
      agents:
        - name: demo-standalone
          url: $E2E_AGENT_A
        - name: demo-node-a
          url: ${E2E_AGENT_B}/
          cluster: demo-ha
    secureJsonData:
      readToken: $E2E_READ_TOKEN
      controlToken: $E2E_CONTROL_TOKEN
  - name: Vigil without control token
    type: vigil-cdp-datasource
    uid: vigil-read-only
    jsonData:
      agents:
        - name: demo-standalone
          url: $E2E_AGENT_A
    secureJsonData:
      readToken: $E2E_READ_TOKEN
  - name: Vigil broken fleet
    type: vigil-cdp-datasource
    uid: vigil-broken
    jsonData:
      agents:
        - name: up
          url: $E2E_AGENT_A
        - name: gone
          url: $E2E_DEAD_URL
    secureJsonData:
      readToken: $E2E_READ_TOKEN
      controlToken: $E2E_CONTROL_TOKEN
  - name: Vigil misconfigured
    type: vigil-cdp-datasource
    uid: vigil-misconfigured
    jsonData:
      pollInterval: 10ms
      agents:
        - name: a
          url: http://127.0.0.1:7071
`

// queryAnswer is the body of POST /api/ds/query.
type queryAnswer struct {
	Results map[string]struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
		Frames []struct {
			Schema struct {
				Name string `json:"name"`
				Meta struct {
					Type        string `json:"type"`
					TypeVersion []int  `json:"typeVersion"`
				} `json:"meta"`
				Fields []struct {
					Name   string            `json:"name"`
					Labels map[string]string `json:"labels"`
				} `json:"fields"`
			} `json:"schema"`
			Data struct {
				Values [][]any `json:"values"`
			} `json:"data"`
		} `json:"frames"`
	} `json:"results"`
}

// column returns the values of one field of a table frame.
func column(t *testing.T, a queryAnswer, name string) []any {
	t.Helper()
	f := a.Results["A"].Frames[0]
	for i, field := range f.Schema.Fields {
		if field.Name == name {
			return f.Data.Values[i]
		}
	}
	t.Fatalf("no field %q in %+v", name, f.Schema.Fields)
	return nil
}

// TestRealPlugin builds gpx_vigil, starts it as Grafana does with real
// agents behind it, and talks to it through gRPC and the host's HTTP routes.
func TestRealPlugin(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	bin := buildPlugin(t, t.TempDir())
	agentA := agentproc.Start(t, agentproc.Options{})
	roleFile := filepath.Join(t.TempDir(), "role")
	if err := os.WriteFile(roleFile, []byte("active\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agentB := agentproc.Start(t, agentproc.Options{Cluster: "demo-ha", Node: "node-a", RoleFile: roleFile})
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	t.Setenv("E2E_AGENT_A", agentA.URL())
	t.Setenv("E2E_AGENT_B", agentB.URL())
	t.Setenv("E2E_DEAD_URL", deadURL)
	t.Setenv("E2E_READ_TOKEN", agentproc.ReadToken)
	t.Setenv("E2E_CONTROL_TOKEN", agentproc.ControlToken)
	// Grafana's data folder, which the plugin inherits from Grafana's environment.
	dataDir := t.TempDir()
	t.Setenv("GF_PATHS_DATA", dataDir)

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
		for _, secret := range []string{agentproc.ReadToken, agentproc.ControlToken} {
			if strings.Contains(pluginLog.String(), secret) {
				t.Errorf("a token reached the plugin log:\n%s", pluginLog.String())
			}
		}
		if t.Failed() {
			t.Logf("plugin log:\n%s", pluginLog.String())
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	editor := map[string]string{HeaderRole: "Editor", HeaderLogin: "alice"}
	noTokenServed := func(t *testing.T, body string) {
		t.Helper()
		if strings.Contains(body, agentproc.ReadToken) || strings.Contains(body, agentproc.ControlToken) {
			t.Errorf("a token was served: %s", body)
		}
	}
	httpQuery := func(t *testing.T, headers map[string]string, body string) (int, queryAnswer, string) {
		t.Helper()
		status, raw := do(t, "POST", srv.URL+"/api/ds/query", body, headers)
		noTokenServed(t, raw)
		var a queryAnswer
		if err := json.Unmarshal([]byte(raw), &a); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return status, a, raw
	}

	t.Run("gRPC QueryData starts the monitor and answers the status frame", func(t *testing.T) {
		resp, err := plugin.QueryData(ctx, &backend.QueryDataRequest{
			PluginContext: host.pluginContext(dss[0], user),
			Queries:       []backend.DataQuery{{RefID: "A", QueryType: "status", JSON: json.RawMessage(`{}`)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		dr := resp.Responses["A"]
		if dr.Error != nil || len(dr.Frames) != 1 || dr.Frames[0].Name != "status" {
			t.Fatalf("response = %+v", dr)
		}
		if _, err := os.Stat(filepath.Join(dataDir, "vigil-cdp", "org1-id1-vigil-cdp", "history.db")); err != nil {
			t.Errorf("history not under Grafana's data folder: %v", err)
		}
	})

	t.Run("POST poll polls every agent now", func(t *testing.T) {
		status, body := do(t, "POST", srv.URL+"/api/datasources/uid/vigil-cdp/resources/poll", `{}`, editor)
		if status != 200 || !strings.Contains(body, `{"name":"demo-standalone","state":"OK","stateCode":0`) ||
			!strings.Contains(body, `{"name":"demo-node-a","state":"OK","stateCode":0`) {
			t.Fatalf("poll = %d %s", status, body)
		}
	})

	t.Run("HTTP status query with real agents", func(t *testing.T) {
		status, a, raw := httpQuery(t, editor, `{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp"},"queryType":"status"}],"from":"now-1h","to":"now"}`)
		if status != 200 {
			t.Fatalf("status %d: %s", status, raw)
		}
		var names []string
		for _, f := range a.Results["A"].Frames[0].Schema.Fields {
			names = append(names, f.Name)
		}
		if got := strings.Join(names, ","); got != "agent,cluster,role,process,state,stateCode,reason,rtt,budget,protectionLag,lastRestart,generation" {
			t.Errorf("fields = %s", got)
		}
		agents, procs, states, roles := column(t, a, "agent"), column(t, a, "process"), column(t, a, "state"), column(t, a, "role")
		if len(agents) != 2 || agents[0] != "demo-standalone" || agents[1] != "demo-node-a" || procs[0] != "cdp" ||
			states[0] != "OK" || states[1] != "OK" || roles[0] != "standalone" || roles[1] != "active" {
			t.Errorf("rows: %v %v %v %v", agents, procs, states, roles)
		}
		if c := column(t, a, "cluster"); c[1] != "demo-ha" {
			t.Errorf("cluster = %v", c)
		}
	})

	t.Run("an alert-shaped query gives one labelled series per agent", func(t *testing.T) {
		status, a, raw := httpQuery(t, map[string]string{HeaderAlerting: "1"},
			`{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp"},"queryType":"metrics","metrics":["stateCode"],"intervalMs":1000,"maxDataPoints":43200}],"from":"now-10m","to":"now"}`)
		if status != 200 {
			t.Fatalf("status %d: %s", status, raw)
		}
		frames := a.Results["A"].Frames
		if len(frames) != 2 {
			t.Fatalf("%d frames, want one per agent: %s", len(frames), raw)
		}
		want := []map[string]string{{"agent": "demo-standalone"}, {"agent": "demo-node-a", "cluster": "demo-ha"}}
		for i, f := range frames {
			if f.Schema.Meta.Type != "timeseries-multi" || len(f.Schema.Meta.TypeVersion) != 2 || f.Schema.Fields[1].Name != "stateCode" {
				t.Errorf("frame %d: %+v", i, f.Schema)
			}
			if got := f.Schema.Fields[1].Labels; len(got) != len(want[i]) || got["agent"] != want[i]["agent"] || got["cluster"] != want[i]["cluster"] {
				t.Errorf("labels[%d] = %v, want %v", i, got, want[i])
			}
			values := f.Data.Values[1]
			if len(values) == 0 || values[len(values)-1] != float64(0) {
				t.Errorf("series %d ends with %v, want 0 (OK)", i, values)
			}
		}
	})

	t.Run("the engine series counts seconds since the last poll cycle", func(t *testing.T) {
		status, a, raw := httpQuery(t, map[string]string{HeaderAlerting: "1"},
			`{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp"},"queryType":"metrics","metrics":["engineStalenessSeconds"]}],"from":"now-5m","to":"now"}`)
		frames := a.Results["A"].Frames
		if status != 200 || len(frames) != 1 || len(frames[0].Schema.Fields[1].Labels) != 0 {
			t.Fatalf("status %d: %s", status, raw)
		}
		values := frames[0].Data.Values[1]
		if last, ok := values[len(values)-1].(float64); !ok || last > 5 {
			t.Errorf("staleness = %v, want a few seconds at most", values[len(values)-1])
		}
	})

	t.Run("restart as Viewer is refused", func(t *testing.T) {
		status, body := do(t, "POST", srv.URL+"/api/datasources/uid/vigil-cdp/resources/agents/demo-standalone/processes/cdp/restart",
			`{"reason":"test","ifGeneration":-1}`, map[string]string{HeaderRole: "Viewer", HeaderLogin: "victor"})
		if status != 403 || body != `{"error":{"code":"forbidden","message":"restarting CDP needs the Grafana role Editor or higher (jsonData.restartRole); victor has the role Viewer"}}` {
			t.Errorf("got %d %s", status, body)
		}
	})

	var before struct {
		Processes []struct {
			Name       string `json:"name"`
			Generation int64  `json:"generation"`
		} `json:"processes"`
		Budget struct {
			TotalSeconds float64 `json:"totalSeconds"`
		} `json:"budget"`
	}
	t.Run("GET agents/{name} answers the last status and budget", func(t *testing.T) {
		status, body := do(t, "GET", srv.URL+"/api/datasources/uid/vigil-cdp/resources/agents/demo-standalone", "", editor)
		noTokenServed(t, body)
		if status != 200 {
			t.Fatalf("got %d %s", status, body)
		}
		if err := json.Unmarshal([]byte(body), &before); err != nil {
			t.Fatal(err)
		}
		if len(before.Processes) != 1 || before.Processes[0].Name != "cdp" || before.Budget.TotalSeconds <= 0 {
			t.Errorf("detail = %s", body)
		}
	})

	t.Run("restart as Editor: 202, the login in the event, a stale generation refused", func(t *testing.T) {
		if len(before.Processes) != 1 {
			t.Fatal("GET agents/demo-standalone showed no cdp process, so there is nothing to restart")
		}
		path := srv.URL + "/api/datasources/uid/vigil-cdp/resources/agents/demo-standalone/processes/cdp/restart"
		body := fmt.Sprintf(`{"reason":"e2e restart","ifGeneration":%d}`, before.Processes[0].Generation)
		status, answer := do(t, "POST", path, body, editor)
		noTokenServed(t, answer)
		var started struct {
			Generation int64   `json:"generation"`
			PID        *int64  `json:"pid"`
			StartedAt  *string `json:"startedAt"`
		}
		if status != 202 || json.Unmarshal([]byte(answer), &started) != nil || started.Generation != before.Processes[0].Generation+1 || started.PID == nil || started.StartedAt == nil {
			t.Fatalf("restart = %d %s", status, answer)
		}

		// The same request again: someone already restarted that generation.
		status, answer = do(t, "POST", path, body, editor)
		want := fmt.Sprintf(`{"error":{"code":"stale_generation","message":"demo-standalone/cdp was already restarted by someone else: its generation is %d, you saw %d; look at its state before restarting again"},"generation":%d}`,
			started.Generation, before.Processes[0].Generation, started.Generation)
		if status != 409 || answer != want {
			t.Errorf("second restart = %d %s\nwant 409 %s", status, answer, want)
		}

		_, a, raw := httpQuery(t, editor, `{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp"},"queryType":"events","agents":["demo-standalone"]}],"from":"now-1h","to":"now"}`)
		kinds, actions, by, results := column(t, a, "kind"), column(t, a, "action"), column(t, a, "by"), column(t, a, "result")
		found := false
		for i := range kinds {
			if kinds[i] == "action" && actions[i] == "restart" && by[i] == "alice" && results[i] == "ok" {
				found = true
			}
		}
		if !found {
			t.Errorf("no restart by alice in the events: %s", raw)
		}
	})

	t.Run("restart without a control token says so", func(t *testing.T) {
		status, body := do(t, "POST", srv.URL+"/api/datasources/uid/vigil-read-only/resources/agents/demo-standalone/processes/cdp/restart",
			`{"reason":"test","ifGeneration":-1}`, editor)
		if status != 500 || body != `{"error":{"code":"no_control_token","message":"no control token is configured for agent \"demo-standalone\": set secureJsonData.controlToken (or agent.demo-standalone.controlToken) in the datasource settings"}}` {
			t.Errorf("got %d %s", status, body)
		}
	})

	t.Run("restart on an unreachable agent is a 502", func(t *testing.T) {
		status, body := do(t, "POST", srv.URL+"/api/datasources/uid/vigil-broken/resources/agents/gone/processes/cdp/restart",
			`{"reason":"test","ifGeneration":-1}`, editor)
		if status != 502 || !strings.HasPrefix(body, `{"error":{"code":"agent_unreachable","message":"agent \"gone\" did not answer the restart: `) {
			t.Errorf("got %d %s", status, body)
		}
	})

	t.Run("timeline query", func(t *testing.T) {
		status, a, raw := httpQuery(t, editor, `{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp"},"queryType":"timeline","maxDataPoints":50}],"from":"now-5m","to":"now"}`)
		if status != 200 {
			t.Fatalf("status %d: %s", status, raw)
		}
		var names []string
		for _, f := range a.Results["A"].Frames[0].Schema.Fields {
			names = append(names, f.Name)
		}
		if got := strings.Join(names, ","); got != "time,demo-standalone,demo-standalone/cdp,demo-node-a,demo-node-a/cdp" {
			t.Errorf("fields = %s", got)
		}
	})

	t.Run("gRPC CheckHealth polls every agent with the read token", func(t *testing.T) {
		res, err := plugin.CheckHealth(ctx, &backend.CheckHealthRequest{PluginContext: host.pluginContext(dss[0], user)})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != backend.HealthStatusOk || !strings.HasPrefix(res.Message, "2 of 2 agents answered") {
			t.Errorf("health = %v %q %s", res.Status, res.Message, res.JSONDetails)
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
			name: "query of an unknown type", method: "POST", path: "/api/ds/query", wantStatus: 400,
			body:  `{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp"},"queryType":"nope"}]}`,
			check: equals(`{"results":{"A":{"error":"unknown query type \"nope\": known query types are status, timeline, metrics, events","errorSource":"downstream","status":400,"frames":[]}}}`),
		},
		{
			name: "resources agents", method: "GET", path: "/api/datasources/uid/vigil-cdp/resources/agents", wantStatus: 200,
			check: func(t *testing.T, body string) {
				want := `{"agents":[{"name":"demo-standalone","url":"` + agentA.URL() + `","cluster":""},{"name":"demo-node-a","url":"` + agentB.URL() + `/","cluster":"demo-ha"}]}`
				equals(want)(t, body)
			},
		},
		{
			name: "resources unknown path", method: "GET", path: "/api/datasources/uid/vigil-cdp/resources/nope", wantStatus: 404,
			check: equals(`{"error":{"code":"not_found","message":"no resource \"nope\": known resources are GET agents, GET agents/{name}, POST agents/{name}/processes/{process}/restart, POST poll, POST reports, GET monitor"}}`),
		},
		{
			name: "resources wrong method", method: "POST", path: "/api/datasources/uid/vigil-cdp/resources/agents", wantStatus: 405,
			check: equals(`{"error":{"code":"method_not_allowed","message":"POST agents is not allowed: use GET"}}`),
		},
		{
			name: "health ok", method: "GET", path: "/api/datasources/uid/vigil-cdp/health", wantStatus: 200,
			check: func(t *testing.T, body string) {
				if !strings.HasPrefix(body, `{"status":"OK","message":"2 of 2 agents answered; warning: nothing keeps the monitor running, or its history may not survive a reboot (see details)","details":{"verboseMessage":"Agents (`) || !strings.Contains(body, `\ndemo-standalone: answered in `) {
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
				if parsed.Status != "ERROR" || !strings.HasPrefix(parsed.Message, "1 of 2 agents answered") ||
					!strings.Contains(parsed.Details.VerboseMessage, "gone: unreachable: network: GET "+deadURL+"/v1/status: no answer") {
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
				if strings.Contains(body, "secureJsonData") {
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
			noTokenServed(t, body)
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
