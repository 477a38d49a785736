package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/outage"
	"github.com/vigil-cdp/vigil/pkg/state"
)

func TestTableShowsLagWhereCDPShouldRun(t *testing.T) {
	lag := func(s float64) *float64 { return &s }
	now := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	snap := engine.Snapshot{Agents: []engine.AgentSnapshot{
		{
			Name: "db-1", Cluster: "sql-ha", Role: "active", State: state.OK, Reason: "running", RTT: 2 * time.Millisecond,
			LastAnswerAt: now, Budget: outage.Budget{Total: 182 * time.Second},
			Processes: []engine.ProcessSnapshot{{Name: "cdp", State: state.OK, Reason: "running", LagSeconds: lag(12.4)}},
		},
		{
			Name: "db-2", Cluster: "sql-ha", Role: "passive", State: state.Standby, Reason: "not expected",
			LastAnswerAt: now, Budget: outage.Budget{Total: 182 * time.Second},
			Processes: []engine.ProcessSnapshot{{Name: "cdp", State: state.Standby, Reason: "not expected", LagSeconds: lag(300)}},
		},
	}}
	var out bytes.Buffer
	(&watchOutput{w: &out}).table(snap, now, false)
	lines := strings.Split(out.String(), "\n")
	if !strings.HasPrefix(lines[0], "2026-11-26T05:00:00Z  2 agents: 1 OK, 1 STANDBY") {
		t.Errorf("summary line %q", lines[0])
	}
	fields := func(prefix string) []string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return strings.Fields(l)
			}
		}
		t.Fatalf("no line starting %q in:\n%s", prefix, out.String())
		return nil
	}
	// AGENT CLUSTER/ROLE STATE RTT BUDGET LAG LAST-RESTART REASON
	if f := fields("db-1 "); f[5] != "12s" {
		t.Errorf("db-1 lag column %q, want 12s: %v", f[5], f)
	}
	if f := fields("db-2 "); f[5] != "-" {
		t.Errorf("standby db-2 lag column %q, want -: %v", f[5], f)
	}
	if strings.Contains(out.String(), "5m0s") {
		t.Errorf("a standby process's lag is shown:\n%s", out.String())
	}
}
