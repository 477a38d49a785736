package agentproc

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Under -short no agent starts, even for a test that does not call
// SkipShort first: Start skips, saying why. The check runs this test binary
// again with -test.short, so it holds whichever way go test was run.
func TestStartSkipsUnderShort(t *testing.T) {
	if os.Getenv("VIGIL_AGENTPROC_SHORT_CHILD") == "1" {
		Start(t, Options{})
		t.Error("Start returned under -short: an agent was started")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.short", "-test.v", "-test.count=1", "-test.run=^TestStartSkipsUnderShort$")
	cmd.Env = append(os.Environ(), "VIGIL_AGENTPROC_SHORT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the -short run failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- SKIP") || !strings.Contains(string(out), "-short: "+RealAgent) {
		t.Fatalf("the -short run did not skip with the reason %q:\n%s", RealAgent, out)
	}
}
