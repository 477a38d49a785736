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
			agents := &fakeAgents{}
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
			before := agents.statusCalls()
			var c capture
			err := ds.CallResource(context.Background(), &backend.CallResourceRequest{Method: "POST", Path: "poll", Body: []byte(`{}`),
				PluginContext: backend.PluginContext{User: tt.user}}, &c)
			if err != nil || len(c.responses) != 1 || c.responses[0].Status/100 != 2 {
				t.Fatalf("poll: %v %+v", err, c.responses)
			}
			if got := agents.statusCalls() - before; got != tt.wantPolls {
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

// answeringAgents answer every status poll with one running process "cdp"
// at generation 4, and restart it to generation 5.
type answeringAgents struct{ fakeAgents }

func (f *answeringAgents) Status(_ context.Context, a agentclient.Agent) (agentclient.Answer, error) {
	f.mu.Lock()
	f.polls++
	f.mu.Unlock()
	body := fmt.Sprintf(`{"apiVersion":"v1","time":%q,"agent":{"id":"id-%s","version":"1.0.0","hostname":"%s.example","startedAt":%q,"pid":100},
		"cluster":null,"processes":[{"name":"cdp","kind":"command","state":"running","expected":true,"pid":4242,"generation":4,
		"startedAt":%q,"restarts":0,"lastExit":null,"protection":null}]}`,
		t0.Format(time.RFC3339), a.Name, a.Name, t0.Add(-time.Hour).Format(time.RFC3339), t0.Add(-time.Hour).Format(time.RFC3339))
	return agentclient.Answer{StatusCode: 200, Body: []byte(body), RTT: 3 * time.Millisecond}, nil
}

func (f *answeringAgents) Restart(context.Context, agentclient.Agent, string, agentclient.ControlRequest) (agentclient.StartResult, error) {
	pid, started := int64(4343), t0
	return agentclient.StartResult{Generation: 5, PID: &pid, StartedAt: &started}, nil
}

// The answers of GET agents/{name} and GET agents are checked in as golden
// files: the frontend's tests read them as the backend's real answers
// (src/pages/Agent/Agent.test.tsx), so a field the frontend reads and the
// backend never sends cannot pass unnoticed.
func TestResourceAnswersGolden(t *testing.T) {
	agents := &answeringAgents{}
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
