package history

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/state"
)

var t0 = time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)

func open(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func stateEvent(agent string, at time.Duration, to state.State) Event {
	return Event{Type: TypeState, Time: t0.Add(at), Agent: agent, Process: "cdp", From: state.OK, To: to, Reason: "r", BudgetSeconds: 32}
}

func TestAppendAndQuery(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	for i := range 10 {
		for _, a := range []string{"a", "ab", "b"} {
			err := s.Append(Batch{
				Events:       []Event{stateEvent(a, time.Duration(i)*time.Second, state.Grace)},
				Observations: []Observation{{Time: t0.Add(time.Duration(i) * time.Second), Agent: a, State: state.OK}},
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name      string
		q         Query
		wantCount int
		wantFirst time.Duration
	}{
		{"one agent, all", Query{Agent: "a"}, 10, 0},
		{"an agent whose name prefixes another", Query{Agent: "a", From: t0.Add(5 * time.Second)}, 5, 5 * time.Second},
		{"range, To exclusive", Query{Agent: "b", From: t0.Add(2 * time.Second), To: t0.Add(4 * time.Second)}, 2, 2 * time.Second},
		{"every agent", Query{}, 30, 0},
		{"every agent from a time, limited", Query{From: t0.Add(9 * time.Second), Limit: 2}, 2, 9 * time.Second},
		{"unknown agent", Query{Agent: "zz"}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := s.Events(tt.q)
			if err != nil || len(ev) != tt.wantCount {
				t.Fatalf("events: %d, %v; want %d", len(ev), err, tt.wantCount)
			}
			if len(ev) > 0 && (!ev[0].Time.Equal(t0.Add(tt.wantFirst)) || ev[0].To != state.Grace) {
				t.Errorf("first event %+v", ev[0])
			}
			obs, err := s.Observations(tt.q)
			if err != nil || len(obs) != tt.wantCount {
				t.Fatalf("observations: %d, %v; want %d", len(obs), err, tt.wantCount)
			}
		})
	}
}

func TestResumeRecordsAndSilences(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Append(Batch{Agents: map[string][]byte{"a": []byte(`{"x":1}`)}, Silences: []Silence{{Agent: "a", Kind: "restart", Start: t0, Duration: 8 * time.Second}}})
	_ = s.Append(Batch{Agents: map[string][]byte{"a": []byte(`{"x":2}`)}})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrInUse) {
		t.Errorf("a second open: %v", err)
	}
	_ = s.Close()
	s = open(t, dir, Options{})
	ag, _ := s.Agents()
	if string(ag["a"]) != `{"x":2}` {
		t.Errorf("resume record %s", ag["a"])
	}
	sil, _ := s.Silences()
	if len(sil) != 1 || sil[0].Duration != 8*time.Second {
		t.Errorf("silences %+v", sil)
	}
}

func TestPrune(t *testing.T) {
	s := open(t, t.TempDir(), Options{Retention: time.Hour})
	for i := range 4 {
		at := time.Duration(i) * 40 * time.Minute // 0, 40, 80, 120 minutes
		_ = s.Append(Batch{Events: []Event{stateEvent("a", at, state.OK)}, Observations: []Observation{{Time: t0.Add(at), Agent: "a"}}})
		// Each in the log's segment of its time, as when 40 minutes pass between them.
		_ = s.Flush()
	}
	if err := s.Prune(t0.Add(130 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	ev, _ := s.Events(Query{Agent: "a"})
	all, _ := s.Events(Query{})
	obs, _ := s.Observations(Query{})
	if len(ev) != 2 || len(all) != 2 || len(obs) != 2 {
		t.Errorf("after prune: %d events by agent, %d in all, %d observations; want 2 each", len(ev), len(all), len(obs))
	}
}

func TestConcurrentAppends(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Go(func() {
			for i := range 10 {
				_ = s.Append(Batch{Events: []Event{stateEvent(fmt.Sprint("agent-", g), time.Duration(i)*time.Second, state.OK)}})
			}
		})
	}
	wg.Wait()
	all, _ := s.Events(Query{})
	if len(all) != 200 {
		t.Errorf("%d events, want 200", len(all))
	}
}

// A kill -9 in the middle of writing loses nothing acknowledged: a child
// process appends and prints each sequence number once Append returned; the
// parent kills it and finds every printed one.
func TestKillNineLosesNothingAcknowledged(t *testing.T) {
	if os.Getenv("VIGIL_HISTORY_WRITER") != "" {
		s, err := Open(os.Getenv("VIGIL_HISTORY_WRITER"), Options{})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		for i := 0; ; i++ {
			if err := s.Append(Batch{Events: []Event{stateEvent("a", time.Duration(i)*time.Millisecond, state.OK)}}); err != nil {
				os.Exit(1)
			}
			fmt.Println(i)
		}
	}
	dir := t.TempDir()
	acked := ackedCount(t, killedWriter(t, "TestKillNineLosesNothingAcknowledged", "VIGIL_HISTORY_WRITER", dir,
		func(line string) bool { return line == "100" }))
	s := open(t, dir, Options{})
	all, err := s.Events(Query{Agent: "a"})
	if err != nil || len(all) < acked+1 {
		t.Fatalf("%d events after kill -9, %d were acknowledged (%v)", len(all), acked+1, err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
}

func TestEventJSON(t *testing.T) {
	tests := []struct {
		name string
		e    Event
		want string
	}{
		{"state", Event{Type: TypeState, Time: t0, Agent: "a", Process: "cdp", From: state.Unknown, To: state.OK, Reason: "running", BudgetSeconds: 32},
			`{"type":"state","time":"2026-11-26T04:00:00Z","agent":"a","process":"cdp","from":"UNKNOWN","to":"OK","reason":"running","budgetSeconds":32}`},
		{"action", Event{Type: TypeAction, Time: t0, Agent: "a", Process: "cdp", Action: "restart", By: "auto", Generation: 5, Result: "failed", Error: "boom"},
			`{"type":"action","time":"2026-11-26T04:00:00Z","agent":"a","process":"cdp","action":"restart","by":"auto","generation":5,"result":"failed","error":"boom"}`},
		{"action by a person whose login is auto", Event{Type: TypeAction, Time: t0, Agent: "a", Process: "cdp", Action: "restart", By: "auto", Manual: true, Generation: 6, Result: "ok"},
			`{"type":"action","time":"2026-11-26T04:00:00Z","agent":"a","process":"cdp","action":"restart","by":"auto","generation":6,"result":"ok","error":"","manual":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.e.MarshalJSON()
			if err != nil || string(b) != tt.want {
				t.Fatalf("got %s, %v\nwant %s", b, err, tt.want)
			}
			var back Event
			if err := back.UnmarshalJSON(b); err != nil || back.From != tt.e.From || back.To != tt.e.To || back.Generation != tt.e.Generation || back.Manual != tt.e.Manual {
				t.Errorf("round trip: %+v, %v", back, err)
			}
		})
	}
}

func TestLastAnswers(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	_ = s.Append(Batch{Agents: map[string][]byte{"a": []byte("{}"), "ab": []byte("{}"), "quiet": []byte("{}")}})
	_ = s.Append(Batch{Observations: []Observation{
		{Agent: "a", Time: t0, Answered: true},
		{Agent: "a", Time: t0.Add(time.Second), Answered: true},
		{Agent: "a", Time: t0.Add(2 * time.Second), Answered: false},
		{Agent: "ab", Time: t0.Add(5 * time.Second), Answered: true},
	}})
	got, err := s.LastAnswers()
	if err != nil {
		t.Fatal(err)
	}
	if !got["a"].Equal(t0.Add(time.Second)) || !got["ab"].Equal(t0.Add(5*time.Second)) || len(got) != 2 {
		t.Errorf("last answers %v", got)
	}
}

// killedWriter runs the test binary again as a writer (the test run, with env set to dir: the test
// itself writes when it finds env set), reads the lines it prints as it acknowledges writes, and
// kills it with SIGKILL at the first line for which kill says so. It returns the lines read; the test
// fails if the writer ended before it was killed.
func killedWriter(t *testing.T, run, env, dir string, kill func(line string) bool) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$")
	cmd.Env = append(os.Environ(), env+"="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if !killed && kill(sc.Text()) {
			killed = true
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("the writer ended by itself: %q", lines[max(0, len(lines)-3):])
	}
	return lines
}

// ackedCount is the last number a counting writer acknowledged.
func ackedCount(t *testing.T, lines []string) int {
	t.Helper()
	n, err := strconv.Atoi(lines[len(lines)-1])
	if err != nil {
		t.Fatalf("writer: %s", lines[len(lines)-1])
	}
	return n
}
