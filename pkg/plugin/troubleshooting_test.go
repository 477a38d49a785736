package plugin

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/history"
)

// troubleshootingRow is one row of docs/install.md's troubleshooting table.
type troubleshootingRow struct {
	line     int
	where    string
	patterns []string
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// troubleshootingTable reads the table under "## Troubleshooting": its
// second column quotes the message, "..." standing for any text.
func troubleshootingTable(t *testing.T) []troubleshootingRow {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []troubleshootingRow
	in := false
	for i, line := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Troubleshooting"
		case in && strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| where ") && !strings.HasPrefix(line, "|---"):
			cells := strings.Split(line, " | ")
			if len(cells) != 3 {
				t.Fatalf("install.md:%d: want 3 columns (where | message | cause and fix): %s", i+1, line)
			}
			row := troubleshootingRow{line: i + 1, where: strings.TrimPrefix(cells[0], "| ")}
			for _, m := range codeSpan.FindAllStringSubmatch(cells[1], -1) {
				row.patterns = append(row.patterns, m[1])
			}
			if len(row.patterns) == 0 {
				t.Errorf("install.md:%d: the message column quotes no message: %s", i+1, line)
			}
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		t.Fatal("install.md has no troubleshooting table")
	}
	return rows
}

// patternRegexp turns a quoted message into a regular expression: "..."
// matches any text, everything else itself.
func patternRegexp(p string) *regexp.Regexp {
	parts := strings.Split(p, "...")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile(strings.Join(parts, ".*"))
}

// messages collects what the code says, by where a person reads it.
type messages map[string][]string

func (m messages) add(where string, texts ...string) {
	for _, s := range texts {
		if s != "" {
			m[where] = append(m[where], s)
		}
	}
}

// addJSON adds every string in a JSON document (a resource answer).
func (m messages) addJSON(t *testing.T, where string, raw []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			m.add(where, v)
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
}

