package fleet

import (
	"strings"
	"testing"
	"time"
)

func TestPushAgents(t *testing.T) {
	cfg, err := Parse([]byte("pollInterval: 5s\nagents:\n  - { name: nat, transport: push, reportToken: nat-token-0123456789 }\n  - { name: dmz, transport: push, reportEvery: 30s, reportToken: dmz-token-0123456789, url: \"http://10.0.0.9:7070\" }\n"))
	if err != nil {
		t.Fatal(err)
	}
	nat, dmz := cfg.Agents[0], cfg.Agents[1]
	if !nat.Pushes() || nat.ReportEvery != 5*time.Second || nat.ReportToken.Reveal() != "nat-token-0123456789" || nat.URL != "" || dmz.ReportEvery != 30*time.Second {
		t.Errorf("push agents: %+v %+v", nat, dmz)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"agents:\n  - { name: nat, transport: push }\n", "agents[0].reportToken: is required for transport push"},
		{"agents:\n  - { name: nat, transport: push, reportToken: short }\n", "agents[0].reportToken: must be at least 16 characters"},
		{"agents:\n  - { name: a, transport: push, reportToken: same-token-0123456789 }\n  - { name: b, transport: push, reportToken: same-token-0123456789 }\n", "agents[1].reportToken: is also agents[0]'s"},
		{"agents:\n  - { name: a, transport: carrier-pigeon, url: \"http://127.0.0.1:1\", readToken: r }\n", `agents[0].transport: "carrier-pigeon" must be poll or push`},
		{"agents:\n  - { name: a, readToken: r }\n", "agents[0].url: is required"},
		{"agents:\n  - { name: nat, transport: push, reportEvery: 10ms, reportToken: nat-token-0123456789 }\n", "agents[0].reportEvery: 10ms is below the minimum of 1s"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %q", tc.yaml, err, tc.want)
		}
	}
	// jsonData: the report token comes from secureJsonData only.
	cfg, err = FromJSON([]byte(`{"agents":[{"name":"nat","transport":"push"}]}`), map[string]string{"agent.nat.reportToken": "nat-token-0123456789"})
	if err != nil || !cfg.Agents[0].Pushes() || cfg.Agents[0].ReportToken.Reveal() != "nat-token-0123456789" {
		t.Errorf("jsonData: %+v %v", cfg.Agents, err)
	}
	if _, err := FromJSON([]byte(`{"agents":[{"name":"nat","transport":"push","reportToken":"in-json-0123456789"}]}`), nil); err == nil ||
		!strings.Contains(err.Error(), "jsonData.agents[0].reportToken: is required for transport push") {
		t.Errorf("a report token in jsonData is ignored, not used: %v", err)
	}
}
