package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/state"
)

const handlerFleet = "defaults: { readToken: r }\nagents:\n  - { name: db1, url: \"http://127.0.0.1:1\" }\nhandlers:\n"

func TestHandlersLoad(t *testing.T) {
	cfg, err := Parse([]byte(handlerFleet + `  - name: failover
    on: [FAILED, degraded]
    from: [GRACE]
    level: agent
    agents: [db1]
    command: [/usr/local/sbin/failover, sql-ha]
    timeout: 2m
  - name: page
    on: [FAILED]
    http: { url: "https://pager.example.net/hooks/vigil", headers: { Authorization: "Bearer secret" } }
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Handlers) != 2 {
		t.Fatalf("%d handlers", len(cfg.Handlers))
	}
	f, p := cfg.Handlers[0], cfg.Handlers[1]
	if f.Name != "failover" || len(f.On) != 2 || f.On[1] != state.Degraded || f.From[0] != state.Grace || f.Level != LevelAgent ||
		f.Timeout != 2*time.Minute || f.Backoff != DefaultHandlerBackoff || f.BackoffMax != DefaultHandlerBackoffMax || len(f.Command) != 2 {
		t.Errorf("failover: %+v", f)
	}
	if p.HTTP == nil || p.HTTP.Method != "POST" || p.HTTP.Headers["Authorization"].Reveal() != "Bearer secret" || p.Level != LevelAny || p.Timeout != DefaultHandlerTimeout {
		t.Errorf("page: %+v %+v", p, p.HTTP)
	}
}

func TestHandlersInvalid(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"  - { on: [FAILED], command: [x] }\n", "handlers[0].name: is required"},
		{"  - { name: a, command: [x] }\n", "handlers[0].on: name at least one state"},
		{"  - { name: a, on: [GRACE], command: [x] }\n", "handlers[0].on: GRACE never runs a handler"},
		{"  - { name: a, on: [STANDBY], command: [x] }\n", "handlers[0].on: STANDBY never runs a handler"},
		{"  - { name: a, on: [BROKEN], command: [x] }\n", `handlers[0].on: "BROKEN" is not a state (OK, STANDBY, RESTARTING, GRACE, DEGRADED, FAILED, UNKNOWN)`},
		{"  - { name: a, on: [FAILED] }\n", "handlers[0]: give a command or an http request"},
		{"  - { name: a, on: [FAILED], command: [x], http: { url: \"https://x/\" } }\n", "handlers[0]: give a command or an http request, not both"},
		{"  - { name: a, on: [FAILED], http: { url: \"https://u:p@x/\" } }\n", "handlers[0].http.url: must not carry a user name or password"},
		{"  - { name: a, on: [FAILED], http: { url: \"ftp://x/\" } }\n", `handlers[0].http.url: "ftp://x/" is not an absolute http or https URL`},
		{"  - { name: a, on: [FAILED], http: { url: \"https://x/\", method: DELETE } }\n", `handlers[0].http.method: "DELETE" must be POST, PUT, PATCH or GET`},
		{"  - { name: a, on: [FAILED], command: [x], agents: [db9] }\n", `handlers[0].agents: "db9" is not a configured agent`},
		{"  - { name: a, on: [FAILED], command: [x], level: process, processes: [cdp], timeout: 11m }\n", "handlers[0].timeout: 11m0s must be above 0 and at most 10m0s"},
		{"  - { name: a, on: [FAILED], command: [x], level: agent, processes: [cdp] }\n", "handlers[0].processes: a handler of level agent runs for no process"},
		{"  - { name: a, on: [FAILED], command: [x], shell: true }\n", "handlers[0].shell: unknown key"},
		{"  - { name: a, on: [FAILED], command: [x] }\n  - { name: a, on: [OK], command: [y] }\n", `handlers[1].name: "a" is already used by handlers[0]`},
		{"  - { name: \"a b\", on: [FAILED], command: [x] }\n", `handlers[0].name: "a b" must be 1 to 63 letters`},
	} {
		_, err := Parse([]byte(handlerFleet + tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %q", tc.yaml, err, tc.want)
		}
	}
}
