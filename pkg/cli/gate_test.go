package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/internal/agentproc"
)

// fakeAgent answers /v1/status with the bodies given, one per poll, the
// last again once they are used up; a POST restart is counted and answered.
func fakeAgent(t *testing.T, bodies ...string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var polls, restarts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			restarts.Add(1)
			_, _ = io.WriteString(w, `{"generation": 5, "pid": 20001, "startedAt": "2026-11-26T04:24:00Z"}`)
			return
		}
		i := min(int(polls.Add(1))-1, len(bodies)-1)
		_, _ = io.WriteString(w, bodies[i])
	}))
	t.Cleanup(srv.Close)
	return srv, &restarts
}

var crashed = []func(string) string{
	replace(`"state": "running"`, `"state": "crashed"`),
	replace(`"lastExit": null`, `"lastExit": {"code": null, "signal": "SIGKILL", "at": "2026-11-26T04:19:59Z"}`),
	replace(`"pid": 19966`, `"pid": null`),
}

func TestGateJudgesOneAgent(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		args  []string
		want  int
		lines []string
	}{
		{name: "running, no protection block", body: statusBody(), want: GateProtected,
			lines: []string{"OK   {url} cdp: running (pid 19966, generation 4)", "vigil gate: CDP protects (1 process checked)"}},
		{name: "lag within the default RPO", body: statusBody(withLag("42")), want: GateProtected,
			lines: []string{"OK   {url} cdp: running (pid 19966, generation 4), protection lag 42 s within RPO 60 s"}},
		{name: "lag beyond the default RPO", body: statusBody(withLag("61")), want: GateNotProtected,
			lines: []string{"FAIL {url} cdp: running (pid 19966, generation 4), protection lag 61 s exceeds RPO 60 s",
				"vigil gate: CDP does not protect: 1 of 1 failing (stop the job)"}},
		{name: "lag beyond, RPO given", body: statusBody(withLag("61")), args: []string{"--rpo", "2m"}, want: GateProtected,
			lines: []string{"protection lag 61 s within RPO 120 s"}},
		{name: "no lag check", body: statusBody(withLag("6100")), args: []string{"--rpo", "0"}, want: GateProtected,
			lines: []string{"OK   {url} cdp: running (pid 19966, generation 4)\n"}},
		{name: "crashed", body: statusBody(crashed...), want: GateNotProtected,
			lines: []string{"FAIL {url} cdp: not running: crashed where expected (signal SIGKILL"}},
		{name: "starting", body: statusBody(replace(`"state": "running"`, `"state": "starting"`)), want: GateNotProtected,
			lines: []string{"FAIL {url} cdp: starting (generation 4)"}},
		{name: "the passive node alone", body: statusBody(replace(`"cluster": null`, `"cluster": `+passiveCluster), replace(`"state": "running"`, `"state": "stopped"`), replace(`"expected": true`, `"expected": false`)),
			want: GateNotProtected,
			lines: []string{"OK   {url} cdp: standby: not expected on passive node node-b of sql-ha (stopped)",
				"FAIL cluster sql-ha cdp: no node that answered runs it within the RPO"}},
		{name: "the active node alone", body: statusBody(replace(`"cluster": null`, `"cluster": `+activeCluster)), want: GateProtected,
			lines: []string{"OK   {url} cdp: running (pid 19966, generation 4)"}},
		{name: "role unknown", body: statusBody(replace(`"cluster": null`, `"cluster": { "name": "sql-ha", "node": "node-a", "role": "unknown", "roleError": "role file missing" }`), replace(`"expected": true`, `"expected": false`)),
			want: GateNotProtected, lines: []string{"FAIL {url} cdp: cluster role unknown: role file missing (still running)"}},
		{name: "a process named that does not exist", body: statusBody(), args: []string{"--process", "cdp,lsyncd"}, want: GateNotProtected,
			lines: []string{"OK   {url} cdp: running", "FAIL every agent that answered lsyncd: no such process"}},
		{name: "only the process named", body: statusBody(replace(`"processes": [`, `"processes": [ { "name": "other", "kind": "command", "state": "crashed", "expected": true, "pid": null, "generation": 1, "startedAt": null, "restarts": 0, "lastExit": null, "protection": null },`)),
			args: []string{"--process", "cdp"}, want: GateProtected, lines: []string{"OK   {url} cdp: running"}},
		{name: "no process", body: statusBody(replace(`"processes": [`, `"processes": [], "x": [`)), want: GateNotProtected,
			lines: []string{"FAIL {url}: the agent supervises no process"}},
		{name: "an answer that cannot be understood", body: `{"apiVersion": "v1"}`, want: GateNotProtected,
			lines: []string{"FAIL {url}: agent unreachable: its answer cannot be understood: "}},
		{name: "quiet", body: statusBody(), args: []string{"--quiet"}, want: GateProtected, lines: []string{"\x00empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := fakeAgent(t, tc.body)
			code, stdout, stderr := run(t, append([]string{"gate", "--agent", srv.URL}, tc.args...)...)
			if code != tc.want {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.want, stdout, stderr)
			}
			for _, l := range tc.lines {
				if l == "\x00empty" {
					if stdout != "" {
						t.Errorf("--quiet printed %q", stdout)
					}
					continue
				}
				if l = strings.ReplaceAll(l, "{url}", srv.URL); !strings.Contains(stdout, l) {
					t.Errorf("stdout lacks %q:\n%s", l, stdout)
				}
			}
		})
	}
}

