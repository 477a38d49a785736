// Package poller asks agents for their status: one poll with its own timeout
// under a fleet-wide concurrency limit, and a scheduler that repeats it for
// every agent every interval with jitter. A slow or dead agent only ever
// holds up its own loop and one slot of the limit, never the other agents.
package poller

import (
	"context"
	"errors"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/clock"
)

// DefaultConcurrency is how many polls may be in flight at once.
const DefaultConcurrency = 256

// MinTimeout keeps a zero response-time budget from failing every poll.
const MinTimeout = 100 * time.Millisecond

// Target is one agent to poll.
type Target struct {
	Agent agentclient.Agent
	// Timeout bounds the request; the engine derives it from the agent's
	// expected response time.
	Timeout time.Duration
}

// Result is one poll.
type Result struct {
	Agent string
	// At is when the request was sent (by the engine's clock).
	At     time.Time
	Answer agentclient.Answer
	// Err is nil for a 2xx answer, else an *agentclient.Error.
	Err error
}

// Silent reports whether no answer arrived at all (network fault or timeout),
// as opposed to an answer that was an error.
func (r Result) Silent() bool {
	if r.Err == nil {
		return false
	}
	var ae *agentclient.Error
	if errors.As(r.Err, &ae) {
		return ae.Fault == agentclient.FaultNetwork
	}
	return true
}

// Poller polls agents.
type Poller struct {
	client agentclient.API
	clock  clock.Clock
	slots  chan struct{}
}

// New returns a poller allowing concurrency polls in flight (0: the default).
func New(client agentclient.API, clk clock.Clock, concurrency int) *Poller {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	return &Poller{client: client, clock: clk, slots: make(chan struct{}, concurrency)}
}

// Poll asks one agent for its status. Waiting for a free slot does not count
// against the timeout.
func (p *Poller) Poll(ctx context.Context, t Target) Result {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return Result{Agent: t.Agent.Name, At: p.clock.Now(), Err: &agentclient.Error{
			Fault: agentclient.FaultNetwork, Agent: t.Agent.Name, URL: t.Agent.URL, Detail: "poll cancelled", Err: ctx.Err()}}
	}
	defer func() { <-p.slots }()
	timeout := max(t.Timeout, MinTimeout)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	at := p.clock.Now()
	ans, err := p.client.Status(pctx, t.Agent)
	return Result{Agent: t.Agent.Name, At: at, Answer: ans, Err: err}
}
