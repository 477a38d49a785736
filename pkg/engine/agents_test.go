package engine_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vigil-cdp/vigil/internal/agentproc"
)

// Real vigil-agent processes on loopback (internal/agentproc), for the
// integration tests: configurations and markers.

const (
	readToken    = agentproc.ReadToken
	controlToken = agentproc.ControlToken
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// nodePath is Node.js, which the agents and their test children run on;
// these tests never skip without it, they fail saying what is missing.
func nodePath(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("these tests run real vigil-agent processes and need Node.js 20 or newer on PATH: %v", err)
	}
	return node
}

// agentConfig is a standalone agent supervising one long-running child
// ("cdp"), findable by marker.
func agentConfig(t *testing.T, marker string) map[string]any {
	child := filepath.Join(repoRoot(), "agent", "test", "fixtures", "child.js")
	return map[string]any{
		"listen":   "127.0.0.1:0",
		"logLevel": "info",
		"auth":     map[string]any{"readToken": readToken, "controlToken": controlToken},
		"processes": []any{map[string]any{
			"name": "cdp", "kind": "command", "command": []string{nodePath(t), child, marker}, "stopTimeout": "1s",
		}},
	}
}

// withCluster makes the agent a member of cluster with its role in roleFile.
func withCluster(cfg map[string]any, cluster, node, roleFile string) map[string]any {
	cfg["cluster"] = map[string]any{"name": cluster, "node": node, "role": map[string]any{"file": roleFile, "cacheFor": "50ms"}}
	return cfg
}

func marker(t *testing.T) string {
	return fmt.Sprintf("vigil-engine-test-%d-%s", os.Getpid(), strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
}