func TestGateUsage(t *testing.T) {
	fleetFile := writeFleet(t, "defaults:\n  readToken: r\nagents:\n  - name: a\n    url: http://127.0.0.1:1\n")
	tests := []struct {
		args []string
		want string
	}{
		{nil, "give --agent URL or --config FLEET"},
		{[]string{"--agent", "http://127.0.0.1:1", "--config", fleetFile}, "not both"},
		{[]string{"--agent", "http://127.0.0.1:1", "--name", "a"}, "--name and --cluster select agents of --config FLEET"},
		{[]string{"--agent", "ftp://x"}, `--agent: "ftp://x" is not an absolute http or https URL`},
		{[]string{"--agent", "http://u:secret@127.0.0.1:1"}, "give the read token with --token-file"},
		{[]string{"--config", fleetFile, "--token", "t"}, "with --config the fleet file gives each agent's tokens"},
		{[]string{"--config", fleetFile, "--name", "b"}, `--name: no agent "b" in ` + fleetFile + " (it has a)"},
		{[]string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml"},
		{[]string{"--agent", "http://127.0.0.1:1", "--wait", "-1s"}, "--wait must not be negative"},
		{[]string{"--agent", "http://127.0.0.1:1", "--every", "0"}, "--every must be positive"},
		{[]string{"--agent", "http://127.0.0.1:1", "--token-file", "/nonexistent/token"}, "--token-file: open /nonexistent/token"},
		{[]string{"--agent", "http://127.0.0.1:1", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--agent", "http://127.0.0.1:1", "extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		code, stdout, stderr := run(t, append([]string{"gate"}, tc.args...)...)
		if code != GateUsage || !strings.HasPrefix(stderr, "vigil gate: ") || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "secret") {
			t.Errorf("gate %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	if code, stdout, _ := run(t, "gate", "-h"); code != 0 || !strings.Contains(stdout, "Usage: vigil gate") || !strings.Contains(stdout, "-restart") {
		t.Errorf("gate -h: exit %d, %s", code, stdout)
	}
}

// --wait asks again until CDP runs, and says on stderr what it waits for.
func TestGateWaitsForCDP(t *testing.T) {
	srv, _ := fakeAgent(t, statusBody(crashed...), statusBody(crashed...), statusBody())
	code, stdout, stderr := run(t, "gate", "--agent", srv.URL, "--wait", "10s", "--every", "20ms")
	if code != GateProtected || !strings.Contains(stdout, "OK   "+srv.URL+" cdp: running") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
	if strings.Count(stderr, "vigil gate: waiting until ") != 1 || !strings.Contains(stderr, "for: "+srv.URL+" cdp: not running: crashed where expected") {
		t.Errorf("stderr: %q (want one waiting line)", stderr)
	}

	srv, _ = fakeAgent(t, statusBody(crashed...))
	start := time.Now()
	code, stdout, _ = run(t, "gate", "--agent", srv.URL, "--wait", "300ms", "--every", "50ms")
	if code != GateNotProtected || !strings.Contains(stdout, "FAIL "+srv.URL+" cdp: not running") || time.Since(start) < 300*time.Millisecond {
		t.Errorf("past the deadline: exit %d after %s\n%s", code, time.Since(start), stdout)
	}
}

// --restart asks once, with the generation it saw, and only with a control token.
func TestGateRestartNeedsTheControlToken(t *testing.T) {
	srv, restarts := fakeAgent(t, statusBody(crashed...))
	t.Setenv("VIGIL_CONTROL_TOKEN", "")
	code, stdout, _ := run(t, "gate", "--agent", srv.URL, "--restart", "--wait", "0")
	if code != GateNotProtected || restarts.Load() != 0 || !strings.Contains(stdout, "RESTART "+srv.URL+" cdp: not asked: no control token") {
		t.Errorf("without a control token: exit %d, %d restarts\n%s", code, restarts.Load(), stdout)
	}
	t.Setenv("VIGIL_CONTROL_TOKEN", "c")
	code, stdout, _ = run(t, "gate", "--agent", srv.URL, "--restart", "--wait", "100ms", "--every", "20ms")
	if code != GateNotProtected || restarts.Load() != 1 || !strings.Contains(stdout, "RESTART "+srv.URL+" cdp: asked, generation 4 -> 5") {
		t.Errorf("with one: exit %d, %d restarts (want 1: only once)\n%s", code, restarts.Load(), stdout)
	}
}

// A restart someone else made first (the agent's 409) is not a failure of
// the gate: it says so and goes on waiting.
func TestGateRestartSomeoneElseMadeFirst(t *testing.T) {
	polls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"error":{"code":"stale_generation","message":"ifGeneration 4 is stale: the current generation is 5","generation":5}}`)
			return
		}
		polls++
		if polls == 1 {
			_, _ = io.WriteString(w, statusBody(crashed...))
			return
		}
		_, _ = io.WriteString(w, statusBody(replace(`"generation": 4`, `"generation": 5`)))
	}))
	t.Cleanup(srv.Close)
	t.Setenv("VIGIL_CONTROL_TOKEN", "c")
	code, stdout, _ := run(t, "gate", "--agent", srv.URL, "--restart", "--wait", "5s", "--every", "20ms")
	if code != GateProtected || !strings.Contains(stdout, "RESTART "+srv.URL+" cdp: not needed: someone else restarted it since generation 4 (now 5)") {
		t.Errorf("exit %d\n%s", code, stdout)
	}
}

// A cluster's processes pass when one node runs them; the others' failures are notes.
func TestGateJudgesAClusterFromTheFleet(t *testing.T) {
	active, _ := fakeAgent(t, statusBody(replace(`"cluster": null`, `"cluster": `+activeCluster)))
	passive, _ := fakeAgent(t, statusBody(replace(`"cluster": null`, `"cluster": `+passiveCluster), replace(`"state": "running"`, `"state": "stopped"`), replace(`"expected": true`, `"expected": false`)))
	other, _ := fakeAgent(t, statusBody(crashed...))
	fleetFile := writeFleet(t, fmt.Sprintf("defaults:\n  readToken: r\nagents:\n  - name: a\n    url: %s\n    cluster: sql-ha\n  - name: b\n    url: %s\n  - name: c\n    url: %s\n  - name: d\n    url: http://127.0.0.1:1\n    cluster: sql-ha\n",
		active.URL, passive.URL, other.URL))
	code, stdout, _ := run(t, "gate", "--config", fleetFile, "--cluster", "sql-ha")
	for _, want := range []string{
		"OK   a cdp: running (pid 19966, generation 4)",
		"OK   b cdp: standby: not expected on passive node node-b of sql-ha (stopped)",
		"NOTE d: agent unreachable: ",
		"(a node of cluster sql-ha)",
		"vigil gate: CDP protects (1 process checked)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if code != GateProtected || strings.Contains(stdout, " c ") {
		t.Errorf("cluster sql-ha: exit %d (agent c is in no cluster and crashed, so it is left out)\n%s", code, stdout)
	}

	code, stdout, _ = run(t, "gate", "--config", fleetFile)
	if code != GateNotProtected || !strings.Contains(stdout, "FAIL c cdp: not running: crashed where expected") || !strings.Contains(stdout, "1 of 2 failing") {
		t.Errorf("the whole fleet: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = run(t, "gate", "--config", fleetFile, "--name", "b")
	if code != GateNotProtected || !strings.Contains(stdout, "FAIL cluster sql-ha cdp: no node that answered runs it") {
		t.Errorf("the passive node alone: exit %d\n%s", code, stdout)
	}
}

// Against real agents on loopback: a CDP process killed with SIGKILL stops
// the job; --restart brings it back through the agent, which records who
// asked; a failover to a node where CDP was never started is caught and
// repaired the same way.
func TestGateAgainstRealAgents(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	agent := agentproc.Start(t, agentproc.Options{})
	tokenFile := filepath.Join(t.TempDir(), "read")
	if err := os.WriteFile(tokenFile, []byte(agentproc.ReadToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gateArgs := []string{"gate", "--agent", agent.URL(), "--token-file", tokenFile}
	code, stdout, stderr := run(t, gateArgs...)
	if code != GateProtected || !strings.Contains(stdout, "OK   "+agent.URL()+" cdp: running (pid ") {
		t.Fatalf("healthy: exit %d\n%s%s", code, stdout, stderr)
	}

	pid := cdpPID(t, agent)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for code == GateProtected && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		code, stdout, _ = run(t, gateArgs...)
	}
	if code != GateNotProtected || !strings.Contains(stdout, "FAIL "+agent.URL()+" cdp: not running: crashed where expected (signal SIGKILL") {
		t.Fatalf("after kill -9 of CDP: exit %d\n%s", code, stdout)
	}

	t.Setenv("VIGIL_CONTROL_TOKEN", agentproc.ControlToken)
	code, stdout, stderr = run(t, append(gateArgs, "--restart", "--wait", "20s", "--every", "100ms", "--requested-by", "backup job nightly")...)
	if code != GateProtected || !strings.Contains(stdout, "RESTART "+agent.URL()+" cdp: asked, generation 1 -> 2") {
		t.Fatalf("--restart: exit %d\n%s%s", code, stdout, stderr)
	}
	if newPID := cdpPID(t, agent); newPID == pid {
		t.Errorf("CDP still has pid %d", pid)
	}
	if log := agentEvents(t, agent); !strings.Contains(log, `"requestedBy":"backup job nightly"`) {
		t.Errorf("the agent did not record who asked for the restart: %s", log)
	}

	agent.Stop()
	code, stdout, _ = run(t, gateArgs...)
	if code != GateNotProtected || !strings.Contains(stdout, "FAIL "+agent.URL()+": agent unreachable: ") {
		t.Errorf("stopped agent: exit %d\n%s", code, stdout)
	}
}

func TestGateCatchesAFailoverToANodeWithoutCDP(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	dir := t.TempDir()
	roleA, roleB := filepath.Join(dir, "role-a"), filepath.Join(dir, "role-b")
	setRole := func(path, role string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(role+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setRole(roleA, "active")
	setRole(roleB, "passive")
	a := agentproc.Start(t, agentproc.Options{Cluster: "sql-ha", Node: "node-a", RoleFile: roleA})
	b := agentproc.Start(t, agentproc.Options{Cluster: "sql-ha", Node: "node-b", RoleFile: roleB})
	// The fleet does not configure the cluster: the agents report it.
	fleetFile := fleetOf(t, "", a, b)
	code, stdout, stderr := run(t, "gate", "--config", fleetFile, "--cluster", "sql-ha")
	if code != GateProtected || !strings.Contains(stdout, "OK   node-1 cdp: running") || !strings.Contains(stdout, "OK   node-2 cdp: standby: not expected on passive node node-b") {
		t.Fatalf("before the failover: exit %d\n%s%s", code, stdout, stderr)
	}

	// The failover: node-b becomes active, where CDP was never started.
	setRole(roleA, "passive")
	setRole(roleB, "active")
	deadline := time.Now().Add(10 * time.Second) // the agents read their role at most cacheFor (1 s) before answering
	for !strings.Contains(stdout, "node-2 cdp: not running") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		code, stdout, _ = run(t, "gate", "--config", fleetFile, "--cluster", "sql-ha")
	}
	if code != GateNotProtected || !strings.Contains(stdout, "FAIL node-2 cdp: not running: stopped where expected") ||
		!strings.Contains(stdout, "FAIL cluster sql-ha cdp: no node that answered runs it within the RPO") {
		t.Fatalf("after the failover: exit %d\n%s", code, stdout)
	}
	code, stdout, stderr = run(t, "gate", "--config", fleetFile, "--cluster", "sql-ha", "--restart", "--wait", "20s", "--every", "100ms")
	if code != GateProtected || !strings.Contains(stdout, "RESTART node-2 cdp: asked, generation 0 -> 1") || strings.Contains(stdout, "RESTART node-1") {
		t.Fatalf("--restart after the failover: exit %d\n%s%s", code, stdout, stderr)
	}
}

// agentEvents reads the agent's event log with the read token.
func agentEvents(t *testing.T, a *agentproc.Agent) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.URL()+"/v1/events?since=0", nil)
	req.Header.Set("Authorization", "Bearer "+agentproc.ReadToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
