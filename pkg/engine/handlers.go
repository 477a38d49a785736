package engine

import (
	"context"

	"github.com/vigil-cdp/vigil/pkg/handlers"
	"github.com/vigil-cdp/vigil/pkg/history"
)

// runHandlers starts the fleet's handlers for the state changes of one
// poll (see pkg/handlers): a skipped run is recorded at once, each run is
// recorded when it ends. A run outlives the poll, and the request that
// asked for it: it ends at its own timeout.
func (e *Engine) runHandlers(ctx context.Context, cluster string, changes []Event) {
	e.mu.RLock()
	hs := e.cfg.Handlers
	e.mu.RUnlock()
	if len(hs) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, ch := range changes {
		if ch.Type != history.TypeState {
			continue
		}
		t := handlers.Transition{Agent: ch.Agent, Cluster: cluster, Process: ch.Process, From: ch.From, To: ch.To,
			Reason: ch.Reason, BudgetSeconds: ch.BudgetSeconds, Time: ch.Time}
		jobs, skipped := e.handlers.Plan(hs, t)
		e.recordHandlerEvents(skipped...)
		for _, j := range jobs {
			e.hwg.Go(func() {
				ev := e.handlers.Run(ctx, j)
				if ev.Result != "ok" {
					e.log.Warn("handler did not succeed", "handler", ev.Handler, "agent", ev.Agent, "process", ev.Process,
						"result", ev.Result, "error", ev.Error)
				} else {
					e.log.Info("handler ran", "handler", ev.Handler, "agent", ev.Agent, "process", ev.Process)
				}
				e.recordHandlerEvents(ev)
			})
		}
	}
}

func (e *Engine) recordHandlerEvents(events ...Event) {
	if len(events) == 0 {
		return
	}
	if e.hist != nil {
		if err := e.hist.Append(history.Batch{Events: events}); err != nil {
			e.log.Error("history write failed", "error", err)
		}
	}
	e.emit(events)
}

// WaitHandlers returns once every handler started so far has ended
// (vigil watch --once waits for them before it exits).
func (e *Engine) WaitHandlers() { e.hwg.Wait() }
