package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadValid(t *testing.T) {
	t.Setenv("VIGIL_TEST_READ_TOKEN", "read-from-env")
	cfg, err := Load("testdata/valid.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.PollInterval != 5*time.Second {
		t.Errorf("pollInterval = %s", cfg.PollInterval)
	}
	want := Policy{
		Budget: Budget{ResponseTime: 500 * time.Millisecond, Processing: 0, Failover: 45 * time.Second,
			Restart: 120 * time.Second, NetworkInterruption: 30 * time.Second, AppErrorRecovery: time.Minute,
			Combine: CombineSum, Mode: ModeMeasured},
		Measured: Measured{Percentile: 99.5, Floor: 0, Ceiling: 10 * time.Minute, MinSamples: 3},
		AutoRestart: AutoRestart{Enabled: true, MaxRestarts: 2, Window: 5 * time.Minute,
			BackoffInitial: time.Second, BackoffMax: time.Minute, StopWhenNotExpected: false},
		RPO: 90 * time.Second,
	}
	if cfg.Defaults != want {
		t.Errorf("defaults\n got %+v\nwant %+v", cfg.Defaults, want)
	}
	if cfg.Agents[0].Policy != want {
		t.Errorf("agents[0] does not inherit the defaults: %+v", cfg.Agents[0].Policy)
	}
	b := cfg.Agents[1]
	overridden := want
	overridden.Budget.Failover = 120 * time.Second
	overridden.AutoRestart.Enabled = false
	overridden.RPO = 0
	if b.Policy != overridden {
		t.Errorf("agents[1] overrides\n got %+v\nwant %+v", b.Policy, overridden)
	}
	if b.Cluster != "sql-ha" || b.URL != "http://127.0.0.1:7072" {
		t.Errorf("agents[1] = %+v", b)
	}
	if cfg.Agents[0].ReadToken.Reveal() != "read-from-env" || b.ReadToken.Reveal() != "node-a-read" {
		t.Errorf("read tokens: %q %q", cfg.Agents[0].ReadToken.Reveal(), b.ReadToken.Reveal())
	}
	if b.ControlToken.Reveal() != "control-from-file" {
		t.Errorf("control token from file relative to the fleet file: %q", b.ControlToken.Reveal())
	}
	if s := fmt.Sprintf("%v %+v %#v", b.ReadToken, b, b); strings.Contains(s, "node-a-read") {
		t.Errorf("a token leaked into formatted output: %s", s)
	}
}

