package history

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-cdp/vigil/pkg/state"
)

// Every field of an observation (a run's included) survives the binary
// encoding of the log and of the chunks.
func TestBinaryObservationRoundTrip(t *testing.T) {
	o := Observation{Time: t0.Add(1234567 * time.Nanosecond), Answered: true, Agent: "node-1", State: state.Degraded,
		Reason: "protection lags", RTT: 2318211, BudgetSeconds: 31.5, Role: "active", Cluster: "c1",
		Until: t0.Add(50 * time.Second), Polls: 6, RTTMin: 1000, RTTMax: 9000,
		Processes: []ProcessObservation{
			{Name: "cdp", State: state.OK, Reason: "running", Generation: 3, LagSeconds: lag(1.5), LagMin: lag(0.25), LagMax: lag(7), AutoRestartSuspended: true},
			{Name: "cdp-exporter", State: state.Failed, Reason: "crashed", Generation: -1},
		}}
	h, ok := parseLogEntry(obsEntry(&o))
	if !ok || h.kind != entryObs || h.agent != "node-1" || !h.answered {
		t.Fatalf("header %+v", h)
	}
	back, ok := h.observation()
	if !ok || !reflect.DeepEqual(back, o) {
		t.Errorf("log entry:\n got %+v\nwant %+v", back, o)
	}
	single := Observation{Time: t0.Add(time.Hour), Agent: "node-1", State: state.Unknown, Reason: "no answer"}
	runs, err := decodeChunk("node-1", encodeChunk([]Observation{o, single}))
	if err != nil || len(runs) != 2 || !reflect.DeepEqual(runs[0], o) || !reflect.DeepEqual(runs[1], single) {
		t.Errorf("chunk: %v\n got %+v\nwant %+v", err, runs, []Observation{o, single})
	}
	// A chunk of format 2 (JSON) is still read.
	raw, _ := json.Marshal([]Observation{o})
	if runs, err := decodeChunk("node-1", raw); err != nil || len(runs) != 1 || !runs[0].Time.Equal(o.Time) {
		t.Errorf("JSON chunk: %v %+v", err, runs)
	}
}

