package cli

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/models"
)

func TestLoadFleetValid(t *testing.T) {
	t.Setenv("VIGIL_TEST_READ_TOKEN", "tok-from-env")
	s, err := LoadFleet("testdata/valid.yaml")
	if err != nil {
		t.Fatalf("LoadFleet: %v", err)
	}
	if s.PollInterval != 5*time.Second || len(s.Agents) != 2 || s.Agents[1].Cluster != "demo-ha" {
		t.Errorf("settings = %+v", s)
	}
	if s.Agents[0].ReadToken.Reveal() != "tok-from-env" {
		t.Errorf("defaults.readToken was not expanded from the environment")
	}
}

// One fixture file per invalid case, each with its exact error.
func TestLoadFleetInvalid(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"unknown-top-key.yaml", "timeout: unknown key (line 2); known keys: agents, defaults, pollInterval"},
		{"unknown-agent-key.yaml", "agents[1].tokn: unknown key (line 6); known keys: cluster, name, url"},
		{"unknown-defaults-key.yaml", "defaults.controlToken: unknown key (line 2); known keys: readToken"},
		{"missing-name.yaml", "agents[1].name: is required"},
		{"missing-url.yaml", "agents[0].url: is required"},
		{"relative-url.yaml", "agents[0].url: must be an absolute http or https URL"},
		{"duplicate-name.yaml", `agents[1].name: "a" is already used by agents[0]`},
		{"no-agents.yaml", "agents: at least one agent is required"},
		{"agents-not-a-list.yaml", "agents: must be a list (line 2)"},
		{"poll-interval-too-short.yaml", "pollInterval: 100ms is below the minimum of 1s"},
		{"not-yaml.yaml", "not valid YAML: yaml: line 1: did not find expected node content"},
		{"empty.yaml", "agents: at least one agent is required"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			path := filepath.Join("testdata", "invalid", tt.file)
			_, err := LoadFleet(path)
			want := path + ": " + tt.want
			if err == nil || err.Error() != want {
				t.Errorf("error\n got: %v\nwant: %s", err, want)
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

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunUsageAndVersion(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"version", []string{"version"}, 0, "vigil dev\n", ""},
		{"no command", nil, 2, "", "Usage: vigil <command>"},
		{"unknown command", []string{"frobnicate"}, 2, "", `vigil: unknown command "frobnicate"`},
		{"bad fleet file", []string{"watch", "--config", "testdata/invalid/missing-url.yaml", "--once"}, 2, "",
			"vigil watch: testdata/invalid/missing-url.yaml: agents[0].url: is required\n"},
		{"missing fleet file", []string{"watch", "--config", "testdata/nope.yaml"}, 2, "",
			"vigil watch: read fleet file: open testdata/nope.yaml: no such file or directory\n"},
		{"interval too short", []string{"watch", "--config", "testdata/valid.yaml", "--interval", "10ms"}, 2, "",
			"vigil watch: --interval: 10ms is below the minimum of 1s\n"},
		{"stray argument", []string{"watch", "extra"}, 2, "", `vigil watch: unexpected argument "extra"`},
		{"unknown flag", []string{"watch", "--verbose"}, 2, "", "flag provided but not defined: -verbose"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr: %s)", code, tt.wantCode, stderr)
			}
			if stdout != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout, tt.wantStdout)
			}
			if !strings.HasPrefix(stderr, tt.wantStderr) && !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

func writeFleet(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWatchOnce(t *testing.T) {
	var gotAuth atomic.Value
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		gotAuth.Store(r.Header.Get("Authorization"))
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer agent.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	t.Run("all answered", func(t *testing.T) {
		fleet := writeFleet(t, "defaults:\n  readToken: fleet-tok\nagents:\n  - name: up\n    url: "+agent.URL+"\n")
		code, stdout, stderr := run(t, "watch", "--config", fleet, "--once")
		if code != 0 {
			t.Fatalf("exit code = %d, stderr = %s", code, stderr)
		}
		for _, want := range []string{"1 of 1 agents answered", "AGENT", "ANSWERED", "RTT", "up", agent.URL, "yes"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
		if gotAuth.Load() != "Bearer fleet-tok" {
			t.Errorf("Authorization = %v", gotAuth.Load())
		}
		if strings.Contains(stdout, "fleet-tok") {
			t.Errorf("token printed:\n%s", stdout)
		}
	})

	t.Run("one down", func(t *testing.T) {
		fleet := writeFleet(t, "agents:\n  - name: up\n    url: "+agent.URL+"\n  - name: down\n    url: "+downURL+"\n    cluster: ha\n")
		code, stdout, _ := run(t, "watch", "--config", fleet, "--once")
		if code != 1 {
			t.Errorf("exit code = %d, want 1", code)
		}
		for _, want := range []string{"1 of 2 agents answered", "down", "no", "network: GET " + downURL + "/healthz: no answer"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
	})
}

type countingClient struct{ calls atomic.Int32 }

func (c *countingClient) Healthz(context.Context, agentclient.Agent) (agentclient.Health, error) {
	if c.calls.Add(1)%2 == 0 {
		return agentclient.Health{}, errors.New("network: GET http://a/healthz: no answer")
	}
	return agentclient.Health{StatusCode: 200, RTT: 3 * time.Millisecond}, nil
}

func TestWatchLoopPrintsEveryRoundUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	client := &countingClient{}
	fixed := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	w := &watcher{
		agents: []models.Agent{{Name: "a", URL: "http://a"}},
		client: client,
		out:    &out,
		now:    func() time.Time { return fixed },
	}
	done := make(chan struct{})
	go func() {
		w.loop(ctx, 20*time.Millisecond)
		close(done)
	}()
	deadline := time.After(5 * time.Second)
	for client.calls.Load() < 3 {
		select {
		case <-deadline:
			t.Fatal("watch did not poll three times")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	<-done
	text := out.String()
	if !strings.Contains(text, "2026-11-26T04:00:00Z  1 of 1 agents answered\nAGENT  URL       ANSWERED  RTT  ERROR\na      http://a  yes       3ms  -\n") {
		t.Errorf("first round not printed as a table:\n%s", text)
	}
	if !strings.Contains(text, "a      http://a  no        -    network: GET http://a/healthz: no answer\n") {
		t.Errorf("failed round not printed:\n%s", text)
	}
}
