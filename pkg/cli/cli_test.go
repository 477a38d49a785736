package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/internal/agentproc"
	"github.com/vigil-cdp/vigil/pkg/history"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := Run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func writeFleet(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fleetOf describes running test agents as a fleet file; extra goes under defaults.
func fleetOf(t *testing.T, extra string, agents ...*agentproc.Agent) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "pollInterval: 1s\ndefaults:\n  readToken: %q\n  controlToken: %q\n%s", agentproc.ReadToken, agentproc.ControlToken, extra)
	b.WriteString("agents:\n")
	for i, a := range agents {
		fmt.Fprintf(&b, "  - name: node-%d\n    url: %q\n", i+1, a.URL())
	}
	return writeFleet(t, b.String())
}

func TestRunUsageAndVersion(t *testing.T) {
	valid := writeFleet(t, "agents:\n  - name: a\n    url: http://127.0.0.1:1\n    readToken: r\n")
	invalid := writeFleet(t, "agents:\n  - name: a\n    readToken: r\n")
	noToken := writeFleet(t, "agents:\n  - name: a\n    url: http://127.0.0.1:1\n  - name: b\n")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"version", []string{"version"}, 0, "vigil dev\n", ""},
		{"no command", nil, 2, "", "Usage: vigil <command>"},
		{"unknown command", []string{"frobnicate"}, 2, "", `vigil: unknown command "frobnicate"`},
		{"bad fleet file", []string{"watch", "--config", invalid, "--once"}, 2, "", "vigil watch: " + invalid + ": agents[0].url: is required\n"},
		{"fleet file without tokens", []string{"watch", "--config", noToken, "--once"}, 2, "",
			"vigil watch: " + noToken + ": agents[1].url: is required\n" +
				`  agents[0].readToken: agent "a" (line 2) has no read token (a vigil-agent refuses every poll without one): set defaults.readToken for every agent or agents[0].readToken for this one (or the readTokenFile of either)` + "\n" +
				`  agents[1].readToken: agent "b" (line 4) has no read token (a vigil-agent refuses every poll without one): set defaults.readToken for every agent or agents[1].readToken for this one (or the readTokenFile of either)` + "\n"},
		{"missing fleet file", []string{"watch", "--config", filepath.Join(t.TempDir(), "nope.yaml")}, 2, "", "no such file or directory"},
		{"interval too short", []string{"watch", "--config", valid, "--interval", "10ms"}, 2, "", "vigil watch: --interval: 10ms is below the minimum of 1s\n"},
		{"stray argument", []string{"watch", "extra"}, 2, "", `vigil watch: unexpected argument "extra"`},
		{"unknown flag", []string{"watch", "--verbose"}, 2, "", "flag provided but not defined: -verbose"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr: %s)", code, tt.wantCode, stderr)
			}
			if stdout != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

// An agent whose CDP Vigil should restart but cannot, for want of a control
// token, is named at start; watch still runs.
func TestWatchWarnsOfAnAgentWithoutControlToken(t *testing.T) {
	fleetFile := writeFleet(t, "defaults:\n  readToken: r\nagents:\n  - name: a\n    url: http://127.0.0.1:1\n    autoRestart: { enabled: false }\n  - name: b\n    url: http://127.0.0.1:1\n")
	code, _, stderr := run(t, "watch", "--config", fleetFile, "--once")
	if code != ExitNotAll {
		t.Errorf("exit %d, want 1 (nothing answers): %s", code, stderr)
	}
	want := "vigil watch: warning: " + fleetFile + `: agents[1]: agent "b" (line 7) has no control token, so Vigil cannot restart its CDP although autoRestart is on: ` +
		"set defaults.controlToken for every agent or agents[1].controlToken for this one (or the controlTokenFile of either)\n"
	if !strings.HasPrefix(stderr, want) || strings.Count(stderr, "warning") != 1 {
		t.Errorf("stderr\n%s\nwant it to start with\n%s", stderr, want)
	}
}

