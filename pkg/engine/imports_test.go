package engine_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The engine is shared by the CLI and the datasource: nothing in it may
// depend on Grafana. Nor may the resampling of series, which the datasource
// uses but which is plain arithmetic on times, nor the fake agents the
// engine's tests run against.
func TestEngineDoesNotImportGrafana(t *testing.T) {
	for _, pkg := range []string{
		"github.com/vigil-cdp/vigil/pkg/engine",
		"github.com/vigil-cdp/vigil/pkg/resample",
		"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest",
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.Contains(dep, "grafana") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
