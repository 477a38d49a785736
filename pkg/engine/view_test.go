package engine

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/outage"
	"github.com/vigil-cdp/vigil/pkg/remediation"
)

func TestBudgetView(t *testing.T) {
	a := AgentSnapshot{Budget: outage.Budget{
		Total: 92500 * time.Millisecond, ResponseTime: 2 * time.Second, RTTp99: 1500 * time.Millisecond, Processing: 500 * time.Millisecond,
		Combine: fleet.CombineMax, Mode: fleet.ModeMeasured,
		Allowances: []outage.Allowance{
			{Kind: outage.Failover, Value: 90 * time.Second, Configured: 60 * time.Second, Measured: true, Samples: 12},
			{Kind: outage.NetworkInterruption, Value: 30 * time.Second, Configured: 30 * time.Second, Samples: 2},
		},
	}}
	got, err := json.Marshal(a.BudgetView())
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"totalSeconds":92.5,"responseTimeSeconds":2,"rttP99Seconds":1.5,"processingSeconds":0.5,"combine":"max","mode":"measured",` +
		`"allowances":[{"name":"failover","seconds":90,"configuredSeconds":60,"source":"measured","samples":12},` +
		`{"name":"network interruption","seconds":30,"configuredSeconds":30,"source":"configured","samples":2}]}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// No allowances is an empty list, not null.
	if got, _ := json.Marshal(AgentSnapshot{}.BudgetView()); string(got) != `{"totalSeconds":0,"responseTimeSeconds":0,"rttP99Seconds":0,"processingSeconds":0,"combine":"","mode":"","allowances":[]}` {
		t.Errorf("empty budget: %s", got)
	}
}

func TestLastRestartAt(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		last *LastAction
		want *time.Time
	}{
		{"no action", nil, nil},
		{"a restart", &LastAction{Kind: remediation.Restart, At: at, By: "alice", Manual: true, OK: true}, &at},
		{"a failed restart", &LastAction{Kind: remediation.Restart, At: at, OK: false, Error: "refused"}, nil},
		{"a stop", &LastAction{Kind: remediation.Stop, At: at, OK: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ProcessSnapshot{LastAction: tt.last}.LastRestartAt()
			if (got == nil) != (tt.want == nil) || (got != nil && !got.Equal(*tt.want)) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
