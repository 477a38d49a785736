package engine

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
)

var t0 = time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)

// memHistory is an in-memory History.
type memHistory struct {
	mu       sync.Mutex
	events   []Event
	obs      []history.Observation
	agents   map[string][]byte
	silences []history.Silence
}

func newMemHistory() *memHistory { return &memHistory{agents: map[string][]byte{}} }

func (m *memHistory) Append(b history.Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, b.Events...)
	m.obs = append(m.obs, b.Observations...)
	m.silences = append(m.silences, b.Silences...)
	for k, v := range b.Agents {
		m.agents[k] = v
	}
	return nil
}

func (m *memHistory) Agents() (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range m.agents {
		out[k] = v
	}
	return out, nil
}

func (m *memHistory) Silences() ([]history.Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]history.Silence(nil), m.silences...), nil
}

func (m *memHistory) Prune(time.Time) error { return nil }

func (m *memHistory) LastAnswers() (map[string]time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]time.Time{}
	for _, o := range m.obs {
		if o.Answered && o.Time.After(out[o.Agent]) {
			out[o.Agent] = o.Time
		}
	}
	return out, nil
}

// harness is an engine on a fake clock and fake agents (package agentclienttest).
type harness struct {
	t      *testing.T
	clk    *clock.Fake
	client *agentclienttest.Fake
	hist   *memHistory
	eng    *Engine
	mu     sync.Mutex
	events []Event
}

func policy(edit func(p *fleet.Policy)) fleet.Policy {
	p := fleet.DefaultPolicy()
	// Small, round numbers: budget = 1 + 1 + max(...) seconds.
	p.Budget.ResponseTime, p.Budget.Processing = time.Second, time.Second
	p.Budget.Failover, p.Budget.Restart, p.Budget.NetworkInterruption, p.Budget.AppErrorRecovery = 45*time.Second, 30*time.Second, 10*time.Second, 20*time.Second
	p.AutoRestart.BackoffInitial, p.AutoRestart.BackoffMax = 5*time.Second, 20*time.Second
	if edit != nil {
		edit(&p)
	}
	return p
}

func fleetOf(p fleet.Policy, agents ...fleet.Agent) fleet.Config {
	for i := range agents {
		if agents[i].URL == "" {
			agents[i].URL = "http://127.0.0.1:7070/" + agents[i].Name
		}
		agents[i].Policy = p
		agents[i].ControlToken = "control"
	}
	return fleet.Config{PollInterval: 10 * time.Second, Defaults: p, Agents: agents}
}

func newHarness(t *testing.T, cfg fleet.Config, hist *memHistory) *harness {
	t.Helper()
	h := &harness{t: t, clk: clock.NewFake(t0), hist: hist}
	h.client = agentclienttest.New(h.clk)
	var err error
	opts := Options{Clock: h.clk, Client: h.client, Sink: SinkFunc(func(e Event) {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
	})}
	if hist != nil {
		opts.History = hist
	}
	h.eng, err = New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) poll(name string) AgentSnapshot {
	h.t.Helper()
	if err := h.eng.PollNow(context.Background(), name); err != nil {
		h.t.Fatal(err)
	}
	a, _ := h.eng.Snapshot().Agent(name)
	return a
}

// take returns and forgets the events so far, as JSON lines.
func (h *harness) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		b, _ := json.Marshal(e)
		out = append(out, string(b))
	}
	h.events = nil
	return out
}
