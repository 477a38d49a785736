package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/models"
)

// validStatus is an answer to GET /v1/status as the agent's OpenAPI document
// describes it.
const validStatus = `{"apiVersion":"v1","time":"2026-11-26T04:23:58.477Z",
	"agent":{"id":"a","version":"0.1.0","hostname":"db-host","startedAt":"2026-11-26T04:00:00Z","pid":1},
	"cluster":{"name":"ha","node":"n1","role":"active","roleReadAt":null,"roleError":null},
	"processes":[{"name":"cdp","kind":"command","state":"running","expected":true,"pid":5,"generation":2,
		"startedAt":"2026-11-26T04:20:00Z","restarts":0,"lastExit":null,"protection":null}]}`

// fakeAgent is an HTTP agent on loopback. /healthz needs no token, as on a
// real agent; every other path answers only when the bearer token is token
// (an empty token: no Authorization needed), with the real agent's 401.
type fakeAgent struct {
	token  string
	status int
	body   string
	// hang makes /v1/status answer only when the request ends.
	hang bool
}

func (f fakeAgent) start(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte(`{"status":"ok"}`))
			return
		}
		if f.token != "" {
			switch auth := r.Header.Get("Authorization"); {
			case auth == "":
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"an Authorization: Bearer token is required"}}`))
				return
			case auth != "Bearer "+f.token:
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"the token is not valid"}}`))
				return
			}
		}
		if f.hang {
			<-r.Context().Done()
			return
		}
		if r.URL.Path != "/v1/status" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if f.status != 0 {
			w.WriteHeader(f.status)
		}
		body := f.body
		if body == "" {
			body = validStatus
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// deadURL is a loopback URL nobody listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

type healthAnswer struct {
	status  backend.HealthStatus
	message string
	title   string
	// lines are the agents' lines, with each agent's base URL written
	// http://<name>, its host:port <name>:port and durations RTT.
	lines []string
	raw   string
	// warning is what the message says after "; warning: "; monitor the
	// details' monitor section.
	warning string
	monitor []string
}

var durationPattern = regexp.MustCompile(`in [0-9.]+(ns|µs|ms|s)\b`)

// runHealth runs CheckHealth for agents (name -> base URL) with secrets, and
// splits the answer.
func runHealth(t *testing.T, agents [][2]string, secrets map[string]string, timeout time.Duration) healthAnswer {
	t.Helper()
	list := make([]map[string]string, 0, len(agents))
	for _, a := range agents {
		list = append(list, map[string]string{"name": a[0], "url": a[1]})
	}
	jsonData, _ := json.Marshal(map[string]any{"agents": list})
	ds := newDatasource(backend.DataSourceInstanceSettings{UID: "vigil-cdp", JSONData: jsonData, DecryptedSecureJSONData: secrets},
		agentclient.New(nil), testMonitors(t, agentclienttest.New(nil)))
	if timeout > 0 {
		ds.healthTimeout = timeout
	}
	return checkHealth(t, ds, agents)
}

func checkHealth(t *testing.T, ds *Datasource, agents [][2]string) healthAnswer {
	t.Helper()
	res, err := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if err != nil {
		t.Fatalf("CheckHealth: %v", err)
	}
	var details struct {
		VerboseMessage string `json:"verboseMessage"`
	}
	if len(res.JSONDetails) > 0 {
		if err := json.Unmarshal(res.JSONDetails, &details); err != nil {
			t.Fatalf("JSONDetails %s: %v", res.JSONDetails, err)
		}
	}
	verbose := details.VerboseMessage
	for _, a := range agents {
		if u, err := url.Parse(a[1]); err == nil && u.Host != "" {
			verbose = strings.ReplaceAll(verbose, a[1], "http://"+a[0])
			verbose = strings.ReplaceAll(verbose, u.Host, a[0]+":port")
		}
	}
	verbose = durationPattern.ReplaceAllString(verbose, "in RTT")
	message, warning, _ := strings.Cut(res.Message, "; warning: ")
	ans := healthAnswer{status: res.Status, message: message, warning: warning, raw: res.Message + "\n" + string(res.JSONDetails)}
	if verbose != "" {
		agentsPart, monitorPart, _ := strings.Cut(verbose, "\n\n")
		lines := strings.Split(agentsPart, "\n")
		ans.title, ans.lines = lines[0], lines[1:]
		if monitorPart != "" {
			ans.monitor = strings.Split(monitorPart, "\n")
		}
	}
	return ans
}

const emptyTokenHelp = `if the provisioning file says $VIGIL_READ_TOKEN, grafana-server did not have it in its environment; ` +
	"for a systemd service add it with `systemctl edit grafana-server` ([Service] Environment=VIGIL_READ_TOKEN=... or EnvironmentFile=...), then restart Grafana; " +
	"a datasource configured by hand needs the token entered in its settings"

// Save & test does what a poll does, and each failure says what it is.
func TestCheckHealthPerAgent(t *testing.T) {
	const token = "read-token-0123456789abcdef"
	good := fakeAgent{token: token}.start(t).URL
	otherToken := fakeAgent{token: "another-token-0123456789"}.start(t).URL
	open := fakeAgent{}.start(t).URL
	healthzOnly := fakeAgent{token: token, body: `{"status":"ok"}`}.start(t).URL
	html := fakeAgent{token: token, body: "<html>login</html>"}.start(t).URL
	broken := fakeAgent{token: token, status: http.StatusInternalServerError, body: `{"error":{"code":"internal","message":"internal error; see the agent log"}}`}.start(t).URL
	dead := deadURL(t)

	tests := []struct {
		name        string
		agents      [][2]string
		secrets     map[string]string
		wantStatus  backend.HealthStatus
		wantMessage string
		want        []string
	}{
		{
			name:       "every agent polled",
			agents:     [][2]string{{"a", good}, {"b", good}},
			secrets:    map[string]string{"readToken": token},
			wantStatus: backend.HealthStatusOk, wantMessage: "2 of 2 agents answered",
			want: []string{
				"a: answered in RTT (vigil-agent 0.1.0 on db-host, 1 process, active node of cluster ha)",
				"b: answered in RTT (vigil-agent 0.1.0 on db-host, 1 process, active node of cluster ha)",
			},
		},
		{
			// /healthz needs no token: before, this was green.
			name:       "wrong read token",
			agents:     [][2]string{{"a", good}, {"b", otherToken}},
			secrets:    map[string]string{"readToken": token},
			wantStatus: backend.HealthStatusError, wantMessage: "1 of 2 agents answered",
			want: []string{
				"a: answered in RTT (vigil-agent 0.1.0 on db-host, 1 process, active node of cluster ha)",
				"b: token refused: the agent refused the read token: check secureJsonData.readToken (or agent.b.readToken, which overrides it for this agent): " +
					"it must be one of the agent's read tokens (auth.readToken in its configuration); GET http://b/v1/status answered HTTP 401",
			},
		},
		{
			name:       "wrong per-agent read token",
			agents:     [][2]string{{"a", good}},
			secrets:    map[string]string{"readToken": token, "agent.a.readToken": "not-" + token},
			wantStatus: backend.HealthStatusError, wantMessage: "0 of 1 agents answered",
			want: []string{
				"a: token refused: the agent refused the read token: check secureJsonData.agent.a.readToken: " +
					"it must be one of the agent's read tokens (auth.readToken in its configuration); GET http://a/v1/status answered HTTP 401",
			},
		},
		{
			// A provisioning file's unset $VIGIL_READ_TOKEN.
			name:       "read token empty",
			agents:     [][2]string{{"a", good}},
			secrets:    map[string]string{"readToken": ""},
			wantStatus: backend.HealthStatusError, wantMessage: "0 of 1 agents answered",
			want: []string{
				"a: token empty: the read token is empty (secureJsonData.readToken is an empty string): " + emptyTokenHelp + "; GET http://a/v1/status answered HTTP 401",
			},
		},
		{
			name:       "no read token configured",
			agents:     [][2]string{{"a", good}},
			wantStatus: backend.HealthStatusError, wantMessage: "0 of 1 agents answered",
			want: []string{
				"a: token empty: the read token is empty (there is no secureJsonData.readToken): " + emptyTokenHelp + "; GET http://a/v1/status answered HTTP 401",
			},
		},
		{
			// A vigil-agent always wants a token; whatever answers without
			// one is taken at its word, and the line says so.
			name:       "no read token, and the agent answers without one",
			agents:     [][2]string{{"a", open}},
			wantStatus: backend.HealthStatusOk, wantMessage: "1 of 1 agents answered",
			want: []string{
				"a: answered in RTT (vigil-agent 0.1.0 on db-host, 1 process, active node of cluster ha); " +
					"no read token is configured (there is no secureJsonData.readToken) and this agent answered without one",
			},
		},
		{
			name:       "unreachable, and the token empty too",
			agents:     [][2]string{{"gone", dead}},
			secrets:    map[string]string{"readToken": ""},
			wantStatus: backend.HealthStatusError, wantMessage: "0 of 1 agents answered",
			want: []string{
				"gone: unreachable: network: GET http://gone/v1/status: no answer (dial tcp gone:port: connect: connection refused): is the agent running and the host and port reachable?; " +
					"besides, the read token is empty (secureJsonData.readToken is an empty string): " + emptyTokenHelp,
			},
		},
		{
			name:       "the answer of /healthz is not a status",
			agents:     [][2]string{{"a", healthzOnly}},
			secrets:    map[string]string{"readToken": token},
			wantStatus: backend.HealthStatusError, wantMessage: "0 of 1 agents answered",
			want: []string{
				"a: answer not understood: the agent answered in RTT, but the answer could not be understood: apiVersion: missing: is this URL a vigil-agent, of a version this plugin supports?",
			},
		},
		{
			name:       "not JSON",
			agents:     [][2]string{{"a", html}},
			secrets:    map[string]string{"readToken": token},
			wantStatus: backend.HealthStatusError, wantMessage: "0 of 1 agents answered",
			want: []string{
				"a: answer not understood: the agent answered in RTT, but the answer could not be understood: the answer is not JSON: invalid character '<' looking for beginning of value: is this URL a vigil-agent, of a version this plugin supports?",
			},
		},
		{
			name:       "an error answer",
			agents:     [][2]string{{"a", broken}, {"b", good + "/prefix"}},
			secrets:    map[string]string{"readToken": token},
			wantStatus: backend.HealthStatusError, wantMessage: "0 of 2 agents answered",
			want: []string{
				"a: error answer: the agent answered with an error: agent answer: GET http://a/v1/status: HTTP 500 Internal Server Error: internal error; see the agent log",
				"b: error answer: the agent answered with an error: agent answer: GET http://b/v1/status: HTTP 404 Not Found: is this URL a vigil-agent?",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runHealth(t, tt.agents, tt.secrets, 0)
			if got.status != tt.wantStatus || got.message != tt.wantMessage {
				t.Errorf("got %v %q, want %v %q", got.status, got.message, tt.wantStatus, tt.wantMessage)
			}
			if want := "Agents (GET /v1/status with the read token, as every poll does; 5s each):"; got.title != want {
				t.Errorf("title %q, want %q", got.title, want)
			}
			if strings.Join(got.lines, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("agents\n got: %q\nwant: %q", got.lines, tt.want)
			}
			if strings.Contains(got.raw, token) || strings.Contains(got.raw, "another-token") {
				t.Errorf("a token is in the health answer: %s", got.raw)
			}
		})
	}
}

// b's per-agent token (agent.b.readToken wins over readToken) is sent, as a
// poll sends it; a silent agent takes no longer than the health timeout.
func TestCheckHealthTokensAndTimeout(t *testing.T) {
	a := fakeAgent{token: "fleet-token-0123456789"}.start(t).URL
	b := fakeAgent{token: "b-token-0123456789"}.start(t).URL
	slow := fakeAgent{hang: true}.start(t).URL
	agents := [][2]string{{"a", a}, {"b", b}, {"slow", slow}}
	start := time.Now()
	got := runHealth(t, agents, map[string]string{"readToken": "fleet-token-0123456789", "agent.b.readToken": "b-token-0123456789"}, 200*time.Millisecond)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("health took %s with a 200ms timeout", took)
	}
	want := []string{
		"a: answered in RTT (vigil-agent 0.1.0 on db-host, 1 process, active node of cluster ha)",
		"b: answered in RTT (vigil-agent 0.1.0 on db-host, 1 process, active node of cluster ha)",
		"slow: unreachable: network: GET http://slow/v1/status: no answer before the timeout (context deadline exceeded): is the agent running and the host and port reachable? (health check timeout 200ms)",
	}
	if got.status != backend.HealthStatusError || got.message != "2 of 3 agents answered" || strings.Join(got.lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %v %q\n%q\nwant\n%q", got.status, got.message, got.lines, want)
	}
}

