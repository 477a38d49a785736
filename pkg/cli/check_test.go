package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// statusBody is an agent's /v1/status answer in the documented shape, with
// edits applied by the test case.
func statusBody(edits ...func(string) string) string {
	s := `{
  "apiVersion": "v1", "time": "2026-11-26T04:23:58Z",
  "agent": { "id": "a4c1", "version": "0.1.0", "hostname": "db1", "startedAt": "2026-11-26T04:00:00Z" },
  "cluster": null,
  "processes": [
    { "name": "cdp", "kind": "command", "state": "running", "expected": true, "pid": 19966, "generation": 4,
      "startedAt": "2026-11-26T04:20:00Z", "restarts": 3, "lastExit": null, "protection": null }
  ]
}`
	for _, e := range edits {
		s = e(s)
	}
	return s
}

func replace(old, new string) func(string) string {
	return func(s string) string {
		if !strings.Contains(s, old) {
			panic("test edit does not apply: " + old)
		}
		return strings.Replace(s, old, new, 1)
	}
}

const activeCluster = `{ "name": "sql-ha", "node": "node-a", "role": "active" }`
const passiveCluster = `{ "name": "sql-ha", "node": "node-b", "role": "passive" }`

func withLag(lag string) func(string) string {
	return replace(`"protection": null`, `"protection": {"lastChangeAt": "2026-11-26T04:23:00Z", "lastReplicatedAt": "2026-11-26T04:22:00Z", "lagSeconds": `+lag+`, "pendingChanges": 2, "pendingBytes": 100}`)
}

