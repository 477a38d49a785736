package plugin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/models"
)

func TestAllowURL(t *testing.T) {
	prefixes, problems := handlerURLPrefixes(func(string) string {
		return "https://pager.example.net/hooks/, http://10.0.0.9:8080 ftp://x https://u:p@x/"
	})
	if len(prefixes) != 2 || len(problems) != 2 {
		t.Fatalf("prefixes %+v, problems %q", prefixes, problems)
	}
	allow := allowURL(prefixes)
	for u, want := range map[string]bool{
		"https://pager.example.net/hooks/vigil":         true,
		"https://PAGER.example.net/hooks/vigil?x=1":     true,
		"https://pager.example.net/other":               false,
		"http://pager.example.net/hooks/vigil":          false,
		"https://pager.example.net.evil.example/hooks/": false,
		"https://pager.example.net:8443/hooks/vigil":    false,
		"http://10.0.0.9:8080/reset":                    true,
		"http://10.0.0.9:8081/reset":                    false,
		"https://user@pager.example.net/hooks/vigil":    false,
	} {
		if got := allow(u); got != want {
			t.Errorf("allow(%q) = %v, want %v", u, got, want)
		}
	}
}

func TestHandlerSettings(t *testing.T) {
	for _, tc := range []struct{ jsonData, want string }{
		{`{"agents":[{"name":"a","url":"http://127.0.0.1:1"}],"handlers":[{"name":"sh","on":["FAILED"],"command":["sh","-c","id"]}]}`,
			"jsonData.handlers[0].command: command handlers run only in vigil watch"},
		{`{"agents":[{"name":"a","url":"http://127.0.0.1:1"}],"handlers":[{"name":"h","on":["FAILED"],"http":{"url":"https://x/","headers":{"Authorization":"Bearer t"}}}]}`,
			"jsonData.handlers[0].http.headers: are not read from jsonData: give them in secureJsonData as handler.h.header.<Name>"},
		{`{"agents":[{"name":"a","url":"http://127.0.0.1:1"}],"handlers":[{"name":"h","on":["GRACE"],"http":{"url":"https://x/"}}]}`,
			"jsonData.handlers[0].on: GRACE never runs a handler"},
	} {
		_, err := models.LoadSettings(settingsFor(tc.jsonData))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.jsonData, err, tc.want)
		}
	}
}

// The datasource runs HTTP handlers only to the URLs the Grafana server
// allows, with their secret headers from secureJsonData; Save & test says
// which would run.
func TestDatasourceHandlers(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(body))
		mu.Unlock()
	}))
	defer hook.Close()
	fake := clock.NewFake(t0)
	client := agentclienttest.New(fake)
	client.Add("node-a", agentclienttest.Script{})
	ms := testMonitors(t, client)
	data := t.TempDir()
	env := map[string]string{envDataPath: data}
	ms.getenv = func(k string) string { return env[k] }
	ms.clock = fake
	ms.options = func() engine.Options { return engine.Options{Client: client, Clock: fake, Jitter: -1} }
	jsonData := `{"pollInterval":"10s","agents":[{"name":"node-a","url":"http://127.0.0.1:7071"}],
		"defaults":{"budget":{"responseTime":"1s","processing":"1s","failover":"0","restart":"10s","networkInterruption":"0","appErrorRecovery":"0"}},
		"handlers":[
		  {"name":"page","on":["FAILED"],"level":"agent","http":{"url":"` + hook.URL + `/hooks/page"}},
		  {"name":"elsewhere","on":["FAILED"],"level":"agent","http":{"url":"` + hook.URL + `/other"}}]}`
	id, s := inOrg(1, 1, "vigil-cdp", jsonData)
	s.DecryptedSecureJSONData["handler.page.header.Authorization"] = "Bearer pager-secret"
	ds := newDatasourceIn(id, s, client, ms)
	if ds.settingsErr != nil {
		t.Fatal(ds.settingsErr)
	}
	health := func() string {
		res, err := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{
			//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
			PluginContext: backend.PluginContext{OrgID: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		return res.Message + "\n" + string(res.JSONDetails)
	}
	if h := health(); !strings.Contains(h, "some handlers will not run") || !strings.Contains(h, "the Grafana server allows no handler URL") {
		t.Errorf("health without an allowed URL:\n%s", h)
	}
	env[envHandlerURLPrefixes] = hook.URL + "/hooks/"
	if h := health(); !strings.Contains(h, "page: on FAILED: POST "+hook.URL+"/hooks/page: allowed") ||
		!strings.Contains(h, "elsewhere: on FAILED: POST "+hook.URL+"/other: NOT run") || strings.Contains(h, "pager-secret") {
		t.Errorf("health with %s/hooks/ allowed:\n%s", hook.URL, h)
	}

	poll := func() {
		var c capture
		_ = ds.CallResource(context.Background(), &backend.CallResourceRequest{
			//lint:ignore SA1019 a plugin context as Grafana sends it, with OrgID
			PluginContext: backend.PluginContext{OrgID: 1, User: &backend.User{Login: "ed", Role: "Editor"}},
			Method:        "POST", Path: "poll", Body: []byte(`{}`),
		}, &c)
		if len(c.responses) != 1 || c.responses[0].Status != 200 {
			t.Fatalf("poll: %+v", c.responses)
		}
	}
	poll()
	client.Set("node-a", func(s *agentclienttest.Script) { s.Silent = true })
	for _, at := range []time.Duration{10, 20} {
		fake.Set(t0.Add(at * time.Second))
		poll()
	}
	m := ms.byKey[id.key()]
	m.eng.WaitHandlers()
	mu.Lock()
	calls := append([]string(nil), got...)
	mu.Unlock()
	if len(calls) != 1 || !strings.HasPrefix(calls[0], "/hooks/page Bearer pager-secret {") || !strings.Contains(calls[0], `"state":"FAILED"`) {
		t.Fatalf("the hook got %q", calls)
	}
	events, err := m.store.Events(history.Query{Agent: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]string{}
	for _, ev := range events {
		if ev.Type == history.TypeHandler {
			raw, _ := json.Marshal(ev)
			results[ev.Handler] = ev.Result + ": " + ev.Error
			if strings.Contains(string(raw), "pager-secret") {
				t.Errorf("a secret in the event: %s", raw)
			}
		}
	}
	if results["page"] != "ok: " || !strings.HasPrefix(results["elsewhere"], "failed: not run: "+hook.URL+"/other is not among the URLs the server allows") {
		t.Errorf("handler events: %q", results)
	}
}
