package grafanahost

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/internal/agentproc"
)

// Two orgs, one UID: Grafana's UIDs are unique per org only, and the
// shipped provisioning file gives every org "vigil-cdp". The plugin runs as
// a stock Grafana 12.4 runs it: installed in <data>/plugins, no host
// environment.
const orgsProvisioning = `apiVersion: 1
datasources:
  - name: Vigil CDP
    orgId: 1
    type: vigil-cdp-datasource
    uid: vigil-cdp
    jsonData:
      pollInterval: 1s
      idleStop: 3s
      agents:
        - name: node-a
          url: $ORG1_AGENT
    secureJsonData:
      readToken: $ORG1_READ
      controlToken: $ORG1_CONTROL
  - name: Vigil CDP
    orgId: 2
    type: vigil-cdp-datasource
    uid: vigil-cdp
    jsonData:
      pollInterval: 1s
      agents:
        - name: node-a
          url: $ORG2_AGENT
    secureJsonData:
      readToken: $ORG2_READ
      controlToken: $ORG2_CONTROL
`

// orgAgent starts an agent with tokens of its own and one process.
func orgAgent(t *testing.T, org int, process string) (*agentproc.Agent, string, string) {
	read, control := fmt.Sprintf("org%d-read-token-0123456789", org), fmt.Sprintf("org%d-control-token-0123456789", org)
	a := agentproc.StartConfig(t, t.TempDir(), map[string]any{
		"listen": "127.0.0.1:0",
		"auth":   map[string]any{"readToken": read, "controlToken": control},
		"processes": []map[string]any{{
			"name": process, "kind": "command", "command": []string{"sleep", "100000"}, "stopTimeout": "1s",
		}},
	}, "")
	return a, read, control
}

