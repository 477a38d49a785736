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
