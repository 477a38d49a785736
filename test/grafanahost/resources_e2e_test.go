package grafanahost

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vigil-cdp/vigil/internal/agentproc"
)

// The resources' rules about who may do what, through the real plugin: a
// Viewer's poll, restarts of processes that do not exist, a person whose
// login is "auto", and agent URLs carrying credentials.

const resourcesProvisioning = `apiVersion: 1
datasources:
  - name: Vigil resources
    type: vigil-cdp-datasource
    uid: vigil-res
    jsonData:
      pollInterval: 1h
      agents:
        - name: counted
          url: $RES_AGENT
    secureJsonData:
      readToken: $RES_READ_TOKEN
      controlToken: $RES_CONTROL_TOKEN
  - name: Vigil credentials in a URL
    type: vigil-cdp-datasource
    uid: vigil-userinfo
    jsonData:
      agents:
        - name: fine
          url: $RES_AGENT
        - name: userinfo
          url: http://vigil:s3cret-in-url@127.0.0.1:7071
    secureJsonData:
      readToken: $RES_READ_TOKEN
  - name: Vigil token in a query string
    type: vigil-cdp-datasource
    uid: vigil-query
    jsonData:
      agents:
        - name: query
          url: http://127.0.0.1:7071/?token=s3cret-in-url
    secureJsonData:
      readToken: $RES_READ_TOKEN
`

// statusCounter is a loopback proxy in front of a real agent that counts the
// polls (GET /v1/status) reaching it.
type statusCounter struct {
	polls atomic.Int64
	srv   *httptest.Server
}