func TestCheckJudgesTheAnswer(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		args     []string
		want     int
		wantLine string
	}{
		{
			name: "running where expected", status: 200, body: statusBody(),
			want:     NagiosOK,
			wantLine: "CDP OK - db1: cdp running (pid 19966, generation 4) | rtt=",
		},
		{
			name: "crashed where expected", status: 200,
			body: statusBody(replace(`"state": "running"`, `"state": "crashed"`), replace(`"lastExit": null`, `"lastExit": {"code": null, "signal": "SIGKILL", "at": "2026-11-26T04:19:59Z"}`)),
			want: NagiosCritical, wantLine: "CDP CRITICAL - db1: cdp not running: crashed where expected",
		},
		{
			name: "stopped on the active node of a cluster", status: 200,
			body: statusBody(replace(`"cluster": null`, `"cluster": `+activeCluster), replace(`"state": "running"`, `"state": "stopped"`)),
			want: NagiosCritical, wantLine: "CDP CRITICAL - db1 (active node node-a of cluster sql-ha): cdp not running: stopped where expected",
		},
		{
			name: "standby on a passive node", status: 200,
			body: statusBody(replace(`"cluster": null`, `"cluster": `+passiveCluster), replace(`"state": "running"`, `"state": "stopped"`), replace(`"expected": true`, `"expected": false`)),
			want: NagiosOK, wantLine: "CDP OK - db1 (passive node node-b of cluster sql-ha): cdp standby: not expected",
		},
		{
			name: "still running on a node that is no longer active", status: 200,
			body: statusBody(replace(`"cluster": null`, `"cluster": `+passiveCluster), replace(`"expected": true`, `"expected": false`)),
			want: NagiosWarning, wantLine: "CDP WARNING - db1 (passive node node-b of cluster sql-ha): cdp running on passive node node-b of sql-ha, where it is not expected",
		},
		{
			name: "starting", status: 200, body: statusBody(replace(`"state": "running"`, `"state": "starting"`)),
			want: NagiosWarning, wantLine: "CDP WARNING - db1: cdp starting (generation 4)",
		},
		{
			name: "lag under the warning threshold", status: 200, body: statusBody(withLag("12.5")),
			want: NagiosOK, wantLine: "CDP OK - db1: cdp running (pid 19966, generation 4), protection lag 13s",
		},
		{
			name: "lag at the warning threshold", status: 200, body: statusBody(withLag("60")),
			want: NagiosWarning, wantLine: "CDP WARNING - db1: cdp running (pid 19966, generation 4), protection lag 1m0s (warning at 1m0s)",
		},
		{
			name: "lag beyond the critical threshold", status: 200, body: statusBody(withLag("301")),
			want: NagiosCritical, wantLine: "CDP CRITICAL - db1: cdp running (pid 19966, generation 4), protection lag 5m1s (critical at 5m0s)",
		},
		{
			name: "thresholds from the flags", status: 200, body: statusBody(withLag("20")), args: []string{"--lag-warn", "10s", "--lag-crit", "15s"},
			want: NagiosCritical, wantLine: "CDP CRITICAL - db1: cdp running (pid 19966, generation 4), protection lag 20s (critical at 15s)",
		},
		{
			name: "auto-restart suspended by the agent", status: 200,
			body: statusBody(replace(`"protection": null`, `"protection": null, "autoRestart": true, "autoRestartSuspended": true`)),
			want: NagiosWarning, wantLine: "CDP WARNING - db1: cdp running (pid 19966, generation 4); the agent suspended its auto-restart after repeated crashes",
		},
		{
			name: "one of two processes down is critical", status: 200,
			body: statusBody(replace(`"protection": null }`, `"protection": null },
    { "name": "cdp-logs", "kind": "command", "state": "crashed", "expected": true, "pid": null, "generation": 2,
      "startedAt": null, "restarts": 1, "lastExit": {"code": 1, "signal": null, "at": "2026-11-26T04:19:59Z"}, "protection": null }`)),
			want: NagiosCritical, wantLine: "CDP CRITICAL - db1: cdp running (pid 19966, generation 4); cdp-logs not running: crashed where expected",
		},
		{
			name: "no process supervised", status: 200,
			body: statusBody(func(s string) string {
				return s[:strings.Index(s, `"processes"`)] + `"processes": []}`
			}),
			want: NagiosUnknown, wantLine: "CDP UNKNOWN - db1: the agent supervises no process",
		},
		{
			name: "garbage", status: 200, body: "<html>it works</html>",
			want: NagiosUnknown, wantLine: "CDP UNKNOWN - the agent's answer cannot be understood: the answer is not JSON",
		},
		{
			name: "a field missing", status: 200, body: statusBody(replace(`"generation": 4,`, "")),
			want: NagiosUnknown, wantLine: "CDP UNKNOWN - the agent's answer cannot be understood: processes[0].generation: missing",
		},
		{
			name: "the agent fails", status: 500, body: `{"error":{"code":"internal","message":"boom"}}`,
			want: NagiosCritical, wantLine: "CDP CRITICAL - the agent answered with an error: ",
		},
		{
			name: "a wrong token", status: 401, body: `{"error":{"code":"unauthorized","message":"a valid bearer token is required"}}`,
			want: NagiosUnknown, wantLine: "CDP UNKNOWN - the agent refused the read token from --token: it must be one of the agent's read tokens (auth.readToken in its configuration) (GET http://127.0.0.1:",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/status" || r.Header.Get("Authorization") != "Bearer read-token-0123456789" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			code, out := runCLI(t, append([]string{"check", "--agent", srv.URL, "--token", "read-token-0123456789"}, tt.args...)...)
			if code != tt.want {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tt.want, out)
			}
			if !strings.HasPrefix(out, tt.wantLine) {
				t.Errorf("status line\n got: %s\nwant prefix: %s", firstLine(out), tt.wantLine)
			}
			if strings.Contains(out, "read-token-0123456789") {
				t.Errorf("the token appears in the output:\n%s", out)
			}
		})
	}
}

func TestCheckPerformanceData(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(statusBody(withLag("12.5"))))
	}))
	defer srv.Close()
	code, out := runCLI(t, "check", "--agent", srv.URL)
	if code != NagiosOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	_, perfData, ok := strings.Cut(firstLine(out), " | ")
	if !ok {
		t.Fatalf("no performance data in %q", out)
	}
	fields := strings.Fields(perfData)
	if len(fields) != 5 || !strings.HasPrefix(fields[0], "rtt=") || !strings.HasSuffix(fields[0], "s;;;0") {
		t.Fatalf("performance data %q", perfData)
	}
	want := []string{"cdp_up=1;;;0;1", "cdp_restarts=3c;;;0", "cdp_generation=4;;;0", "cdp_lag=12.5s;60;300;0"}
	if got := fields[1:]; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("performance data\n got: %v\nwant: %v", got, want)
	}
}