func TestCheckHealthSettings(t *testing.T) {
	t.Run("invalid settings name the field", func(t *testing.T) {
		got := runHealth(t, [][2]string{{"a", "a:7070"}}, map[string]string{"readToken": "r"}, 0)
		want := "invalid Vigil datasource settings: jsonData.agents[0].url: must be an absolute http or https URL"
		if got.status != backend.HealthStatusError || got.message != want {
			t.Errorf("got %v %q, want %q", got.status, got.message, want)
		}
	})
	t.Run("no agents is never OK", func(t *testing.T) {
		// The settings loader refuses an empty fleet; CheckHealth does not
		// rely on it.
		ds := &Datasource{settings: &models.Settings{}, agents: agentclient.New(nil), healthTimeout: time.Second, monitors: testMonitors(t, agentclienttest.New(nil))}
		got := checkHealth(t, ds, nil)
		if got.status != backend.HealthStatusError || got.message != "0 of 0 agents answered" ||
			strings.Join(got.lines, "\n") != "no agents are configured: add at least one under jsonData.agents" {
			t.Errorf("got %v %q %q", got.status, got.message, got.lines)
		}
	})
}

// The monitor section says whether it runs, what keeps it running and where
// the history is; its warning reaches the one-line message.
func TestCheckHealthMonitorSection(t *testing.T) {
	ms, fake := fakeMonitors(t, "/srv/grafana-data")
	id, s := inOrg(1, 4, "vigil-cdp", `{"agents":[{"name":"a","url":"http://127.0.0.1:1"}]}`)
	ds := newDatasourceIn(id, s, agentclienttest.New(nil), ms)
	got := checkHealth(t, ds, nil)
	want := []string{
		"Monitor:",
		"the monitor is not running: no query has used this datasource since the plugin started",
		"history: /srv/grafana-data/vigil-cdp/org1-id4-vigil-cdp (from GF_PATHS_DATA); durable",
		"warning: nothing keeps the monitor running: no alert rule has queried this datasource since the plugin started; without alert rules nothing polls the agents or restarts CDP after Grafana restarts until someone opens a dashboard: provision the Vigil alert rules (docs/install.md, step 4)",
	}
	if strings.Join(got.monitor, "\n") != strings.Join(want, "\n") {
		t.Errorf("monitor section\n got: %q\nwant: %q", got.monitor, want)
	}
	if !strings.HasPrefix(got.warning, "nothing keeps the monitor running") {
		t.Errorf("message warning = %q", got.warning)
	}
	// An alert evaluation later, the warning is gone.
	if dr := alertEvaluation(t, ds); dr.Error != nil {
		t.Fatal(dr.Error)
	}
	fake.Advance(40 * time.Second)
	got = checkHealth(t, ds, nil)
	if got.warning != "" || len(got.monitor) != 3 || got.monitor[1] != "the monitor is running (since 40s ago); kept alive by alert rules: last evaluation 40s ago" {
		t.Errorf("after an alert evaluation: %q %q", got.warning, got.monitor)
	}
	// A request from another org learns nothing.
	//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
	res, err := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{PluginContext: backend.PluginContext{OrgID: 2}})
	if err != nil || res.Status != backend.HealthStatusError || strings.Contains(string(res.JSONDetails), "127.0.0.1") {
		t.Errorf("cross-org health: %v %+v", err, res)
	}
}

// Sections are what later parts of the health answer are added to.
func TestHealthResultSections(t *testing.T) {
	res, err := healthResult("1 of 1 agents answered", []healthSection{
		{title: "Agents:", lines: []string{"a: answered in 1ms"}},
		{title: "Monitor:", lines: []string{"not running"}, failed: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != backend.HealthStatusError || res.Message != "1 of 1 agents answered" ||
		string(res.JSONDetails) != `{"verboseMessage":"Agents:\na: answered in 1ms\n\nMonitor:\nnot running"}` {
		t.Errorf("got %v %q %s", res.Status, res.Message, res.JSONDetails)
	}
}