// Every row of the troubleshooting table is a message that the code really
// gives, where the row says it is read: each is produced here by running
// that code path against agents on loopback in the failure the row is about.
func TestTroubleshootingTableMatchesMessages(t *testing.T) {
	const token = "read-token-0123456789abcdef"
	const control = "control-token-0123456789abcdef"
	got := messages{}

	// Save & test, in every way an agent can fail it.
	good := fakeAgent{token: token}.start(t).URL
	otherToken := fakeAgent{token: "another-token-0123456789"}.start(t).URL
	healthzOnly := fakeAgent{token: token, body: `{"status":"ok"}`}.start(t).URL
	slow := fakeAgent{hang: true}.start(t).URL
	broken := fakeAgent{token: token, status: 500, body: `{"error":{"code":"internal","message":"internal error; see the agent log"}}`}.start(t).URL
	for _, run := range []struct {
		agents  [][2]string
		secrets map[string]string
	}{
		{[][2]string{{"db-1", otherToken}, {"db-2", deadURL(t)}, {"db-3", healthzOnly}, {"db-4", good + "/vigil"}, {"db-5", broken}, {"db-6", slow}}, map[string]string{"readToken": token}},
		{[][2]string{{"db-1", good}}, map[string]string{"readToken": ""}},
		{[][2]string{{"db-1", "db-1:7070"}}, map[string]string{"readToken": token}},
	} {
		h := runHealth(t, run.agents, run.secrets, 300*time.Millisecond)
		got.add("Save & test", h.message)
		got.add("Save & test", h.lines...)
		got.add("Save & test", h.monitor...)
	}
	// A Grafana that gives the plugin no data folder: the history goes to
	// the temporary folder.
	noData := newMonitors()
	noData.getenv = func(string) string { return "" }
	noData.executable = func() (string, error) { return "/usr/local/bin/gpx_vigil", nil }
	noData.packagedData = filepath.Join(t.TempDir(), "absent")
	t.Cleanup(noData.stopAll)
	h := checkHealth(t, newDatasource(settingsFor(`{"agents":[{"name":"db-1","url":"`+good+`"}]}`), agentclient.New(nil), noData), nil)
	got.add("Save & test", h.monitor...)

	// What the monitor shows for an agent after its polls.
	client := agentclient.New(nil)
	ms := testMonitors(t, client)
	jsonData := `{"agents":[{"name":"db-1","url":"` + otherToken + `"},{"name":"db-2","url":"` + healthzOnly + `"}]}`
	ds := newDatasource(backend.DataSourceInstanceSettings{UID: "vigil-cdp", JSONData: json.RawMessage(jsonData),
		DecryptedSecureJSONData: map[string]string{"readToken": token, "controlToken": control}}, client, ms)
	editor := &backend.User{Login: "ed", Role: "Editor"}
	resource := func(method, path, body string, user *backend.User) []byte {
		t.Helper()
		var c capture
		err := ds.CallResource(context.Background(), &backend.CallResourceRequest{
			PluginContext: backend.PluginContext{User: user}, Method: method, Path: path, Body: []byte(body)}, &c)
		if err != nil || len(c.responses) != 1 {
			t.Fatalf("%s %s: %v %+v", method, path, err, c.responses)
		}
		return c.responses[0].Body
	}
	resource("POST", "poll", `{}`, editor)
	for _, name := range []string{"db-1", "db-2"} {
		got.addJSON(t, "agent state", resource("GET", "agents/"+name, "", editor))
	}
	// Restarts from the panel.
	got.addJSON(t, "restart", resource("POST", "agents/db-1/processes/cdp/restart", `{"ifGeneration":-1}`, &backend.User{Login: "vi", Role: "Viewer"}))
	got.addJSON(t, "restart", resource("POST", "agents/db-1/processes/cdp/restart", `{"ifGeneration":-1}`, editor))
	noControl := newDatasource(backend.DataSourceInstanceSettings{UID: "no-control", JSONData: json.RawMessage(jsonData),
		DecryptedSecureJSONData: map[string]string{"readToken": token}}, client, ms)
	var c capture
	if err := noControl.CallResource(context.Background(), &backend.CallResourceRequest{PluginContext: backend.PluginContext{User: editor},
		Method: "POST", Path: "agents/db-1/processes/cdp/restart", Body: []byte(`{"ifGeneration":-1}`)}, &c); err != nil {
		t.Fatal(err)
	}
	got.addJSON(t, "restart", c.responses[0].Body)

	// Queries: misconfigured settings, and a history another process holds.
	bad := newDatasource(settingsFor(badSettings), agentclienttest.New(nil), testMonitors(t, agentclienttest.New(nil)))
	if dr := query(t, bad, QueryTypeStatus); dr.Error != nil {
		got.add("query", dr.Error.Error())
	}
	held := t.TempDir()
	store, err := history.Open(held, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	busy := newDatasource(backend.DataSourceInstanceSettings{UID: "busy",
		JSONData: json.RawMessage(`{"historyPath":"` + held + `","agents":[{"name":"db-1","url":"http://127.0.0.1:1"}]}`)}, agentclienttest.New(nil), testMonitors(t, agentclienttest.New(nil)))
	if dr := query(t, busy, QueryTypeStatus); dr.Error != nil {
		got.add("query", dr.Error.Error())
	}

	// A history folder that belongs to another datasource (one deleted and
	// created again, or two pointed at one folder one after the other).
	owned := t.TempDir()
	if err := claimHistory(owned, identity{org: 1, id: 3, uid: "vigil-cdp"}); err != nil {
		t.Fatal(err)
	}
	taken := settingsFor(`{"historyPath":"` + owned + `","agents":[{"name":"db-1","url":"http://127.0.0.1:1"}]}`)
	taken.ID = 9
	if dr := query(t, newDatasourceIn(identity{org: 1, id: 9, uid: "vigil-cdp"}, taken, agentclienttest.New(nil), testMonitors(t, agentclienttest.New(nil))), QueryTypeStatus); dr.Error != nil {
		got.add("query", dr.Error.Error())
	}

	for _, row := range troubleshootingTable(t) {
		produced, known := got[row.where]
		if !known {
			t.Errorf("install.md:%d: %q is not a place this test produces messages for (one of Save & test, agent state, restart, query)", row.line, row.where)
			continue
		}
		for _, p := range row.patterns {
			re := patternRegexp(p)
			found := false
			for _, msg := range produced {
				if re.MatchString(msg) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("install.md:%d: no %s message matches `%s`; the code gives:\n  %s", row.line, row.where, p, strings.Join(produced, "\n  "))
			}
		}
	}
	for where, list := range got {
		for _, msg := range list {
			if strings.Contains(msg, token) || strings.Contains(msg, control) {
				t.Errorf("%s: a token is in %q", where, msg)
			}
		}
	}
}
