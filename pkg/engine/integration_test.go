package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/internal/agentproc"
	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// Real agents, a real clock: short intervals and budgets on the same scale.
const interval = 200 * time.Millisecond

// fastPolicy: standalone budget 0.4 s + 1.5 s = 1.9 s; in a cluster 0.4 + 2 = 2.4 s.
func fastPolicy() fleet.Policy {
	p := fleet.DefaultPolicy()
	p.Budget.ResponseTime, p.Budget.Processing = 300*time.Millisecond, 100*time.Millisecond
	p.Budget.Failover, p.Budget.Restart = 2*time.Second, 1500*time.Millisecond
	p.Budget.NetworkInterruption, p.Budget.AppErrorRecovery = 600*time.Millisecond, 800*time.Millisecond
	p.AutoRestart.BackoffInitial, p.AutoRestart.BackoffMax = 200*time.Millisecond, 400*time.Millisecond
	return p
}

func fleetFor(p fleet.Policy, agents ...fleet.Agent) fleet.Config {
	for i := range agents {
		agents[i].Policy = p
		agents[i].ReadToken, agents[i].ControlToken = readToken, controlToken
	}
	return fleet.Config{PollInterval: interval, Defaults: p, Agents: agents}
}

// recorder is a Sink the tests can wait on.
type recorder struct {
	mu     sync.Mutex
	events []engine.Event
	cond   *sync.Cond
}

func newRecorder() *recorder {
	r := &recorder{}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *recorder) Emit(e engine.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.cond.Broadcast()
}

func (r *recorder) all() []engine.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]engine.Event(nil), r.events...)
}

