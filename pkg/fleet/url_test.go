package fleet

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// agentURLCases are the rule's cases, shared with the settings editor's tests.
func agentURLCases(t *testing.T) []struct {
	URL          string `json:"url"`
	Problem      string `json:"problem"`
	SecretsPlace bool   `json:"secretsPlace"`
} {
	t.Helper()
	raw, err := os.ReadFile("testdata/agent-urls.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Cases []struct {
			URL          string `json:"url"`
			Problem      string `json:"problem"`
			SecretsPlace bool   `json:"secretsPlace"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil || len(fx.Cases) == 0 {
		t.Fatalf("testdata/agent-urls.json: %v", err)
	}
	return fx.Cases
}

func TestAgentURLProblem(t *testing.T) {
	for _, tt := range agentURLCases(t) {
		t.Run(tt.URL, func(t *testing.T) {
			problem, secretsPlace := AgentURLProblem(tt.URL)
			if problem != tt.Problem || secretsPlace != tt.SecretsPlace {
				t.Errorf("got %q, %v; want %q, %v", problem, secretsPlace, tt.Problem, tt.SecretsPlace)
			}
			if strings.Contains(problem, "s3cret") {
				t.Errorf("the message repeats the secret: %s", problem)
			}
		})
	}
}

// The rule holds wherever agent URLs are read: a datasource's jsonData says
// where its tokens belong.
func TestFromJSONRefusesCredentialsInURLs(t *testing.T) {
	for _, tt := range agentURLCases(t) {
		if !tt.SecretsPlace {
			continue
		}
		t.Run(tt.URL, func(t *testing.T) {
			doc, _ := json.Marshal(map[string]any{"agents": []map[string]string{{"name": "a", "url": "http://ok:1"}, {"name": "b", "url": tt.URL}}})
			_, err := FromJSON(doc, map[string]string{"readToken": "r"})
			want := "jsonData.agents[1].url: " + tt.Problem + "; tokens belong in secureJsonData (readToken, controlToken)"
			if err == nil || err.Error() != want {
				t.Errorf("error\n got: %v\nwant: %s", err, want)
			}
		})
	}
}
