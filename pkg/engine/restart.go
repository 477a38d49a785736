package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/remediation"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// Restart restarts one process on behalf of a person: by is their login
// (recorded in the event and sent to the agent as requestedBy), reason why.
// Any login is a person's, "auto" included: the event and the process's last
// action say manual, and the engine's own restarts are never taken for it.
// ifGeneration is the generation they saw, so that a restart already done
// by someone else is refused (*agentclient.StaleGenerationError) rather
// than repeated; AnyGeneration skips that check. A successful restart also
// lifts a suspended auto-restart (the flap guard) for that process.
//
// A process the agent did not report at its last answer is restarted only
// if the agent has it: unless the agent confirms it (the restart succeeds,
// or was already done), the attempt leaves no event, no remediation memory
// and no record in the history, whatever the name, only a log line of who
// tried. The agent's refusal comes back as its *agentclient.Error (404 for
// a process it does not have).
func (e *Engine) Restart(ctx context.Context, agent, process, by, reason string, ifGeneration int64) (agentclient.StartResult, error) {
	if by == "" {
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

	reported := slices.ContainsFunc(prev.Processes, func(p ProcessSnapshot) bool { return p.Name == process })
	tr := rt.rec.Trackers[process]
	if tr == nil || !reported {
		tr = &remediation.Tracker{}
	}
	var ifGen *int64
	if ifGeneration >= 0 {
		ifGen = &ifGeneration
	}
	ev, o, started, err := e.act(ctx, cfg, tr, remediation.Restart, process, remediation.ByPerson(by), reason, ifGen)
	if !reported {
		var stale *agentclient.StaleGenerationError
		if err != nil && !errors.As(err, &stale) {
			e.log.Warn("restart of a process the agent does not report: nothing recorded", "agent", agent, "process", process, "by", by, "error", err)
			return started, err
		}
	}
	rt.rec.Trackers[process] = tr

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
	// The agent's answer (an error) is bounded like any other (limits.go).
	boundSnapshot(&snap)
	boundEvent(&ev)
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