func TestDefaultsWhenOnlyRequiredKeys(t *testing.T) {
	cfg, err := Parse([]byte("agents:\n  - name: a\n    url: http://127.0.0.1:7071\n    readToken: r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PollInterval != DefaultPollInterval || cfg.Agents[0].Policy != DefaultPolicy() {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

// One fixture file per invalid case, each with its exact error.
func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"unknown-top-key", "timeout: unknown key (line 2); known keys: agents, cluster, defaults, handlers, history, pollInterval"},
		{"unknown-agent-key", "agents[1].tokn: unknown key (line 6); known keys: autoRestart, budget, cluster, controlToken, controlTokenFile, measured, name, readToken, readTokenFile, reportEvery, reportToken, reportTokenFile, rpo, transport, url"},
		{"unknown-budget-key", "defaults.budget.reboot: unknown key (line 2); known keys: appErrorRecovery, combine, failover, mode, networkInterruption, processing, responseTime, restart"},
		{"missing-name", "agents[1].name: is required"},
		{"missing-url", "agents[0].url: is required"},
		{"relative-url", "agents[0].url: must be an absolute http or https URL"},
		{"duplicate-name", `agents[1].name: "a" is already used by agents[0]`},
		{"no-agents", "agents: at least one agent is required"},
		{"empty", "agents: at least one agent is required"},
		{"not-yaml", "not valid YAML: line 1, column 9: did not find expected node content"},
		// Syntax errors name the line (and column) of the mistake, not where
		// the enclosing block begins as the YAML library does.
		{"syntax-tab", "not valid YAML: line 8, column 1: found a tab character that violates indentation"},
		{"syntax-unclosed-quote", "not valid YAML: line 6, column 10: found unexpected end of stream"},
		{"syntax-bad-mapping", "not valid YAML: line 7, column 17: mapping values are not allowed in this context"},
		{"duplicate-key", "agents[1].url: is given twice (line 10)"},
		{"unknown-nested-key", "agents[0].autoRestart.maxRestart: unknown key (line 9); known keys: backoffInitial, backoffMax, enabled, maxRestarts, stopWhenNotExpected, window"},
		{"wrong-type", `agents[0].autoRestart.maxRestarts: "many" must be a whole number (line 9)`},
		{"no-read-token", `agents[1].readToken: agent "b" (line 6) has no read token (a vigil-agent refuses every poll without one): set defaults.readToken for every agent or agents[1].readToken for this one (or the readTokenFile of either)`},
		{"read-token-env-empty", "defaults.readToken: $VIGIL_TEST_EMPTY_READ_TOKEN is empty or not set in the environment, so there is no read token and the agent would refuse every poll"},
		{"agents-not-a-list", "agents: must be a list (line 2)"},
		{"poll-interval-too-short", "pollInterval: 100ms is below the minimum of 1s"},
		{"bad-duration", `agents[0].budget.failover: "soon" is not a duration (line 4) (examples: 10s, 1m30s, 0)`},
		{"negative-duration", "defaults.rpo: -5s must not be negative"},
		{"bad-combine", `defaults.budget.combine: "avg" must be max or sum`},
		{"bad-mode", `agents[0].budget.mode: "learned" must be configured or measured`},
		{"bad-bool", `defaults.autoRestart.enabled: "maybe" must be true or false (line 2)`},
		{"bad-int", `defaults.autoRestart.maxRestarts: "2.5" must be a whole number (line 2)`},
		{"bad-percentile", "defaults.measured.percentile: 120 must be above 0 and at most 100"},
		{"floor-above-ceiling", "defaults.measured.floor: 20m0s is above measured.ceiling 15m0s"},
		{"backoff-inverted", "defaults.autoRestart.backoffInitial: 10m0s is above autoRestart.backoffMax 5m0s"},
		{"min-samples-zero", "defaults.measured.minSamples: 0 must be at least 1"},
		{"token-twice", "defaults.readToken: set either readToken or readTokenFile, not both"},
		{"token-file-missing", "agents[0].controlTokenFile: cannot read testdata/invalid/does-not-exist.token: no such file or directory"},
		{"budget-not-a-mapping", "agents[0].budget: must be a mapping of keys to values (line 4)"},
		{"name-a-list", "agents[0].name: must be a single value (line 2)"},
		{"bad-name", `agents[0].name: "node a" must be 1 to 63 letters, digits, '-' or '_'`},
		{"url-credentials", "agents[0].url: must not carry a user name or password (user:password@); give tokens as readToken or readTokenFile, and controlToken or controlTokenFile\n" +
			"agents[1].url: must not carry a query string (?...): agents take no URL parameters; give tokens as readToken or readTokenFile, and controlToken or controlTokenFile"},
		{"several-problems", "pollInterval: 0s is below the minimum of 1s\nagents[0].url: is required\nagents[1].name: is required\nagents[1].url: must be an absolute http or https URL"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file+".yaml"] = true
		t.Run(tt.file, func(t *testing.T) {
			t.Setenv("VIGIL_TEST_EMPTY_READ_TOKEN", "")
			path := filepath.Join("testdata", "invalid", tt.file+".yaml")
			_, err := Load(path)
			want := path + ": " + tt.want
			if err == nil || err.Error() != want {
				t.Errorf("error\n got: %v\nwant: %s", err, want)
			}
			if !strings.HasPrefix(tt.file, "syntax-") && tt.file != "not-yaml" && !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid")
			}
		})
	}
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("fixture %s has no expected error in this table", f)
		}
	}
}