func TestWatchOnceShowsEveryAgentAndKeepsHistoryBesideTheFleet(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	a, b := agentproc.Start(t, agentproc.Options{}), agentproc.Start(t, agentproc.Options{})
	fleetFile := fleetOf(t, "", a, b)

	code, stdout, stderr := run(t, "watch", "--config", fleetFile, "--once")
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"2 agents: 2 OK", "AGENT", "CLUSTER/ROLE", "BUDGET", "node-1", "node-2", "standalone", "running (pid"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(fleetFile+".history", history.FileName)); err != nil {
		t.Errorf("no history beside the fleet file: %v", err)
	}

	// A second watch of the same fleet cannot share the store while the first holds it.
	store, err := history.Open(fleetFile+".history", history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, "watch", "--config", fleetFile, "--once")
	store.Close()
	if code != ExitUsage || !strings.Contains(stderr, "is in use by another vigil watch of the same fleet") {
		t.Errorf("second watch on one history: exit %d, %s", code, stderr)
	}

	b.Stop()
	code, stdout, _ = run(t, "watch", "--config", fleetFile, "--once")
	if code != ExitNotAll || !strings.Contains(stdout, "GRACE") {
		t.Errorf("with one agent stopped: exit %d\n%s", code, stdout)
	}
}

// jsonLine is any line watch --json prints.
type jsonLine struct {
	Type          string   `json:"type"`
	Time          string   `json:"time"`
	Agent         string   `json:"agent"`
	Process       string   `json:"process"`
	From          string   `json:"from"`
	To            string   `json:"to"`
	Reason        string   `json:"reason"`
	BudgetSeconds *float64 `json:"budgetSeconds"`
	Action        string   `json:"action"`
	By            string   `json:"by"`
	Generation    int64    `json:"generation"`
	Result        string   `json:"result"`
	Error         *string  `json:"error"`
	Handler       string   `json:"handler"`
	ExitCode      *int     `json:"exitCode"`
	Output        string   `json:"output"`
}

