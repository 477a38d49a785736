// Package poller asks agents for their status: one poll with its own timeout
// under a fleet-wide concurrency limit, and a loop that repeats it every
// interval with jitter. A slow or dead agent only ever holds up its own loop
// and one slot of the limit, never the other agents.
package poller

import (
	"context"
	"errors"
	"math/rand/v2"
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

// Loop calls fn now (after a random part of jitter×interval, so a fleet
// does not start polling in lockstep) and then every interval until ctx
// ends, at a fixed rate: each call is due one interval after the previous
// call was due, not after it finished, so the time a poll takes (waiting for
// a slot, the answer, the history write) does not stretch the interval.
//
// With jitter, the second call comes after a random 10 % to 100 % of the
// interval, never later: that sets the loop's phase, so the loops of a fleet
// started together spread over the whole interval instead of all polling in
// the same second of it (a fixed rate keeps whatever spread they start
// with). Each later due time is varied by up to ±jitter/2×interval around
// the grid, without accumulating, so two calls are never more than
// (1+jitter)×interval apart unless a call itself takes that long. A loop
// that falls more than a whole interval behind (a call that hung) starts a
// new grid at once rather than calling fn in a burst to catch up. interval
// is read before every wait, so a reconfiguration applies at once.
func Loop(ctx context.Context, clk clock.Clock, interval func() time.Duration, jitter float64, fn func(ctx context.Context)) {
	iv := interval()
	grid := clk.Now().Add(time.Duration(rand.Float64() * jitter * float64(iv)))
	due := grid
	first := true
	for {
		t := clk.NewTimer(max(due.Sub(clk.Now()), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		fn(ctx)
		iv = interval()
		if first && jitter > 0 {
			grid = grid.Add(time.Duration((0.1 + 0.9*rand.Float64()) * float64(iv)))
		} else {
			grid = grid.Add(iv)
		}
		first = false
		if now := clk.Now(); now.Sub(grid) > iv {
			grid = now
		}
		due = grid.Add(time.Duration((rand.Float64() - 0.5) * jitter * float64(iv)))
	}
}