func (r *recorder) dump() string {
	var b strings.Builder
	for _, e := range r.all() {
		j, _ := json.Marshal(e)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// wait returns the first event (from index from on) matching match.
func (r *recorder) wait(t *testing.T, what string, timeout time.Duration, match func(engine.Event) bool) engine.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range r.all() {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; events:\n%s", timeout, what, r.dump())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isState(agent, process string, to state.State) func(engine.Event) bool {
	return func(e engine.Event) bool {
		return e.Type == history.TypeState && e.Agent == agent && e.Process == process && e.To == to
	}
}

func isAction(agent, action, result string) func(engine.Event) bool {
	return func(e engine.Event) bool {
		return e.Type == history.TypeAction && e.Agent == agent && e.Action == action && e.Result == result
	}
}

func run(t *testing.T, cfg fleet.Config, opts engine.Options) (*engine.Engine, *recorder) {
	t.Helper()
	rec := newRecorder()
	opts.Sink, opts.MinPollInterval = rec, 50*time.Millisecond
	e, err := engine.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e, rec
}

func TestKilledCDPIsRestartedWithinOnePoll(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	t.Parallel()
	a := agentproc.StartConfig(t, t.TempDir(), agentConfig(t, marker(t)), marker(t))
	e, rec := run(t, fleetFor(fastPolicy(), fleet.Agent{Name: "solo", URL: a.URL()}), engine.Options{})
	rec.wait(t, "solo OK", 10*time.Second, isState("solo", "", state.OK))
	snap, _ := e.Snapshot().Agent("solo")
	pid := snap.Processes[0].PID
	gen := snap.Processes[0].Generation
	if pid == nil {
		t.Fatalf("no pid: %+v", snap)
	}

	killed := time.Now()
	if err := syscall.Kill(int(*pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	act := rec.wait(t, "a restart", 5*time.Second, isAction("solo", "restart", "ok"))
	// Seen at the next poll (one interval, plus jitter), then the restart itself.
	if took := act.Time.Sub(killed); took > interval+interval/10+time.Second {
		t.Errorf("restart done %s after the kill", took)
	}
	if act.By != "auto" || act.Generation != gen+1 {
		t.Errorf("action %+v, want by auto, generation %d", act, gen+1)
	}
	rec.wait(t, "OK again", 5*time.Second, func(ev engine.Event) bool {
		return ev.Type == history.TypeState && ev.Agent == "solo" && ev.Process == "cdp" && ev.From == state.Restarting && ev.To == state.OK
	})
	time.Sleep(3 * interval)
	n := 0
	for _, ev := range rec.all() {
		if ev.Type == history.TypeAction {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d actions, want exactly one:\n%s", n, rec.dump())
	}
}

func TestKilledAgentIsGraceThenFailedAtTheBudget(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	t.Parallel()
	a := agentproc.StartConfig(t, t.TempDir(), agentConfig(t, marker(t)), marker(t))
	e, rec := run(t, fleetFor(fastPolicy(), fleet.Agent{Name: "solo", URL: a.URL()}), engine.Options{})
	rec.wait(t, "solo OK", 10*time.Second, isState("solo", "", state.OK))

	a.Kill()
	grace := rec.wait(t, "GRACE", 3*time.Second, isState("solo", "", state.Grace))
	if !strings.HasPrefix(grace.Reason, "awaiting ") {
		t.Errorf("GRACE reason %q", grace.Reason)
	}
	failed := rec.wait(t, "FAILED", 5*time.Second, isState("solo", "", state.Failed))
	snap, _ := e.Snapshot().Agent("solo")
	budget := snap.Budget.Total
	silent := failed.Time.Sub(snap.LastAnswerAt)
	if silent <= budget || silent > budget+interval+interval/2 {
		t.Errorf("FAILED after %s of silence; budget %s, interval %s", silent, budget, interval)
	}
	if !strings.HasPrefix(failed.Reason, "no answer for ") || !strings.Contains(failed.Diagnosis, "tcp failed") {
		t.Errorf("FAILED reason %q, diagnosis %q", failed.Reason, failed.Diagnosis)
	}
}

func writeRole(t *testing.T, file, role string) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(role+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

func TestFailoverStartsOnTheNewActiveFirstThenStopsTheOld(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	t.Parallel()
	dir := t.TempDir()
	roleA, roleB := filepath.Join(dir, "role-a"), filepath.Join(dir, "role-b")
	writeRole(t, roleA, "active")
	writeRole(t, roleB, "passive")
	mk := marker(t)
	a := agentproc.StartConfig(t, filepath.Join(dir, "a"), withCluster(agentConfig(t, mk+"-a"), "ha", "node-a", roleA), mk+"-a")
	b := agentproc.StartConfig(t, filepath.Join(dir, "b"), withCluster(agentConfig(t, mk+"-b"), "ha", "node-b", roleB), mk+"-b")
	e, rec := run(t, fleetFor(fastPolicy(), fleet.Agent{Name: "node-a", URL: a.URL(), Cluster: "ha"}, fleet.Agent{Name: "node-b", URL: b.URL(), Cluster: "ha"}), engine.Options{})
	rec.wait(t, "node-a OK", 10*time.Second, isState("node-a", "", state.OK))
	rec.wait(t, "node-b STANDBY", 10*time.Second, isState("node-b", "", state.Standby))

	writeRole(t, roleA, "passive")
	writeRole(t, roleB, "active")
	stop := rec.wait(t, "stop on node-a", 10*time.Second, isAction("node-a", "stop", "ok"))
	start := rec.wait(t, "start on node-b", time.Second, isAction("node-b", "restart", "ok"))
	confirmed := rec.wait(t, "node-b confirmed running", time.Second, func(ev engine.Event) bool {
		return isState("node-b", "cdp", state.OK)(ev)
	})
	if !start.Time.Before(stop.Time) || confirmed.Time.After(stop.Time) {
		t.Errorf("order: start on node-b %s, confirmed %s, stop on node-a %s:\n%s", start.Time, confirmed.Time, stop.Time, rec.dump())
	}
	// At no moment were both stopped: the stop came after node-b was confirmed.
	rec.wait(t, "node-a STANDBY, stopped", 5*time.Second, func(ev engine.Event) bool {
		s, _ := e.Snapshot().Agent("node-a")
		return s.State == state.Standby && s.Processes[0].AgentState == "stopped"
	})
	if n := len(agentproc.PidsWithMarker(mk + "-a")); n != 0 {
		t.Errorf("CDP still runs on node-a (%d processes)", n)
	}
	if n := len(agentproc.PidsWithMarker(mk + "-b")); n != 1 {
		t.Errorf("%d CDP processes on node-b, want 1", n)
	}
}

// goodStatus is a healthy standalone agent's answer; serve answers with it (or an edit of it).
const goodStatus = `{"apiVersion":"v1","time":"2026-11-26T04:23:58.477Z","agent":{"id":"a","version":"0.1.0","hostname":"h","startedAt":"2026-11-26T04:00:00Z","pid":1},"cluster":null,` +
	`"processes":[{"name":"cdp","kind":"command","state":"running","expected":true,"pid":5,"generation":2,"startedAt":"2026-11-26T04:20:00Z","restarts":0,"lastExit":null,"protection":null}]}`

func serve(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}
}

func TestBadAnswers(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 1<<20+10)
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		wantState  state.State
		wantReason string
	}{
		{"garbage", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>hello</html>")) },
			state.Unknown, "the answer could not be understood: the answer is not JSON: invalid character '<' looking for beginning of value"},
		{"a status missing a key", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"apiVersion":"v1"}`)) },
			state.Unknown, "the answer could not be understood: time: missing"},
		{"a pid out of range", serve(strings.Replace(goodStatus, `"pid":5`, `"pid":-1`, 1)),
			state.Unknown, "the answer could not be understood: processes[0].pid: -1 is out of range (minimum 1)"},
		{"a generation out of range", serve(strings.Replace(goodStatus, `"generation":2`, `"generation":-5`, 1)),
			state.Unknown, "the answer could not be understood: processes[0].generation: -5 is out of range (minimum 0)"},
		{"a negative lag", serve(strings.Replace(goodStatus, `"protection":null`, `"protection":{"lastChangeAt":null,"lastReplicatedAt":null,"lagSeconds":-1e308,"pendingChanges":0,"pendingBytes":0}`, 1)),
			state.Unknown, "the answer could not be understood: processes[0].protection.lagSeconds: -1e308 is out of range (minimum 0)"},
		{"HTTP 500", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(500)
			_, _ = w.Write([]byte(`{"error":{"code":"internal","message":"disk full"}}`))
		}, state.Unknown, "the agent answered with an error: HTTP 500 Internal Server Error: disk full"},
		{"too much", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(big)) },
			state.Unknown, "the agent answered with an error: answer larger than 1 MiB refused: is this URL a vigil-agent?"},
		{"too slowly", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		}, state.Grace, "never answered; awaiting "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			e, err := engine.New(fleetFor(fastPolicy(), fleet.Agent{Name: "x", URL: srv.URL}), engine.Options{MinPollInterval: interval})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_ = e.PollNow(context.Background(), "x")
			s, _ := e.Snapshot().Agent("x")
			if s.State != tt.wantState || !strings.HasPrefix(s.Reason, tt.wantReason) {
				t.Errorf("%s %q\nwant %s %q", s.State, s.Reason, tt.wantState, tt.wantReason)
			}
			if time.Since(start) > 2*time.Second {
				t.Errorf("the poll took %s; the timeout follows the expected response time (%s)", time.Since(start), s.Budget.ResponseTime+s.Budget.Processing)
			}
		})
	}
}

func TestRestartThatKeepsFailingEndsFailed(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	t.Parallel()
	dir := t.TempDir()
	cfg := agentConfig(t, marker(t))
	cfg["processes"].([]any)[0].(map[string]any)["command"] = []string{filepath.Join(dir, "no-such-binary")}
	a := agentproc.StartConfig(t, dir, cfg, marker(t))
	_, rec := run(t, fleetFor(fastPolicy(), fleet.Agent{Name: "solo", URL: a.URL()}), engine.Options{})
	failed := rec.wait(t, "FAILED", 10*time.Second, isState("solo", "", state.Failed))
	if !strings.HasPrefix(failed.Reason, "restart failing: 3 attempts failed (last: agent answer: POST "+a.URL()+"/v1/processes/cdp/restart: HTTP 500 Internal Server Error: could not restart cdp: spawn ") {
		t.Errorf("reason %q", failed.Reason)
	}
	var times []time.Time
	for _, ev := range rec.all() {
		if isAction("solo", "restart", "failed")(ev) {
			times = append(times, ev.Time)
		}
	}
	if len(times) < 3 {
		t.Fatalf("%d failed restarts", len(times))
	}
	// Back-off between failed attempts: 200 ms, then 400 ms.
	if d := times[2].Sub(times[1]); d < 400*time.Millisecond {
		t.Errorf("the third attempt came %s after the second; back-off is 400 ms", d)
	}
}

func TestFlapGuardTripsIntoDegraded(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	t.Parallel()
	dir := t.TempDir()
	node := nodePath(t)
	cfg := agentConfig(t, marker(t))
	cfg["processes"].([]any)[0].(map[string]any)["command"] = []string{node, "-e", "setTimeout(() => process.exit(3), 150)", marker(t)}
	a := agentproc.StartConfig(t, dir, cfg, marker(t))
	p := fastPolicy()
	p.AutoRestart.MaxRestarts, p.AutoRestart.Window = 2, time.Minute
	e, rec := run(t, fleetFor(p, fleet.Agent{Name: "solo", URL: a.URL()}), engine.Options{})
	deg := rec.wait(t, "DEGRADED", 15*time.Second, isState("solo", "", state.Degraded))
	if !strings.HasPrefix(deg.Reason, "auto-restart suspended: 3 restarts within 1m0s") {
		t.Errorf("reason %q", deg.Reason)
	}
	time.Sleep(5 * interval)
	n := 0
	for _, ev := range rec.all() {
		if isAction("solo", "restart", "ok")(ev) {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d restarts, want 3 (then suspended)", n)
	}
	if s, _ := e.Snapshot().Agent("solo"); s.State != state.Degraded || !s.Processes[0].AutoRestartSuspended {
		t.Errorf("snapshot %s %q", s.State, s.Reason)
	}
}

func TestTwoEnginesNeverRestartOneGenerationTwice(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	t.Parallel()
	a := agentproc.StartConfig(t, t.TempDir(), agentConfig(t, marker(t)), marker(t))
	cfg := fleetFor(fastPolicy(), fleet.Agent{Name: "solo", URL: a.URL()})
	e1, rec1 := run(t, cfg, engine.Options{})
	_, rec2 := run(t, cfg, engine.Options{})
	rec1.wait(t, "OK", 10*time.Second, isState("solo", "", state.OK))
	rec2.wait(t, "OK", 10*time.Second, isState("solo", "", state.OK))
	const kills = 3
	for i := range kills {
		var pid *int64
		deadline := time.Now().Add(5 * time.Second)
		for pid == nil || len(agentproc.PidsWithMarker(marker(t))) == 0 {
			s, _ := e1.Snapshot().Agent("solo")
			if len(s.Processes) > 0 && s.Processes[0].State == state.OK {
				pid = s.Processes[0].PID
			}
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: cdp not running again", i)
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = syscall.Kill(int(*pid), syscall.SIGKILL)
		deadline = time.Now().Add(5 * time.Second)
		for {
			s, _ := e1.Snapshot().Agent("solo")
			if len(s.Processes) > 0 && s.Processes[0].PID != nil && *s.Processes[0].PID != *pid && s.Processes[0].State == state.OK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: not restarted:\n%s\n%s", i, rec1.dump(), rec2.dump())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	gens := map[int64]int{}
	for _, ev := range append(rec1.all(), rec2.all()...) {
		if isAction("solo", "restart", "ok")(ev) {
			gens[ev.Generation]++
		}
	}
	if len(gens) != kills {
		t.Errorf("restarted generations %v, want %d distinct", gens, kills)
	}
	for g, n := range gens {
		if n != 1 {
			t.Errorf("generation %d came from %d restarts", g, n)
		}
	}
	var st struct {
		Processes []struct {
			Restarts int `json:"restarts"`
		} `json:"processes"`
	}
	req, _ := http.NewRequest("GET", a.URL()+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&st)
	if st.Processes[0].Restarts != kills {
		t.Errorf("the agent counts %d restarts, want %d", st.Processes[0].Restarts, kills)
	}
}

// The engine stops while an agent is silent; a new one on the same history
// resumes its GRACE clock from the last answer, and loses no event.
func TestResumeFromHistoryKeepsTheGraceClock(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	t.Parallel()
	dir := t.TempDir()
	a := agentproc.StartConfig(t, filepath.Join(dir, "agent"), agentConfig(t, marker(t)), marker(t))
	p := fastPolicy()
	p.Budget.Restart = 3 * time.Second // budget 3.4 s
	cfg := fleetFor(p, fleet.Agent{Name: "solo", URL: a.URL()})

	store, err := history.Open(filepath.Join(dir, "history"), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rec := newRecorder()
	e1, _ := engine.New(cfg, engine.Options{History: store, Sink: rec, MinPollInterval: interval})
	done := make(chan struct{})
	go func() { _ = e1.Run(ctx); close(done) }()
	rec.wait(t, "OK", 10*time.Second, isState("solo", "", state.OK))
	a.Kill()
	rec.wait(t, "GRACE", 3*time.Second, isState("solo", "", state.Grace))
	last, _ := e1.Snapshot().Agent("solo")
	cancel()
	<-done
	_ = store.Close()
	time.Sleep(time.Second)

	store, err = history.Open(filepath.Join(dir, "history"), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rec2 := newRecorder()
	e2, err := engine.New(cfg, engine.Options{History: store, Sink: rec2, MinPollInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := e2.Snapshot().Agent("solo"); s.State != state.Grace || !s.LastAnswerAt.Equal(last.LastAnswerAt) {
		t.Fatalf("resumed as %s, last answer %s (was %s)", s.State, s.LastAnswerAt, last.LastAnswerAt)
	}
	_ = e2.PollNow(context.Background(), "solo")
	s, _ := e2.Snapshot().Agent("solo")
	silentFor := time.Since(last.LastAnswerAt)
	if s.State != state.Grace || !strings.HasPrefix(s.Reason, "awaiting ") {
		t.Errorf("%s %q", s.State, s.Reason)
	}
	if silentFor < time.Second {
		t.Errorf("silence %s", silentFor)
	}
	if ev := rec2.all(); len(ev) != 0 {
		t.Errorf("no change expected after resuming, got:\n%s", rec2.dump())
	}
	events, _ := store.Events(history.Query{Agent: "solo"})
	var got []string
	for _, ev := range events {
		if ev.Type == history.TypeState && ev.Process == "" {
			got = append(got, fmt.Sprintf("%s→%s", ev.From, ev.To))
		}
	}
	if strings.Join(got, " ") != "UNKNOWN→OK OK→GRACE" {
		t.Errorf("stored agent state changes: %v", got)
	}
	agentEvents := 0
	for _, ev := range events {
		if ev.Type == history.TypeAgent {
			agentEvents++
		}
	}
	if agentEvents == 0 {
		t.Error("the agent's own events were not copied into the history")
	}
}
