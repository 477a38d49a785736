package state

import "testing"

// The codes are a contract with alert rules and value mappings; this test
// fails loudly if anyone renumbers them.
func TestCodesAreFixed(t *testing.T) {
	tests := []struct {
		state State
		name  string
		code  int64
	}{
		{OK, "OK", 0},
		{Standby, "STANDBY", 1},
		{Restarting, "RESTARTING", 2},
		{Grace, "GRACE", 3},
		{Degraded, "DEGRADED", 4},
		{Failed, "FAILED", 5},
		{Unknown, "UNKNOWN", 6},
	}
	if len(tests) != len(All()) {
		t.Fatalf("All() has %d states, the contract has %d", len(All()), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.state.String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			if got := tt.state.Code(); got != tt.code {
				t.Errorf("Code() = %d, want %d", got, tt.code)
			}
			parsed, err := Parse(tt.name)
			if err != nil || parsed != tt.state {
				t.Errorf("Parse(%q) = %v, %v; want %v", tt.name, parsed, err, tt.state)
			}
		})
	}
}

func TestParseUnknownName(t *testing.T) {
	_, err := Parse("BROKEN")
	want := `unknown state "BROKEN": known states are OK, STANDBY, RESTARTING, GRACE, DEGRADED, FAILED, UNKNOWN`
	if err == nil || err.Error() != want {
		t.Fatalf("Parse error = %v, want %q", err, want)
	}
}

func TestStringOutOfRange(t *testing.T) {
	if got := State(42).String(); got != "State(42)" {
		t.Fatalf("String() = %q", got)
	}
}

// One order for "the worst of" (the engine, the frames, the app):
// OK < STANDBY < RESTARTING < GRACE < DEGRADED < UNKNOWN < FAILED.
func TestSeverityOrder(t *testing.T) {
	order := []State{OK, Standby, Restarting, Grace, Degraded, Unknown, Failed}
	for i := 1; i < len(order); i++ {
		lo, hi := order[i-1], order[i]
		if lo.Severity() >= hi.Severity() {
			t.Errorf("%s (severity %d) is not below %s (severity %d)", lo, lo.Severity(), hi, hi.Severity())
		}
		if Worst(lo, hi) != hi || Worst(hi, lo) != hi {
			t.Errorf("Worst(%s, %s) = %s, Worst(%s, %s) = %s; want %s both ways", lo, hi, Worst(lo, hi), hi, lo, Worst(hi, lo), hi)
		}
	}
	if got := State(42).Severity(); got != Unknown.Severity() {
		t.Errorf("State(42).Severity() = %d, want UNKNOWN's %d", got, Unknown.Severity())
	}
	for _, s := range All() {
		if s.Meaning() == "" {
			t.Errorf("%s has no meaning", s)
		}
	}
}