func newStatusCounter(t *testing.T, agentURL string) *statusCounter {
	t.Helper()
	target, err := url.Parse(agentURL)
	if err != nil {
		t.Fatal(err)
	}
	c := &statusCounter{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/v1/status" {
			c.polls.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func TestRealPluginResources(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	bin := buildPlugin(t, t.TempDir())
	agent := agentproc.Start(t, agentproc.Options{})
	counter := newStatusCounter(t, agent.URL())
	t.Setenv("RES_AGENT", counter.srv.URL)
	t.Setenv("RES_READ_TOKEN", agentproc.ReadToken)
	t.Setenv("RES_CONTROL_TOKEN", agentproc.ControlToken)
	t.Setenv("GF_PATHS_DATA", t.TempDir())

	dss, err := LoadProvisioning(writeFile(t, t.TempDir(), "vigil.yaml", resourcesProvisioning))
	if err != nil {
		t.Fatal(err)
	}
	real := startRealPlugin(t, PluginOptions{Path: bin, ForwardHostEnv: true}, dss, agentproc.ReadToken, agentproc.ControlToken, "s3cret-in-url")
	srv, pluginLog := real.srv, real.log

	resources := srv.URL + "/api/datasources/uid/vigil-res/resources/"
	viewer := map[string]string{HeaderRole: "Viewer", HeaderLogin: "victor"}
	noUser := map[string]string{HeaderAlerting: "1"}
	editor := map[string]string{HeaderRole: "Editor", HeaderLogin: "alice"}
	poll := func(t *testing.T, who map[string]string) string {
		t.Helper()
		status, body := do(t, "POST", resources+"poll", `{}`, who)
		if status != 200 || !strings.Contains(body, `{"name":"counted","state":"OK","stateCode":0`) {
			t.Fatalf("poll = %d %s", status, body)
		}
		return body
	}

	t.Run("a Viewer's poll polls an agent at most once per poll interval", func(t *testing.T) {
		// The first poll of the datasource finds the agent never polled.
		poll(t, viewer)
		first := counter.polls.Load()
		if first < 1 {
			t.Fatalf("the agent was not polled: %d polls", first)
		}
		for range 10 {
			poll(t, viewer)
			poll(t, noUser)
		}
		// The engine's own loop may poll once meanwhile (its first poll falls
		// anywhere within a tenth of the hour); 20 forced polls would show.
		if got := counter.polls.Load(); got > first+1 {
			t.Errorf("20 polls by a Viewer and by no user polled the agent %d more times; want at most one poll per interval", got-first)
		}
	})

	t.Run("an Editor's poll still polls now", func(t *testing.T) {
		before := counter.polls.Load()
		for range 3 {
			poll(t, editor)
		}
		if got := counter.polls.Load() - before; got < 3 {
			t.Errorf("3 polls by an Editor polled the agent %d times", got)
		}
	})

	detail := func(t *testing.T) (int, string) {
		t.Helper()
		status, body := do(t, "GET", resources+"agents/counted", "", editor)
		if status != 200 {
			t.Fatalf("GET agents/counted = %d %s", status, body)
		}
		return len(body), body
	}

	t.Run("restarts of processes that do not exist leave nothing behind", func(t *testing.T) {
		sizeBefore, _ := detail(t)
		const bogus = 500
		for i := range bogus {
			name := fmt.Sprintf("no-such-process-%04d", i)
			status, body := do(t, "POST", resources+"agents/counted/processes/"+name+"/restart", `{"reason":"typo","ifGeneration":-1}`, editor)
			if status != 404 || !strings.HasPrefix(body, `{"error":{"code":"unknown_process","message":"agent \"counted\" has no process \"`+name+`\"`) {
				t.Fatalf("restart of %s = %d %s", name, status, body)
			}
		}
		sizeAfter, body := detail(t)
		t.Logf("GET agents/counted: %d bytes before, %d bytes after %d restarts of unknown processes", sizeBefore, sizeAfter, bogus)
		if strings.Contains(body, "no-such-process") {
			t.Errorf("GET agents/counted remembers the unknown processes (%d bytes, was %d): %.400s", sizeAfter, sizeBefore, body)
		}
		status, events := do(t, "POST", srv.URL+"/api/ds/query",
			`{"queries":[{"refId":"A","datasource":{"uid":"vigil-res"},"queryType":"events"}],"from":"now-1h","to":"now"}`, editor)
		if status != 200 || strings.Contains(events, "no-such-process") {
			t.Errorf("the events hold the unknown processes: %d %.400s", status, events)
		}
		if !strings.Contains(pluginLog.String(), "no-such-process-0499") {
			t.Error("the refused restart is not in the plugin's log (who tried, what)")
		}
	})

	t.Run("a person whose login is auto restarts, and is told apart from the auto-restart", func(t *testing.T) {
		person := map[string]string{HeaderRole: "Editor", HeaderLogin: "auto"}
		status, body := do(t, "POST", resources+"agents/counted/processes/cdp/restart", `{"reason":"named auto","ifGeneration":-1}`, person)
		if status != 202 {
			t.Fatalf("restart by the user auto = %d %s", status, body)
		}
		_, body = detail(t)
		var d struct {
			Processes []struct {
				LastAction struct {
					By     string `json:"by"`
					Manual bool   `json:"manual"`
				} `json:"lastAction"`
			} `json:"processes"`
			Events []struct {
				Kind   string `json:"kind"`
				By     string `json:"by"`
				Manual bool   `json:"manual"`
				Text   string `json:"text"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatal(err)
		}
		if len(d.Processes) != 1 || d.Processes[0].LastAction.By != "auto" || !d.Processes[0].LastAction.Manual {
			t.Errorf("lastAction does not say a person named auto restarted: %s", body)
		}
		last := d.Events[len(d.Events)-1]
		for _, ev := range d.Events {
			if ev.Kind == "action" {
				last = ev
			}
		}
		if last.Kind != "action" || last.By != "auto" || !last.Manual || last.Text != "counted/cdp: restart ok (by the user auto)" {
			t.Errorf("the restart event does not say a person named auto acted: %+v", last)
		}
	})

	t.Run("agent URLs with credentials are refused, naming the field", func(t *testing.T) {
		for _, tt := range []struct{ uid, want string }{
			{"vigil-userinfo", `{"status":"ERROR","message":"invalid Vigil datasource settings: jsonData.agents[1].url: must not carry a user name or password (user:password@); tokens belong in secureJsonData (readToken, controlToken)"}`},
			{"vigil-query", `{"status":"ERROR","message":"invalid Vigil datasource settings: jsonData.agents[0].url: must not carry a query string (?...): agents take no URL parameters; tokens belong in secureJsonData (readToken, controlToken)"}`},
		} {
			status, body := do(t, "GET", srv.URL+"/api/datasources/uid/"+tt.uid+"/health", "", editor)
			if status != 400 || body != tt.want {
				t.Errorf("health of %s = %d %s\nwant 400 %s", tt.uid, status, body, tt.want)
			}
			status, body = do(t, "GET", srv.URL+"/api/datasources/uid/"+tt.uid+"/resources/agents", "", viewer)
			if strings.Contains(body, "s3cret-in-url") {
				t.Errorf("a Viewer was served the URL's secret: %d %s", status, body)
			}
		}
	})
}
