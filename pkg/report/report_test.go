package report

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// The vectors the agent's side (agent/test/report.test.ts) checks too: one
// signing rule in both languages.
type vector struct {
	Token string `json:"token"`
	Text  string `json:"text"`
	MAC   string `json:"mac"`
}

func TestVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(raw, &vs); err != nil || len(vs) < 3 {
		t.Fatalf("vectors: %v (%d)", err, len(vs))
	}
	for _, v := range vs {
		if got := Sign(v.Token, v.Text); got != v.MAC {
			t.Errorf("Sign(%q, %q) = %s, want %s", v.Token, v.Text, got, v.MAC)
		}
	}
}

func TestOpen(t *testing.T) {
	const token = "report-token-0123456789"
	at := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)
	raw, err := Make(Report{Agent: "nat", Seq: 7, SentAt: at, Reason: "change", Status: json.RawMessage(`{"apiVersion":"v1"}`)}, token)
	if err != nil {
		t.Fatal(err)
	}
	env, name, err := Peek(raw)
	if err != nil || name != "nat" {
		t.Fatalf("Peek: %q %v", name, err)
	}
	r, err := Open(env, token)
	if err != nil || r.Seq != 7 || !r.SentAt.Equal(at) || string(r.Status) != `{"apiVersion":"v1"}` {
		t.Fatalf("Open: %+v %v", r, err)
	}
	if _, err := Open(env, token+"x"); !errors.Is(err, ErrSignature) {
		t.Errorf("another token: %v", err)
	}
	tampered := env
	tampered.Report = strings.Replace(env.Report, `"seq":7`, `"seq":8`, 1)
	if _, err := Open(tampered, token); !errors.Is(err, ErrSignature) {
		t.Errorf("a changed report: %v", err)
	}
	for _, bad := range []string{``, `[]`, `{"report":"x"}`, `{"report":"{}","mac":"00"}`, `{"report":"{\"agent\":\"a\"","mac":"00"}`} {
		if _, _, err := Peek([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Peek(%q): %v", bad, err)
		}
	}
	if _, _, err := Peek(make([]byte, MaxBytes+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("too large: %v", err)
	}
	for _, r := range []Report{{Agent: "nat", Seq: 0, SentAt: at, Status: json.RawMessage(`{}`)}, {Agent: "nat", Seq: 1, Status: json.RawMessage(`{}`)}, {Agent: "nat", Seq: 1, SentAt: at}} {
		raw, _ := Make(r, token)
		env, _, _ := Peek(raw)
		if _, err := Open(env, token); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v: %v", r, err)
		}
	}
	sealed, err := Seal(Answer{Agent: "nat", Seq: 7}, token)
	if err != nil {
		t.Fatal(err)
	}
	var a Envelope
	_ = json.Unmarshal(sealed, &a)
	if a.Answer != `{"agent":"nat","seq":7,"actions":[]}` || a.MAC != Sign(token, a.Answer) {
		t.Errorf("Seal: %s", sealed)
	}
}