// agentGeneration asks the agent itself for its process's generation.
func agentGeneration(t *testing.T, a *agentproc.Agent, token string) int64 {
	t.Helper()
	status, body := do(t, "GET", a.URL()+"/v1/status", "", map[string]string{"Authorization": "Bearer " + token})
	var st struct {
		Processes []struct {
			Generation int64 `json:"generation"`
		} `json:"processes"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || status != 200 || len(st.Processes) != 1 {
		t.Fatalf("agent status %d %s: %v", status, body, err)
	}
	return st.Processes[0].Generation
}

func TestTwoOrgsSameUIDNothingCrossesOver(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	bin := buildPlugin(t, t.TempDir())
	agent1, read1, control1 := orgAgent(t, 1, "cdp-one")
	agent2, read2, control2 := orgAgent(t, 2, "cdp-two")
	t.Setenv("ORG1_AGENT", agent1.URL())
	t.Setenv("ORG1_READ", read1)
	t.Setenv("ORG1_CONTROL", control1)
	t.Setenv("ORG2_AGENT", agent2.URL())
	t.Setenv("ORG2_READ", read2)
	t.Setenv("ORG2_CONTROL", control2)
	dss, err := LoadProvisioning(writeFile(t, t.TempDir(), "vigil.yaml", orgsProvisioning))
	if err != nil {
		t.Fatal(err)
	}

	data := t.TempDir()
	installed, err := Install(bin, data)
	if err != nil {
		t.Fatal(err)
	}
	srv := startRealPlugin(t, PluginOptions{Path: installed}, dss, read1, read2, control1, control2).srv

	as := func(org int, role string) map[string]string {
		return map[string]string{HeaderOrg: fmt.Sprint(org), HeaderRole: role, HeaderLogin: fmt.Sprintf("user-of-org-%d", org)}
	}
	alerting := func(org int) map[string]string {
		return map[string]string{HeaderOrg: fmt.Sprint(org), HeaderAlerting: "1"}
	}
	others := map[int][]string{
		1: {agent2.URL(), "cdp-two", read2, control2},
		2: {agent1.URL(), "cdp-one", read1, control1},
	}
	own := map[int]string{1: "cdp-one", 2: "cdp-two"}
	crossed := func(t *testing.T, org int, body string) {
		t.Helper()
		for _, s := range others[org] {
			if strings.Contains(body, s) {
				t.Errorf("org %d's answer holds %q, which belongs to the other org: %s", org, s, body)
			}
		}
	}
	statusQuery := `{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp"},"queryType":"status"}],"from":"now-1h","to":"now"}`

	// Both monitors run and judge their own agent.
	for _, org := range []int{1, 2} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			status, body := do(t, "POST", srv.URL+"/api/ds/query", statusQuery, alerting(org))
			crossed(t, org, body)
			if status == 200 && strings.Contains(body, `"OK"`) && strings.Contains(body, own[org]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("org %d never saw its agent OK: %d %s", org, status, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	t.Run("resources answer each org's own agents", func(t *testing.T) {
		for _, org := range []int{1, 2} {
			for _, path := range []string{"agents", "agents/node-a"} {
				status, body := do(t, "GET", srv.URL+"/api/datasources/uid/vigil-cdp/resources/"+path, "", as(org, "Viewer"))
				if status != 200 || !strings.Contains(body, own[org]) && path != "agents" {
					t.Errorf("org %d GET %s = %d %s", org, path, status, body)
				}
				crossed(t, org, body)
			}
			status, body := do(t, "POST", srv.URL+"/api/datasources/uid/vigil-cdp/resources/poll", `{}`, as(org, "Editor"))
			if status != 200 {
				t.Errorf("org %d poll = %d %s", org, status, body)
			}
			crossed(t, org, body)
		}
	})

	t.Run("a restart in org 1 reaches org 1's agent only", func(t *testing.T) {
		before1, before2 := agentGeneration(t, agent1, read1), agentGeneration(t, agent2, read2)
		status, body := do(t, "POST", srv.URL+"/api/datasources/uid/vigil-cdp/resources/agents/node-a/processes/cdp-one/restart",
			`{"reason":"org test","ifGeneration":-1}`, as(1, "Editor"))
		if status != 202 {
			t.Fatalf("restart = %d %s", status, body)
		}
		crossed(t, 1, body)
		if after := agentGeneration(t, agent1, read1); after != before1+1 {
			t.Errorf("org 1's agent: generation %d -> %d, want one more", before1, after)
		}
		if after := agentGeneration(t, agent2, read2); after != before2 {
			t.Errorf("org 2's agent was restarted: generation %d -> %d", before2, after)
		}
		// Org 2 has no process cdp-one: the restart must not find org 1's.
		status, body = do(t, "POST", srv.URL+"/api/datasources/uid/vigil-cdp/resources/agents/node-a/processes/cdp-one/restart",
			`{"reason":"org test","ifGeneration":-1}`, as(2, "Editor"))
		if status == 202 {
			t.Errorf("org 2 restarted org 1's process: %s", body)
		}
		if after := agentGeneration(t, agent1, read1); after != before1+1 {
			t.Errorf("org 1's agent restarted again from org 2: generation %d", after)
		}
	})

	t.Run("each org has its own history folder", func(t *testing.T) {
		for _, dir := range []string{"org1-id1-vigil-cdp", "org2-id2-vigil-cdp"} {
			if _, err := os.Stat(filepath.Join(data, "vigil-cdp", dir, "history.db")); err != nil {
				t.Errorf("history %s: %v", dir, err)
			}
		}
		if _, err := os.Stat(filepath.Join(data, "vigil-cdp", "vigil-cdp")); !os.IsNotExist(err) {
			t.Errorf("a history keyed by UID alone exists: %v", err)
		}
		status, body := do(t, "GET", srv.URL+"/api/datasources/uid/vigil-cdp/resources/monitor", "", as(2, "Admin"))
		// The test's data folder is in /tmp, which the answer must call not durable.
		if status != 200 || !strings.Contains(body, `"durable":false,"note":"it is in the temporary folder`) || !strings.Contains(body, filepath.Join(data, "vigil-cdp", "org2-id2-vigil-cdp")) ||
			!strings.Contains(body, `"source":"Grafana's data folder, found from the plugin's location"`) || !strings.Contains(body, `"keptAliveByAlerts":true`) {
			t.Errorf("GET monitor in org 2 = %d %s", status, body)
		}
	})

	t.Run("org 1's monitor stops after idleStop and the next query starts it", func(t *testing.T) {
		var body string
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, body = do(t, "GET", srv.URL+"/api/datasources/uid/vigil-cdp/resources/monitor", "", as(1, "Admin"))
			if strings.Contains(body, `"running":false`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("org 1's monitor still runs: %s", body)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(body, `no request for 3s (jsonData.idleStop)`) {
			t.Errorf("GET monitor = %s", body)
		}
		if _, body2 := do(t, "GET", srv.URL+"/api/datasources/uid/vigil-cdp/resources/monitor", "", as(2, "Admin")); !strings.Contains(body2, `"running":true`) {
			t.Errorf("org 2's monitor stopped with org 1's: %s", body2)
		}
		status, qbody := do(t, "POST", srv.URL+"/api/ds/query", statusQuery, as(1, "Viewer"))
		if status != 200 {
			t.Fatalf("query after the idle stop = %d %s", status, qbody)
		}
		if _, body = do(t, "GET", srv.URL+"/api/datasources/uid/vigil-cdp/resources/monitor", "", as(1, "Admin")); !strings.Contains(body, `"running":true`) {
			t.Errorf("the query did not start the monitor again: %s", body)
		}
		events := `{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp"},"queryType":"events"}],"from":"now-1h","to":"now"}`
		_, ebody := do(t, "POST", srv.URL+"/api/ds/query", events, as(1, "Viewer"))
		if !strings.Contains(ebody, "monitor stopped: no request for 3s") {
			t.Errorf("the events do not tell the idle stop: %s", ebody)
		}
		crossed(t, 1, ebody)
	})
}
