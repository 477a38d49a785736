package history

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-cdp/vigil/pkg/state"
)

func lag(v float64) *float64 { return &v }

// poll is agent a's observation at t0+at with one process.
func poll(a string, at time.Duration, st state.State, rtt time.Duration, l float64) Observation {
	return Observation{Time: t0.Add(at), Answered: true, Agent: a, State: st, Reason: st.String(), RTT: rtt, BudgetSeconds: 32,
		Processes: []ProcessObservation{{Name: "cdp", State: st, Reason: "r", Generation: 1, LagSeconds: lag(l)}}}
}

// 15 minutes of polls every 10 s: the first 10-minute segment is compacted
// into runs that keep every change of state at its time, one run per
// minute otherwise, with the lowest, highest and last RTT and lag.
func TestCompactionKeepsChangesAndMinMaxLast(t *testing.T) {
	s := open(t, t.TempDir(), Options{FlushEvery: -1})
	polls := 0
	for i := range 90 {
		at := time.Duration(i) * 10 * time.Second
		st := state.OK
		if i >= 33 && i < 35 { // 5m30s and 5m40s
			st = state.Degraded
		}
		rtt := time.Duration(1+i%6) * time.Millisecond // 1..6 ms within each minute
		if err := s.Append(Batch{Observations: []Observation{poll("a", at, st, rtt, float64(i%6))}}); err != nil {
			t.Fatal(err)
		}
		polls++
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	var segments int
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bLog).ForEachBucket(func([]byte) error { segments++; return nil })
	})
	if segments != 1 {
		t.Fatalf("%d log segments after 15 minutes, want 1 (the first compacted)", segments)
	}
	obs, err := s.Observations(Query{Agent: "a"})
	if err != nil {
		t.Fatal(err)
	}
	n, runs := 0, 0
	for _, o := range obs {
		n += o.PollCount()
		if o.Time.Before(t0.Add(10 * time.Minute)) {
			runs++
		}
	}
	if n != polls {
		t.Errorf("the records stand for %d polls, want %d", n, polls)
	}
	// Minutes 0-4, 6-9: one run each; minute 5: OK (5m00-5m20), DEGRADED (5m30-5m40), OK (5m50).
	if runs != 12 {
		t.Errorf("%d records for the first 10 minutes, want 12: %+v", runs, obs[:runs])
	}
	first := obs[0]
	if !first.Time.Equal(t0) || !first.Until.Equal(t0.Add(50*time.Second)) || first.Polls != 6 ||
		first.RTTMin != time.Millisecond || first.RTTMax != 6*time.Millisecond || first.RTT != 6*time.Millisecond {
		t.Errorf("first minute: %+v", first)
	}
	p := first.Processes[0]
	if *p.LagMin != 0 || *p.LagMax != 5 || *p.LagSeconds != 5 {
		t.Errorf("first minute's lag: min %v max %v last %v", *p.LagMin, *p.LagMax, *p.LagSeconds)
	}
	var changes []string
	for i, o := range obs {
		if i == 0 || o.State != obs[i-1].State {
			changes = append(changes, fmt.Sprintf("%s %s", o.Time.Sub(t0), o.State))
		}
	}
	if got := strings.Join(changes, ", "); got != "0s OK, 5m30s DEGRADED, 5m50s OK" {
		t.Errorf("state changes %s", got)
	}
	// A query in the middle of a run returns that run.
	mid, _ := s.Observations(Query{Agent: "a", From: t0.Add(25 * time.Second), To: t0.Add(35 * time.Second)})
	if len(mid) != 1 || !mid[0].Time.Equal(t0) {
		t.Errorf("a range within the first run: %+v", mid)
	}
	if last := first.LastPollBy(t0.Add(25 * time.Second)); !last.Equal(t0.Add(20 * time.Second)) {
		t.Errorf("last poll by 25 s: %s", last.Sub(t0))
	}
}