func TestWatchOnceJSONStartsFromUnknown(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	a := agentproc.Start(t, agentproc.Options{})
	fleetFile := fleetOf(t, "", a)
	code, stdout, stderr := run(t, "watch", "--config", fleetFile, "--once", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := parseLines(t, stdout)
	var agentLevel []jsonLine
	for _, l := range lines {
		if l.Type == "state" && l.Process == "" {
			agentLevel = append(agentLevel, l)
		}
	}
	if len(agentLevel) != 1 || agentLevel[0].From != "UNKNOWN" || agentLevel[0].To != "OK" || agentLevel[0].Agent != "node-1" || agentLevel[0].BudgetSeconds == nil {
		t.Errorf("agent state changes: %+v\nall output:\n%s", agentLevel, stdout)
	}
	assertExactKeys(t, stdout)
}

// The live JSON stream: a killed CDP process is restarted through the agent
// within one poll interval, with one action line.
func TestWatchJSONRestartsAKilledCDPProcess(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	a := agentproc.Start(t, agentproc.Options{})
	fleetFile := fleetOf(t, "", a)
	w := startWatch(t, fleetFile)
	w.waitFor(t, "node-1 OK", 10*time.Second, func(l jsonLine) bool { return l.Type == "state" && l.Process == "" && l.To == "OK" })

	if err := syscall.Kill(cdpPID(t, a), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	restart := w.waitFor(t, "a restart action", 10*time.Second, func(l jsonLine) bool { return l.Type == "action" && l.Action == "restart" })
	if restart.Result != "ok" || restart.By != "auto" || restart.Generation != 2 || restart.Process != "cdp" {
		t.Errorf("restart action: %+v", restart)
	}
	if took := time.Since(killedAt); took > 3*time.Second {
		t.Errorf("restart took %s; the poll interval is 1s", took)
	}
	w.stop(t)
	assertExactKeys(t, w.output())
}

// Kill -9 the CLI while an agent is silent, start it again on the same
// history: nothing recorded is lost, and the agent's GRACE clock goes on from
// its last answer instead of starting over.
func TestWatchResumesAfterKill9(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	bin := filepath.Join(t.TempDir(), "vigil")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/vigil-cdp/vigil/cmd/vigil").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	a := agentproc.Start(t, agentproc.Options{})
	// Budget: 1s response + max(restart 6s, network 2s) = 7s.
	fleetFile := fleetOf(t, "  budget: { responseTime: 1s, processing: 0, failover: 0, restart: 6s, networkInterruption: 2s, appErrorRecovery: 0 }\n", a)

	first := startWatchProcess(t, bin, fleetFile)
	first.waitFor(t, "node-1 OK", 10*time.Second, func(l jsonLine) bool { return l.Process == "" && l.To == "OK" })
	a.Stop()
	grace := first.waitFor(t, "node-1 GRACE", 10*time.Second, func(l jsonLine) bool { return l.Process == "" && l.To == "GRACE" })
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done

	second := startWatchProcess(t, bin, fleetFile)
	failed := second.waitFor(t, "node-1 FAILED", 15*time.Second, func(l jsonLine) bool { return l.Process == "" && l.To == "FAILED" })
	if failed.From != "GRACE" {
		t.Errorf("after the restart the agent went %s -> FAILED; want it to resume in GRACE", failed.From)
	}
	for _, l := range parseLines(t, second.output()) {
		if l.Type == "state" && l.Agent == "node-1" && l.From == "UNKNOWN" {
			t.Errorf("the restarted CLI started node-1 over from UNKNOWN: %+v", l)
		}
	}
	graceAt, _ := time.Parse(time.RFC3339Nano, grace.Time)
	failedAt, _ := time.Parse(time.RFC3339Nano, failed.Time)
	// GRACE began at the first unanswered poll; FAILED is due one budget (7s)
	// after the last answer, so within about one budget of GRACE, not a budget
	// after the second CLI started.
	if gap := failedAt.Sub(graceAt); gap > 9*time.Second {
		t.Errorf("FAILED came %s after GRACE; the GRACE clock was not kept (budget 7s)", gap)
	}
	second.stop(t)

	store, err := history.Open(fleetFile+".history", history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	events, err := store.Events(history.Query{Agent: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, ev := range events {
		if ev.Type == history.TypeState && ev.Process == "" {
			seen = append(seen, ev.From.String()+">"+ev.To.String())
		}
	}
	if got := strings.Join(seen, " "); got != "UNKNOWN>OK OK>GRACE GRACE>FAILED" {
		t.Errorf("agent state changes in the history: %s", got)
	}
}

// watchRun is a running "vigil watch --json", in process or as a process.
type watchRun struct {
	mu     sync.Mutex
	out    bytes.Buffer
	lines  chan jsonLine
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *watchRun) output() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

func (w *watchRun) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.out.Write(p)
	w.mu.Unlock()
	return len(p), nil
}

func (w *watchRun) waitFor(t *testing.T, what string, timeout time.Duration, match func(jsonLine) bool) jsonLine {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				t.Fatalf("watch ended before %s:\n%s", what, w.output())
			}
			if match(l) {
				return l
			}
		case <-deadline:
			t.Fatalf("no %s within %s:\n%s", what, timeout, w.output())
		}
	}
}

func (w *watchRun) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	select {
	case <-w.done:
	case <-time.After(15 * time.Second):
		t.Fatal("watch did not stop")
	}
}

// startWatch runs "vigil watch --json" in this process.
func startWatch(t *testing.T, fleetFile string) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &watchRun{lines: make(chan jsonLine, 1000), cancel: cancel, done: make(chan struct{})}
	go w.read(t, pr)
	go func() {
		defer close(w.done)
		var stderr bytes.Buffer
		Run(ctx, []string{"watch", "--config", fleetFile, "--json"}, pw, &stderr)
		pw.Close()
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

type watchProcess struct {
	*watchRun
	cmd *exec.Cmd
}

func startWatchProcess(t *testing.T, bin, fleetFile string) *watchProcess {
	t.Helper()
	cmd := exec.Command(bin, "watch", "--config", fleetFile, "--json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &watchRun{lines: make(chan jsonLine, 1000), done: make(chan struct{})}
	w.cancel = func() { _ = cmd.Process.Signal(syscall.SIGTERM) }
	go func() {
		w.read(t, stdout)
		_ = cmd.Wait()
		close(w.done)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-w.done })
	return &watchProcess{watchRun: w, cmd: cmd}
}

func (w *watchRun) read(t *testing.T, r interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = w.Write(append(append([]byte(nil), line...), '\n'))
		var l jsonLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Errorf("watch --json printed a line that is not JSON: %q", line)
			continue
		}
		w.lines <- l
	}
	close(w.lines)
}

