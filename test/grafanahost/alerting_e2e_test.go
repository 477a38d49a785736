package grafanahost

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/internal/agentproc"
	"github.com/vigil-cdp/vigil/internal/ssecheck"
)

// node-a's polls may take 31 s (its response time budget), so that a poll
// through a hanging proxy outlasts the first alert query's wait.
const alertingProvisioning = `apiVersion: 1
datasources:
  - name: Vigil CDP
    type: vigil-cdp-datasource
    uid: vigil-cdp
    jsonData:
      pollInterval: 1s
      agents:
        - name: demo-standalone
          url: $E2E_AGENT_A
        - name: demo-node-a
          url: $E2E_AGENT_B
          cluster: demo-ha
          budget:
            responseTime: 30s
    secureJsonData:
      readToken: $E2E_READ_TOKEN
      controlToken: $E2E_CONTROL_TOKEN
`

// alertingHost is the test host with a freshly started plugin: Grafana
// (re)started.
type alertingHost struct {
	*realPlugin
	url string
}

func startAlertingHost(t *testing.T, bin string, dss []Datasource) *alertingHost {
	t.Helper()
	r := startRealPlugin(t, PluginOptions{Path: bin, ForwardHostEnv: true}, dss, agentproc.ReadToken, agentproc.ControlToken)
	return &alertingHost{realPlugin: r, url: r.srv.URL}
}

// alertQuery asks one query as Grafana Alerting does (no user, FromAlert)
// and reads the frames back from the JSON answer.
func (h *alertingHost) alertQuery(t *testing.T, query string) backend.DataResponse {
	t.Helper()
	body := `{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp"},"intervalMs":1000,"maxDataPoints":43200,` + query + `}],"from":"now-10m","to":"now"}`
	status, raw := do(t, "POST", h.url+"/api/ds/query", body, map[string]string{HeaderAlerting: "1"})
	var resp backend.QueryDataResponse
	if err := json.Unmarshal([]byte(raw), &resp); err != nil {
		t.Fatalf("%d %s: %v", status, raw, err)
	}
	dr, ok := resp.Responses["A"]
	if status != http.StatusOK || !ok || dr.Error != nil {
		t.Fatalf("status %d: %s", status, raw)
	}
	return dr
}

// evaluate reads an answer as Grafana's server-side expressions do and
// reduces it as the rules do; a failure is the error the rule would show.
func (h *alertingHost) evaluate(t *testing.T, query string) map[string]*float64 {
	t.Helper()
	inst, _, err := ssecheck.Evaluate(h.alertQuery(t, query).Frames)
	if err != nil {
		t.Fatalf("a rule on %s fails: %v", query, err)
	}
	return ssecheck.ByLabels(inst)
}

func show(m map[string]*float64) string {
	var parts []string
	for k, v := range m {
		s := "null"
		if v != nil {
			s = strconv.FormatFloat(*v, 'g', -1, 64)
		}
		parts = append(parts, "{"+k+"}="+s)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func wantValue(t *testing.T, got map[string]*float64, labels string, want float64) {
	t.Helper()
	if v, ok := got[labels]; !ok || v == nil || *v != want {
		t.Errorf("{%s}: want %g; instances: %s", labels, want, show(got))
	}
}

// hangingProxy forwards to an agent, or holds every request while hang is
// set: an agent that went quiet across a restart of Grafana.
func hangingProxy(t *testing.T, target string) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	var hang atomic.Bool
	release := make(chan struct{})
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(release)
		srv.Close()
	})
	return srv, &hang
}