func TestCheckUnreachableAgent(t *testing.T) {
	t.Run("nothing listens", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		addr := srv.URL
		srv.Close()
		code, out := runCLI(t, "check", "--agent", addr)
		if code != NagiosCritical || !strings.HasPrefix(out, "CDP CRITICAL - agent unreachable: network: GET "+addr+"/v1/status") {
			t.Errorf("exit %d, output %q", code, out)
		}
	})
	t.Run("no answer in time", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		code, out := runCLI(t, "check", "--agent", srv.URL, "--timeout", "100ms")
		if code != NagiosCritical || !strings.HasPrefix(out, "CDP CRITICAL - agent unreachable: no answer within 100ms") {
			t.Errorf("exit %d, output %q", code, out)
		}
	})
}

func TestCheckUsageIsUnknown(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no agent", []string{"check"}, "CDP UNKNOWN - vigil check: --agent URL is required\n"},
		{"not a URL", []string{"check", "--agent", "db1:7070"}, `CDP UNKNOWN - vigil check: --agent: "db1:7070" is not an absolute http or https URL` + "\n"},
		{"a password in the URL", []string{"check", "--agent", "http://nagios:s3cret@db1:7070"}, "CDP UNKNOWN - vigil check: --agent: must not carry a user name or password (user:password@); give the read token with --token-file or VIGIL_READ_TOKEN\n"},
		{"a token in the query string", []string{"check", "--agent", "http://db1:7070/?token=s3cret"}, "CDP UNKNOWN - vigil check: --agent: must not carry a query string (?...): agents take no URL parameters; give the read token with --token-file or VIGIL_READ_TOKEN\n"},
		{"both token flags", []string{"check", "--agent", "http://x", "--token", "a", "--token-file", empty}, "CDP UNKNOWN - vigil check: give --token or --token-file, not both\n"},
		{"empty token file", []string{"check", "--agent", "http://x", "--token-file", empty}, "CDP UNKNOWN - vigil check: --token-file: " + empty + " is empty\n"},
		{"missing token file", []string{"check", "--agent", "http://x", "--token-file", filepath.Join(dir, "nope")}, "CDP UNKNOWN - vigil check: --token-file: open " + filepath.Join(dir, "nope") + ": no such file or directory\n"},
		{"thresholds upside down", []string{"check", "--agent", "http://x", "--lag-warn", "5m", "--lag-crit", "1m"}, "CDP UNKNOWN - vigil check: --lag-warn (5m0s) must not be above --lag-crit (1m0s)\n"},
		{"stray argument", []string{"check", "--agent", "http://x", "extra"}, `CDP UNKNOWN - vigil check: unexpected argument "extra"` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runCLI(t, tt.args...)
			if code != NagiosUnknown || out != tt.want {
				t.Errorf("exit %d, output %q; want 3, %q", code, out, tt.want)
			}
		})
	}
}

// A refused token is named by where it came from; no token at all is said
// so, with the three ways to give one.
func TestCheckSaysWhereTheTokenCameFrom(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good-token-0123456789" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"a valid bearer token is required"}}`))
			return
		}
		_, _ = w.Write([]byte(statusBody()))
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("wrong-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := func(source string) string {
		return "CDP UNKNOWN - the agent refused the read token from " + source +
			": it must be one of the agent's read tokens (auth.readToken in its configuration) (GET " + srv.URL + "/v1/status answered HTTP 401)\n"
	}
	tests := []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"no token anywhere", "", nil, "CDP UNKNOWN - no read token was given, and the agent requires one: " +
			"give it with --token-file F, the environment variable VIGIL_READ_TOKEN, or --token T (GET " + srv.URL + "/v1/status answered HTTP 401)\n"},
		{"--token", "", []string{"--token", "wrong-token-0123456789"}, refused("--token")},
		{"--token-file", "", []string{"--token-file", file}, refused("--token-file " + file)},
		{"VIGIL_READ_TOKEN", "wrong-token-0123456789", nil, refused("$VIGIL_READ_TOKEN")},
		{"a flag wins over VIGIL_READ_TOKEN", "good-token-0123456789", []string{"--token-file", file}, refused("--token-file " + file)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("VIGIL_READ_TOKEN", tt.env)
			code, out := runCLI(t, append([]string{"check", "--agent", srv.URL}, tt.args...)...)
			if code != NagiosUnknown || out != tt.want {
				t.Errorf("exit %d, output\n%q\nwant 3,\n%q", code, out, tt.want)
			}
			if strings.Contains(out, "token-0123456789") {
				t.Errorf("the token appears in the output: %s", out)
			}
		})
	}
}