func parseLines(t *testing.T, out string) []jsonLine {
	t.Helper()
	var lines []jsonLine
	for _, raw := range strings.Split(strings.TrimSpace(out), "\n") {
		if raw == "" {
			continue
		}
		var l jsonLine
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("not JSON: %q", raw)
		}
		lines = append(lines, l)
	}
	return lines
}

// assertExactKeys checks the JSON lines' keys, a contract other tools parse.
func assertExactKeys(t *testing.T, out string) {
	t.Helper()
	want := map[string]string{
		"state":   "agent budgetSeconds from process reason time to type",
		"action":  "action agent by error generation process result time type",
		"handler": "agent budgetSeconds durationSeconds error exitCode from handler output process reason result time to type",
	}
	for _, raw := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatalf("not JSON: %q", raw)
		}
		typ, _ := m["type"].(string)
		keys := make([]string, 0, len(m))
		for k := range m {
			if k == "diagnosis" {
				continue // added when an agent turns FAILED
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if w, ok := want[typ]; ok && strings.Join(keys, " ") != w {
			t.Errorf("%s line keys %v, want %s: %s", typ, keys, w, raw)
		}
	}
}

// A corrective action configured in fleet.yaml: when a real agent stops
// answering, nothing runs during its GRACE; when the grace runs out, the
// command runs once with the transition in its environment, and its run is
// printed and kept in the history.
func TestWatchRunsAHandlerWhenAnAgentFails(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	a := agentproc.Start(t, agentproc.Options{})
	dir := t.TempDir()
	// Budget: 1s response + max(restart 2s, network 1s) = 3s.
	fleetFile := fleetOf(t, "  budget: { responseTime: 1s, processing: 0, failover: 0, restart: 2s, networkInterruption: 1s, appErrorRecovery: 0 }\n", a)
	f, err := os.OpenFile(fleetFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "handlers:\n  - name: reset-vm\n    on: [FAILED]\n    level: agent\n    command: [sh, -c, 'echo \"$VIGIL_AGENT $VIGIL_PREVIOUS_STATE->$VIGIL_STATE\" >> %s/runs; echo hypervisor says ok']\n    timeout: 10s\n", dir)
	f.Close()
	w := startWatch(t, fleetFile)
	w.waitFor(t, "node-1 OK", 10*time.Second, func(l jsonLine) bool { return l.Type == "state" && l.Process == "" && l.To == "OK" })
	a.Stop()
	ran := w.waitFor(t, "a handler run", 15*time.Second, func(l jsonLine) bool { return l.Type == "handler" })
	if ran.Handler != "reset-vm" || ran.Result != "ok" || ran.ExitCode == nil || *ran.ExitCode != 0 || ran.Output != "hypervisor says ok" ||
		ran.From != "GRACE" || ran.To != "FAILED" || ran.Agent != "node-1" {
		t.Errorf("handler line: %+v", ran)
	}
	time.Sleep(2 * time.Second) // two more polls of the silent agent
	w.stop(t)
	runs, _ := os.ReadFile(filepath.Join(dir, "runs"))
	if string(runs) != "node-1 GRACE->FAILED\n" {
		t.Errorf("the handler ran:\n%s", runs)
	}
	assertExactKeys(t, w.output())

	code, stdout, stderr := run(t, "history", "--history", fleetFile+".history", "--json")
	if code != 0 || !strings.Contains(stdout, `"type":"handler"`) || !strings.Contains(stdout, `"handler":"reset-vm"`) {
		t.Errorf("vigil history: exit %d\n%s%s", code, stdout, stderr)
	}
}
