package grafanahost

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// realPlugin is the built plugin, run as Grafana runs it, behind the test
// host's HTTP routes.
type realPlugin struct {
	plugin *PluginProcess
	host   *Host
	srv    *httptest.Server
	log    *syncBuffer
}

// startRealPlugin starts the plugin (opts.Log is set here) for the
// provisioned dss and serves the host. When the test ends both stop, no
// secret may be in the plugin's log, and a failed test prints that log.
func startRealPlugin(t *testing.T, opts PluginOptions, dss []Datasource, secrets ...string) *realPlugin {
	t.Helper()
	r := &realPlugin{log: &syncBuffer{}}
	opts.Log = r.log
	plugin, err := StartPluginWith(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.plugin = plugin
	t.Cleanup(func() {
		plugin.Close()
		if !plugin.Exited() {
			t.Error("plugin still running after Close")
		}
		for _, secret := range secrets {
			if strings.Contains(r.log.String(), secret) {
				t.Errorf("a secret reached the plugin log")
			}
		}
		if t.Failed() {
			t.Logf("plugin log:\n%s", r.log.String())
		}
	})
	r.host, err = New(Options{Backend: plugin, Datasources: dss})
	if err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(r.host.Handler())
	t.Cleanup(r.srv.Close)
	r.host.SetAppURL(r.srv.URL)
	return r
}
