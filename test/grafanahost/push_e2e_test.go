package grafanahost

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/internal/agentproc"
)

const pushProvisioning = `apiVersion: 1
datasources:
  - name: Vigil push
    type: vigil-cdp-datasource
    uid: vigil-push
    jsonData:
      pollInterval: 1s
      defaults:
        budget: { responseTime: 1s, processing: 0, failover: 0, restart: 3s, networkInterruption: 0, appErrorRecovery: 0 }
      agents:
        - name: nat
          transport: push
          reportEvery: 1s
    secureJsonData:
      agent.nat.reportToken: $PUSH_REPORT_TOKEN
`

// A push agent through Grafana's API and the real plugin: a real agent
// reports to the datasource's reports resource with a service account
// token (which Grafana checks and does not forward); the plugin checks the
// agent's own signature, and the CDP process killed with SIGKILL is
// restarted through the answer.
func TestRealPluginReceivesPushedReports(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	const reportToken = "grafana-push-report-token-0123456789"
	bin := buildPlugin(t, t.TempDir())
	t.Setenv("PUSH_REPORT_TOKEN", reportToken)
	t.Setenv("GF_PATHS_DATA", t.TempDir())
	dss, err := LoadProvisioning(writeFile(t, t.TempDir(), "vigil.yaml", pushProvisioning))
	if err != nil {
		t.Fatal(err)
	}
	real := startRealPlugin(t, PluginOptions{Path: bin, ForwardHostEnv: true}, dss, reportToken)
	resources := real.srv.URL + "/api/datasources/uid/vigil-push/resources/"
	dir := t.TempDir()
	agent := agentproc.StartConfig(t, filepath.Join(dir, "agent"), map[string]any{
		"listen":    "127.0.0.1:0",
		"auth":      map[string]any{"readToken": agentproc.ReadToken, "controlToken": agentproc.ControlToken},
		"processes": []map[string]any{{"name": "cdp", "kind": "command", "command": []string{"sleep", "100000"}, "stopTimeout": "1s"}},
		"report": map[string]any{"to": resources + "reports", "name": "nat", "every": "1s", "token": reportToken,
			"bearerToken": "glsa_service-account-token-of-the-agent"},
	}, "")
	editor := map[string]string{HeaderRole: "Editor", HeaderLogin: "alice"}
	type detail struct {
		State     string `json:"state"`
		Processes []struct {
			Name       string `json:"name"`
			State      string `json:"state"`
			Generation int64  `json:"generation"`
		} `json:"processes"`
	}
	waitFor := func(what string, ok func(detail) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		var last string
		for time.Now().Before(deadline) {
			status, body := do(t, "GET", resources+"agents/nat", "", editor)
			var d detail
			if status == 200 && json.Unmarshal([]byte(body), &d) == nil && ok(d) {
				return
			}
			last = body
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%s: not within 20 s; GET agents/nat: %s\nplugin log:\n%s", what, last, real.log.String())
	}
	waitFor("nat OK", func(d detail) bool { return d.State == "OK" && len(d.Processes) == 1 && d.Processes[0].Generation == 1 })
	pid := 0
	for _, p := range agent.Processes(t) {
		if p.Name == "cdp" {
			pid = p.PID
		}
	}
	if pid <= 0 {
		t.Fatalf("no cdp pid: %+v", agent.Processes(t))
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor("cdp restarted through the answer", func(d detail) bool {
		return d.State == "OK" && len(d.Processes) == 1 && d.Processes[0].Generation == 2
	})
	if strings.Contains(real.log.String(), "glsa_service-account-token") {
		t.Error("the service account token reached the plugin")
	}
}
