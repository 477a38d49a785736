package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/response"
)

var t0 = time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)

// fakeAgent is a scripted agent with one process, "cdp".
type fakeAgent struct {
	silent     bool
	httpStatus int    // answer with this error status
	raw        []byte // answer this body instead of a status
	startedAt  time.Time
	role       string // "" = standalone
	cluster    string
	state      string // of cdp
	generation int64
	lag        *float64
	// protState and protMessage are the replicator's state and message (with lag).
	protState, protMessage *string
	// restartFails makes restarts fail with HTTP 500.
	restartFails bool
	// crashAfterRestart leaves cdp crashed after each (successful) restart.
	crashAfterRestart bool
	restarts, stops   []agentclient.ControlRequest
	// polls counts the status requests that reached it.
	polls int
}

type fakeClient struct {
	mu       sync.Mutex
	clk      clock.Clock
	agents   map[string]*fakeAgent
	diagnose int
}

var _ agentclient.API = (*fakeClient)(nil)

func newFake(clk clock.Clock) *fakeClient {
	return &fakeClient{clk: clk, agents: map[string]*fakeAgent{}}
}

func (f *fakeClient) add(name string, a *fakeAgent) *fakeAgent {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.state == "" {
		a.state = "running"
	}
	if a.generation == 0 {
		a.generation = 1
	}
	if a.startedAt.IsZero() {
		a.startedAt = t0.Add(-time.Hour)
	}
	f.agents[name] = a
	return a
}

func (f *fakeClient) set(name string, edit func(a *fakeAgent)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	edit(f.agents[name])
}

func (f *fakeClient) Healthz(context.Context, agentclient.Agent) (agentclient.Health, error) {
	return agentclient.Health{}, nil
}

func silentErr(a agentclient.Agent) error {
	return &agentclient.Error{Fault: agentclient.FaultNetwork, Agent: a.Name, URL: a.URL, Detail: "no answer (connection refused): is the agent running and the host and port reachable?"}
}

func (f *fakeClient) Status(_ context.Context, ag agentclient.Agent) (agentclient.Answer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.agents[ag.Name]
	if a != nil {
		a.polls++
	}
	switch {
	case a == nil || a.silent:
		return agentclient.Answer{}, silentErr(ag)
	case a.httpStatus != 0:
		return agentclient.Answer{StatusCode: a.httpStatus}, &agentclient.Error{Fault: agentclient.FaultAgent, Agent: ag.Name, StatusCode: a.httpStatus,
			Detail: fmt.Sprintf("HTTP %d Internal Server Error: disk full", a.httpStatus)}
	case a.raw != nil:
		return agentclient.Answer{StatusCode: 200, Body: a.raw, RTT: time.Millisecond}, nil
	}
	expected := a.role == "" || a.role == "active"
	p := response.Process{Name: "cdp", Kind: "command", State: a.state, Expected: expected, Generation: a.generation}
	if a.lag != nil {
		p.Protection = &response.Protection{LagSeconds: a.lag, State: a.protState, Message: a.protMessage}
	}
	if a.state == "running" {
		pid := int64(1000 + a.generation)
		p.PID = &pid
	}
	st := response.Status{APIVersion: "v1", Time: f.clk.Now(), Agent: response.AgentInfo{ID: "id-" + ag.Name, Version: "0.1.0", Hostname: ag.Name, StartedAt: a.startedAt},
		Processes: []response.Process{p}}
	if a.role != "" {
		st.Cluster = &response.Cluster{Name: a.cluster, Node: ag.Name, Role: a.role}
	}
	body, _ := json.Marshal(st)
	return agentclient.Answer{StatusCode: 200, Body: body, RTT: 2 * time.Millisecond}, nil
}

func (f *fakeClient) Restart(_ context.Context, ag agentclient.Agent, process string, req agentclient.ControlRequest) (agentclient.StartResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.agents[ag.Name]
	if a.silent {
		return agentclient.StartResult{}, silentErr(ag)
	}
	if process != "cdp" {
		return agentclient.StartResult{}, &agentclient.Error{Fault: agentclient.FaultAgent, Agent: ag.Name, StatusCode: 404, Method: "POST",
			URL: ag.URL + "/v1/processes/" + process + "/restart", Detail: fmt.Sprintf("HTTP 404 Not Found: no process named %q", process)}
	}
	if req.IfGeneration != nil && *req.IfGeneration != a.generation {
		return agentclient.StartResult{}, &agentclient.StaleGenerationError{Agent: ag.Name, Process: process, Expected: *req.IfGeneration, Current: a.generation}
	}
	if a.restartFails {
		return agentclient.StartResult{}, &agentclient.Error{Fault: agentclient.FaultAgent, Agent: ag.Name, StatusCode: 500, Method: "POST",
			URL: ag.URL + "/v1/processes/cdp/restart", Detail: "HTTP 500 Internal Server Error: spawn ENOENT"}
	}
	a.restarts = append(a.restarts, req)
	a.generation++
	a.state = "running"
	if a.crashAfterRestart {
		a.state = "crashed"
	}
	return agentclient.StartResult{Generation: a.generation}, nil
}

func (f *fakeClient) Stop(_ context.Context, ag agentclient.Agent, process string, req agentclient.ControlRequest) (agentclient.StopResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.agents[ag.Name]
	if req.IfGeneration != nil && *req.IfGeneration != a.generation {
		return agentclient.StopResult{}, &agentclient.StaleGenerationError{Agent: ag.Name, Process: process, Expected: *req.IfGeneration, Current: a.generation}
	}
	a.stops = append(a.stops, req)
	a.state = "stopped"
	return agentclient.StopResult{Generation: a.generation, State: "stopped"}, nil
}

func (f *fakeClient) Events(context.Context, agentclient.Agent, int64, int) (agentclient.Events, error) {
	return agentclient.Events{}, nil
}

func (f *fakeClient) Diagnose(context.Context, agentclient.Agent) agentclient.Diagnosis {
	f.mu.Lock()
	f.diagnose++
	f.mu.Unlock()
	return agentclient.Diagnosis{DNS: agentclient.Step{Done: true, OK: true, Detail: "127.0.0.1"}, TCP: agentclient.Step{Done: true, Detail: "connect: connection refused"}}
}

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

// harness is an engine on a fake clock and fake agents.
type harness struct {
	t      *testing.T
	clk    *clock.Fake
	client *fakeClient
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
	h.client = newFake(h.clk)
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
