// Package agentproc starts real vigil-agent processes for Go tests: the built
// agent (agent/dist/cli.js) under Node.js, on a loopback port, with a
// temporary state directory and real supervised child processes. It is for
// tests only.
//
// Under `go test -short` (make check) no agent starts: a test that starts one
// skips, and so does a slow test, both through SkipShort, so the short run
// needs neither Node.js nor the built agent.
package agentproc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// RealAgent is why a test that starts real agents skips under -short.
const RealAgent = "starts real vigil-agent processes (Node.js, agent/dist)"

// SkipShort skips t under `go test -short`, saying why (RealAgent, or what
// makes the test slow): the one place the short run's skips are decided.
// CLIPath (and so Start and StartConfig) calls it too: a test that starts an agent
// skips even without calling it first; calling it first skips before any
// setup that needs Node.js.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: " + why)
	}
}

// Tokens every test agent accepts.
const (
	ReadToken    = "read-token-0123456789abcdef"
	ControlToken = "control-token-0123456789abcdef"
)

// Process is one supervised process in the agent's configuration.
type Process struct {
	Name        string   `yaml:"name"`
	Kind        string   `yaml:"kind"`
	Command     []string `yaml:"command,omitempty"`
	StartOnBoot *bool    `yaml:"startOnBoot,omitempty"`
	RunOn       string   `yaml:"runOn,omitempty"`
	StopTimeout string   `yaml:"stopTimeout,omitempty"`
	AutoRestart *bool    `yaml:"autoRestart,omitempty"`
}

// Options configure one agent. Zero values give a standalone agent with one
// process "cdp" running a long sleep.
type Options struct {
	Processes []Process
	// Cluster and Node make the agent a cluster member whose role is read
	// from RoleFile (holding "active" or "passive").
	Cluster, Node, RoleFile string
}

// Agent is a running (or stopped) test agent.
type Agent struct {
	t       testing.TB
	dir     string
	config  string
	port    int
	mu      sync.Mutex
	cmd     *exec.Cmd
	stderr  *strings.Builder
	exited  chan struct{}
	stopped bool
}

// Start writes a configuration and starts the agent, waiting until it serves
// /healthz. The agent is stopped (SIGTERM) when the test ends.
func Start(t testing.TB, opts Options) *Agent {
	t.Helper()
	cli := CLIPath(t)
	dir := t.TempDir()
	if len(opts.Processes) == 0 {
		opts.Processes = []Process{{Name: "cdp", Kind: "command", Command: []string{"sleep", "100000"}}}
	}
	cfg := map[string]any{
		"listen": "127.0.0.1:0",
		"auth":   map[string]any{"readToken": ReadToken, "controlToken": ControlToken},
		// Fast stops keep the tests quick; the agent's default is 10 s.
		"processes": withStopTimeout(opts.Processes),
	}
	if opts.Cluster != "" {
		cfg["cluster"] = map[string]any{"name": opts.Cluster, "node": opts.Node, "role": map[string]any{"file": opts.RoleFile}}
	}
	return launch(t, cli, dir, cfg, "")
}

// StartConfig starts an agent from a whole configuration, for a test that
// needs more than Options say; its stateDir becomes dir/state. Processes whose
// command line holds marker (when not empty) are killed when the test ends:
// the children of an agent stopped with Kill outlive it otherwise.
func StartConfig(t testing.TB, dir string, cfg map[string]any, marker string) *Agent {
	t.Helper()
	cli := CLIPath(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return launch(t, cli, dir, cfg, marker)
}

func launch(t testing.TB, cli, dir string, cfg map[string]any, marker string) *Agent {
	t.Helper()
	cfg["stateDir"] = filepath.Join(dir, "state")
	a := &Agent{t: t, dir: dir, config: filepath.Join(dir, "agent.yaml")}
	a.writeConfig(cfg)
	// Registered first, so it runs after Stop: the agent stops its children itself, then
	// whatever a killed agent left behind goes.
	t.Cleanup(func() {
		if marker != "" {
			for _, pid := range PidsWithMarker(marker) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("vigil-agent %s log:\n%s", a.URL(), a.Log())
		}
	})
	a.start(cli)
	// Later starts reuse the port, so the agent keeps its URL across restarts.
	cfg["listen"] = fmt.Sprintf("127.0.0.1:%d", a.port)
	a.writeConfig(cfg)
	t.Cleanup(a.Stop)
	return a
}

// PidsWithMarker lists the live (not zombie) processes whose command line
// holds marker.
func PidsWithMarker(marker string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmd), marker) {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		st := string(stat)
		if i := strings.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && (st[i+2] == 'Z' || st[i+2] == 'X') {
			continue
		}
		out = append(out, pid)
	}
	return out
}

