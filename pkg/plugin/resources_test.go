package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
)

// Who may make POST poll poll now; the others get the latest states unless
// an agent's last poll is a poll interval old (never, on the fake clock).
func TestPollByRole(t *testing.T) {
	viewersRestart := strings.Replace(threeAgents, `{"pollInterval":"10s",`, `{"pollInterval":"10s","restartRole":"Viewer",`, 1)
	tests := []struct {
		name      string
		settings  string
		user      *backend.User
		wantPolls int
	}{
		{"Viewer", threeAgents, &backend.User{Login: "vi", Role: "Viewer"}, 0},
		{"no user (a backup server)", threeAgents, nil, 0},
		{"no role", threeAgents, &backend.User{Login: "svc", Role: "None"}, 0},
		{"Editor", threeAgents, &backend.User{Login: "ed", Role: "Editor"}, 3},
		{"Admin", threeAgents, &backend.User{Login: "ad", Role: "Admin"}, 3},
		{"Viewer where Viewers may restart", viewersRestart, &backend.User{Login: "vi", Role: "Viewer"}, 3},
		{"no user where Viewers may restart", viewersRestart, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agents := agentclienttest.New(nil)
			ds := newDatasource(settingsFor(tt.settings), agents, testMonitors(t, agents))
			m, failed := ds.engine()
			if failed != nil {
				t.Fatalf("%+v", failed)
			}
			// The engine's loop polls every agent once at start, then waits
			// on the fake clock, which never moves here.
			allPolled := func() bool {
				for _, a := range m.eng.Snapshot().Agents {
					if a.LastPollAt.IsZero() {
						return false
					}
				}
				return true
			}
			for start := time.Now(); !allPolled(); time.Sleep(time.Millisecond) {
				if time.Since(start) > 10*time.Second {
					t.Fatal("the engine's loop did not poll at start")
				}
			}
			before := agents.StatusCalls()
			var c capture
			err := ds.CallResource(context.Background(), &backend.CallResourceRequest{Method: "POST", Path: "poll", Body: []byte(`{}`),
				PluginContext: backend.PluginContext{User: tt.user}}, &c)
			if err != nil || len(c.responses) != 1 || c.responses[0].Status/100 != 2 {
				t.Fatalf("poll: %v %+v", err, c.responses)
			}
			if got := agents.StatusCalls() - before; got != tt.wantPolls {
				t.Errorf("%d status polls, want %d", got, tt.wantPolls)
			}
			var answer struct {
				Agents []struct {
					Name       string  `json:"name"`
					LastPollAt *string `json:"lastPollAt"`
				} `json:"agents"`
			}
			if err := json.Unmarshal(c.responses[0].Body, &answer); err != nil || len(answer.Agents) != 3 || answer.Agents[0].LastPollAt == nil {
				t.Errorf("answer: %s", c.responses[0].Body)
			}
		})
	}
}