// A reader of a store (vigil history, another process) sees the
// observations still in the log, and the writer after it reopens.
func TestReadersSeeTheLogTail(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{FlushEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		_ = s.Append(Batch{Observations: []Observation{poll("a", time.Duration(i)*time.Second, state.OK, time.Millisecond, 1), poll("b", time.Duration(i)*time.Second, state.OK, time.Millisecond, 1)}})
	}
	if obs, _ := s.Observations(Query{Agent: "a"}); len(obs) != 5 {
		t.Errorf("the writer reads %d observations of a, want 5", len(obs))
	}
	_ = s.Append(Batch{Agents: map[string][]byte{"a": []byte("{}")}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	obs, _ := r.Observations(Query{Agent: "a", From: t0.Add(time.Second)})
	all, _ := r.Observations(Query{})
	last, _ := r.LastAnswers()
	_ = r.Close()
	if len(obs) != 4 || len(all) != 10 || all[0].Agent != "a" || all[9].Agent != "b" {
		t.Errorf("a reader reads %d observations of a from 1 s (want 4), %d in all (want 10)", len(obs), len(all))
	}
	if !last["a"].Equal(t0.Add(4 * time.Second)) {
		t.Errorf("last answers %v", last)
	}
	s = open(t, dir, Options{FlushEvery: -1})
	if obs, _ := s.Observations(Query{Agent: "b"}); len(obs) != 5 {
		t.Errorf("the writer reads %d observations of b after reopening, want 5", len(obs))
	}
}

// A store written in format 1 (every observation under
// observations/agent 0x00 time seq) is read as it is, and converted in
// place by Open.
func TestFormat1IsConvertedInPlace(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bEvents, bEventsAgent, bObservationsV, bSilences, bAgents} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		ob := tx.Bucket(bObservationsV)
		for i := range 30 {
			for _, a := range []string{"a", "ab"} {
				o := poll(a, time.Duration(i)*10*time.Second, state.OK, time.Duration(i+1)*time.Millisecond, 2)
				raw, _ := json.Marshal(o)
				seq, _ := ob.NextSequence()
				if err := ob.Put(agentKey(a, o.Time, seq), raw); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bAgents).Put([]byte("a"), []byte(`{"x":1}`))
	})
	_ = db.Close()
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := r.Observations(Query{Agent: "a"})
	_ = r.Close()
	if len(old) != 30 {
		t.Fatalf("a reader of format 1 reads %d observations, want 30", len(old))
	}
	s := open(t, dir, Options{FlushEvery: -1})
	obs, err := s.Observations(Query{Agent: "a"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range obs {
		n += o.PollCount()
	}
	if len(obs) != 5 || n != 30 || obs[4].RTTMax != 30*time.Millisecond || !obs[4].End().Equal(t0.Add(290*time.Second)) {
		t.Errorf("after conversion: %d runs for %d polls (want 5 for 30): %+v", len(obs), n, obs)
	}
	last, _ := s.LastAnswers()
	if !last["a"].Equal(t0.Add(290 * time.Second)) {
		t.Errorf("last answers after conversion %v", last)
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bObservationsV) != nil || string(tx.Bucket(bMeta).Get(kVersion)) != fmt.Sprint(FormatVersion) {
			t.Errorf("format 1's bucket is still there, or no version")
		}
		return nil
	})
}

// A kill -9 loses at most the last second of observations: a child appends
// observations (no events) and prints each once Append returned, with the
// time; the parent kills it and finds every one printed more than a second
// (plus the time a commit takes here) before the kill.
func TestKillNineLosesAtMostTheLastSecond(t *testing.T) {
	if dir := os.Getenv("VIGIL_HISTORY_OBSERVER"); dir != "" {
		s, err := Open(dir, Options{})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		for i := 0; ; i++ {
			o := poll("a", time.Duration(i)*time.Millisecond, state.OK, time.Millisecond, 1)
			if err := s.Append(Batch{Observations: []Observation{o}}); err != nil {
				os.Exit(1)
			}
			fmt.Println(i, time.Now().UnixNano())
			time.Sleep(time.Millisecond)
		}
	}
	dir := t.TempDir()
	var started, killed time.Time
	lines := killedWriter(t, "TestKillNineLosesAtMostTheLastSecond", "VIGIL_HISTORY_OBSERVER", dir, func(string) bool {
		if started.IsZero() {
			started = time.Now()
		}
		if time.Since(started) > 3500*time.Millisecond {
			killed = time.Now()
			return true
		}
		return false
	})
	acked := map[int]time.Time{}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("writer: %s", line)
		}
		n, _ := strconv.Atoi(f[0])
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		acked[n] = time.Unix(0, ns)
	}
	s := open(t, dir, Options{FlushEvery: -1})
	obs, err := s.Observations(Query{Agent: "a"})
	if err != nil {
		t.Fatal(err)
	}
	have := map[time.Time]bool{}
	for _, o := range obs {
		have[o.Time] = true
	}
	// A commit (one fsync) may take a while on a busy disk: 1.5 s of slack.
	lost, tooOld := 0, 0
	for n, at := range acked {
		if !have[t0.Add(time.Duration(n)*time.Millisecond)] {
			lost++
			if at.Before(killed.Add(-2500 * time.Millisecond)) {
				tooOld++
			}
		}
	}
	if tooOld > 0 || len(obs) == 0 {
		t.Errorf("%d of %d acknowledged observations lost, %d of them more than 2.5 s before the kill; %d read back", lost, len(acked), tooOld, len(obs))
	}
	t.Logf("%d of %d acknowledged observations lost (the last second's)", lost, len(acked))
}

