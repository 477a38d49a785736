// Package report is the wire format of pushed reports: an agent that the
// monitor cannot reach (NAT, a firewall, a DMZ) sends its status document
// itself, signed with its own report token, and reads restart requests from
// the signed answer.
//
// A report is a JSON envelope {"report": TEXT, "mac": HEX} where TEXT is the
// JSON text of {"agent", "seq", "sentAt", "reason", "dropped", "status"}
// (status: the body of the agent's GET /v1/status) and HEX the HMAC-SHA256
// of TEXT's bytes under the report token. The answer is {"answer": TEXT,
// "mac": HEX} the same way, TEXT being {"agent", "seq", "actions": [...]}.
// Signing the text as sent needs no canonical JSON, and the token itself
// never travels. The agent's src/report.ts is the other side; both are
// tested against the same vectors (testdata/vectors.json).
package report

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxBytes bounds one report's envelope.
const MaxBytes = 1 << 20

// Envelope is a signed text.
type Envelope struct {
	Report string `json:"report,omitempty"`
	Answer string `json:"answer,omitempty"`
	MAC    string `json:"mac"`
}

// Report is what an agent says in one report.
type Report struct {
	// Agent is the agent's name in the monitor's fleet.
	Agent string `json:"agent"`
	// Seq grows at every report the agent makes, across its restarts; the
	// monitor refuses one not above the last it accepted (a replay).
	Seq int64 `json:"seq"`
	// SentAt is when the agent made it.
	SentAt time.Time `json:"sentAt"`
	// Reason is "schedule", "change" (a process changed state) or
	// "backlog" (a change kept while the monitor could not be reached).
	Reason string `json:"reason"`
	// Dropped counts changes the agent's bounded backlog let go.
	Dropped int64 `json:"dropped"`
	// Status is the agent's status document, as GET /v1/status gives it.
	Status json.RawMessage `json:"status"`
}

// Request asks the agent to restart (or stop) one process, guarded by the
// generation the monitor saw.
type Request struct {
	// Action is "restart" or "stop".
	Action       string `json:"action"`
	Process      string `json:"process"`
	IfGeneration int64  `json:"ifGeneration"`
	Reason       string `json:"reason"`
	RequestedBy  string `json:"requestedBy"`
}

// Answer is the monitor's answer to an accepted report.
type Answer struct {
	Agent   string    `json:"agent"`
	Seq     int64     `json:"seq"`
	Actions []Request `json:"actions"`
}

// Sign returns the HMAC-SHA256 of text under token, in hex.
func Sign(token, text string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(text))
	return hex.EncodeToString(m.Sum(nil))
}

// Errors a report is refused with.
var (
	ErrMalformed = errors.New("malformed report")
	ErrSignature = errors.New("bad signature")
)

// Peek reads an envelope and the agent it names, without trusting it: the
// caller looks up that agent's token and then calls Open.
func Peek(raw []byte) (Envelope, string, error) {
	if len(raw) > MaxBytes {
		return Envelope{}, "", fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(raw), MaxBytes)
	}
	var env Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return Envelope{}, "", fmt.Errorf("%w: the body is not a JSON envelope {report, mac}: %v", ErrMalformed, err)
	}
	if env.Report == "" || env.MAC == "" {
		return Envelope{}, "", fmt.Errorf("%w: report and mac are required", ErrMalformed)
	}
	var who struct {
		Agent string `json:"agent"`
	}
	if err := json.Unmarshal([]byte(env.Report), &who); err != nil || who.Agent == "" {
		return Envelope{}, "", fmt.Errorf("%w: the report names no agent", ErrMalformed)
	}
	return env, who.Agent, nil
}

// Open checks an envelope's signature under token and reads its report.
func Open(env Envelope, token string) (Report, error) {
	want, err := hex.DecodeString(Sign(token, env.Report))
	got, derr := hex.DecodeString(env.MAC)
	if err != nil || derr != nil || !hmac.Equal(want, got) {
		return Report{}, ErrSignature
	}
	var r Report
	if err := json.Unmarshal([]byte(env.Report), &r); err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case r.Seq <= 0:
		return Report{}, fmt.Errorf("%w: seq must be positive", ErrMalformed)
	case r.SentAt.IsZero():
		return Report{}, fmt.Errorf("%w: sentAt is required", ErrMalformed)
	case len(r.Status) == 0 || r.Status[0] != '{':
		return Report{}, fmt.Errorf("%w: status is required, a JSON object", ErrMalformed)
	}
	return r, nil
}

// Seal signs an answer under token.
func Seal(a Answer, token string) ([]byte, error) {
	if a.Actions == nil {
		a.Actions = []Request{}
	}
	text, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	return json.Marshal(Envelope{Answer: string(text), MAC: Sign(token, string(text))})
}

// Make signs a report under token (the Go side of an agent, for tests and
// benchmarks).
func Make(r Report, token string) ([]byte, error) {
	text, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(Envelope{Report: string(text), MAC: Sign(token, string(text))})
}
