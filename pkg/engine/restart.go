package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/remediation"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// Restart restarts one process on behalf of a person: by is their login
// (recorded in the event and sent to the agent as requestedBy), reason why.
// ifGeneration is the generation they saw, so that a restart already done
// by someone else is refused (*agentclient.StaleGenerationError) rather
// than repeated; AnyGeneration skips that check. A successful restart also
// lifts a suspended auto-restart (the flap guard) for that process.
func (e *Engine) Restart(ctx context.Context, agent, process, by, reason string, ifGeneration int64) (agentclient.StartResult, error) {
	if by == "" || by == remediation.Auto {
		return agentclient.StartResult{}, errors.New("a restart by a person needs their login")
	}
	e.mu.RLock()
	rt, ok := e.agents[agent]
	e.mu.RUnlock()
	if !ok {
		return agentclient.StartResult{}, fmt.Errorf("%w: %q", ErrUnknownAgent, agent)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	e.mu.RLock()
	cfg := rt.cfg
	prev := cloneSnap(rt.snap)
	e.mu.RUnlock()

	tr := rt.rec.Trackers[process]
	if tr == nil {
		tr = &remediation.Tracker{}
		rt.rec.Trackers[process] = tr
	}
	var ifGen *int64
	if ifGeneration >= 0 {
		ifGen = &ifGeneration
	}
	ev, o, started, err := e.act(ctx, cfg, tr, remediation.Restart, process, by, reason, ifGen)

	snap := cloneSnap(prev)
	for i := range snap.Processes {
		p := &snap.Processes[i]
		if p.Name != process {
			continue
		}
		p.LastAction, p.AutoRestartSuspended = tr.LastAction, tr.Suspended
		if err == nil {
			p.State, p.Reason, p.Generation = o.State, o.Reason, started.Generation
		}
	}
	switch prev.State {
	case state.Grace, state.Failed, state.Unknown:
		// These belong to the agent as a whole; the next answer decides.
	default:
		if len(snap.Processes) > 0 {
			snap.State, snap.Reason = worst(snap.Processes)
		}
	}
	now := e.clock.Now()
	events := append([]Event{ev}, stateChanges(prev, snap, now)...)
	rt.rec.Snapshot = snap
	if e.hist != nil {
		b := history.Batch{Events: events}
		if raw, merr := marshalRecord(&rt.rec); merr == nil {
			b.Agents = map[string][]byte{agent: raw}
		}
		if herr := e.hist.Append(b); herr != nil {
			e.log.Error("history write failed", "agent", agent, "error", herr)
		}
	}
	e.mu.Lock()
	rt.snap = snap
	e.mu.Unlock()
	e.emit(events)
	return started, err
}
