package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// A silent agent: no handler while it is in GRACE, one run when the grace
// runs out (FAILED), recorded with its output; none again for the next
// polls, nor for STANDBY.
func TestHandlerRunsOnceWhenAGraceRunsOut(t *testing.T) {
	dir := t.TempDir()
	cfg := fleetOf(policy(nil), fleet.Agent{Name: "a"})
	cfg.Handlers = []fleet.Handler{{
		Name: "reset-vm", On: []state.State{state.Failed}, Level: fleet.LevelAgent,
		Command: []string{"sh", "-c", `echo "$VIGIL_AGENT $VIGIL_PREVIOUS_STATE $VIGIL_STATE $VIGIL_BUDGET_SECONDS" >> "$0/runs"; echo reset`, dir},
		Timeout: 5 * time.Second, Backoff: time.Minute, BackoffMax: time.Hour,
	}}
	hist := newMemHistory()
	h := newHarness(t, cfg, hist)
	h.client.Add("a", agentclienttest.Script{})
	h.poll("a")
	h.client.Set("a", func(a *agentclienttest.Script) { a.Silent = true })
	for _, at := range []time.Duration{10, 20, 33, 43, 53} {
		h.clk.Set(t0.Add(at * time.Second))
		h.poll("a")
		h.eng.WaitHandlers()
	}
	runs, _ := os.ReadFile(filepath.Join(dir, "runs"))
	if string(runs) != "a GRACE FAILED 32\n" {
		t.Fatalf("runs:\n%s", runs)
	}
	var handlerEvents []history.Event
	for _, ev := range hist.events {
		if ev.Type == history.TypeHandler {
			handlerEvents = append(handlerEvents, ev)
		}
	}
	if len(handlerEvents) != 1 {
		t.Fatalf("%d handler events in the history, want 1: %+v", len(handlerEvents), handlerEvents)
	}
	ev := handlerEvents[0]
	if ev.Handler != "reset-vm" || ev.Result != "ok" || ev.ExitCode == nil || *ev.ExitCode != 0 || ev.Output != "reset" ||
		ev.From != state.Grace || ev.To != state.Failed || ev.Agent != "a" || ev.Process != "" {
		t.Errorf("handler event: %+v", ev)
	}
	emitted := strings.Join(h.take(), "\n")
	if !strings.Contains(emitted, `{"type":"handler","time":"2026-11-26T04:00:33Z","agent":"a","process":"","handler":"reset-vm","from":"GRACE","to":"FAILED",`) ||
		!strings.Contains(emitted, `"result":"ok","exitCode":0,"output":"reset","error":""`) {
		t.Errorf("emitted:\n%s", emitted)
	}
}
