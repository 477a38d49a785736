package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/state"
)

var t0 = time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)

func handler(name string, on ...state.State) fleet.Handler {
	return fleet.Handler{Name: name, On: on, Level: fleet.LevelAny, Timeout: 5 * time.Second,
		Backoff: time.Minute, BackoffMax: time.Hour}
}

var failed = Transition{Agent: "db1", Cluster: "sql-ha", Process: "cdp", From: state.OK, To: state.Failed,
	Reason: "silent for 95 s, beyond the budget of 92 s", BudgetSeconds: 92, Time: t0}

func TestMatches(t *testing.T) {
	h := handler("h", state.Failed, state.Degraded)
	agentLevel := h
	agentLevel.Level = fleet.LevelAgent
	fromOK := h
	fromOK.From = []state.State{state.OK}
	other := h
	other.Agents, other.Clusters, other.Processes = []string{"db2"}, nil, nil
	ofCluster := h
	ofCluster.Clusters = []string{"sql-ha"}
	tests := []struct {
		name string
		h    fleet.Handler
		t    Transition
		want bool
	}{
		{"a state it names", h, failed, true},
		{"a state it does not name", h, Transition{Agent: "db1", From: state.Failed, To: state.OK}, false},
		{"STANDBY never, even if named", handler("h", state.Standby), Transition{Agent: "db1", From: state.OK, To: state.Standby}, false},
		{"GRACE never, even if named", handler("h", state.Grace), Transition{Agent: "db1", From: state.OK, To: state.Grace}, false},
		{"level agent, a process", agentLevel, failed, false},
		{"level agent, the agent", agentLevel, Transition{Agent: "db1", From: state.Grace, To: state.Failed}, true},
		{"from OK", fromOK, failed, true},
		{"from GRACE, not named", fromOK, Transition{Agent: "db1", Process: "cdp", From: state.Grace, To: state.Failed}, false},
		{"another agent", other, failed, false},
		{"its cluster", ofCluster, failed, true},
		{"another cluster", ofCluster, Transition{Agent: "fs1", Cluster: "files", From: state.OK, To: state.Failed}, false},
	}
	for _, tc := range tests {
		if got := Matches(tc.h, tc.t); got != tc.want {
			t.Errorf("%s: Matches = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A handler runs once per transition; transitions that keep coming wait
// longer and longer (each skipped one recorded), and a quiet hour resets it.
func TestPlanBacksOff(t *testing.T) {
	clk := clock.NewFake(t0)
	r := New(Options{Clock: clk})
	hs := []fleet.Handler{handler("page", state.Failed)}
	var ran []time.Duration
	skipped := 0
	for i := 0; i < 20; i++ {
		jobs, skip := r.Plan(hs, failed)
		if len(jobs) == 1 {
			ran = append(ran, clk.Now().Sub(t0))
		}
		skipped += len(skip)
		for _, ev := range skip {
			if ev.Result != "skipped" || !strings.Contains(ev.Error, "back-off: it ran at 2026-12-03T04:") || ev.Handler != "page" {
				t.Fatalf("skipped event: %+v", ev)
			}
		}
		clk.Advance(70 * time.Second)
	}
	// Runs at 0, 70 s (1 min passed), then waits of 2, 4, 8 and 16 minutes.
	want := []time.Duration{0, 70 * time.Second, 210 * time.Second, 490 * time.Second, 980 * time.Second}
	if len(ran) != len(want) {
		t.Fatalf("ran at %v, want %v", ran, want)
	}
	for i := range want {
		if ran[i] != want[i] {
			t.Fatalf("ran at %v, want %v", ran, want)
		}
	}
	if skipped != 20-len(ran) {
		t.Errorf("%d skipped, want %d", skipped, 20-len(ran))
	}
	clk.Advance(2 * time.Hour)
	if jobs, _ := r.Plan(hs, failed); len(jobs) != 1 {
		t.Fatal("no run after a quiet period")
	}
	clk.Advance(61 * time.Second)
	if jobs, _ := r.Plan(hs, failed); len(jobs) != 1 {
		t.Error("after a quiet period the back-off did not start again from its first wait")
	}
	// Another process of the same agent has its own back-off.
	other := failed
	other.Process = "lsyncd"
	if jobs, _ := r.Plan(hs, other); len(jobs) != 1 {
		t.Error("another process waited for this one's back-off")
	}
}

func run(t *testing.T, r *Runner, h fleet.Handler) (ev eventView) {
	t.Helper()
	e := r.Run(context.Background(), Job{Handler: h, Transition: failed})
	code := -999
	if e.ExitCode != nil {
		code = *e.ExitCode
	}
	return eventView{Result: e.Result, Code: code, Output: e.Output, Error: e.Error, Duration: e.Duration}
}

type eventView struct {
	Result, Output, Error string
	Code                  int
	Duration              time.Duration
}

// A command gets the transition in its environment and on standard input,
// without the monitor's own VIGIL_ variables; its output is kept, bounded.
func TestCommandGetsTheTransition(t *testing.T) {
	t.Setenv("VIGIL_CONTROL_TOKEN", "the-monitors-secret")
	dir := t.TempDir()
	h := handler("failover", state.Failed)
	h.Command = []string{"sh", "-c", `env | grep '^VIGIL_' | sort > "$0/env"; cat > "$0/stdin"; echo "failing over $VIGIL_CLUSTER"; echo warn >&2`, dir}
	ev := run(t, New(Options{}), h)
	if ev.Result != "ok" || ev.Code != 0 || ev.Output != "failing over sql-ha\nwarn" {
		t.Fatalf("run: %+v", ev)
	}
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	for _, want := range []string{"VIGIL_AGENT=db1\n", "VIGIL_CLUSTER=sql-ha\n", "VIGIL_PROCESS=cdp\n", "VIGIL_STATE=FAILED\n",
		"VIGIL_PREVIOUS_STATE=OK\n", "VIGIL_REASON=silent for 95 s, beyond the budget of 92 s\n", "VIGIL_BUDGET_SECONDS=92\n",
		"VIGIL_HANDLER=failover\n", "VIGIL_TIME=2026-12-03T04:00:00Z\n"} {
		if !strings.Contains(string(env), want) {
			t.Errorf("environment lacks %q:\n%s", want, env)
		}
	}
	if strings.Contains(string(env), "the-monitors-secret") {
		t.Error("the monitor's VIGIL_CONTROL_TOKEN reached the handler")
	}
	var in transitionJSON
	raw, _ := os.ReadFile(filepath.Join(dir, "stdin"))
	if err := json.Unmarshal(raw, &in); err != nil || in.State != "FAILED" || in.PreviousState != "OK" || in.Agent != "db1" || in.BudgetSeconds != 92 {
		t.Errorf("standard input %s: %+v %v", raw, in, err)
	}

	h.Command = []string{"sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; printf '\\033[2J\\001'; exit 3"}
	ev = run(t, New(Options{}), h)
	if ev.Result != "failed" || ev.Code != 3 || len(ev.Output) > MaxOutputBytes || !strings.HasPrefix(ev.Output, "xxxx") {
		t.Errorf("exit 3 with 100 KB of output: %s, code %d, %d bytes", ev.Result, ev.Code, len(ev.Output))
	}

	h.Command = []string{"/nonexistent/failover"}
	if ev = run(t, New(Options{}), h); ev.Result != "failed" || !strings.Contains(ev.Error, "/nonexistent/failover") {
		t.Errorf("a missing program: %+v", ev)
	}
	if ev = run(t, New(Options{NoCommands: true}), h); ev.Result != "failed" || ev.Error != "command handlers run only in vigil watch" {
		t.Errorf("commands refused: %+v", ev)
	}
}

// At its timeout a command is killed with its whole process group.
func TestCommandTimeoutKillsItsChildren(t *testing.T) {
	dir := t.TempDir()
	h := handler("slow", state.Failed)
	h.Timeout = 300 * time.Millisecond
	h.Command = []string{"sh", "-c", `sleep 30 & echo $! > "$0/pids"; echo $$ >> "$0/pids"; exec sleep 31`, dir}
	ev := run(t, New(Options{}), h)
	if ev.Result != "timeout" || ev.Error != "killed after 300ms" || ev.Duration > 5*time.Second {
		t.Fatalf("run: %+v", ev)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "pids"))
	if err != nil || len(strings.Fields(string(raw))) != 2 {
		t.Fatalf("pids: %q %v", raw, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range strings.Fields(string(raw)) {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %s of the handler outlived its timeout", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// alive: the process exists and is not a zombie waiting to be reaped.
func alive(pid string) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

func TestHTTPHandler(t *testing.T) {
	var got atomic.Value
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got.Store(r.Method + " " + r.Header.Get("Authorization") + " " + r.Header.Get("Content-Type") + " " + string(body))
		switch r.URL.Path {
		case "/ok":
			_, _ = io.WriteString(w, "paged\n")
		case "/redirect":
			http.Redirect(w, r, other.URL, http.StatusFound)
		case "/slow":
			time.Sleep(2 * time.Second)
		default:
			http.Error(w, "no such hook", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	h := handler("page", state.Failed)
	h.HTTP = &fleet.HandlerHTTP{URL: srv.URL + "/ok", Method: http.MethodPost, Headers: map[string]fleet.Secret{"Authorization": "Bearer hook-secret"}}
	ev := run(t, New(Options{}), h)
	sent, _ := got.Load().(string)
	if ev.Result != "ok" || ev.Output != "paged" || !strings.HasPrefix(sent, "POST Bearer hook-secret application/json {") ||
		!strings.Contains(sent, `"state":"FAILED","previousState":"OK"`) {
		t.Fatalf("ok: %+v; the hook got %s", ev, sent)
	}

	h.HTTP.URL = srv.URL + "/fail?token=query-secret"
	ev = run(t, New(Options{}), h)
	if ev.Result != "failed" || !strings.Contains(ev.Error, "answered HTTP 500") || ev.Output != "no such hook" || strings.Contains(ev.Error, "query-secret") {
		t.Errorf("HTTP 500: %+v", ev)
	}
	h.HTTP.URL = srv.URL + "/redirect"
	if ev = run(t, New(Options{}), h); ev.Result != "failed" || !strings.Contains(ev.Error, "redirects are not followed") || elsewhere.Load() != 0 {
		t.Errorf("a redirect: %+v, %d calls elsewhere", ev, elsewhere.Load())
	}
	h.HTTP.URL = "http://127.0.0.1:1/hook?token=query-secret"
	if ev = run(t, New(Options{}), h); ev.Result != "failed" || !strings.Contains(ev.Error, "POST http://127.0.0.1:1/hook: ") || strings.Contains(ev.Error, "query-secret") {
		t.Errorf("nothing listening: %+v", ev)
	}
	h.HTTP.URL, h.Timeout = srv.URL+"/slow", 200*time.Millisecond
	if ev = run(t, New(Options{}), h); ev.Result != "timeout" {
		t.Errorf("slow: %+v", ev)
	}
	h.HTTP.URL, h.Timeout = srv.URL+"/ok", time.Second
	got.Store("")
	r := New(Options{AllowURL: func(u string) bool { return strings.HasPrefix(u, "https://pager.example.net/") }})
	if ev = run(t, r, h); ev.Result != "failed" || !strings.Contains(ev.Error, "is not among the URLs the server allows") || got.Load() != "" {
		t.Errorf("a URL not allowed: %+v", ev)
	}
}
