package history

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/state"
)

// journalled appends n batches with an event, a resume record and (for the
// second) a silence to a store that does not commit by itself, and returns
// a copy of the store as a crash at that moment leaves it: history.db
// without the batches, and the journal with them.
func journalled(t *testing.T, n int) (dir string, journal []byte) {
	t.Helper()
	live := t.TempDir()
	s := open(t, live, Options{FlushEvery: -1})
	for i := range n {
		b := Batch{Events: []Event{stateEvent("a", time.Duration(i)*time.Second, state.Degraded)},
			Agents: map[string][]byte{"a": []byte(strconv.Itoa(i))}}
		if i == 1 {
			b.Silences = []Silence{{Agent: "a", Kind: "restart", Start: t0, Duration: 8 * time.Second}}
		}
		if err := s.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	journal, err := os.ReadFile(walName(live, 0))
	if err != nil {
		t.Fatal(err)
	}
	store, err := os.ReadFile(filepath.Join(live, FileName))
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), store, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, journal
}

// What a crash leaves in the journal is in the store after Open, once:
// events, silences and the newest resume record; the journal is emptied.
func TestJournalIsWrittenToTheStoreAtOpen(t *testing.T) {
	dir, journal := journalled(t, 3)
	if err := os.WriteFile(walName(dir, 0), journal, 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader (vigil history) sees the events before the writer is back.
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := ro.Events(Query{})
	some, _ := ro.Events(Query{Agent: "a", From: t0.Add(time.Second), Limit: 1})
	_ = ro.Close()
	if len(all) != 3 || len(some) != 1 || !some[0].Time.Equal(t0.Add(time.Second)) {
		t.Errorf("read-only: %d events, and %v from the second on (limit 1); want 3 and the second", len(all), some)
	}
	s := open(t, dir, Options{})
	ev, _ := s.Events(Query{Agent: "a"})
	recs, _ := s.Agents()
	sil, _ := s.Silences()
	if len(ev) != 3 || string(recs["a"]) != "2" || len(sil) != 1 {
		t.Fatalf("after Open: %d events, resume record %q, %d silences; want 3, \"2\", 1", len(ev), recs["a"], len(sil))
	}
	if fi, err := os.Stat(walName(dir, 0)); err != nil || fi.Size() != 0 {
		t.Errorf("the journal after Open: %v, %v", fi, err)
	}
	// The same journal found again (a crash after the commit, before the
	// journal was emptied) adds nothing: the store notes the last record it holds.
	_ = s.Close()
	if err := os.WriteFile(walName(dir, 1), journal, 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	if ev, _ := s.Events(Query{}); len(ev) != 3 {
		t.Errorf("%d events after the same journal was found twice, want 3", len(ev))
	}
	// New records continue the sequence: they are not taken for old ones.
	_ = s.Append(Batch{Events: []Event{stateEvent("a", time.Hour, state.OK)}})
	live, _ := os.ReadFile(walName(dir, 0))
	_ = s.Close()
	if err := os.WriteFile(walName(dir, 0), live, 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	if ev, _ := s.Events(Query{}); len(ev) != 4 {
		t.Errorf("%d events after a new record was found again, want 4", len(ev))
	}
}

// A journal cut anywhere (a write a crash interrupted) or with a damaged
// byte gives back the records before the damage, and Open succeeds.
func TestJournalCutOrDamaged(t *testing.T) {
	dir, journal := journalled(t, 3)
	ends := []int{}
	for _, r := range decodeWAL(journal) {
		ends = append(ends, len(encodeWAL(&r)))
	}
	if len(ends) != 3 {
		t.Fatalf("%d records in the journal, want 3", len(ends))
	}
	for i := 1; i < len(ends); i++ {
		ends[i] += ends[i-1]
	}
	complete := func(n int) int {
		k := 0
		for _, e := range ends {
			if e <= n {
				k++
			}
		}
		return k
	}
	store, _ := os.ReadFile(filepath.Join(dir, FileName))
	check := func(name string, j []byte, want int) {
		t.Helper()
		d := t.TempDir()
		_ = os.WriteFile(filepath.Join(d, FileName), store, 0o600)
		_ = os.WriteFile(walName(d, 0), j, 0o600)
		s, err := Open(d, Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer s.Close()
		if ev, _ := s.Events(Query{}); len(ev) != want {
			t.Errorf("%s: %d events, want %d", name, len(ev), want)
		}
	}
	for n := 0; n <= len(journal); n += max(1, len(journal)/200) {
		check("cut at "+strconv.Itoa(n), journal[:n], complete(n))
	}
	for _, at := range []int{0, 5, 9, walHeader + 1, ends[0] + 12, ends[1] + walHeader + 3, len(journal) - 1} {
		bad := append([]byte(nil), journal...)
		bad[at] ^= 0x40
		check("byte "+strconv.Itoa(at)+" flipped", bad, complete(at))
	}
}

// With SyncEvents, concurrent appends share fsyncs and all are kept.
func TestSyncEvents(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SyncEvents: true})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				if err := s.Append(Batch{Events: []Event{stateEvent(strconv.Itoa(g), time.Duration(i)*time.Second, state.OK)}}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if ev, _ := s.Events(Query{}); len(ev) != 160 {
		t.Errorf("%d events, want 160", len(ev))
	}
}
