package cli

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/internal/agentproc"
)

// vigil check against a real vigil-agent on loopback, whose CDP process is a
// real child killed with a real signal.
func TestCheckAgainstARealAgent(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	agent := agentproc.Start(t, agentproc.Options{})

	code, out := runCLI(t, "check", "--agent", agent.URL(), "--token", agentproc.ReadToken)
	if code != NagiosOK || !strings.Contains(out, "cdp running (pid ") {
		t.Fatalf("healthy agent: exit %d, %s", code, out)
	}

	pid := cdpPID(t, agent)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out = runCLI(t, "check", "--agent", agent.URL(), "--token", agentproc.ReadToken)
		if code == NagiosCritical || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != NagiosCritical || !strings.Contains(out, "cdp not running: crashed where expected (signal SIGKILL") {
		t.Fatalf("after kill -9 of the CDP process: exit %d, %s", code, out)
	}

	code, out = runCLI(t, "check", "--agent", agent.URL(), "--token", "not-the-token-0123456789")
	if code != NagiosUnknown || !strings.Contains(out, "refused the read token") {
		t.Fatalf("wrong token: exit %d, %s", code, out)
	}

	agent.Stop()
	code, out = runCLI(t, "check", "--agent", agent.URL(), "--token", agentproc.ReadToken)
	if code != NagiosCritical || !strings.Contains(out, "agent unreachable") {
		t.Fatalf("stopped agent: exit %d, %s", code, out)
	}
}

func cdpPID(t *testing.T, a *agentproc.Agent) int {
	t.Helper()
	procs := a.Processes(t)
	for _, p := range procs {
		if p.Name == "cdp" && p.PID > 0 {
			return p.PID
		}
	}
	t.Fatalf("no running cdp process in the status: %+v", procs)
	return 0
}
