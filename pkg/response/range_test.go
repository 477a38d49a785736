package response

import (
	"math"
	"strings"
	"testing"
	"time"
)

// withProtection puts a replicator's protection (and its verify) into the
// documented example.
func withProtection(lag, pendingChanges, pendingBytes, notCovered, problems, duration string) func(string) string {
	return func(s string) string {
		return strings.Replace(s, `"protection": null`, `"protection": {"lastChangeAt": null, "lastReplicatedAt": null, "lagSeconds": `+lag+
			`, "pendingChanges": `+pendingChanges+`, "pendingBytes": `+pendingBytes+`, "notCovered": `+notCovered+
			`, "verify": {"at": "2026-11-26T04:00:00Z", "ok": true, "problems": `+problems+`, "firstProblem": null, "durationSeconds": `+duration+`}}`, 1)
	}
}

// Numbers outside the contract's minimum and maximum make the answer not
// understood, naming the field; the bounds themselves are accepted.
func TestParseRefusesNumbersOutOfRange(t *testing.T) {
	sub := func(old, new string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				panic("edit does not apply: " + old)
			}
			return strings.Replace(s, old, new, 1)
		}
	}
	healthy := withProtection("0", "0", "0", "0", "0", "0")
	tests := []struct {
		name    string
		edit    func(string) string
		wantErr string
	}{
		{"every bound met", func(s string) string {
			s = sub(`"pid": 19966`, `"pid": 2147483647`)(s)
			s = sub(`"pid": 812`, `"pid": 1`)(s)
			s = sub(`"generation": 4`, `"generation": 0`)(s)
			s = sub(`"restarts": 3`, `"restarts": 0`)(s)
			s = sub(`"recentCrashes": 1`, `"recentCrashes": 0`)(s)
			return healthy(s)
		}, ""},
		{"a huge lag is accepted (and saturates where it becomes a duration)", withProtection("1e308", "0", "0", "0", "0", "0"), ""},
		{"pid -1", sub(`"pid": 19966`, `"pid": -1`), "processes[0].pid: -1 is out of range (minimum 1)"},
		{"pid 0", sub(`"pid": 19966`, `"pid": 0`), "processes[0].pid: 0 is out of range (minimum 1)"},
		{"pid beyond a pid_t", sub(`"pid": 19966`, `"pid": 2147483648`), "processes[0].pid: 2147483648 is out of range (maximum 2147483647)"},
		{"agent pid -1", sub(`"pid": 812`, `"pid": -1`), "agent.pid: -1 is out of range (minimum 1)"},
		{"generation -5", sub(`"generation": 4`, `"generation": -5`), "processes[0].generation: -5 is out of range (minimum 0)"},
		{"restarts -3", sub(`"restarts": 3`, `"restarts": -3`), "processes[0].restarts: -3 is out of range (minimum 0)"},
		{"recentCrashes -1", sub(`"recentCrashes": 1`, `"recentCrashes": -1`), "processes[0].recentCrashes: -1 is out of range (minimum 0)"},
		{"lag -1e308", withProtection("-1e308", "0", "0", "0", "0", "0"), "processes[0].protection.lagSeconds: -1e308 is out of range (minimum 0)"},
		{"lag slightly negative", withProtection("-0.001", "0", "0", "0", "0", "0"), "processes[0].protection.lagSeconds: -0.001 is out of range (minimum 0)"},
		{"lag beyond a float64", withProtection("1e309", "0", "0", "0", "0", "0"), "processes[0].protection.lagSeconds: 1e309 is out of range"},
		{"pendingChanges -1", withProtection("0", "-1", "0", "0", "0", "0"), "processes[0].protection.pendingChanges: -1 is out of range (minimum 0)"},
		{"pendingBytes -1", withProtection("0", "0", "-1", "0", "0", "0"), "processes[0].protection.pendingBytes: -1 is out of range (minimum 0)"},
		{"notCovered -1", withProtection("0", "0", "0", "-1", "0", "0"), "processes[0].protection.notCovered: -1 is out of range (minimum 0)"},
		{"verify problems -1", withProtection("0", "0", "0", "0", "-1", "0"), "processes[0].protection.verify.problems: -1 is out of range (minimum 0)"},
		{"verify duration -2.5", withProtection("0", "0", "0", "0", "0", "-2.5"), "processes[0].protection.verify.durationSeconds: -2.5 is out of range (minimum 0)"},
		{"a long number is quoted short", withProtection("-0."+strings.Repeat("0", 80)+"1", "0", "0", "0", "0", "0"),
			"processes[0].protection.lagSeconds: -0." + strings.Repeat("0", 53) + "…(truncated, 84 bytes) is out of range (minimum 0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(status(tt.edit))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("error\n got: %v\nwant: %s", err, tt.wantErr)
			}
		})
	}
}

func TestDurationSaturates(t *testing.T) {
	tests := []struct {
		seconds float64
		want    time.Duration
	}{
		{0, 0},
		{12.5, 12500 * time.Millisecond},
		{-1, -time.Second},
		{1e308, math.MaxInt64},
		{-1e308, math.MinInt64},
		{math.Inf(1), math.MaxInt64},
		{math.Inf(-1), math.MinInt64},
		{math.NaN(), 0},
		// The largest whole number of seconds a Duration holds, and one past it.
		{9223372036, 9223372036 * time.Second},
		{9223372037, math.MaxInt64},
	}
	for _, tt := range tests {
		if got := Duration(tt.seconds); got != tt.want {
			t.Errorf("Duration(%g) = %d, want %d", tt.seconds, got, tt.want)
		}
	}
}
