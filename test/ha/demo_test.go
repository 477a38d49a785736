package ha

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-cdp/vigil/internal/agentproc"
	"github.com/vigil-cdp/vigil/internal/pgtest"
)

// `make demo-ha` runs from start to end and shows what it says: the agents
// divided between two members, the member left polling all four after the
// other's kill -9, one restart for each CDP process killed meanwhile, and
// the history of both read from PostgreSQL.
func TestDemoHA(t *testing.T) {
	agentproc.SkipShort(t, "runs the HA demo: PostgreSQL, four agents and two monitors")
	if pgtest.Bin() == "" {
		t.Skip("PostgreSQL is not installed (.ci/run installs it)")
	}
	agentproc.CLIPath(t) // the agent is built
	bin := buildVigil(t)
	root := moduleRoot(t)
	cmd := exec.Command(filepath.Join(root, "scripts", "demo-ha.sh"))
	cmd.Dir = root
	// Ports of their own, so that a demo someone runs does not collide.
	cmd.Env = append(os.Environ(), "VIGIL_BIN="+bin, "DEMO_HA_PORT=27181")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("demo-ha failed: %v\n%s", err, text)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`member-1: cluster: member-1, one of 2 members \(member-1, member-2\); polls [1-3] of 4 agents`),
		regexp.MustCompile(`ha-1's CDP is at generation 2 now`),
		regexp.MustCompile(`member-2: cluster: member-2, the only member; polls 4 of 4 agents; not polled by any member for two intervals: none`),
		regexp.MustCompile(`ha-2's CDP: generation 1 -> 2; ha-3's: 1 -> 2`),
		regexp.MustCompile(`member-1: cluster: member-1, the only member; polls 4 of 4 agents`),
		regexp.MustCompile(`ha-3/cdp restart by auto: ok, generation 2`),
	} {
		if !want.MatchString(text) {
			t.Errorf("the demo's output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Killed") {
		t.Errorf("the demo shows the shell's job messages:\n%s", text)
	}
}
