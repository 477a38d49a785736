package history

import (
	"encoding/json"
	"time"

	"github.com/vigil-cdp/vigil/pkg/state"
)

// Event types.
const (
	// TypeState is a change of state of an agent (Process empty) or of one
	// of its processes.
	TypeState = "state"
	// TypeAction is a restart or stop, automatic (By "auto") or by a person
	// (Manual, By their login, which may itself be "auto").
	TypeAction = "action"
	// TypeNote records something that is neither, such as auto-restart
	// resuming after the flap guard's window.
	TypeNote = "note"
	// TypeAgent is an event the agent itself recorded (GET /v1/events).
	TypeAgent = "agent"
	// TypeLimit says what the engine dropped, cut or put off of what one
	// agent sent, to keep the history within that agent's bounds; its
	// reason says what and why.
	TypeLimit = "history_limit"
	// TypeHandler is one run of a corrective action (a handler) on a
	// state change: which, for which transition, its result, exit code
	// and output.
	TypeHandler = "handler"
)

// Event is one entry of the monitor's event log. Its JSON form is a contract
// (the CLI prints it, one per line):
//
//	{"type":"state","time","agent","process","from","to","reason","budgetSeconds"}
//	{"type":"action","time","agent","process","action","by","generation","result","error"}
//
//	{"type":"handler","time","agent","process","handler","from","to","reason","budgetSeconds","result","exitCode","output","error","durationSeconds"}
//
// A state event adds "diagnosis" when an agent turns FAILED. An action by a
// person adds "manual": true, so that a person whose login is "auto" is not
// taken for the engine; an action without it was taken by the engine when
// "by" is "auto" (events written before "manual" existed included).
type Event struct {
	Type    string    `json:"type"`
	Time    time.Time `json:"time"`
	Agent   string    `json:"agent"`
	Process string    `json:"process"`

	// State changes.
	From          state.State `json:"-"`
	To            state.State `json:"-"`
	Reason        string      `json:"-"`
	BudgetSeconds float64     `json:"-"`
	Diagnosis     string      `json:"-"`

	// Actions: "restart" or "stop", who asked ("auto" or a login), the
	// generation (the new one after a restart, else the one acted on),
	// "ok" or "failed" and why.
	Action string `json:"-"`
	By     string `json:"-"`
	// Manual: a person acted (By is their login, even when it is "auto").
	Manual     bool   `json:"-"`
	Generation int64  `json:"-"`
	Result     string `json:"-"`
	Error      string `json:"-"`

	// AgentEvent is the agent's own event, for TypeAgent.
	AgentEvent json.RawMessage `json:"-"`

	// Handler runs (with From, To, Reason, BudgetSeconds of the transition,
	// Result "ok", "failed", "timeout" or "skipped", and Error): the
	// handler's name, a command's exit code, the start of its output (or
	// of the HTTP answer's body) and how long it ran.
	Handler  string        `json:"-"`
	ExitCode *int          `json:"-"`
	Output   string        `json:"-"`
	Duration time.Duration `json:"-"`
}

