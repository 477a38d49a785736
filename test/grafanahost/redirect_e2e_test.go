package grafanahost

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vigil-cdp/vigil/internal/agentproc"
)

const redirectProvisioning = `apiVersion: 1
datasources:
  - name: Vigil redirect
    type: vigil-cdp-datasource
    uid: vigil-redirect
    jsonData:
      pollInterval: 1h
      agents:
        - name: front
          url: $REDIRECT_FRONT
    secureJsonData:
      readToken: $REDIRECT_READ_TOKEN
      controlToken: $REDIRECT_CONTROL_TOKEN
`

// A restart from a panel, through the real plugin, that the agent answers
// with a 307 to another agent's stop: the plugin does not follow it, the
// person is told where the agent pointed, and the other agent's CDP process
// keeps running (both agents take the same tokens).
func TestRealPluginNeverFollowsAnAgentsRedirect(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	bin := buildPlugin(t, t.TempDir())
	a := agentproc.Start(t, agentproc.Options{})
	b := agentproc.Start(t, agentproc.Options{})
	stopAtB := b.URL() + "/v1/processes/cdp/stop"
	target, err := url.Parse(a.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var redirected atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			redirected.Add(1)
			http.Redirect(w, r, stopAtB, http.StatusTemporaryRedirect)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	t.Setenv("REDIRECT_FRONT", front.URL)
	t.Setenv("REDIRECT_READ_TOKEN", agentproc.ReadToken)
	t.Setenv("REDIRECT_CONTROL_TOKEN", agentproc.ControlToken)
	t.Setenv("GF_PATHS_DATA", t.TempDir())
	dss, err := LoadProvisioning(writeFile(t, t.TempDir(), "vigil.yaml", redirectProvisioning))
	if err != nil {
		t.Fatal(err)
	}
	real := startRealPlugin(t, PluginOptions{Path: bin, ForwardHostEnv: true}, dss, agentproc.ReadToken, agentproc.ControlToken)
	resources := real.srv.URL + "/api/datasources/uid/vigil-redirect/resources/"
	editor := map[string]string{HeaderRole: "Editor", HeaderLogin: "alice"}

	generationAtB := func() int64 {
		t.Helper()
		procs := b.Processes(t)
		if len(procs) != 1 || procs[0].State != "running" {
			t.Errorf("agent B's processes: %+v", procs)
		}
		if len(procs) == 0 {
			return -1
		}
		return procs[0].Generation
	}
	before := generationAtB()

	status, body := do(t, "POST", resources+"agents/front/processes/cdp/restart", `{"reason":"from a panel","ifGeneration":-1}`, editor)
	if status != http.StatusBadGateway || !strings.Contains(body, "redirect to "+stopAtB) {
		t.Errorf("restart through a redirecting agent = %d %s; want 502 naming the location", status, body)
	}
	if redirected.Load() != 1 {
		t.Errorf("the front saw %d restarts", redirected.Load())
	}
	if after := generationAtB(); after != before {
		t.Errorf("agent B's CDP process was acted on: generation %d, was %d", after, before)
	}
	if strings.Contains(real.log.String(), agentproc.ControlToken) {
		t.Error("the control token is in the plugin's log")
	}
}