// A segment larger than compactGroup is compacted in passes of a few agents
// each, and gives the same observations as one pass; a crash between two
// passes (a chunk written, its polls still in the log) shows no poll twice,
// and compacting again takes no run twice.
func TestCompactionInPasses(t *testing.T) {
	polls := func(s *Store) {
		t.Helper()
		for i := range 70 { // 11m40s: the first segment closes and is 2 minutes behind
			at := time.Duration(i) * 10 * time.Second
			var b Batch
			for a := range 5 {
				st := state.OK
				if (i+a)%2 == 0 {
					st = state.Degraded // a change at every poll: every poll is a run of its own
				}
				b.Observations = append(b.Observations, poll(fmt.Sprint("agent-", a), at, st, time.Millisecond, 1))
			}
			if err := s.Append(b); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	one := open(t, t.TempDir(), Options{FlushEvery: -1})
	polls(one)
	want, _ := one.Observations(Query{})

	defer func(n int) { compactGroup = n }(compactGroup)
	compactGroup = 130 // two agents' 60 polls of the first segment a pass: 3 passes
	dir := t.TempDir()
	s := open(t, dir, Options{FlushEvery: -1})
	groups, err := segmentGroups(s.db, spanOf(t0), parseLogEntry)
	if err != nil || len(groups) != 0 {
		t.Fatalf("before the segment closes: %d groups, %v", len(groups), err)
	}
	polls(s)
	got, _ := s.Observations(Query{})
	if len(got) != len(want) || len(want) < 300 {
		t.Fatalf("compacted in passes: %d observations, in one pass: %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].Time.Equal(want[i].Time) || got[i].Agent != want[i].Agent || got[i].State != want[i].State || got[i].Polls != want[i].Polls {
			t.Fatalf("observation %d: %+v, in one pass %+v", i, got[i], want[i])
		}
	}

	// A crash after the first pass of the next segment: its chunk is written, the segment is still in the log.
	for i := 70; i < 130; i++ {
		at := time.Duration(i) * 10 * time.Second
		_ = s.Append(Batch{Observations: []Observation{poll("agent-0", at, state.State(i%2*2), time.Millisecond, 1)}})
	}
	_ = s.commit(false)
	seg := spanOf(t0.Add(10 * time.Minute))
	m, err := readSegment(s.db, seg, parseLogEntry, map[string]bool{"agent-0": true}, false)
	if err != nil || len(m.cs) == 0 {
		t.Fatalf("first pass: %d chunks, %v", len(m.cs), err)
	}
	if err := s.db.Update(m.cs.write); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Observations(Query{Agent: "agent-0", From: t0.Add(10 * time.Minute)})
	if err := s.compact(true); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Observations(Query{Agent: "agent-0", From: t0.Add(10 * time.Minute)})
	if len(before) != len(after) || len(after) < 50 {
		t.Errorf("agent-0 after a crash between passes: %d observations, %d once compacted", len(before), len(after))
	}
}

// Two polls of one agent sent at the same instant (a fake clock, a coarse
// one) are two observations: only a chunk's copy of a poll hides the log's.
func TestPollsAtOneInstantAreBothKept(t *testing.T) {
	s, err := Open(t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, st := range []state.State{state.OK, state.Unknown} {
		if err := s.Append(Batch{Observations: []Observation{poll("a", 0, st, time.Millisecond, 1)}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []Query{{}, {Agent: "a"}} {
		got, err := s.Observations(q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[1].State != state.Unknown {
			t.Errorf("query %+v: %d observations (%v), want OK then UNKNOWN", q, len(got), got)
		}
	}
}