// The routes answer as they did when they were matched by hand: where
// ServeMux alone would differ (HEAD sent to a GET route, redirects of
// unclean paths, text bodies), the answer is still ours, and a request from
// another org learns only whether the path exists.
func TestResourceRouting(t *testing.T) {
	const known = `known resources are GET agents, GET agents/{name}, POST agents/{name}/processes/{process}/restart, POST poll, POST reports, GET monitor`
	tests := []struct {
		name, method, path string
		org                int64
		wantStatus         int
		wantAllow          string
		wantBody           string
	}{
		{name: "HEAD on a GET route", method: "HEAD", path: "agents", wantStatus: 405, wantAllow: "GET",
			wantBody: `{"error":{"code":"method_not_allowed","message":"HEAD agents is not allowed: use GET"}}`},
		{name: "another method on a POST route", method: "DELETE", path: "poll/", wantStatus: 405, wantAllow: "POST",
			wantBody: `{"error":{"code":"method_not_allowed","message":"DELETE poll is not allowed: use POST"}}`},
		{name: "trailing slash on a nested route", method: "GET", path: "agents/node-a/processes/cdp/restart/", wantStatus: 405, wantAllow: "POST",
			wantBody: `{"error":{"code":"method_not_allowed","message":"GET agents/node-a/processes/cdp/restart is not allowed: use POST"}}`},
		{name: "empty segment", method: "GET", path: "agents//node-a", wantStatus: 404,
			wantBody: `{"error":{"code":"not_found","message":"no resource \"agents//node-a\": ` + known + `"}}`},
		{name: "dot segments", method: "GET", path: "agents/node-a/../node-b", wantStatus: 404,
			wantBody: `{"error":{"code":"not_found","message":"no resource \"agents/node-a/../node-b\": ` + known + `"}}`},
		{name: "part of a route", method: "GET", path: "agents/node-a/processes", wantStatus: 404,
			wantBody: `{"error":{"code":"not_found","message":"no resource \"agents/node-a/processes\": ` + known + `"}}`},
		{name: "a name that is no URL path", method: "GET", path: "agents/%zz", wantStatus: 404,
			wantBody: `{"error":{"code":"unknown_agent","message":"no agent \"%zz\" in this datasource"}}`},
		{name: "a name with a question mark", method: "GET", path: "agents/a?b", wantStatus: 404,
			wantBody: `{"error":{"code":"unknown_agent","message":"no agent \"a?b\" in this datasource"}}`},
		{name: "no path", method: "GET", path: "", wantStatus: 404,
			wantBody: `{"error":{"code":"not_found","message":"no resource \"\": ` + known + `"}}`},
		{name: "another org, wrong method", method: "POST", path: "agents", org: 2, wantStatus: 403,
			wantBody: `{"error":{"code":"other_org","message":"this Vigil datasource belongs to org 1; the request came from org 2"}}`},
		{name: "another org, unknown path", method: "GET", path: "secrets", org: 2, wantStatus: 404,
			wantBody: `{"error":{"code":"not_found","message":"no resource \"secrets\": ` + known + `"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agents := agentclienttest.New(nil)
			ds := newDatasourceIn(identity{org: 1, id: 1, uid: "vigil-cdp"}, settingsFor(threeAgents), agents, testMonitors(t, agents))
			var c capture
			err := ds.CallResource(context.Background(), &backend.CallResourceRequest{Method: tt.method, Path: tt.path,
				//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
				PluginContext: backend.PluginContext{OrgID: tt.org}}, &c)
			if err != nil || len(c.responses) != 1 {
				t.Fatalf("CallResource: %v, %d responses", err, len(c.responses))
			}
			r := c.responses[0]
			if r.Status != tt.wantStatus || string(r.Body) != tt.wantBody {
				t.Errorf("got %d %s\nwant %d %s", r.Status, r.Body, tt.wantStatus, tt.wantBody)
			}
			if got := strings.Join(r.Headers["Allow"], ","); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if ct := strings.Join(r.Headers["Content-Type"], ","); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

// answeringAgents are the agents of threeAgents, each answering every
// status poll with one running process "cdp" at generation 4, and
// restarting it to generation 5.
func answeringAgents() *agentclienttest.Fake {
	f := agentclienttest.New(nil)
	pid, started := int64(4343), t0
	for _, name := range []string{"standalone", "node-a", "node-b"} {
		body := fmt.Sprintf(`{"apiVersion":"v1","time":%q,"agent":{"id":"id-%s","version":"1.0.0","hostname":"%s.example","startedAt":%q,"pid":100},
		"cluster":null,"processes":[{"name":"cdp","kind":"command","state":"running","expected":true,"pid":4242,"generation":4,
		"startedAt":%q,"restarts":0,"lastExit":null,"protection":null}]}`,
			t0.Format(time.RFC3339), name, name, t0.Add(-time.Hour).Format(time.RFC3339), t0.Add(-time.Hour).Format(time.RFC3339))
		f.Add(name, agentclienttest.Script{Body: []byte(body), RTT: 3 * time.Millisecond, Generation: 4,
			RestartAnswer: &agentclient.StartResult{Generation: 5, PID: &pid, StartedAt: &started}})
	}
	return f
}

// The answers of GET agents/{name} and GET agents are checked in as golden
// files: the frontend's tests read them as the backend's real answers
// (src/pages/Agent/Agent.test.tsx), so a field the frontend reads and the
// backend never sends cannot pass unnoticed.
func TestResourceAnswersGolden(t *testing.T) {
	agents := answeringAgents()
	ds := newDatasource(settingsFor(threeAgents), agents, testMonitors(t, agents))
	m, failed := ds.engine()
	if failed != nil {
		t.Fatalf("%+v", failed)
	}
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		if a, _ := m.eng.Snapshot().Agent("standalone"); len(a.Processes) == 1 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the engine's loop did not poll at start")
		}
	}
	call := func(method, path, body string) []byte {
		t.Helper()
		var c capture
		req := &backend.CallResourceRequest{Method: method, Path: path, Body: []byte(body),
			PluginContext: backend.PluginContext{User: &backend.User{Login: "alice", Role: "Editor"}}}
		if err := ds.CallResource(context.Background(), req, &c); err != nil || len(c.responses) != 1 || c.responses[0].Status/100 != 2 {
			t.Fatalf("%s %s: %v %d %s", method, path, err, c.responses[0].Status, c.responses[0].Body)
		}
		return c.responses[0].Body
	}
	restart := call("POST", "agents/standalone/processes/cdp/restart", `{"reason":"after maintenance","ifGeneration":4}`)
	for _, g := range []struct {
		name string
		body []byte
	}{
		{"resource-agents", call("GET", "agents", "")},
		{"resource-agent-detail", call("GET", "agents/standalone", "")},
		{"resource-restart", restart},
	} {
		t.Run(g.name, func(t *testing.T) {
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, g.body, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			file := filepath.Join("testdata", g.name+".golden.json")
			if *update {
				if err := os.WriteFile(file, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (write it with -update)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("%s differs from the answer (rewrite it with go test ./pkg/plugin -update):\n%s", file, pretty.Bytes())
			}
		})
	}
}
