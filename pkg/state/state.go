// Package state names the states of a monitored client. The numeric codes are
// a contract: alert rules and value mappings in Grafana rely on them, so a code
// is never renumbered or reused.
package state

import "fmt"

// State is the monitoring state of an agent or of one of its CDP processes.
type State int64

const (
	// OK: answered; every CDP process that should run is running.
	OK State = 0
	// Standby: answered from a passive cluster node where CDP is not expected to run.
	Standby State = 1
	// Restarting: a CDP process is down; a restart was issued and is awaited.
	Restarting State = 2
	// Grace: silent, but still within its timeout budget.
	Grace State = 3
	// Degraded: answers and CDP runs, but protection lags or restarts flap.
	Degraded State = 4
	// Failed: silent beyond its budget, or restarting CDP keeps failing.
	Failed State = 5
	// Unknown: never answered yet, or the answer could not be understood.
	Unknown State = 6
)

var names = [...]string{
	OK:         "OK",
	Standby:    "STANDBY",
	Restarting: "RESTARTING",
	Grace:      "GRACE",
	Degraded:   "DEGRADED",
	Failed:     "FAILED",
	Unknown:    "UNKNOWN",
}

// meanings say in one line what each state means, for people (the app's
// state legend, generated into src/shared/contract.gen.ts).
var meanings = [...]string{
	OK:         "answered; every CDP process that should run is running",
	Standby:    "passive cluster node; CDP is not expected to run here",
	Restarting: "a CDP process was down; a restart was issued",
	Grace:      "silent, but within its failover-aware budget",
	Degraded:   "CDP runs but lags its RPO, or restarts flap",
	Failed:     "silent beyond its budget, or CDP cannot be restarted",
	Unknown:    "never answered yet, or the answer was not understood",
}

// severities order the states for "the worst of": an agent's state is the
// worst of its processes', a coarse step of a timeline or of the stateCode
// metric shows the worst state within it, and the app counts each agent under
// its worst state. UNKNOWN is worse than DEGRADED (nothing is known of CDP)
// and only FAILED is worse.
var severities = [...]int{
	OK:         0,
	Standby:    1,
	Restarting: 2,
	Grace:      3,
	Degraded:   4,
	Unknown:    5,
	Failed:     6,
}

// All lists every state in code order.
func All() []State {
	return []State{OK, Standby, Restarting, Grace, Degraded, Failed, Unknown}
}

// String returns the upper-case name used in frames and in the CLI.
func (s State) String() string {
	if s >= 0 && int(s) < len(names) {
		return names[s]
	}
	return fmt.Sprintf("State(%d)", int64(s))
}

// Code returns the fixed numeric code of the state.
func (s State) Code() int64 { return int64(s) }

// Meaning is one line saying what the state means.
func (s State) Meaning() string {
	if s >= 0 && int(s) < len(meanings) {
		return meanings[s]
	}
	return ""
}

// Severity ranks the state for "the worst of": the higher, the worse. A
// state outside the contract ranks as UNKNOWN.
func (s State) Severity() int {
	if s >= 0 && int(s) < len(severities) {
		return severities[s]
	}
	return severities[Unknown]
}

// Worst is the worse of two states by Severity; a when they rank alike.
func Worst(a, b State) State {
	if b.Severity() > a.Severity() {
		return b
	}
	return a
}

// Parse turns a state name back into a State.
func Parse(name string) (State, error) {
	for i, n := range names {
		if n == name {
			return State(i), nil
		}
	}
	return Unknown, fmt.Errorf("unknown state %q: known states are OK, STANDBY, RESTARTING, GRACE, DEGRADED, FAILED, UNKNOWN", name)
}