// MarshalJSON gives each type exactly its documented keys.
func (e Event) MarshalJSON() ([]byte, error) {
	t := e.Time.UTC().Format(time.RFC3339Nano)
	switch e.Type {
	case TypeState:
		v := struct {
			Type          string  `json:"type"`
			Time          string  `json:"time"`
			Agent         string  `json:"agent"`
			Process       string  `json:"process"`
			From          string  `json:"from"`
			To            string  `json:"to"`
			Reason        string  `json:"reason"`
			BudgetSeconds float64 `json:"budgetSeconds"`
			Diagnosis     string  `json:"diagnosis,omitempty"`
		}{e.Type, t, e.Agent, e.Process, e.From.String(), e.To.String(), e.Reason, e.BudgetSeconds, e.Diagnosis}
		return json.Marshal(v)
	case TypeAction:
		v := struct {
			Type       string `json:"type"`
			Time       string `json:"time"`
			Agent      string `json:"agent"`
			Process    string `json:"process"`
			Action     string `json:"action"`
			By         string `json:"by"`
			Generation int64  `json:"generation"`
			Result     string `json:"result"`
			Error      string `json:"error"`
			Manual     bool   `json:"manual,omitempty"`
		}{e.Type, t, e.Agent, e.Process, e.Action, e.By, e.Generation, e.Result, e.Error, e.Manual}
		return json.Marshal(v)
	case TypeHandler:
		v := struct {
			Type            string  `json:"type"`
			Time            string  `json:"time"`
			Agent           string  `json:"agent"`
			Process         string  `json:"process"`
			Handler         string  `json:"handler"`
			From            string  `json:"from"`
			To              string  `json:"to"`
			Reason          string  `json:"reason"`
			BudgetSeconds   float64 `json:"budgetSeconds"`
			Result          string  `json:"result"`
			ExitCode        *int    `json:"exitCode"`
			Output          string  `json:"output"`
			Error           string  `json:"error"`
			DurationSeconds float64 `json:"durationSeconds"`
		}{e.Type, t, e.Agent, e.Process, e.Handler, e.From.String(), e.To.String(), e.Reason, e.BudgetSeconds,
			e.Result, e.ExitCode, e.Output, e.Error, e.Duration.Seconds()}
		return json.Marshal(v)
	case TypeAgent:
		v := struct {
			Type    string          `json:"type"`
			Time    string          `json:"time"`
			Agent   string          `json:"agent"`
			Process string          `json:"process"`
			Event   json.RawMessage `json:"event"`
		}{e.Type, t, e.Agent, e.Process, e.AgentEvent}
		return json.Marshal(v)
	default:
		v := struct {
			Type    string `json:"type"`
			Time    string `json:"time"`
			Agent   string `json:"agent"`
			Process string `json:"process"`
			Reason  string `json:"reason"`
		}{e.Type, t, e.Agent, e.Process, e.Reason}
		return json.Marshal(v)
	}
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (e *Event) UnmarshalJSON(b []byte) error {
	var v struct {
		Type          string          `json:"type"`
		Time          time.Time       `json:"time"`
		Agent         string          `json:"agent"`
		Process       string          `json:"process"`
		From          string          `json:"from"`
		To            string          `json:"to"`
		Reason        string          `json:"reason"`
		BudgetSeconds float64         `json:"budgetSeconds"`
		Diagnosis     string          `json:"diagnosis"`
		Action        string          `json:"action"`
		By            string          `json:"by"`
		Manual        bool            `json:"manual"`
		Generation    int64           `json:"generation"`
		Result        string          `json:"result"`
		Error         string          `json:"error"`
		Event         json.RawMessage `json:"event"`
		Handler       string          `json:"handler"`
		ExitCode      *int            `json:"exitCode"`
		Output        string          `json:"output"`
		Duration      float64         `json:"durationSeconds"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = Event{Type: v.Type, Time: v.Time, Agent: v.Agent, Process: v.Process, Reason: v.Reason,
		BudgetSeconds: v.BudgetSeconds, Diagnosis: v.Diagnosis, Action: v.Action, By: v.By, Manual: v.Manual,
		Generation: v.Generation, Result: v.Result, Error: v.Error, AgentEvent: v.Event,
		Handler: v.Handler, ExitCode: v.ExitCode, Output: v.Output, Duration: time.Duration(v.Duration * float64(time.Second))}
	if v.Type == TypeState || v.Type == TypeHandler {
		e.From, _ = state.Parse(v.From)
		e.To, _ = state.Parse(v.To)
	}
	return nil
}

// Observation is one poll of one agent as judged.
type Observation struct {
	// Time is when the poll was sent; Answered whether any answer came.
	Time          time.Time            `json:"time"`
	Answered      bool                 `json:"answered"`
	Agent         string               `json:"agent"`
	State         state.State          `json:"state"`
	Reason        string               `json:"reason"`
	RTT           time.Duration        `json:"rtt"`
	BudgetSeconds float64              `json:"budgetSeconds"`
	Role          string               `json:"role,omitempty"`
	Cluster       string               `json:"cluster,omitempty"`
	Processes     []ProcessObservation `json:"processes,omitempty"`

	// A record older than a few minutes stands for a run of polls (see
	// runs.go): Until is its last poll, Polls how many, RTT the last RTT
	// and RTTMin/RTTMax its lowest and highest. All are absent for a
	// single poll.
	Until  time.Time     `json:"until,omitzero"`
	Polls  int           `json:"polls,omitempty"`
	RTTMin time.Duration `json:"rttMin,omitempty"`
	RTTMax time.Duration `json:"rttMax,omitempty"`
}

// ProcessObservation is one process in an Observation.
type ProcessObservation struct {
	Name       string      `json:"name"`
	State      state.State `json:"state"`
	Reason     string      `json:"reason"`
	Generation int64       `json:"generation"`
	LagSeconds *float64    `json:"lagSeconds,omitempty"`
	// AutoRestartSuspended: the flap guard had stopped automatic restarts.
	// Observations written before it was recorded read as false.
	AutoRestartSuspended bool `json:"autoRestartSuspended,omitempty"`
	// LagMin and LagMax: the lowest and highest lag of a run of polls
	// (LagSeconds is the last); absent for a single poll.
	LagMin *float64 `json:"lagMin,omitempty"`
	LagMax *float64 `json:"lagMax,omitempty"`
}

// Silence is a past period without answer, with what ended it; measured mode
// learns the allowances from these.
type Silence struct {
	Agent    string        `json:"agent"`
	Cluster  string        `json:"cluster,omitempty"`
	Kind     string        `json:"kind"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration"`
}

// Batch is what one poll writes, committed together.
type Batch struct {
	Observations []Observation
	Events       []Event
	Silences     []Silence
	// Agents are the engine's resume records, by agent name (opaque here).
	Agents map[string][]byte
	// AgentsCanWait: the resume records only refresh what changes at every
	// poll (a quiet agent's periodic record); without events in the batch,
	// they may be written up to 10 minutes late (see the package doc).
	AgentsCanWait bool
}
