package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/internal/pgtest"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
)

func TestHistoryPrintsWhatWasRecordedWithoutPolling(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fleet.yaml.history")
	store, err := history.Open(dir, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 5, 6, 40, 0, time.UTC)
	err = store.Append(history.Batch{Events: []history.Event{
		{Type: history.TypeState, Time: at, Agent: "node-1", Process: "cdp", From: state.OK, To: state.Restarting, Reason: "crashed where expected"},
		{Type: history.TypeAction, Time: at.Add(time.Second), Agent: "node-1", Process: "cdp", Action: "restart", By: "auto", Generation: 2, Result: "ok"},
		{Type: history.TypeState, Time: at.Add(2 * time.Second), Agent: "node-2", From: state.OK, To: state.Grace, Reason: "silent\x1b[2J for 3 s"},
		{Type: history.TypeAgent, Time: at.Add(3 * time.Second), Agent: "node-2", AgentEvent: json.RawMessage(`{"seq":1,"type":"started"}`)},
	}})
	if err != nil {
		t.Fatal(err)
	}

	// A monitor holding the store: said so, nothing read.
	code, _, stderr := run(t, "history", "--history", dir)
	if code != ExitUsage || !strings.Contains(stderr, "a running vigil watch holds it") {
		t.Errorf("while held: exit %d, %s", code, stderr)
	}
	store.Close()

	code, stdout, stderr := run(t, "history", "--history", dir)
	want := "2026-11-26T05:06:40Z node-1/cdp OK -> RESTARTING: crashed where expected\n" +
		"2026-11-26T05:06:41Z node-1/cdp restart by auto: ok, generation 2\n" +
		"2026-11-26T05:06:42Z node-2 OK -> GRACE: silent\\x1b[2J for 3 s\n"
	if code != ExitOK || stdout != want {
		t.Errorf("exit %d\n%s\nwant:\n%s\nstderr: %s", code, stdout, want, stderr)
	}

	code, stdout, _ = run(t, "history", "--history", dir, "--agent", "node-2", "--json")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != ExitOK || len(lines) != 2 || !strings.Contains(lines[0], `"to":"GRACE"`) || !strings.Contains(lines[1], `"type":"agent"`) {
		t.Errorf("--agent node-2 --json: exit %d\n%s", code, stdout)
	}

	// Reading changed nothing: the store still opens for a monitor, with the same events.
	again, err := history.Open(dir, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := again.Events(history.Query{})
	again.Close()
	if len(evs) != 4 {
		t.Errorf("%d events after reading, want 4", len(evs))
	}

	empty := t.TempDir()
	if code, _, stderr := run(t, "history", "--history", empty); code != ExitUsage || !strings.Contains(stderr, "no history at "+empty) {
		t.Errorf("a folder without a history: exit %d, %s", code, stderr)
	}
	if code, _, stderr := run(t, "history"); code != ExitUsage || !strings.Contains(stderr, "--history DIR is required") {
		t.Errorf("no --history: exit %d, %s", code, stderr)
	}
}

// vigil history reads a history shared in PostgreSQL: a vigil watch fleet's
// rows, or a datasource's by org/id/uid, and nothing of another scope.
func TestHistoryFromPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	at := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	for _, sc := range []history.Scope{{UID: "vigil-watch"}, {Org: 1, ID: 3, UID: "vigil-cdp"}} {
		s, err := history.OpenPostgres(context.Background(), pg.DSN(), history.PGOptions{Scope: sc, SpoolDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		ev := history.Event{Type: history.TypeState, Time: at, Agent: "node-" + sc.UID, From: state.OK, To: state.Grace, Reason: "silent"}
		if err := s.Append(history.Batch{Events: []history.Event{ev}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	code, out, stderr := run(t, "history", "--history-postgres", pg.DSN())
	if code != ExitOK || !strings.Contains(out, "node-vigil-watch") || strings.Contains(out, "node-vigil-cdp") {
		t.Fatalf("the watch fleet's rows: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = run(t, "history", "--history-postgres", pg.DSN(), "--history-scope", "1/3/vigil-cdp")
	if code != ExitOK || !strings.Contains(out, "node-vigil-cdp") {
		t.Fatalf("the datasource's rows: exit %d\n%s", code, out)
	}
	code, _, stderr = run(t, "history", "--history-postgres", pg.DSN(), "--history-scope", "other")
	if code != ExitUsage || !strings.Contains(stderr, `holds no history of org 0, id 0, uid "other"`) {
		t.Fatalf("an unknown scope: exit %d, %s", code, stderr)
	}
}
