package engine

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/state"
)

func judged(e *Engine) map[string]bool {
	out := map[string]bool{}
	for _, a := range e.Snapshot().Agents {
		out[a.Name] = a.Judged
	}
	return out
}

func roundDone(e *Engine) bool {
	select {
	case <-e.FirstRound():
		return true
	default:
		return false
	}
}

// The first round is complete once every agent has been judged by this
// engine; a state restored from the history does not count.
func TestFirstRound(t *testing.T) {
	hist := newMemHistory()
	cfg := fleetOf(policy(nil), fleet.Agent{Name: "a"}, fleet.Agent{Name: "b"})
	before := newHarness(t, cfg, hist)
	before.client.Add("a", agentclienttest.Script{})
	before.client.Add("b", agentclienttest.Script{})
	before.poll("")
	if !roundDone(before.eng) {
		t.Fatal("every agent was polled, but the first round is not complete")
	}

	// A restart of the engine on the same history: the states are back, not judged.
	h := newHarness(t, cfg, hist)
	h.client.Add("a", agentclienttest.Script{})
	h.client.Add("b", agentclienttest.Script{Silent: true})
	if s, _ := h.eng.Snapshot().Agent("a"); s.State != state.OK || s.Judged {
		t.Fatalf("restored a = %s judged %v, want OK not judged", s.State, s.Judged)
	}
	if roundDone(h.eng) {
		t.Fatal("the first round is complete before any poll")
	}

	h.poll("a")
	if got := judged(h.eng); !got["a"] || got["b"] || roundDone(h.eng) {
		t.Fatalf("after polling a: judged %v, round done %v", got, roundDone(h.eng))
	}

	// The wait is bounded on the engine's clock.
	waited := make(chan bool)
	go func() { waited <- h.eng.WaitFirstRound(context.Background(), 5*time.Second) }()
	h.clk.BlockUntil(1)
	h.clk.Advance(5 * time.Second)
	if <-waited {
		t.Fatal("WaitFirstRound reported a complete round while b was not polled")
	}

	// ... and by the caller's context.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { waited <- h.eng.WaitFirstRound(ctx, time.Hour) }()
	h.clk.BlockUntil(1)
	cancel()
	if <-waited {
		t.Fatal("WaitFirstRound reported a complete round after its context ended")
	}

	// A silent agent is judged too (GRACE): the round completes and a
	// waiter returns at once.
	go func() { waited <- h.eng.WaitFirstRound(context.Background(), time.Hour) }()
	h.clk.BlockUntil(1)
	if s := h.poll("b"); s.State != state.Grace || !s.Judged {
		t.Fatalf("b = %s judged %v", s.State, s.Judged)
	}
	if !<-waited || !h.eng.WaitFirstRound(context.Background(), 0) {
		t.Fatal("the first round did not complete after every agent was polled")
	}
}

// Agents added before the round completes are waited for; a removed one is
// not, and one added later does not reopen the round.
func TestFirstRoundFollowsReconfigure(t *testing.T) {
	h := newHarness(t, fleetOf(policy(nil), fleet.Agent{Name: "a"}, fleet.Agent{Name: "b"}), nil)
	for _, name := range []string{"a", "b", "c", "d"} {
		h.client.Add(name, agentclienttest.Script{})
	}
	h.poll("a")
	if err := h.eng.Reconfigure(fleetOf(policy(nil), fleet.Agent{Name: "a"}, fleet.Agent{Name: "b"}, fleet.Agent{Name: "c"})); err != nil {
		t.Fatal(err)
	}
	h.poll("b")
	if roundDone(h.eng) {
		t.Fatal("the round completed without the added agent c")
	}
	// c leaves before it is polled: everyone left is judged.
	if err := h.eng.Reconfigure(fleetOf(policy(nil), fleet.Agent{Name: "a"}, fleet.Agent{Name: "b"})); err != nil {
		t.Fatal(err)
	}
	if !roundDone(h.eng) {
		t.Fatal("the round did not complete when the only agent not judged was removed")
	}
	if err := h.eng.Reconfigure(fleetOf(policy(nil), fleet.Agent{Name: "a"}, fleet.Agent{Name: "b"}, fleet.Agent{Name: "d"})); err != nil {
		t.Fatal(err)
	}
	if got := judged(h.eng); !roundDone(h.eng) || got["d"] {
		t.Fatalf("after adding d: round done %v, judged %v", roundDone(h.eng), got)
	}
}
