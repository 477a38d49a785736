package pluginpackage

import (
	"os"
	"testing"
)

// TestBuiltPackage checks the real package produced by `make package` when
// VIGIL_PLUGIN_ZIP names it. Without the variable it checks nothing and says
// so: the real package is checked by `make test` through vigil-package-check.
func TestBuiltPackage(t *testing.T) {
	zp, set := os.LookupEnv("VIGIL_PLUGIN_ZIP")
	if !set || zp == "" {
		t.Log("VIGIL_PLUGIN_ZIP is not set: the real plugin package was NOT checked here; " +
			"`make test` checks it with `go run ./test/pluginpackage/cmd/vigil-package-check vigil-cdp-app-<version>.zip`")
		return
	}
	st, err := os.Stat(zp)
	if err != nil {
		t.Fatalf("VIGIL_PLUGIN_ZIP=%s but the package cannot be read: %v (run `make package` first)", zp, err)
	}
	if st.IsDir() {
		t.Fatalf("VIGIL_PLUGIN_ZIP=%s is a directory, not a zip", zp)
	}
	rep := CheckWithOptions(zp, Options{SourceDir: os.Getenv("VIGIL_PLUGIN_SOURCE")})
	for _, d := range rep.Diagnostics {
		t.Log(d.String())
	}
	if rep.PluginID != "vigil-cdp-app" {
		t.Errorf("%s: top-level plugin id is %q, want vigil-cdp-app", zp, rep.PluginID)
	}
	for _, d := range rep.Errors() {
		t.Errorf("%s", d.String())
	}
}
