package history

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-cdp/vigil/internal/pgtest"
	"github.com/vigil-cdp/vigil/pkg/state"
)

func openPG(t *testing.T, dsn string, opts PGOptions) *PGStore {
	t.Helper()
	if opts.SpoolDir == "" {
		opts.SpoolDir = t.TempDir()
	}
	if opts.Scope.UID == "" {
		opts.Scope = Scope{Org: 1, ID: 7, UID: "vigil"}
	}
	if opts.FlushEvery == 0 {
		opts.FlushEvery = time.Hour // tests flush themselves
	}
	if opts.Timeout == 0 {
		opts.Timeout = 3 * time.Second
	}
	s, err := OpenPostgres(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// flushed flushes until PostgreSQL takes it: after a failure the store
// waits a back-off before it tries again.
func flushed(t *testing.T, s *PGStore) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Flush()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PostgreSQL never took the buffer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// genPoll is one generated poll of agent at t0+i×10 s: OK, except GRACE for
// i in [down, down+3).
func genPoll(agent string, i, down int) Observation {
	st, reason := state.OK, "running"
	if i >= down && i < down+3 {
		st, reason = state.Grace, "no answer"
	}
	lag := float64(i % 7)
	return Observation{Time: t0.Add(time.Duration(i) * 10 * time.Second), Answered: st == state.OK, Agent: agent, State: st, Reason: reason,
		RTT: time.Duration(1+i%5) * time.Millisecond, BudgetSeconds: 62,
		Processes: []ProcessObservation{{Name: "cdp", State: st, Reason: reason, Generation: 3, LagSeconds: &lag}}}
}

// pollsOf sums the polls a list of observations stands for, and the
// sequence of states (repeats folded).
func pollsOf(obs []Observation) (int, []state.State) {
	n := 0
	var states []state.State
	for _, o := range obs {
		n += o.PollCount()
		if len(states) == 0 || states[len(states)-1] != o.State {
			states = append(states, o.State)
		}
	}
	return n, states
}

func TestPGRoundTrip(t *testing.T) {
	srv := pgtest.Start(t)
	s := openPG(t, srv.DSN(), PGOptions{})
	for i := range 30 {
		b := Batch{Observations: []Observation{genPoll("a", i, 10), genPoll("b", i, 100)}}
		if i == 10 {
			b.Events = []Event{stateEvent("a", 100*time.Second, state.Grace)}
			b.Silences = []Silence{{Agent: "a", Kind: "network", Start: t0.Add(100 * time.Second), Duration: 30 * time.Second}}
			b.Agents = map[string][]byte{"a": []byte(`{"silentSince":"x"}`)}
		}
		if i == 20 {
			b.Agents = map[string][]byte{"b": []byte(`{"lazy":true}`)}
			b.AgentsCanWait = true
		}
		if err := s.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	obs, err := s.Observations(Query{Agent: "a"})
	if err != nil {
		t.Fatal(err)
	}
	n, states := pollsOf(obs)
	if n != 30 || !slices.Equal(states, []state.State{state.OK, state.Grace, state.OK}) {
		t.Fatalf("agent a: %d polls, states %v; want 30 polls, OK GRACE OK", n, states)
	}
	// Runs of at most a minute: 30 polls at 10 s over 5 minutes, broken by GRACE.
	if len(obs) < 5 || len(obs) > 8 {
		t.Errorf("agent a: %d rows, want runs of up to a minute (5 to 8)", len(obs))
	}
	for _, o := range obs {
		if o.PollCount() > 1 && (o.RTTMin > o.RTTMax || o.Processes[0].LagMin == nil) {
			t.Errorf("run %+v lacks its minimum and maximum", o)
		}
	}
	all, err := s.Observations(Query{From: t0.Add(100 * time.Second), To: t0.Add(130 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[0].Agent != "a" || all[len(all)-1].Agent != "b" {
		t.Fatalf("every agent, a range: %d rows, want a's then b's", len(all))
	}
	ev, err := s.Events(Query{Agent: "a"})
	if err != nil || len(ev) != 1 || ev[0].To != state.Grace || !ev[0].Time.Equal(t0.Add(100*time.Second)) {
		t.Fatalf("events: %v %+v", err, ev)
	}
	if ev, _ := s.Events(Query{Agent: "b"}); len(ev) != 0 {
		t.Fatalf("events of b: %+v", ev)
	}
	sil, err := s.Silences()
	if err != nil || len(sil) != 1 || sil[0].Duration != 30*time.Second {
		t.Fatalf("silences: %v %+v", err, sil)
	}
	recs, err := s.Agents()
	if err != nil || string(recs["a"]) != `{"silentSince":"x"}` {
		t.Fatalf("resume records: %v %q", err, recs)
	}
	if _, ok := recs["b"]; ok {
		t.Errorf("a record that can wait was written at once")
	}
	last, err := s.LastAnswers()
	if err != nil || !last["a"].Equal(t0.Add(290*time.Second)) {
		t.Fatalf("last answers: %v %v", err, last)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing writes the records that could wait.
	s2 := openPG(t, srv.DSN(), PGOptions{})
	if recs, _ := s2.Agents(); string(recs["b"]) != `{"lazy":true}` {
		t.Fatalf("after close: %q", recs)
	}
	// Another scope sees nothing of it.
	other := openPG(t, srv.DSN(), PGOptions{Scope: Scope{Org: 2, ID: 7, UID: "vigil"}})
	if obs, _ := other.Observations(Query{}); len(obs) != 0 {
		t.Fatalf("another org's datasource with the same ID and UID sees %d observations", len(obs))
	}
}

// Two monitors of one scope (two Grafana replicas) read the same rows.
func TestPGTwoReplicasReadTheSameRows(t *testing.T) {
	srv := pgtest.Start(t)
	a := openPG(t, srv.DSN(), PGOptions{})
	b := openPG(t, srv.DSN(), PGOptions{})
	for i := range 20 {
		if err := a.Append(Batch{Observations: []Observation{genPoll("x", i, 5)}}); err != nil {
			t.Fatal(err)
		}
		if err := b.Append(Batch{Observations: []Observation{genPoll("y", i, 8)}}); err != nil {
			t.Fatal(err)
		}
	}
	_ = a.Flush()
	_ = b.Flush()
	fromA, err := a.Observations(Query{})
	if err != nil {
		t.Fatal(err)
	}
	fromB, err := b.Observations(Query{})
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(fromA)
	jb, _ := json.Marshal(fromB)
	if string(ja) != string(jb) || len(fromA) == 0 {
		t.Fatalf("the replicas disagree:\n%s\n%s", ja, jb)
	}
}

// Hours that ended move to one row per agent and hour; reads give the same
// polls before and after, and observations that come late join the hour.
func TestPGCompactsEndedHours(t *testing.T) {
	srv := pgtest.Start(t)
	s := openPG(t, srv.DSN(), PGOptions{})
	const n = 3 * 360 // three hours of polls every 10 s
	for i := range n {
		if err := s.Append(Batch{Observations: []Observation{genPoll("a", i, 400), genPoll("b", i, 900)}}); err != nil {
			t.Fatal(err)
		}
		if i%60 == 0 {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var chunks, recent int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM vigil_chunk`).Scan(&chunks); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM vigil_recent`).Scan(&recent); err != nil {
		t.Fatal(err)
	}
	// Hours 04:00 and 05:00 ended before 06:55 - 5 min; 06:00 is recent.
	if chunks != 4 {
		t.Errorf("%d hourly rows, want 4 (2 agents × 2 hours)", chunks)
	}
	obs, err := s.Observations(Query{Agent: "a"})
	if err != nil {
		t.Fatal(err)
	}
	got, states := pollsOf(obs)
	if got != n || !slices.Equal(states, []state.State{state.OK, state.Grace, state.OK}) {
		t.Fatalf("after compaction: %d polls, states %v; want %d, OK GRACE OK", got, states, n)
	}
	// A day's timeline: the 04:30 to 05:30 window reads both kinds.
	win, _ := s.Observations(Query{Agent: "b", From: t0.Add(30 * time.Minute), To: t0.Add(90 * time.Minute)})
	if got, _ := pollsOf(win); got < 360 || got > 372 {
		t.Errorf("an hour's window: %d polls, want about 360", got)
	}
	// A poll of 04:10:55 that comes late (from another monitor's buffer).
	late := genPoll("a", 60, 400)
	late.Time = late.Time.Add(55 * time.Second) // between two runs
	late.State, late.Reason = state.Failed, "late"
	if err := s.Append(Batch{Observations: []Observation{late}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.compact(t0.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	obs, _ = s.Observations(Query{Agent: "a", To: t0.Add(time.Hour)})
	found := false
	for _, o := range obs {
		found = found || o.Reason == "late"
	}
	if !found {
		t.Errorf("the late poll is missing from its hour")
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM vigil_recent WHERE t < $1`, t0.Add(2*time.Hour)).Scan(&recent); err != nil || recent != 0 {
		t.Errorf("%d rows left in vigil_recent for ended hours (%v)", recent, err)
	}
}

// PostgreSQL killed mid-run: polls and events go to the local buffer, and
// reach PostgreSQL in order once it is back; nothing is lost.
func TestPGKilledMidRunLosesNothing(t *testing.T) {
	srv := pgtest.Start(t)
	spool := t.TempDir()
	s := openPG(t, srv.DSN(), PGOptions{SpoolDir: spool, Timeout: time.Second})
	appendRange := func(from, to int) {
		for i := from; i < to; i++ {
			b := Batch{Observations: []Observation{genPoll("a", i, 150)}}
			if i%25 == 0 {
				b.Events = []Event{{Type: TypeNote, Time: t0.Add(time.Duration(i) * 10 * time.Second), Agent: "a", Reason: fmt.Sprintf("note %d", i)}}
			}
			if err := s.Append(b); err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
			if i%10 == 9 {
				_ = s.Flush()
			}
		}
	}
	appendRange(0, 100)
	if !s.Status().Writable {
		t.Fatalf("status before the kill: %+v", s.Status())
	}
	srv.Kill()
	appendRange(100, 250)
	st := s.Status()
	if st.Writable || st.SpoolRecords == 0 || st.LastError == "" {
		t.Fatalf("status while PostgreSQL is down: %+v", st)
	}
	// A monitor killed now keeps what is in the buffer: a new store on the
	// same folder (once PostgreSQL is back) writes it.
	srv.Restart()
	appendRange(250, 300)
	flushed(t, s)
	if st := s.Status(); !st.Writable || st.SpoolRecords != 0 || st.SpoolBytes != 0 {
		t.Fatalf("status after PostgreSQL came back: %+v", st)
	}
	obs, err := s.Observations(Query{Agent: "a"})
	if err != nil {
		t.Fatal(err)
	}
	n, states := pollsOf(obs)
	if n != 300 || !slices.Equal(states, []state.State{state.OK, state.Grace, state.OK}) {
		t.Fatalf("%d polls, states %v; want 300, OK GRACE OK", n, states)
	}
	for i := 1; i < len(obs); i++ {
		if !obs[i].Time.After(obs[i-1].End()) {
			t.Fatalf("out of order or overlapping at %d: %v then %v", i, obs[i-1].End(), obs[i].Time)
		}
	}
	ev, err := s.Events(Query{Agent: "a"})
	if err != nil || len(ev) != 12 {
		t.Fatalf("events: %v, %d want 12", err, len(ev))
	}
	for i, e := range ev {
		if e.Reason != fmt.Sprintf("note %d", i*25) {
			t.Fatalf("event %d: %q", i, e.Reason)
		}
	}
}

// A monitor killed while PostgreSQL is down leaves its buffer, and the next
// start writes it first.
func TestPGBufferSurvivesARestart(t *testing.T) {
	srv := pgtest.Start(t)
	spool := t.TempDir()
	s, err := OpenPostgres(context.Background(), srv.DSN(), PGOptions{Scope: Scope{UID: "fleet"}, SpoolDir: spool, FlushEvery: time.Hour, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	for i := range 5 {
		ev := Event{Type: TypeState, Time: t0.Add(time.Duration(i) * time.Second), Agent: "a", From: state.OK, To: state.Grace}
		if err := s.Append(Batch{Events: []Event{ev}}); err != nil {
			t.Fatal(err)
		}
	}
	// Killed: no Close. The events are in the buffer's files.
	files, _ := filepath.Glob(filepath.Join(spool, "spool-*.log"))
	if len(files) == 0 {
		t.Fatal("no buffer file")
	}
	s.pool.Close()
	srv.Restart()
	s2 := openPG(t, srv.DSN(), PGOptions{Scope: Scope{UID: "fleet"}, SpoolDir: spool})
	ev, err := s2.Events(Query{})
	if err != nil || len(ev) != 5 {
		t.Fatalf("events after the restart: %v %d", err, len(ev))
	}
	if files, _ := filepath.Glob(filepath.Join(spool, "spool-*.log")); len(files) != 0 {
		t.Errorf("buffer files left: %v", files)
	}
}

func TestPGBufferIsBounded(t *testing.T) {
	srv := pgtest.Start(t)
	s := openPG(t, srv.DSN(), PGOptions{SpoolLimit: 2000, Timeout: time.Second})
	srv.Kill()
	for i := range 200 {
		// Every poll ends the previous run (alternating states).
		o := genPoll("a", i, 0)
		if i%2 == 0 {
			o.State = state.Failed
		}
		if err := s.Append(Batch{Observations: []Observation{o}}); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			_ = s.Flush()
		}
	}
	st := s.Status()
	if st.Dropped == 0 || st.SpoolBytes > 2000+1000 {
		t.Fatalf("status: %+v; want drops and a buffer near 2000 bytes", st)
	}
	srv.Restart()
	flushed(t, s)
	ev, _ := s.Events(Query{})
	if len(ev) != 1 || ev[0].Type != TypeLimit || !strings.Contains(ev[0].Reason, "observations were dropped") {
		t.Fatalf("want one history_limit event saying what was dropped, got %+v", ev)
	}
}

func TestPGSchema(t *testing.T) {
	srv := pgtest.Start(t)
	openPG(t, srv.DSN(), PGOptions{}).Close()
	// Opening again applies nothing twice.
	s := openPG(t, srv.DSN(), PGOptions{})
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM vigil_schema`).Scan(&n); err != nil || n != SchemaVersion() {
		t.Fatalf("vigil_schema: %d rows (%v), want %d", n, err, SchemaVersion())
	}
	if _, err := s.pool.Exec(context.Background(), `INSERT INTO vigil_schema (version, description) VALUES ($1, 'from the future')`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	_, err := OpenPostgres(context.Background(), srv.DSN(), PGOptions{SpoolDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "newer than this Vigil knows") {
		t.Fatalf("a newer schema: %v", err)
	}
}

func TestPGErrorsHideThePassword(t *testing.T) {
	srv := pgtest.Start(t)
	conn, err := pgx.Connect(context.Background(), srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), `CREATE ROLE monitor LOGIN PASSWORD 's3cret-pw'`); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(context.Background())
	dsn := fmt.Sprintf("postgres://monitor:wrong-pw-123@127.0.0.1:%d/nosuchdb?sslmode=disable", srv.Port())
	_, err = OpenPostgres(context.Background(), dsn, PGOptions{SpoolDir: t.TempDir(), Password: "s3cret-pw-2"})
	if err == nil {
		t.Fatal("a wrong database opened")
	}
	for _, secret := range []string{"wrong-pw-123", "s3cret-pw-2"} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("the error shows a password: %v", err)
		}
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("the error does not say where: %v", err)
	}
}

func TestPGPruneDropsOldPartitions(t *testing.T) {
	srv := pgtest.Start(t)
	s := openPG(t, srv.DSN(), PGOptions{Retention: 48 * time.Hour})
	now := time.Now().UTC()
	ctx := context.Background()
	// Partitions of 5 days ago, with an event.
	if err := ensurePartitions(ctx, s.pool, now.Add(-5*24*time.Hour), now.Add(-5*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	old := Event{Type: TypeNote, Time: now.Add(-5 * 24 * time.Hour), Agent: "a", Reason: "old"}
	recent := Event{Type: TypeNote, Time: now.Add(-time.Hour), Agent: "a", Reason: "recent"}
	if err := s.Append(Batch{Events: []Event{old, recent}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Prune(now); err != nil {
		t.Fatal(err)
	}
	ev, _ := s.Events(Query{})
	if len(ev) != 1 || ev[0].Reason != "recent" {
		t.Fatalf("after prune: %+v", ev)
	}
	var exists bool
	name := partitionName("vigil_event", now.Add(-5*24*time.Hour).Truncate(partitionDay))
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil || exists {
		t.Fatalf("partition %s still exists (%v)", name, err)
	}
	// Today's and tomorrow's partitions exist.
	for _, day := range []time.Time{now, now.Add(24 * time.Hour)} {
		name := partitionName("vigil_chunk", day.Truncate(partitionDay))
		if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil || !exists {
			t.Fatalf("partition %s is missing (%v)", name, err)
		}
	}
}

func TestSpoolSkipsADamagedTail(t *testing.T) {
	dir := t.TempDir()
	sp, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := sp.write(&spoolRecord{Agents: map[string][]byte{"a": []byte(fmt.Sprint(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	_ = sp.seal()
	files, _ := filepath.Glob(filepath.Join(dir, "spool-*.log"))
	data, _ := os.ReadFile(files[0])
	if err := os.WriteFile(files[0], data[:len(data)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	_, recs, err := sp.read()
	if err != nil || len(recs) != 2 {
		t.Fatalf("a cut record: %v, %d records, want 2", err, len(recs))
	}
}
