package models

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

func instance(jsonData string, secrets map[string]string) backend.DataSourceInstanceSettings {
	return backend.DataSourceInstanceSettings{UID: "vigil-cdp", JSONData: json.RawMessage(jsonData), DecryptedSecureJSONData: secrets}
}

func TestLoadSettingsValid(t *testing.T) {
	tests := []struct {
		name     string
		jsonData string
		secrets  map[string]string
		check    func(t *testing.T, s *Settings)
	}{
		{
			name:     "defaults",
			jsonData: `{"agents":[{"name":"a","url":"http://127.0.0.1:7071"}]}`,
			check: func(t *testing.T, s *Settings) {
				if s.Fleet.PollInterval != 10*time.Second || s.RestartRole != RoleEditor || s.HistoryPath != "" {
					t.Errorf("got poll %s, role %q, history %q", s.Fleet.PollInterval, s.RestartRole, s.HistoryPath)
				}
				if s.Fleet.Agents[0].ControlToken.IsSet() {
					t.Error("control token set without a secret")
				}
			},
		},
		{
			name: "every datasource key and fleet policy",
			jsonData: `{"pollInterval":"1m30s","restartRole":"Admin","historyPath":"/var/lib/vigil/history",
				"defaults":{"budget":{"failover":"5m"},"rpo":"2m"},
				"agents":[{"name":"node-a","url":"https://a.example:7071","cluster":"ha"},{"name":"node_b","url":"http://b:7072/base","rpo":0}]}`,
			check: func(t *testing.T, s *Settings) {
				if s.Fleet.PollInterval != 90*time.Second || s.RestartRole != RoleAdmin || s.HistoryPath != "/var/lib/vigil/history" {
					t.Errorf("unexpected values: %+v", s)
				}
				a, b := s.Fleet.Agents[0], s.Fleet.Agents[1]
				if a.Budget.Failover != 5*time.Minute || a.RPO != 2*time.Minute || b.RPO != 0 || a.Cluster != "ha" {
					t.Errorf("policy not merged: %+v / %+v", a.Policy, b.Policy)
				}
			},
		},
		{
			name:     "per-agent tokens override the fleet's",
			jsonData: `{"agents":[{"name":"a","url":"http://a"},{"name":"b","url":"http://b"}]}`,
			secrets:  map[string]string{"readToken": "r", "controlToken": "c", "agent.b.controlToken": "cb"},
			check: func(t *testing.T, s *Settings) {
				a, b := s.Fleet.Agents[0], s.Fleet.Agents[1]
				if a.ControlToken.Reveal() != "c" || b.ControlToken.Reveal() != "cb" || b.ReadToken.Reveal() != "r" {
					t.Errorf("tokens not picked per agent")
				}
			},
		},
		{
			// Grafana cannot delete a secure key: a renamed agent leaves an
			// emptied one behind, which must not make the settings invalid.
			name:     "emptied secret of a renamed agent is ignored",
			jsonData: `{"agents":[{"name":"new-name","url":"http://a"}]}`,
			secrets:  map[string]string{"agent.old-name.readToken": "", "agent.old-name.controlToken": ""},
			check:    func(t *testing.T, s *Settings) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadSettings(instance(tt.jsonData, tt.secrets))
			if err != nil {
				t.Fatalf("LoadSettings: %v", err)
			}
			tt.check(t, s)
		})
	}
}

// Each file in testdata/invalid is one invalid configuration with the exact
// error it must give.
func TestLoadSettingsInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var fx struct {
				JSONData json.RawMessage   `json:"jsonData"`
				Secrets  map[string]string `json:"secureJsonData"`
				Error    string            `json:"error"`
			}
			if err := json.Unmarshal(raw, &fx); err != nil {
				t.Fatal(err)
			}
			_, err = LoadSettings(instance(string(fx.JSONData), fx.Secrets))
			if err == nil {
				t.Fatalf("no error, want %q", fx.Error)
			}
			if err.Error() != fx.Error {
				t.Errorf("error\n got: %q\nwant: %q", err.Error(), fx.Error)
			}
			if !errors.Is(err, ErrInvalidSettings) {
				t.Errorf("%v does not wrap ErrInvalidSettings", err)
			}
			for _, v := range fx.Secrets {
				if v != "" && strings.Contains(err.Error(), v) {
					t.Errorf("a secret value is in the error")
				}
			}
		})
	}
}

func TestRoleReaches(t *testing.T) {
	tests := []struct {
		need Role
		user string
		want bool
	}{
		{RoleEditor, "Viewer", false},
		{RoleEditor, "Editor", true},
		{RoleEditor, "Admin", true},
		{RoleAdmin, "Editor", false},
		{RoleViewer, "Viewer", true},
		{RoleViewer, "None", false},
		{RoleViewer, "", false},
	}
	for _, tt := range tests {
		if got := tt.need.Reaches(tt.user); got != tt.want {
			t.Errorf("%s.Reaches(%q) = %v, want %v", tt.need, tt.user, got, tt.want)
		}
	}
}

func TestReadTokenSource(t *testing.T) {
	const agents = `{"agents":[{"name":"a","url":"http://a"}]}`
	tests := []struct {
		name    string
		secrets map[string]string
		want    TokenSource
	}{
		{"fleet token", map[string]string{"readToken": "r"}, TokenSource{Key: "readToken", Present: true}},
		{"own token wins", map[string]string{"readToken": "r", "agent.a.readToken": "ra"}, TokenSource{Key: "agent.a.readToken", Present: true}},
		{"emptied own token falls back to the fleet's", map[string]string{"readToken": "r", "agent.a.readToken": ""}, TokenSource{Key: "readToken", Present: true}},
		// What an unset $VIGIL_READ_TOKEN in a provisioning file gives.
		{"fleet token empty", map[string]string{"readToken": ""}, TokenSource{Key: "readToken", Present: true}},
		{"only an empty own token", map[string]string{"agent.a.readToken": ""}, TokenSource{Key: "agent.a.readToken", Present: true}},
		{"no token at all", nil, TokenSource{Key: "readToken"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadSettings(instance(agents, tt.secrets))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.ReadTokenSource("a"); got != tt.want {
				t.Errorf("ReadTokenSource = %+v, want %+v", got, tt.want)
			}
		})
	}
}