func withStopTimeout(ps []Process) []Process {
	out := append([]Process(nil), ps...)
	for i := range out {
		if out[i].StopTimeout == "" {
			out[i].StopTimeout = "2s"
		}
	}
	return out
}

// CLIPath is the built agent's entry point; the test fails, with what to do,
// when Node.js or the build is missing.
func CLIPath(t testing.TB) string {
	t.Helper()
	SkipShort(t, RealAgent)
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cli := filepath.Join(root, "agent", "dist", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("the built agent is missing (%v): run `make agent` (or `npm run build -w agent`) first", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("Node.js is needed to run vigil-agent: %v", err)
	}
	return cli
}

func (a *Agent) writeConfig(cfg map[string]any) {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		a.t.Fatal(err)
	}
	if err := os.WriteFile(a.config, b, 0o600); err != nil {
		a.t.Fatal(err)
	}
}

func (a *Agent) start(cli string) {
	a.t.Helper()
	cmd := exec.Command("node", cli, "run", "--config", a.config)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		a.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("starting vigil-agent: %v", err)
	}
	a.mu.Lock()
	a.cmd, a.stderr, a.exited, a.stopped = cmd, &strings.Builder{}, make(chan struct{}), false
	log, exited := a.stderr, a.exited
	a.mu.Unlock()

	listening := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			a.mu.Lock()
			log.WriteString(line + "\n")
			a.mu.Unlock()
			var entry struct {
				Msg     string `json:"msg"`
				Address string `json:"address"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "listening" {
				var port int
				if i := strings.LastIndex(entry.Address, ":"); i >= 0 {
					_, _ = fmt.Sscanf(entry.Address[i+1:], "%d", &port)
				}
				listening <- port
			}
		}
		// A line longer than the scanner takes ends the loop: keep draining, so
		// the agent never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case a.port = <-listening:
	case <-exited:
		a.t.Fatalf("vigil-agent exited before listening:\n%s", a.Log())
	case <-time.After(20 * time.Second):
		a.t.Fatalf("vigil-agent did not listen within 20 s:\n%s", a.Log())
	}
	a.waitHealthy()
}

func (a *Agent) waitHealthy() {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(a.URL() + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.t.Fatalf("vigil-agent at %s never answered /healthz:\n%s", a.URL(), a.Log())
}

// URL is the agent's base URL, the same across restarts.
// ProcessStatus is what a test reads of one process in the agent's GET /v1/status.
type ProcessStatus struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	PID        int    `json:"pid"`
	Generation int64  `json:"generation"`
}

// Processes reads the agent's processes with the read token (GET /v1/status).
func (a *Agent) Processes(t testing.TB) []ProcessStatus {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.URL()+"/v1/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ReadToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s/v1/status: %v", a.URL(), err)
	}
	defer res.Body.Close()
	var st struct {
		Processes []ProcessStatus `json:"processes"`
	}
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatalf("GET %s/v1/status: %v", a.URL(), err)
	}
	return st.Processes
}

func (a *Agent) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", a.port) }

// Dir is the agent's temporary folder (its stateDir is Dir()/state).
func (a *Agent) Dir() string { return a.dir }

// Log is everything the agent wrote on stderr so far.
func (a *Agent) Log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stderr == nil {
		return ""
	}
	return a.stderr.String()
}

// Kill sends SIGKILL to the agent alone, as a crash would; its supervised
// processes stay, and a later Restart adopts them.
func (a *Agent) Kill() {
	a.signal(syscall.SIGKILL)
}

// Stop stops the agent gracefully (SIGTERM), which stops its processes too.
func (a *Agent) Stop() {
	a.signal(syscall.SIGTERM)
}

func (a *Agent) signal(sig syscall.Signal) {
	a.mu.Lock()
	cmd, exited, stopped := a.cmd, a.exited, a.stopped
	a.stopped = true
	a.mu.Unlock()
	if cmd == nil || stopped {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart starts the agent again with the same configuration, port and state.
func (a *Agent) Restart() {
	a.t.Helper()
	a.mu.Lock()
	stopped := a.stopped
	a.mu.Unlock()
	if !stopped {
		a.t.Fatal("Restart: the agent is still running; Kill or Stop it first")
	}
	a.start(CLIPath(a.t))
}
