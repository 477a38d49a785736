package engine_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
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

// Real vigil-agent processes on loopback, for the integration tests.

const (
	readToken    = "read-token-0123456789abcdef"
	controlToken = "control-token-0123456789abcdef"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// agentCLI returns node and the built agent, or fails the test saying how
// to get them. These tests never skip.
func agentCLI(t *testing.T) (node, cli string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("these tests run real vigil-agent processes and need Node.js 20 or newer on PATH: %v", err)
	}
	cli = filepath.Join(repoRoot(), "agent", "dist", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("the agent is not built (%s missing): run `npm ci && npm run build -w agent` in the repository root", cli)
	}
	return node, cli
}

type agentProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	URL    string
	Dir    string
	Marker string
	mu     sync.Mutex
	stderr strings.Builder
	exited chan struct{}
}

// agentConfig is a standalone agent supervising one long-running child
// ("cdp"), findable by marker.
func agentConfig(t *testing.T, dir, marker string) map[string]any {
	node, _ := agentCLI(t)
	child := filepath.Join(repoRoot(), "agent", "test", "fixtures", "child.js")
	return map[string]any{
		"listen":   "127.0.0.1:0",
		"stateDir": filepath.Join(dir, "state"),
		"logLevel": "info",
		"auth":     map[string]any{"readToken": readToken, "controlToken": controlToken},
		"processes": []any{map[string]any{
			"name": "cdp", "kind": "command", "command": []string{node, child, marker}, "stopTimeout": "1s",
		}},
	}
}

// withCluster makes the agent a member of cluster with its role in roleFile.
func withCluster(cfg map[string]any, cluster, node, roleFile string) map[string]any {
	cfg["cluster"] = map[string]any{"name": cluster, "node": node, "role": map[string]any{"file": roleFile, "cacheFor": "50ms"}}
	return cfg
}

func startAgent(t *testing.T, dir string, cfg map[string]any) *agentProc {
	t.Helper()
	node, cli := agentCLI(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg["stateDir"] = filepath.Join(dir, "state")
	raw, _ := yaml.Marshal(cfg)
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{t: t, Dir: dir, exited: make(chan struct{})}
	if procs, ok := cfg["processes"].([]any); ok && len(procs) > 0 {
		if cmd, ok := procs[0].(map[string]any)["command"].([]string); ok {
			a.Marker = cmd[len(cmd)-1]
		}
	}
	a.cmd = exec.Command(node, cli, "run", "--config", file)
	errPipe, _ := a.cmd.StderrPipe()
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			a.mu.Lock()
			a.stderr.WriteString(line + "\n")
			a.mu.Unlock()
			var l struct {
				Msg     string `json:"msg"`
				Address string `json:"address"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" {
				listening <- l.Address
			}
		}
		_, _ = io.Copy(io.Discard, errPipe)
	}()
	go func() { _ = a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(a.cleanup)
	select {
	case addr := <-listening:
		a.URL = "http://" + addr
	case <-a.exited:
		t.Fatalf("the agent exited before listening:\n%s", a.log())
	case <-time.After(20 * time.Second):
		t.Fatalf("the agent did not log its listening address in 20 s:\n%s", a.log())
	}
	return a
}

func (a *agentProc) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stderr.String()
}

// Kill9 kills the agent with SIGKILL; its CDP child keeps running.
func (a *agentProc) Kill9() {
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.exited
}

func (a *agentProc) cleanup() {
	select {
	case <-a.exited:
	default:
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(10 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
	}
	if a.Marker != "" {
		for _, pid := range pidsWithMarker(a.Marker) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if a.t.Failed() {
		a.t.Logf("agent %s log:\n%s", a.URL, a.log())
	}
}

// pidsWithMarker lists live processes whose command line holds marker.
func pidsWithMarker(marker string) []int {
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
		s := string(stat)
		if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X') {
			continue
		}
		out = append(out, pid)
	}
	return out
}

func marker(t *testing.T) string {
	return fmt.Sprintf("vigil-engine-test-%d-%s", os.Getpid(), strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
}