// A command-line error is a status line first, on stdout, where a monitoring
// system reads it; the flags follow on stderr.
func TestCheckCommandLineErrorIsAStatusLine(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--agent", "http://x", "--verbose"}, "CDP UNKNOWN - vigil check: flag provided but not defined: -verbose (the flags follow; see vigil check -h)\n"},
		{"flag without its value", []string{"--agent"}, "CDP UNKNOWN - vigil check: flag needs an argument: -agent (the flags follow; see vigil check -h)\n"},
		{"not a duration", []string{"--agent", "http://x", "--timeout", "soon"}, `CDP UNKNOWN - vigil check: invalid value "soon" for flag -timeout: parse error (the flags follow; see vigil check -h)` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), append([]string{"check"}, tt.args...), &stdout, &stderr)
			if code != NagiosUnknown || stdout.String() != tt.want {
				t.Errorf("exit %d, stdout %q; want 3, %q", code, stdout.String(), tt.want)
			}
			if !strings.HasPrefix(stderr.String(), "Usage: vigil check --agent URL [flags]") || !strings.Contains(stderr.String(), "-token-file") {
				t.Errorf("stderr does not hold the flags: %q", stderr.String())
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), []string{"check", "-h"}, &stdout, &stderr); code != NagiosOK ||
		!strings.HasPrefix(stdout.String(), "Usage: vigil check --agent URL [flags]") || stderr.Len() != 0 {
		t.Errorf("check -h: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

func TestCheckReadsTheTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("file-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer file-token-0123456789" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(statusBody()))
	}))
	defer srv.Close()
	if code, out := runCLI(t, "check", "--agent", srv.URL, "--token-file", file); code != NagiosOK {
		t.Errorf("exit %d: %s", code, out)
	}
}

func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := Run(ctx, args, &stdout, &stderr)
	return code, stdout.String() + stderr.String()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// An agent's warnings (a token file others can read) are shown below the status line, escaped and
// bounded, without changing the state.
func TestCheckShowsTheAgentsWarnings(t *testing.T) {
	warnings := `"warnings": ["auth.readTokenFile: token file /etc/vigil/read is readable by its group and others (mode 0644); run chmod 600 /etc/vigil/read", "forged\nCDP OK - all fine | x=1", "` + strings.Repeat("w", 1000) + `", "4", "5", "6", "7"],`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(statusBody(replace(`"cluster": null,`, `"cluster": null, `+warnings))))
	}))
	defer srv.Close()
	code, out := runCLI(t, "check", "--agent", srv.URL)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != NagiosOK || !strings.Contains(lines[0], "(7 agent warnings below)") {
		t.Fatalf("exit %d: %s", code, out)
	}
	want := []string{
		"agent warning: auth.readTokenFile: token file /etc/vigil/read is readable by its group and others (mode 0644); run chmod 600 /etc/vigil/read",
		`agent warning: forged\nCDP OK - all fine ¦ x=1`,
	}
	if len(lines) != 7 || lines[1] != want[0] || lines[2] != want[1] || len(lines[3]) > 340 || lines[6] != "agent warning: 2 more" {
		t.Errorf("lines:\n%s", strings.Join(lines, "\n"))
	}
}

// -v: an agent that does not answer gets a diagnosis in the long output,
// one line a step, the ICMP echo run or skipped as the system allows.
func TestCheckVerboseDiagnoses(t *testing.T) {
	code, out := runCLI(t, "check", "--agent", "http://127.0.0.1:1", "--timeout", "2s", "-v")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != NagiosCritical || len(lines) != 6 || !strings.HasPrefix(lines[0], "CDP CRITICAL - agent unreachable: ") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for i, want := range []string{"diagnosis: dns ok: 127.0.0.1", "diagnosis: tcp failed: ", "diagnosis: http not tried", "diagnosis: ping ", "diagnosis: path ok: reached in 1 hop: 1: 127.0.0.1 "} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("line %d: %q, want it to start with %q", i+2, lines[i+1], want)
		}
	}
	if code, out := runCLI(t, "check", "--agent", "http://127.0.0.1:1", "--timeout", "2s"); code != NagiosCritical || strings.Contains(out, "diagnosis") {
		t.Errorf("without -v: exit %d\n%s", code, out)
	}
}