// Resume records and the event index are written to the log with the
// commit; every reader merges them with the agent-keyed buckets, before
// and after the compaction moves them there.
func TestReadersMergeLogHeldRecordsAndEventIndex(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{FlushEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(a string, n int) []byte { return fmt.Appendf(nil, `{"agent":%q,"n":%d}`, a, n) }
	for i := range 3 {
		for _, a := range []string{"a", "b"} {
			b := Batch{Observations: []Observation{poll(a, time.Duration(i)*10*time.Second, state.OK, time.Millisecond, 1)},
				Events: []Event{stateEvent(a, time.Duration(i)*10*time.Second, state.Degraded)}, Agents: map[string][]byte{a: rec(a, i)}}
			if err := s.Append(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(when string, r *Store, n int, events int) {
		t.Helper()
		recs, err := r.Agents()
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		for _, a := range []string{"a", "b"} {
			if string(recs[a]) != string(rec(a, n)) {
				t.Errorf("%s: resume record of %s is %s, want %s", when, a, recs[a], rec(a, n))
			}
			ev, err := r.Events(Query{Agent: a})
			if err != nil || len(ev) != events {
				t.Errorf("%s: %d events of %s, want %d (%v)", when, len(ev), a, events, err)
			}
			for _, e := range ev {
				if e.Agent != a {
					t.Errorf("%s: an event of %s among %s's", when, e.Agent, a)
				}
			}
			if ev, _ := r.Events(Query{Agent: a, From: t0.Add(10 * time.Second), Limit: 1}); len(ev) != 1 || !ev[0].Time.Equal(t0.Add(10*time.Second)) {
				t.Errorf("%s: events of %s from 10 s, limit 1: %+v", when, a, ev)
			}
		}
	}
	inLog := func() (records, events int) {
		_ = s.db.View(func(tx *bolt.Tx) error {
			records, events = tx.Bucket(bAgents).Stats().KeyN, tx.Bucket(bEventsAgent).Stats().KeyN
			return nil
		})
		return records, events
	}
	if r, e := inLog(); r != 0 || e != 0 {
		t.Fatalf("%d resume records and %d index entries written to their buckets at once, want them in the log", r, e)
	}
	check("the writer, log only", s, 2, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	check("a reader", ro, 2, 3)
	_ = ro.Close()

	s = open(t, dir, Options{FlushEvery: -1})
	check("the writer, reopened", s, 2, 3)
	// 13 minutes later the first segment is compacted: records and index
	// entries move to their buckets; a newer record stays in the log.
	later := 13 * time.Minute
	if err := s.Append(Batch{Observations: []Observation{poll("a", later, state.OK, time.Millisecond, 1)},
		Events: []Event{stateEvent("a", later, state.OK)}, Agents: map[string][]byte{"a": rec("a", 3)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if r, e := inLog(); r != 2 || e != 6 {
		t.Errorf("after compaction %d resume records and %d index entries in their buckets, want 2 and 6", r, e)
	}
	recs, _ := s.Agents()
	if string(recs["a"]) != string(rec("a", 3)) || string(recs["b"]) != string(rec("b", 2)) {
		t.Errorf("after compaction: records %s", recs)
	}
	if ev, _ := s.Events(Query{Agent: "a"}); len(ev) != 4 || !ev[3].Time.Equal(t0.Add(later)) {
		t.Errorf("after compaction: %d events of a, want 4 in time order: %+v", len(ev), ev)
	}
	if ev, _ := s.Events(Query{Agent: "b"}); len(ev) != 3 {
		t.Errorf("after compaction: %d events of b, want 3", len(ev))
	}
}

// A kill -9 of a writer keeps every acknowledged event and leaves the
// resume records of the last commit: a child appends, for 3 agents in
// turn, an event with the agent's record naming its number, and prints the
// number once Append returned; after the kill, every printed event is
// there and each agent's record is at least the last printed one of it.
func TestKillNineKeepsEventsAndTheLastResumeRecords(t *testing.T) {
	agents := []string{"a", "b", "c"}
	if dir := os.Getenv("VIGIL_HISTORY_RECORDS"); dir != "" {
		s, err := Open(dir, Options{})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		for i := 0; ; i++ {
			a := agents[i%3]
			at := time.Duration(i) * time.Millisecond
			b := Batch{Observations: []Observation{poll(a, at, state.OK, time.Millisecond, 1)},
				Events: []Event{stateEvent(a, at, state.Degraded)}, Agents: map[string][]byte{a: []byte(strconv.Itoa(i))}}
			if err := s.Append(b); err != nil {
				os.Exit(1)
			}
			fmt.Println(i)
		}
	}
	dir := t.TempDir()
	acked := ackedCount(t, killedWriter(t, "TestKillNineKeepsEventsAndTheLastResumeRecords", "VIGIL_HISTORY_RECORDS", dir,
		func(line string) bool { return line == "300" }))
	s := open(t, dir, Options{})
	recs, err := s.Agents()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for k, a := range agents {
		last := acked - (acked-k)%3 // the last acknowledged number of a
		got, err := strconv.Atoi(string(recs[a]))
		if err != nil || got < last || got%3 != k {
			t.Errorf("resume record of %s after kill -9: %q, want at least %d", a, recs[a], last)
		}
		ev, err := s.Events(Query{Agent: a})
		if err != nil {
			t.Fatal(err)
		}
		have := map[time.Time]bool{}
		for _, e := range ev {
			have[e.Time] = true
		}
		for i := k; i <= acked; i += 3 {
			if !have[t0.Add(time.Duration(i)*time.Millisecond)] {
				t.Errorf("acknowledged event %d of %s lost", i, a)
			}
		}
		total += len(ev)
	}
	if all, _ := s.Events(Query{}); len(all) != total {
		t.Errorf("%d events in time order, %d by agent", len(all), total)
	}
}

// A store of format 2 (JSON observations in the log; resume records and
// the event index in their buckets) is read as it is, and converted in
// place by Open.
func TestFormat2IsConvertedInPlace(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	v2 := func(o Observation) []byte {
		raw, _ := json.Marshal(o)
		v := binary.BigEndian.AppendUint64(nil, uint64(o.Time.UnixNano()))
		v = append(append(append(v, 1), o.Agent...), 0)
		return append(v, raw...)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bMeta, bEvents, bEventsAgent, bLog, bChunks, bSilences, bAgents} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		_ = tx.Bucket(bMeta).Put(kVersion, []byte("2"))
		// The first 10 minutes in a JSON chunk, the next 5 in the log.
		var first []Observation
		for i := range 60 {
			first = append(first, poll("a", time.Duration(i)*10*time.Second, state.OK, time.Millisecond, 1))
		}
		raw, _ := json.Marshal(thin(first))
		_ = tx.Bucket(bChunks).Put(chunkKey(spanOf(t0), "a"), raw)
		seg, _ := tx.Bucket(bLog).CreateBucket(u64(spanOf(t0.Add(10 * time.Minute))))
		for i := 60; i < 90; i++ {
			_ = seg.Put(u64(uint64(i)), v2(poll("a", time.Duration(i)*10*time.Second, state.OK, time.Millisecond, 1)))
		}
		e := stateEvent("a", time.Minute, state.Degraded)
		raw, _ = json.Marshal(e)
		key := timeKey(e.Time, 1)
		_ = tx.Bucket(bEvents).Put(key, raw)
		_ = tx.Bucket(bEventsAgent).Put(append([]byte("a\x00"), key...), nil)
		return tx.Bucket(bAgents).Put([]byte("a"), []byte(`{"x":1}`))
	})
	_ = db.Close()
	if err != nil {
		t.Fatal(err)
	}
	polls := func(obs []Observation) int {
		n := 0
		for _, o := range obs {
			n += o.PollCount()
		}
		return n
	}
	r, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := r.Observations(Query{Agent: "a"})
	last, _ := r.LastAnswers()
	_ = r.Close()
	if polls(old) != 90 || !last["a"].Equal(t0.Add(890*time.Second)) {
		t.Fatalf("a reader of format 2 reads %d polls (want 90), last answer %v", polls(old), last)
	}
	s := open(t, dir, Options{FlushEvery: -1})
	obs, _ := s.Observations(Query{Agent: "a"})
	if polls(obs) != 90 {
		t.Errorf("after conversion %d polls, want 90", polls(obs))
	}
	recs, _ := s.Agents()
	ev, _ := s.Events(Query{Agent: "a"})
	if string(recs["a"]) != `{"x":1}` || len(ev) != 1 {
		t.Errorf("after conversion: records %s, %d events", recs, len(ev))
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		segments := 0
		_ = tx.Bucket(bLog).ForEachBucket(func([]byte) error { segments++; return nil })
		if v := string(tx.Bucket(bMeta).Get(kVersion)); v != fmt.Sprint(FormatVersion) || segments != 0 {
			t.Errorf("after conversion: version %s, %d log segments", v, segments)
		}
		chunk := tx.Bucket(bChunks).Get(chunkKey(spanOf(t0.Add(10*time.Minute)), "a"))
		if len(chunk) == 0 || strings.HasPrefix(string(chunk), "[") {
			t.Errorf("the log's observations are not in a binary chunk: %.20q", chunk)
		}
		return nil
	})
}

// A tampered or torn store: every cut and every flipped byte of a log entry, a chunk and a block
// gives "not readable" (or a readable value), never a panic.
func TestDamagedRecordsAreRefusedWithoutPanic(t *testing.T) {
	o := Observation{Time: t0, Answered: true, Agent: "node-1", State: state.OK, Reason: "running", RTT: 2000,
		Processes: []ProcessObservation{{Name: "cdp", State: state.OK, Reason: "running", Generation: 3, LagSeconds: lag(1)}}}
	entry, chunk := obsEntry(&o), encodeChunk([]Observation{o, o})
	block := blockEntry(appendSub(nil, entryObs, "node-1", entry), deflate(entry))
	read := func(what string, b []byte) {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("%s %x: panic %v", what, b, r)
			}
		}()
		if h, ok := parseLogEntry(b); ok {
			_, _ = h.observation()
			_ = h.expand(0, func(logHeader) {})
		}
		_, _ = decodeChunk("node-1", b)
		_, _ = blockEntries(b)
	}
	for _, v := range [][]byte{entry, chunk, block} {
		for n := range len(v) {
			read("cut", v[:n])
			for _, x := range []byte{0x01, 0x80, 0xff} {
				w := bytes.Clone(v)
				w[n] ^= x
				read("flipped", w)
			}
		}
	}
}
