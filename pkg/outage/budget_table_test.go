package outage

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/vigil-cdp/vigil/pkg/fleet"
)

// TestBudgetTable runs the budget's cases shared with the settings editor's
// tests, which compute the same budget as a person types.
func TestBudgetTable(t *testing.T) {
	raw, err := os.ReadFile("testdata/budget.json")
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		Cases []struct {
			Name     string          `json:"name"`
			JSONData json.RawMessage `json:"jsonData"`
			Agent    int             `json:"agent"`
			Budget   *struct {
				TotalSeconds float64 `json:"totalSeconds"`
				Allowances   []struct {
					Kind    Kind    `json:"kind"`
					Seconds float64 `json:"seconds"`
				} `json:"allowances"`
			} `json:"budget"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &table); err != nil || len(table.Cases) == 0 {
		t.Fatalf("testdata/budget.json: %v", err)
	}
	for _, tt := range table.Cases {
		t.Run(tt.Name, func(t *testing.T) {
			cfg, err := fleet.FromJSON(tt.JSONData, nil)
			if tt.Budget == nil {
				if err == nil {
					t.Fatalf("the settings give a budget (%s), want none", Compute(Inputs{Policy: cfg.Agents[tt.Agent].Policy}).Total)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a := cfg.Agents[tt.Agent]
			b := Compute(Inputs{Policy: a.Policy, InCluster: a.Cluster != ""})
			if b.Total.Seconds() != tt.Budget.TotalSeconds {
				t.Errorf("total %v s, want %v s", b.Total.Seconds(), tt.Budget.TotalSeconds)
			}
			if len(b.Allowances) != len(tt.Budget.Allowances) {
				t.Fatalf("allowances %+v, want %+v", b.Allowances, tt.Budget.Allowances)
			}
			for i, want := range tt.Budget.Allowances {
				if got := b.Allowances[i]; got.Kind != want.Kind || got.Value.Seconds() != want.Seconds {
					t.Errorf("allowance %d: %s %v s, want %s %v s", i, got.Kind, got.Value.Seconds(), want.Kind, want.Seconds)
				}
			}
		})
	}
}
