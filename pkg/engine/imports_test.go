package engine_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The engine is shared by the CLI and the datasource: nothing in it may
// depend on Grafana.
func TestEngineDoesNotImportGrafana(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/vigil-cdp/vigil/pkg/engine").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "grafana") {
			t.Errorf("the engine depends on %s", dep)
		}
	}
}
