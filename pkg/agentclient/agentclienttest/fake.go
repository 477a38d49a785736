// Package agentclienttest provides Fake, an agentclient.API of scripted
// agents for tests that need no network: the engine's, the datasource's.
//
// Each agent supervises one process, "cdp". A test adds agents with a
// Script, changes the script between polls (Set), and reads what was asked
// of them (StatusCalls, Polls, Restarts, Stops, Diagnoses). An agent that
// was never added is unreachable, like a silent one.
package agentclienttest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/response"
)

// Process is the name of the one process every fake agent supervises.
const Process = "cdp"

// Script is what one fake agent answers. Add fills in the defaults of its
// zero fields: a standalone agent started an hour ago, answering in 2 ms,
// whose process runs at generation 1.
type Script struct {
	// Silent: no answer at all; every call is a network error.
	Silent bool
	// Err, when set, is the error of every call (a configuration fault, say).
	Err error
	// Hold, when set, makes a status poll wait until it is closed (or the
	// poll's context ends) before it is answered.
	Hold <-chan struct{}
	// HTTPStatus makes a status poll answer this error status.
	HTTPStatus int
	// Body, when set, is the status answer as is, instead of one built
	// from the fields below.
	Body []byte
	// RTT is the round trip of every answer (default 2 ms).
	RTT time.Duration

	// StartedAt is when the agent started (default: an hour before Add).
	StartedAt time.Time
	// Role is the agent's role in Cluster; "" is a standalone agent.
	Role, Cluster string
	// State is the process's state (default "running").
	State string
	// Generation is the process's generation (default 1); a restart adds one.
	Generation int64
	// Lag, ProtState and ProtMessage are the replicator's (Lag nil: none).
	Lag                    *float64
	ProtState, ProtMessage *string

	// RestartFails makes restarts fail with HTTP 500.
	RestartFails bool
	// CrashAfterRestart leaves the process crashed after each restart.
	CrashAfterRestart bool
	// RestartAnswer, when set, is the answer to a restart instead of the
	// new generation alone.
	RestartAnswer *agentclient.StartResult
}

// Fake is a scripted agentclient.API, safe for concurrent use.
type Fake struct {
	clk clock.Clock

	mu          sync.Mutex
	agents      map[string]*Script
	statusCalls int
	polls       map[string]int
	restarts    map[string][]agentclient.ControlRequest
	stops       map[string][]agentclient.ControlRequest
	diagnoses   int
}

var _ agentclient.API = (*Fake)(nil)

// New returns a Fake without agents whose status answers are dated by clk
// (nil: the real clock).
func New(clk clock.Clock) *Fake {
	if clk == nil {
		clk = clock.Real{}
	}
	return &Fake{clk: clk, agents: map[string]*Script{}, polls: map[string]int{},
		restarts: map[string][]agentclient.ControlRequest{}, stops: map[string][]agentclient.ControlRequest{}}
}

// Add adds (or replaces) the agent name with the script s and its defaults.
func (f *Fake) Add(name string, s Script) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.State == "" {
		s.State = "running"
	}
	if s.Generation == 0 {
		s.Generation = 1
	}
	if s.RTT == 0 {
		s.RTT = 2 * time.Millisecond
	}
	if s.StartedAt.IsZero() {
		s.StartedAt = f.clk.Now().Add(-time.Hour)
	}
	f.agents[name] = &s
}

// Set changes the script of the agent name, which must have been added.
func (f *Fake) Set(name string, edit func(s *Script)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	edit(f.agents[name])
}

// StatusCalls is the number of status polls so far, of any agent.
func (f *Fake) StatusCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusCalls
}

// Polls is the number of status polls of the agent name so far.
func (f *Fake) Polls(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls[name]
}

// Restarts are the requests of the restarts the agent name carried out.
func (f *Fake) Restarts(name string) []agentclient.ControlRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]agentclient.ControlRequest(nil), f.restarts[name]...)
}

// Stops are the requests of the stops the agent name carried out.
func (f *Fake) Stops(name string) []agentclient.ControlRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]agentclient.ControlRequest(nil), f.stops[name]...)
}

// Diagnoses is the number of Diagnose calls so far.
func (f *Fake) Diagnoses() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.diagnoses
}

// Unreachable is the error of a call to a silent agent, as the HTTP client
// words it.
func Unreachable(a agentclient.Agent, method, path string) *agentclient.Error {
	if method == http.MethodGet {
		method = ""
	}
	return &agentclient.Error{Fault: agentclient.FaultNetwork, Agent: a.Name, Method: method, URL: a.URL + path,
		Detail: "no answer (connection refused): is the agent running and the host and port reachable?"}
}

// reachable returns the script of an agent that answers, or the error of
// the call; f.mu must be held.
func (f *Fake) reachable(a agentclient.Agent, method, path string) (*Script, error) {
	s := f.agents[a.Name]
	switch {
	case s != nil && s.Err != nil:
		return nil, s.Err
	case s == nil || s.Silent:
		return nil, Unreachable(a, method, path)
	}
	return s, nil
}

// Healthz implements agentclient.HealthChecker.
func (f *Fake) Healthz(_ context.Context, a agentclient.Agent) (agentclient.Health, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.reachable(a, http.MethodGet, "/healthz")
	if err != nil {
		return agentclient.Health{}, err
	}
	return agentclient.Health{StatusCode: 200, Status: "ok", RTT: s.RTT}, nil
}