func TestFromJSON(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		secrets map[string]string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{
			name: "same keys as fleet.yaml, unknown keys ignored",
			json: `{"pollInterval":"20s","restartRole":"Editor","historyPath":"/var/lib/vigil",
				"defaults":{"budget":{"failover":"90s","combine":"sum"},"rpo":120},
				"agents":[{"name":"a","url":"http://127.0.0.1:7071","cluster":"ha","budget":{"restart":"1m"}}]}`,
			secrets: map[string]string{"readToken": "r", "controlToken": "c", "agent.a.controlToken": "ca"},
			check: func(t *testing.T, c Config) {
				a := c.Agents[0]
				if c.PollInterval != 20*time.Second || a.Budget.Failover != 90*time.Second || a.Budget.Restart != time.Minute ||
					a.Budget.Combine != CombineSum || a.RPO != 2*time.Minute || a.Cluster != "ha" {
					t.Errorf("config = %+v", c)
				}
				if a.ReadToken.Reveal() != "r" || a.ControlToken.Reveal() != "ca" {
					t.Errorf("tokens: %q %q", a.ReadToken.Reveal(), a.ControlToken.Reveal())
				}
			},
		},
		{
			name: "tokens in jsonData are not read",
			json: `{"defaults":{"readToken":"plain"},"agents":[{"name":"a","url":"http://h:1"}]}`,
			check: func(t *testing.T, c Config) {
				if c.Agents[0].ReadToken.IsSet() {
					t.Error("token read from jsonData")
				}
			},
		},
		{name: "empty", json: ``, wantErr: "jsonData.agents: at least one agent is required"},
		{name: "mistyped", json: `{"agents":[{"name":"a","url":"http://h:1","autoRestart":{"enabled":"yes"}}]}`,
			wantErr: `jsonData.agents[0].autoRestart.enabled: "yes" must be true or false`},
		{name: "invalid value", json: `{"pollInterval":"1ms","agents":[{"name":"a","url":"http://h:1"}]}`,
			wantErr: "jsonData.pollInterval: 1ms is below the minimum of 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromJSON([]byte(tt.json), tt.secrets)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error\n got: %v\nwant: %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// FromJSONKeys gives the datasource its own keys from the fleet's one parse
// of jsonData, each with its JSON type, even when the fleet has problems.
func TestFromJSONKeys(t *testing.T) {
	_, keys, err := FromJSONKeys([]byte(`{"restartRole":" Admin ","historyPath":null,"idleStop":90,"x":true,"y":[1],"z":{"a":1},"big":1e400,"agents":[]}`), nil)
	if err == nil || err.Error() != "jsonData.agents: at least one agent is required" {
		t.Errorf("error = %v", err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, k.Key+"="+k.Value.Type()+":"+k.Value.Text())
	}
	want := []string{"restartRole=string: Admin ", "historyPath=null:null", "idleStop=number:90", "x=bool:true",
		"y=array:[1]", `z=object:{"a":1}`, "big=number:1e400", "agents=array:[]"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("keys\n got: %q\nwant: %q", got, want)
	}
	for _, doc := range []string{``, `null`, `[1]`, `"{"`} {
		if _, keys, _ := FromJSONKeys([]byte(doc), nil); keys != nil {
			t.Errorf("%s: keys %v", doc, keys)
		}
	}
}

// TestDurations runs the grammar's cases, shared with the frontend's and the
// agent's tests.
func TestDurations(t *testing.T) {
	raw, err := os.ReadFile("testdata/durations.json")
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		Durations []struct {
			Text    string  `json:"text"`
			Seconds float64 `json:"seconds"`
			Go      string  `json:"go"`
		} `json:"durations"`
		Invalid []string `json:"invalid"`
	}
	if err := json.Unmarshal(raw, &table); err != nil || len(table.Durations) == 0 || len(table.Invalid) == 0 {
		t.Fatalf("testdata/durations.json: %v", err)
	}
	for _, tt := range table.Durations {
		got, err := ParseDuration(tt.Text)
		if err != nil || math.Abs(got.Seconds()-tt.Seconds) > 1e-9*max(1, math.Abs(tt.Seconds)) || got.String() != tt.Go {
			t.Errorf("ParseDuration(%q) = %s (%v s), %v; want %s (%v s)", tt.Text, got, got.Seconds(), err, tt.Go, tt.Seconds)
		}
	}
	for _, text := range table.Invalid {
		if got, err := ParseDuration(text); err == nil {
			t.Errorf("ParseDuration(%q) = %s, want no duration", text, got)
		} else if want := fmt.Sprintf("%q is not a duration (examples: 10s, 1m30s, 0)", strings.TrimSpace(text)); err.Error() != want {
			t.Errorf("ParseDuration(%q): %q, want %q", text, err, want)
		}
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	cfg := Config{PollInterval: 200 * time.Millisecond, Defaults: DefaultPolicy(),
		Agents: []Agent{{Name: "a", URL: "http://127.0.0.1:1", Policy: DefaultPolicy()}}}
	if err := cfg.Validate(); err == nil {
		t.Error("Validate accepted a 200ms poll interval")
	}
	if err := cfg.ValidateMin(100 * time.Millisecond); err != nil {
		t.Errorf("ValidateMin: %v", err)
	}
	var fe *FieldError
	cfg.Agents[0].URL = ""
	if err := cfg.ValidateMin(0); !errors.As(err, &fe) || fe.Field != "agents[0].url" {
		t.Errorf("want a FieldError naming agents[0].url, got %v", err)
	}
}

// fleet.yaml's token rules: an agent without a read token is an error (a
// vigil-agent refuses every poll without one); one without a control token
// while autoRestart is on is a warning naming it.
func TestFleetFileTokens(t *testing.T) {
	t.Setenv("VIGIL_TEST_EMPTY_TOKEN", "")
	t.Setenv("VIGIL_TEST_READ_TOKEN", "read-from-env")
	tests := []struct {
		name         string
		yaml         string
		wantErr      string
		wantWarnings []string
	}{
		{
			name: "every token given",
			yaml: "defaults: { readToken: r, controlToken: c }\nagents:\n  - { name: a, url: \"http://h:1\" }\n",
		},
		{
			name: "no control token, autoRestart on for one agent only",
			yaml: "defaults: { readToken: r }\nagents:\n  - { name: a, url: \"http://h:1\", autoRestart: { enabled: false } }\n  - { name: b, url: \"http://h:2\" }\n",
			wantWarnings: []string{`agents[1]: agent "b" (line 4) has no control token, so Vigil cannot restart its CDP although autoRestart is on: ` +
				"set defaults.controlToken for every agent or agents[1].controlToken for this one (or the controlTokenFile of either)"},
		},
		{
			name: "a control token from an empty variable",
			yaml: "defaults: { readToken: r, controlToken: $VIGIL_TEST_EMPTY_TOKEN }\nagents:\n  - { name: a, url: \"http://h:1\" }\n",
			wantWarnings: []string{`agents[0]: agent "a" (line 3) has no control token, so Vigil cannot restart its CDP although autoRestart is on: ` +
				"defaults.controlToken names $VIGIL_TEST_EMPTY_TOKEN, which is empty or not set in the environment"},
		},
		{
			name: "no token at all",
			yaml: "agents:\n  - name: a\n    url: http://h:1\n  - url: http://h:2\n",
			wantErr: "agents[1].name: is required\n" +
				`agents[0].readToken: agent "a" (line 2) has no read token (a vigil-agent refuses every poll without one): set defaults.readToken for every agent or agents[0].readToken for this one (or the readTokenFile of either)` + "\n" +
				`agents[1].readToken: this agent (line 4) has no read token (a vigil-agent refuses every poll without one): set defaults.readToken for every agent or agents[1].readToken for this one (or the readTokenFile of either)`,
		},
		{
			name:    "an agent's own token from an empty variable hides the fleet's",
			yaml:    "defaults: { readToken: $VIGIL_TEST_READ_TOKEN, controlToken: c }\nagents:\n  - { name: a, url: \"http://h:1\" }\n  - { name: b, url: \"http://h:2\", readToken: $VIGIL_TEST_EMPTY_TOKEN }\n",
			wantErr: "agents[1].readToken: $VIGIL_TEST_EMPTY_TOKEN is empty or not set in the environment, so there is no read token and the agent would refuse every poll",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error\n got: %v\nwant: %s", err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Error("error does not match ErrInvalid")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(cfg.Warnings(), "\n"); got != strings.Join(tt.wantWarnings, "\n") {
				t.Errorf("warnings\n got: %s\nwant: %s", got, strings.Join(tt.wantWarnings, "\n"))
			}
		})
	}
	// The datasource takes tokens from secureJsonData, where an empty one is
	// reported by its health check: FromJSON neither fails nor warns.
	cfg, err := FromJSON([]byte(`{"agents":[{"name":"a","url":"http://h:1"}]}`), nil)
	if err != nil || len(cfg.Warnings()) != 0 {
		t.Errorf("FromJSON without secrets: %v, warnings %v", err, cfg.Warnings())
	}
}

func TestOneOf(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{{nil, ""}, {[]string{"a"}, "a"}, {[]string{"a", "b"}, "a or b"}, {[]string{"a", "b", "c"}, "a, b or c"}} {
		if got := OneOf(c.in); got != c.want {
			t.Errorf("OneOf(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, c := range Combines() {
		if c.Description() == "" {
			t.Errorf("combine %q has no description", c)
		}
	}
	for _, m := range Modes() {
		if m.Description() == "" {
			t.Errorf("mode %q has no description", m)
		}
	}
}
