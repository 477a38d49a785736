package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

func instance(jsonData string, secrets map[string]string) backend.DataSourceInstanceSettings {
	return backend.DataSourceInstanceSettings{
		UID:                     "vigil-cdp",
		JSONData:                json.RawMessage(jsonData),
		DecryptedSecureJSONData: secrets,
	}
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
				if s.PollInterval != 10*time.Second {
					t.Errorf("PollInterval = %s, want 10s", s.PollInterval)
				}
				if s.RestartRole != RoleEditor {
					t.Errorf("RestartRole = %q, want Editor", s.RestartRole)
				}
				if s.HistoryPath != "" || s.ReadToken.IsSet() || s.Agents[0].ReadToken.IsSet() {
					t.Errorf("unexpected values: %+v", s)
				}
			},
		},
		{
			name: "every key",
			jsonData: `{"pollInterval":"1m30s","restartRole":"Admin","historyPath":"/var/lib/vigil/history",
				"agents":[{"name":"node-a","url":"https://a.example:7071","cluster":"ha"},{"name":"node_b","url":"http://b:7072/base","cluster":"ha"}]}`,
			check: func(t *testing.T, s *Settings) {
				if s.PollInterval != 90*time.Second || s.RestartRole != RoleAdmin || s.HistoryPath != "/var/lib/vigil/history" {
					t.Errorf("unexpected values: %+v", s)
				}
				if len(s.Agents) != 2 || s.Agents[1].Cluster != "ha" || s.Agents[1].URL != "http://b:7072/base" {
					t.Errorf("unexpected agents: %+v", s.Agents)
				}
			},
		},
		{
			name:     "minimum poll interval",
			jsonData: `{"pollInterval":"1s","agents":[{"name":"a","url":"http://a"}]}`,
			check: func(t *testing.T, s *Settings) {
				if s.PollInterval != time.Second {
					t.Errorf("PollInterval = %s", s.PollInterval)
				}
			},
		},
		{
			name:     "per-agent tokens override the datasource-wide ones",
			jsonData: `{"agents":[{"name":"a","url":"http://a"},{"name":"b","url":"http://b"}]}`,
			secrets: map[string]string{
				"readToken": "read-all", "controlToken": "control-all",
				"agent.b.readToken": "read-b", "agent.b.controlToken": "control-b",
			},
			check: func(t *testing.T, s *Settings) {
				a, _ := s.AgentByName("a")
				b, _ := s.AgentByName("b")
				if a.ReadToken.Reveal() != "read-all" || a.ControlToken.Reveal() != "control-all" {
					t.Errorf("agent a tokens not inherited")
				}
				if b.ReadToken.Reveal() != "read-b" || b.ControlToken.Reveal() != "control-b" {
					t.Errorf("agent b tokens not overridden")
				}
			},
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

// One case per invalid setting, each with its exact error.
func TestLoadSettingsInvalid(t *testing.T) {
	const ok = `{"name":"a","url":"http://a"}`
	tests := []struct {
		name     string
		jsonData string
		secrets  map[string]string
		want     string
	}{
		{"not JSON", `{`, nil, "jsonData: is not valid: unexpected end of JSON input"},
		{"agents not a list", `{"agents":{}}`, nil, "jsonData: is not valid: agents must be a list, got object"},
		{"no jsonData", ``, nil, "jsonData.agents: at least one agent is required"},
		{"empty agents", `{"agents":[]}`, nil, "jsonData.agents: at least one agent is required"},
		{"poll interval not a duration", `{"pollInterval":"often","agents":[` + ok + `]}`, nil,
			`jsonData.pollInterval: "often" is not a duration (examples: 10s, 1m30s)`},
		{"poll interval without unit", `{"pollInterval":"10","agents":[` + ok + `]}`, nil,
			`jsonData.pollInterval: "10" is not a duration (examples: 10s, 1m30s)`},
		{"poll interval too short", `{"pollInterval":"500ms","agents":[` + ok + `]}`, nil,
			"jsonData.pollInterval: 500ms is below the minimum of 1s"},
		{"agent name missing", `{"agents":[` + ok + `,{"url":"http://b"}]}`, nil,
			"jsonData.agents[1].name: is required"},
		{"agent name with a dot", `{"agents":[{"name":"a.b","url":"http://a"}]}`, nil,
			`jsonData.agents[0].name: "a.b" must be 1 to 63 letters, digits, '-' or '_'`},
		{"agent name duplicated", `{"agents":[` + ok + `,{"name":"b","url":"http://b"},{"name":"a","url":"http://c"}]}`, nil,
			`jsonData.agents[2].name: "a" is already used by jsonData.agents[0]`},
		{"agent url missing", `{"agents":[` + ok + `,{"name":"b"}]}`, nil,
			"jsonData.agents[1].url: is required"},
		{"agent url relative", `{"agents":[` + ok + `,{"name":"b","url":"agent-b:7072"}]}`, nil,
			"jsonData.agents[1].url: must be an absolute http or https URL"},
		{"agent url wrong scheme", `{"agents":[{"name":"a","url":"ftp://a"}]}`, nil,
			"jsonData.agents[0].url: must be an absolute http or https URL"},
		{"agent url without host", `{"agents":[{"name":"a","url":"http:///healthz"}]}`, nil,
			"jsonData.agents[0].url: must be an absolute http or https URL"},
		{"restart role unknown", `{"restartRole":"Owner","agents":[` + ok + `]}`, nil,
			`jsonData.restartRole: "Owner" must be one of Viewer, Editor, Admin`},
		{"restart role wrong case", `{"restartRole":"admin","agents":[` + ok + `]}`, nil,
			`jsonData.restartRole: "admin" must be one of Viewer, Editor, Admin`},
		{"secret for an unknown agent", `{"agents":[` + ok + `]}`, map[string]string{"agent.ghost.readToken": "x"},
			"secureJsonData.agent.ghost.readToken: names no configured agent (expected agent.<name>.readToken or agent.<name>.controlToken)"},
		{"secret of an unknown kind", `{"agents":[` + ok + `]}`, map[string]string{"agent.a.writeToken": "x"},
			"secureJsonData.agent.a.writeToken: names no configured agent (expected agent.<name>.readToken or agent.<name>.controlToken)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadSettings(instance(tt.jsonData, tt.secrets))
			if err == nil {
				t.Fatalf("LoadSettings succeeded with %+v, want error %q", s, tt.want)
			}
			if !errors.Is(err, ErrInvalidSettings) {
				t.Errorf("error does not wrap ErrInvalidSettings: %v", err)
			}
			want := ErrInvalidSettings.Error() + ": " + tt.want
			if err.Error() != want {
				t.Errorf("error\n got: %s\nwant: %s", err, want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error is not a *FieldError: %T", err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := LoadSettings(instance(`{"pollInterval":"1ms","restartRole":"x","agents":[{"name":"","url":""}]}`, nil))
	want := strings.Join([]string{
		ErrInvalidSettings.Error() + ": jsonData.pollInterval: 1ms is below the minimum of 1s",
		"jsonData.agents[0].name: is required",
		"jsonData.agents[0].url: is required",
		`jsonData.restartRole: "x" must be one of Viewer, Editor, Admin`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got: %v\nwant: %s", err, want)
	}
}

func TestValidateAtUsesThePrefix(t *testing.T) {
	s := FromFleet("10s", []Agent{{Name: "a", URL: "nope"}}, nil)
	err := s.ValidateAt("")
	if err == nil || err.Error() != "agents[0].url: must be an absolute http or https URL" {
		t.Fatalf("error = %v", err)
	}
}

// Secrets must never leave the process through logs or answers.
func TestSecretsAreRedacted(t *testing.T) {
	s, err := LoadSettings(instance(`{"agents":[{"name":"a","url":"http://a"}]}`,
		map[string]string{"readToken": "sup3r-read", "agent.a.controlToken": "sup3r-control"}))
	if err != nil {
		t.Fatal(err)
	}
	encoded, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), string(encoded)} {
		if strings.Contains(out, "sup3r") {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if s.Agents[0].ReadToken.String() != "[redacted]" {
		t.Errorf("String() = %q", s.Agents[0].ReadToken.String())
	}
}