// Status implements agentclient.API: the script's answer, as JSON.
func (f *Fake) Status(ctx context.Context, a agentclient.Agent) (agentclient.Answer, error) {
	f.mu.Lock()
	f.statusCalls++
	f.polls[a.Name]++
	var hold <-chan struct{}
	if s := f.agents[a.Name]; s != nil {
		hold = s.Hold
	}
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.reachable(a, http.MethodGet, "/v1/status")
	switch {
	case err != nil:
		return agentclient.Answer{}, err
	case s.HTTPStatus != 0:
		return agentclient.Answer{StatusCode: s.HTTPStatus, RTT: s.RTT}, &agentclient.Error{Fault: agentclient.FaultAgent, Agent: a.Name, URL: a.URL + "/v1/status",
			StatusCode: s.HTTPStatus, Detail: fmt.Sprintf("HTTP %d %s: disk full", s.HTTPStatus, http.StatusText(s.HTTPStatus))}
	case s.Body != nil:
		return agentclient.Answer{StatusCode: 200, Body: s.Body, RTT: s.RTT}, nil
	}
	body, _ := json.Marshal(f.status(a.Name, s))
	return agentclient.Answer{StatusCode: 200, Body: body, RTT: s.RTT}, nil
}

// status builds the answer of the agent name from its script.
func (f *Fake) status(name string, s *Script) response.Status {
	expected := s.Role == "" || s.Role == "active"
	p := response.Process{Name: Process, Kind: "command", State: s.State, Expected: expected, Generation: s.Generation}
	if s.Lag != nil {
		p.Protection = &response.Protection{LagSeconds: s.Lag, State: s.ProtState, Message: s.ProtMessage}
	}
	if s.State == "running" {
		pid := 1000 + s.Generation
		p.PID = &pid
	}
	st := response.Status{APIVersion: "v1", Time: f.clk.Now(),
		Agent:     response.AgentInfo{ID: "id-" + name, Version: "0.1.0", Hostname: name, StartedAt: s.StartedAt},
		Processes: []response.Process{p}}
	if s.Role != "" {
		st.Cluster = &response.Cluster{Name: s.Cluster, Node: name, Role: s.Role}
	}
	return st
}

// control checks a restart or stop of process; f.mu must be held.
func (f *Fake) control(a agentclient.Agent, process, action string, req agentclient.ControlRequest) (*Script, error) {
	path := "/v1/processes/" + process + "/" + action
	s, err := f.reachable(a, http.MethodPost, path)
	if err != nil {
		return nil, err
	}
	if process != Process {
		return nil, &agentclient.Error{Fault: agentclient.FaultAgent, Agent: a.Name, StatusCode: 404, Method: http.MethodPost,
			URL: a.URL + path, Code: "unknown_process", Detail: fmt.Sprintf("HTTP 404 Not Found: no process named %q", process)}
	}
	if req.IfGeneration != nil && *req.IfGeneration != s.Generation {
		return nil, &agentclient.StaleGenerationError{Agent: a.Name, Process: process, Expected: *req.IfGeneration, Current: s.Generation}
	}
	return s, nil
}

// Restart implements agentclient.API.
func (f *Fake) Restart(_ context.Context, a agentclient.Agent, process string, req agentclient.ControlRequest) (agentclient.StartResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.control(a, process, "restart", req)
	if err != nil {
		return agentclient.StartResult{}, err
	}
	if s.RestartFails {
		return agentclient.StartResult{}, &agentclient.Error{Fault: agentclient.FaultAgent, Agent: a.Name, StatusCode: 500, Method: http.MethodPost,
			URL: a.URL + "/v1/processes/" + process + "/restart", Detail: "HTTP 500 Internal Server Error: spawn ENOENT"}
	}
	f.restarts[a.Name] = append(f.restarts[a.Name], req)
	s.Generation++
	s.State = "running"
	if s.CrashAfterRestart {
		s.State = "crashed"
	}
	if s.RestartAnswer != nil {
		return *s.RestartAnswer, nil
	}
	return agentclient.StartResult{Generation: s.Generation}, nil
}

// Stop implements agentclient.API.
func (f *Fake) Stop(_ context.Context, a agentclient.Agent, process string, req agentclient.ControlRequest) (agentclient.StopResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.control(a, process, "stop", req)
	if err != nil {
		return agentclient.StopResult{}, err
	}
	f.stops[a.Name] = append(f.stops[a.Name], req)
	s.State = "stopped"
	return agentclient.StopResult{Generation: s.Generation, State: "stopped"}, nil
}

// Events implements agentclient.API: an agent's log is always empty.
func (f *Fake) Events(_ context.Context, a agentclient.Agent, since int64, _ int) (agentclient.Events, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.reachable(a, http.MethodGet, "/v1/events"); err != nil {
		return agentclient.Events{}, err
	}
	return agentclient.Events{Next: since}, nil
}

// Diagnose implements agentclient.API: the name resolves, the connection
// is refused.
func (f *Fake) Diagnose(context.Context, agentclient.Agent) agentclient.Diagnosis {
	f.mu.Lock()
	f.diagnoses++
	f.mu.Unlock()
	return agentclient.Diagnosis{DNS: agentclient.Step{Done: true, OK: true, Detail: "127.0.0.1"},
		TCP: agentclient.Step{Done: true, Detail: "connect: connection refused"}}
}
