package plugin

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/report"
)

// POST reports: a push agent's signed report through Grafana's API, from a
// service account with the Viewer role; the Grafana identity alone cannot
// forge one.
func TestReportsResource(t *testing.T) {
	const token = "nat-report-token-0123456789"
	client := agentclienttest.New(nil)
	ms := testMonitors(t, client)
	id, s := inOrg(1, 1, "vigil-cdp", `{"agents":[{"name":"nat","transport":"push","reportEvery":"10s"}]}`)
	s.DecryptedSecureJSONData["agent.nat.reportToken"] = token
	ds := newDatasourceIn(id, s, client, ms)
	if ds.settingsErr != nil {
		t.Fatal(ds.settingsErr)
	}
	call := func(body []byte) (int, string) {
		var c capture
		_ = ds.CallResource(context.Background(), &backend.CallResourceRequest{
			//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
			PluginContext: backend.PluginContext{OrgID: 1, User: &backend.User{Login: "sa-1-nat-reporter", Role: "Viewer"}},
			Method:        "POST", Path: "reports", Body: body,
		}, &c)
		return c.responses[0].Status, string(c.responses[0].Body)
	}
	status := `{"apiVersion":"v1","time":"2026-11-26T04:00:00Z","agent":{"id":"a","version":"0.1.0","hostname":"nat","startedAt":"2026-11-26T03:00:00Z","pid":1},"cluster":null,` +
		`"processes":[{"name":"cdp","kind":"command","state":"running","expected":true,"pid":5,"generation":1,"startedAt":"2026-11-26T03:00:00Z","restarts":0,"lastExit":null,"protection":null}]}`
	raw, _ := report.Make(report.Report{Agent: "nat", Seq: 1, SentAt: t0, Status: json.RawMessage(status)}, token)
	code, body := call(raw)
	var env report.Envelope
	_ = json.Unmarshal([]byte(body), &env)
	if code != 200 || env.MAC != report.Sign(token, env.Answer) || env.Answer != `{"agent":"nat","seq":1,"actions":[]}` {
		t.Fatalf("a report: %d %s", code, body)
	}
	if code, body := call(raw); code != 409 || !strings.Contains(body, "stale_report") {
		t.Errorf("the same again: %d %s", code, body)
	}
	forged, _ := report.Make(report.Report{Agent: "nat", Seq: 2, SentAt: t0.Add(time.Second), Status: json.RawMessage(status)}, "grafana-user-guess-0123")
	if code, body := call(forged); code != 401 || !strings.Contains(body, "report_refused") {
		t.Errorf("forged: %d %s", code, body)
	}
	if a, _ := ms.byKey[id.key()].eng.Snapshot().Agent("nat"); a.State.String() != "OK" {
		t.Errorf("the push agent: %s %q", a.State, a.Reason)
	}
}
