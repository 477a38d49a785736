package grafanahost

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/internal/agentproc"
	"github.com/vigil-cdp/vigil/pkg/agentclient"
)

// One real agent, four datasources: its read token, a wrong one, one from an
// environment variable grafana-server did not have, and a fleet with one
// agent nobody answers for.
const healthProvisioning = `apiVersion: 1
datasources:
  - name: right token
    type: vigil-cdp-datasource
    uid: health-ok
    jsonData:
      agents:
        - name: db-1
          url: $E2E_AGENT
    secureJsonData:
      readToken: $E2E_READ_TOKEN
  - name: wrong token
    type: vigil-cdp-datasource
    uid: health-wrong-token
    jsonData:
      agents:
        - name: db-1
          url: $E2E_AGENT
    secureJsonData:
      readToken: $E2E_WRONG_TOKEN
  - name: token from an unset variable
    type: vigil-cdp-datasource
    uid: health-empty-token
    jsonData:
      agents:
        - name: db-1
          url: $E2E_AGENT
    secureJsonData:
      readToken: $E2E_UNSET_READ_TOKEN
  - name: one agent silent
    type: vigil-cdp-datasource
    uid: health-one-silent
    jsonData:
      agents:
        - name: db-1
          url: $E2E_AGENT
        - name: gone
          url: $E2E_DEAD_URL
    secureJsonData:
      readToken: $E2E_READ_TOKEN
`

