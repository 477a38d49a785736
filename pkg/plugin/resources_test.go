package plugin

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
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
			if err != nil || len(c.responses) != 1 || c.responses[0].Status != 200 {
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