// Rules built by hand in Grafana's rule editor, through the gRPC host path:
// every query type evaluates under the server-side expressions' rules from
// the first evaluation after a start, and after a restart an agent not yet
// polled again is UNKNOWN, never OK.
func TestAlertRulesOnTheRealPlugin(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	bin := buildPlugin(t, t.TempDir())
	agentA := agentproc.Start(t, agentproc.Options{})
	roleFile := filepath.Join(t.TempDir(), "role")
	if err := os.WriteFile(roleFile, []byte("active\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agentB := agentproc.Start(t, agentproc.Options{Cluster: "demo-ha", Node: "node-a", RoleFile: roleFile})
	proxyB, hangB := hangingProxy(t, agentB.URL())
	t.Setenv("E2E_AGENT_A", agentA.URL())
	t.Setenv("E2E_AGENT_B", proxyB.URL)
	t.Setenv("E2E_READ_TOKEN", agentproc.ReadToken)
	t.Setenv("E2E_CONTROL_TOKEN", agentproc.ControlToken)
	t.Setenv("GF_PATHS_DATA", t.TempDir())
	dss, err := LoadProvisioning(writeFile(t, t.TempDir(), "vigil.yaml", alertingProvisioning))
	if err != nil {
		t.Fatal(err)
	}

	const (
		standalone = "agent=demo-standalone"
		nodeA      = "agent=demo-node-a, cluster=demo-ha"
	)
	first := startAlertingHost(t, bin, dss)

	t.Run("the first evaluation after a start sees the first poll", func(t *testing.T) {
		// Nothing has started the monitor yet: this query does.
		got := first.evaluate(t, `"queryType":"metrics","metrics":["stateCode"]`)
		if len(got) != 2 {
			t.Errorf("instances: %s", show(got))
		}
		wantValue(t, got, standalone, 0)
		wantValue(t, got, nodeA, 0)
	})

	t.Run("status: one state code per agent and process", func(t *testing.T) {
		got := first.evaluate(t, `"queryType":"status"`)
		if len(got) != 2 {
			t.Errorf("instances: %s", show(got))
		}
		wantValue(t, got, standalone+", process=cdp", 0)
		wantValue(t, got, nodeA+", process=cdp", 0)
	})

	t.Run("a query without a type is a status query", func(t *testing.T) {
		got := first.evaluate(t, `"agents":["demo-node-a"]`)
		wantValue(t, got, nodeA+", process=cdp", 0)
	})

	t.Run("events: a count per agent and kind", func(t *testing.T) {
		got := first.evaluate(t, `"queryType":"events"`)
		if len(got) != 8 {
			t.Errorf("%d instances, want 2 agents × 4 kinds: %s", len(got), show(got))
		}
		// Each agent turned from UNKNOWN to OK at its first poll.
		wantValue(t, got, "agent=demo-standalone, kind=state", 2)
		wantValue(t, got, "agent=demo-node-a, cluster=demo-ha, kind=action", 0)
	})

	t.Run("metrics without a metric chosen: the metric is a label", func(t *testing.T) {
		got := first.evaluate(t, `"queryType":"metrics"`)
		wantValue(t, got, standalone+", metric=stateCode", 0)
		wantValue(t, got, standalone+", metric=up", 1)
		wantValue(t, got, nodeA+", metric=processRunning, process=cdp", 1)
		if _, ok := got["metric=engineStalenessSeconds"]; !ok {
			t.Errorf("no engine series: %s", show(got))
		}
	})

	t.Run("timeline", func(t *testing.T) {
		got := first.evaluate(t, `"queryType":"timeline"`)
		wantValue(t, got, nodeA, 0)
		wantValue(t, got, nodeA+", process=cdp", 0)
	})

	t.Run("every frame names its datasource", func(t *testing.T) {
		for _, f := range first.alertQuery(t, `"queryType":"status"`).Frames {
			if custom, _ := f.Meta.Custom.(map[string]any); custom["datasourceUid"] != "vigil-cdp" {
				t.Errorf("frame %q meta.custom = %v", f.Name, f.Meta.Custom)
			}
		}
	})

	// A few more polls (every second) make a history; then Grafana restarts
	// while node-a went quiet: its poll outlasts the first query's wait.
	time.Sleep(2500 * time.Millisecond)
	first.plugin.Close()
	hangB.Store(true)
	second := startAlertingHost(t, bin, dss)

	t.Run("after a restart, an agent not polled yet is UNKNOWN, its history kept", func(t *testing.T) {
		started := time.Now()
		dr := second.alertQuery(t, `"queryType":"metrics","metrics":["stateCode"]`)
		if waited := time.Since(started); waited > 15*time.Second {
			t.Errorf("the first query took %s", waited)
		}
		a, err := ssecheck.Read(dr.Frames)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := ssecheck.Reduce(a)
		if err != nil {
			t.Fatal(err)
		}
		got := ssecheck.ByLabels(inst)
		wantValue(t, got, standalone, 0)
		wantValue(t, got, nodeA, 6)
		for _, v := range a.Values {
			if v.Labels["agent"] != "demo-node-a" {
				continue
			}
			sawOK := false
			for _, p := range v.Points[:len(v.Points)-1] {
				sawOK = sawOK || p != nil && *p == 0
			}
			if !sawOK {
				t.Errorf("node-a's series lost its history: %v", v.Points)
			}
		}
		wantValue(t, second.evaluate(t, `"queryType":"status"`), nodeA+", process=cdp", 6)
	})
}