// TestHealthThroughGRPC is Save & test as Grafana runs it: the built plugin
// over gRPC, a real vigil-agent on loopback. A wrong or empty read token is
// an error naming the reason, not the green "1 of 1 agents answered" that
// the agent's token-free /healthz used to give.
func TestHealthThroughGRPC(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	bin := buildPlugin(t, t.TempDir())
	agent := agentproc.Start(t, agentproc.Options{})
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	const wrongToken = "wrong-token-0123456789abcdef"
	t.Setenv("E2E_AGENT", agent.URL())
	t.Setenv("E2E_DEAD_URL", deadURL)
	t.Setenv("E2E_READ_TOKEN", agentproc.ReadToken)
	t.Setenv("E2E_WRONG_TOKEN", wrongToken)
	// As in a systemd unit without Environment=: the variable is not there.
	t.Setenv("E2E_UNSET_READ_TOKEN", "")
	if err := os.Unsetenv("E2E_UNSET_READ_TOKEN"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GF_PATHS_DATA", t.TempDir())

	dss, err := LoadProvisioning(writeFile(t, t.TempDir(), "vigil.yaml", healthProvisioning))
	if err != nil {
		t.Fatal(err)
	}
	byUID := map[string]Datasource{}
	for _, ds := range dss {
		byUID[ds.UID] = ds
	}
	if v, ok := byUID["health-empty-token"].SecureJSONData["readToken"]; !ok || v != "" {
		t.Fatalf("the unset variable did not provision an empty readToken")
	}

	real := startRealPlugin(t, PluginOptions{Path: bin, ForwardHostEnv: true}, dss, agentproc.ReadToken, wrongToken)
	plugin, host, srv := real.plugin, real.host, real.srv
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := &backend.User{Login: "admin", Role: "Admin"}

	health := func(t *testing.T, uid string) (backend.HealthStatus, string, []string) {
		t.Helper()
		res, err := plugin.CheckHealth(ctx, &backend.CheckHealthRequest{PluginContext: host.pluginContext(byUID[uid], admin)})
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{agentproc.ReadToken, wrongToken} {
			if strings.Contains(res.Message+string(res.JSONDetails), secret) {
				t.Errorf("a token is in the health answer: %s %s", res.Message, res.JSONDetails)
			}
		}
		var details struct {
			VerboseMessage string `json:"verboseMessage"`
		}
		if err := json.Unmarshal(res.JSONDetails, &details); err != nil {
			t.Fatalf("details %s: %v", res.JSONDetails, err)
		}
		agentsPart, monitorPart, _ := strings.Cut(details.VerboseMessage, "\n\n")
		lines := strings.Split(agentsPart, "\n")
		if lines[0] != "Agents (GET /v1/status with the read token, as every poll does; 5s each):" {
			t.Errorf("title = %q", lines[0])
		}
		// Nothing has queried the datasource: the monitor section and the
		// message say that nothing keeps it running.
		message, warning, _ := strings.Cut(res.Message, "; warning: ")
		if !strings.HasPrefix(monitorPart, "Monitor:\nthe monitor is not running") || !strings.HasPrefix(warning, "nothing keeps the monitor running") {
			t.Errorf("monitor section %q, warning %q", monitorPart, warning)
		}
		return res.Status, message, lines[1:]
	}
	statusURL := agent.URL() + "/v1/status"

	t.Run("the right token: OK, with what the agent said", func(t *testing.T) {
		status, message, lines := health(t, "health-ok")
		if status != backend.HealthStatusOk || message != "1 of 1 agents answered" || len(lines) != 1 ||
			!strings.HasPrefix(lines[0], "db-1: answered in ") || !strings.HasSuffix(lines[0], ", 1 process)") {
			t.Errorf("health = %v %q %q", status, message, lines)
		}
	})

	t.Run("a wrong token: ERROR, the agent refused it", func(t *testing.T) {
		status, message, lines := health(t, "health-wrong-token")
		want := "db-1: token refused: the agent refused the read token: check secureJsonData.readToken (or agent.db-1.readToken, which overrides it for this agent): " +
			"it must be one of the agent's read tokens (auth.readToken in its configuration); GET " + statusURL + " answered HTTP 401"
		if status != backend.HealthStatusError || message != "0 of 1 agents answered" || strings.Join(lines, "\n") != want {
			t.Errorf("health = %v %q\n got: %q\nwant: %q", status, message, lines, want)
		}
	})

	// A vigil-agent refuses a read without a token (its configuration has
	// no way to run without one), so an empty token can never work with it.
	t.Run("the agent refuses a poll without a token", func(t *testing.T) {
		_, err := agentclient.New(nil).Status(ctx, agentclient.Agent{Name: "db-1", URL: agent.URL()})
		var ae *agentclient.Error
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status without a token: %v", err)
		}
	})

	t.Run("a token from an unset variable: ERROR, and how to set it", func(t *testing.T) {
		status, message, lines := health(t, "health-empty-token")
		want := "db-1: token empty: the read token is empty (secureJsonData.readToken is an empty string): " +
			"if the provisioning file says $VIGIL_READ_TOKEN, grafana-server did not have it in its environment; " +
			"for a systemd service add it with `systemctl edit grafana-server` ([Service] Environment=VIGIL_READ_TOKEN=... or EnvironmentFile=...), then restart Grafana; " +
			"a datasource configured by hand needs the token entered in its settings; GET " + statusURL + " answered HTTP 401"
		if status != backend.HealthStatusError || message != "0 of 1 agents answered" || strings.Join(lines, "\n") != want {
			t.Errorf("health = %v %q\n got: %q\nwant: %q", status, message, lines, want)
		}
	})

	t.Run("one agent silent: ERROR, N of M", func(t *testing.T) {
		status, message, lines := health(t, "health-one-silent")
		if status != backend.HealthStatusError || message != "1 of 2 agents answered" || len(lines) != 2 ||
			!strings.HasPrefix(lines[0], "db-1: answered in ") ||
			!strings.HasPrefix(lines[1], "gone: unreachable: network: GET "+deadURL+"/v1/status: no answer (") {
			t.Errorf("health = %v %q %q", status, message, lines)
		}
	})

	t.Run("HTTP: Grafana's health route answers the same", func(t *testing.T) {
		code, body := do(t, "GET", srv.URL+"/api/datasources/uid/health-wrong-token/health", "", map[string]string{HeaderRole: "Admin"})
		if code != http.StatusBadRequest || !strings.HasPrefix(body, `{"status":"ERROR","message":"0 of 1 agents answered; warning: nothing keeps the monitor running, or its history may not survive a reboot (see details)","details":{"verboseMessage":"Agents (`) ||
			!strings.Contains(body, `db-1: token refused: the agent refused the read token`) {
			t.Errorf("%d %s", code, body)
		}
	})
}
