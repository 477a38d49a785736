package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// hostileStatus is an agent's answer whose every free-text field tries to
// forge Nagios lines and performance data or to drive the terminal.
const hostileStatus = `{
  "apiVersion": "v1", "time": "2026-11-26T04:23:58Z",
  "agent": { "id": "a4c1\u001b[2J", "version": "0.1.0\u001b]0;title\u0007", "hostname": "db1\u001b[2J\u202e", "startedAt": "2026-11-26T04:00:00Z" },
  "cluster": { "name": "sql|ha\nCDP OK - forged cluster", "node": "node-a\r\u001b[1A", "role": "active" },
  "processes": [
    { "name": "cdp\nCDP OK - all fine | forged_up=1;;;0;1", "kind": "command", "state": "running", "expected": true, "pid": 19966, "generation": 4,
      "startedAt": "2026-11-26T04:20:00Z", "restarts": 3, "lastExit": null, "protection": null },
    { "name": "\u001b]0;title\u0007\u001b[2J|x y='z'", "kind": "command", "state": "crashed", "expected": true, "pid": null, "generation": 2,
      "startedAt": null, "restarts": 1, "lastExit": {"code": null, "signal": "SIGKILL\n| forged_lag=0s", "at": "2026-11-26T04:19:59Z"}, "protection": null }
  ]
}`

// perfDatum is one performance datum as the monitoring-plugins guidelines
// define it: 'label'=value[UOM];[warn];[crit];[min];[max].
var perfDatum = regexp.MustCompile(`^('([^'=]|'')+'|[^'= |]+)=-?[0-9.]+(s|us|ms|%|B|KB|MB|TB|c)?(;-?[0-9.]*){0,4}$`)

// assertSafe checks what reaches a terminal: no escape sequence, no BEL, no
// carriage return, no bidi override.
func assertSafe(t *testing.T, out string) {
	t.Helper()
	for _, bad := range []string{"\x1b", "\x07", "\r", "\u202e", "\x9b"} {
		if strings.Contains(out, bad) {
			t.Errorf("the output holds %q:\n%s", bad, out)
		}
	}
}

func TestCheckAgainstAHostileAgent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(hostileStatus))
	}))
	defer srv.Close()
	code, out := runCLI(t, "check", "--agent", srv.URL)
	if code != NagiosCritical {
		t.Errorf("exit %d, want 2 (one process crashed):\n%s", code, out)
	}
	assertSafe(t, out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	// The status line and one long-output line a process; nothing forged.
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3 (status and two processes):\n%s", len(lines), out)
	}
	for i, l := range lines {
		if strings.HasPrefix(l, "CDP ") != (i == 0) {
			t.Errorf("line %d %q: exactly the first line is a status line", i+1, l)
		}
	}
	if strings.Count(out, "|") != 1 {
		t.Errorf("%d \"|\" in the output, want only the one before the performance data:\n%s", strings.Count(out, "|"), out)
	}
	status, perfData, _ := strings.Cut(lines[0], " | ")
	for _, want := range []string{`db1\x1b[2J\u202e`, `sql¦ha\nCDP OK - forged cluster`, `cdp\nCDP OK - all fine ¦ forged_up=1;;;0;1`, `\x1b]0;title\x07\x1b[2J¦x y='z'`, `SIGKILL\n¦ forged_lag=0s`} {
		if !strings.Contains(status, want) {
			t.Errorf("the status line does not show %q escaped:\n%s", want, status)
		}
	}
	labels := map[string]bool{}
	for _, d := range strings.Fields(perfData) {
		if !perfDatum.MatchString(d) {
			t.Errorf("performance datum %q does not parse", d)
		}
		labels[d[:strings.Index(d, "=")]] = true
	}
	// rtt, then up, restarts and generation of each process; the forged labels are only part of a name.
	if len(labels) != 7 || !labels["cdp_CDP_OK_-_all_fine___forged_up_1___0_1_up"] || !labels["__0_title___2J_x_y__z__generation"] || labels["forged_up"] || labels["forged_lag"] {
		t.Errorf("performance labels %v", labels)
	}
}

// A non-agent server (a proxy's error page) is described in one line, its
// HTML never repeated.
func TestCheckAgainstAnHTMLPage(t *testing.T) {
	page := "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx | upstream</body>\n</html>\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(page))
	}))
	defer srv.Close()
	code, out := runCLI(t, "check", "--agent", srv.URL)
	want := fmt.Sprintf("CDP CRITICAL - the agent answered with an error: agent answer: GET %s/v1/status: HTTP 502 Bad Gateway: a text/html body (%d bytes), not an agent's answer\n", srv.URL, len(page))
	if code != NagiosCritical || out != want {
		t.Errorf("exit %d\n got: %q\nwant: %q", code, out, want)
	}
}

// A redirecting agent is UNKNOWN, naming where it pointed without the user,
// password or query the location carried; nothing is sent there.
func TestCheckAgainstARedirect(t *testing.T) {
	var followed bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed = true
		_, _ = w.Write([]byte(statusBody()))
	}))
	defer other.Close()
	location := "http://nagios:s3cret@" + strings.TrimPrefix(other.URL, "http://") + "/v1/status?token=s3cret"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, location, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	code, out := runCLI(t, "check", "--agent", srv.URL, "--token", "read-token-0123456789")
	want := "CDP UNKNOWN - agent answer: GET " + srv.URL + "/v1/status: HTTP 307 Temporary Redirect: the agent answered with a redirect to " + other.URL + "/v1/status; Vigil never follows a redirect"
	if code != NagiosUnknown || !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 1 {
		t.Errorf("exit %d\n got: %q\nwant prefix: %q", code, out, want)
	}
	if strings.Contains(out, "s3cret") || strings.Contains(out, "read-token") || followed {
		t.Errorf("the location's secrets or the token went somewhere (followed: %v): %s", followed, out)
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want, nagios string }{
		{"cdp-main_1.2", "cdp-main_1.2", "cdp-main_1.2"},
		{`C:\data ünïcødé`, `C:\data ünïcødé`, `C:\data ünïcødé`},
		{"a\nb\r\tc", `a\nb\r\tc`, `a\nb\r\tc`},
		{"\x1b]0;title\x07\x1b[2J", `\x1b]0;title\x07\x1b[2J`, `\x1b]0;title\x07\x1b[2J`},
		{"\x00\x7f", `\x00\x7f`, `\x00\x7f`},
		{"c1 \u0085 \u009b2J", `c1 \u0085 \u009b2J`, `c1 \u0085 \u009b2J`},
		{"abc\u202egnp.exe \u2066x\u2069 \u200f \u061c", `abc\u202egnp.exe \u2066x\u2069 \u200f \u061c`, `abc\u202egnp.exe \u2066x\u2069 \u200f \u061c`},
		{"line\u2028sep", `line\u2028sep`, `line\u2028sep`},
		{"bad \xff\xfe utf-8, kept \ufffd", `bad \xff\xfe utf-8, kept ` + "\ufffd", `bad \xff\xfe utf-8, kept ` + "\ufffd"},
		{"a | b", "a | b", "a ¦ b"},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := nagiosText(tt.in); got != tt.nagios {
			t.Errorf("nagiosText(%q) = %q, want %q", tt.in, got, tt.nagios)
		}
	}
}

// hostileFleet is a fleet file with one agent at url.
func hostileFleet(t *testing.T, url string) string {
	return writeFleet(t, fmt.Sprintf("pollInterval: 1s\nagents:\n  - name: node-1\n    url: %q\n    readToken: read-token-0123456789\n    controlToken: control-token-0123456789\n", url))
}

func TestWatchOnceAgainstAHostileAgent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(hostileStatus))
	}))
	defer srv.Close()
	_, stdout, stderr := run(t, "watch", "--config", hostileFleet(t, srv.URL), "--once")
	assertSafe(t, stdout+stderr)
	for _, l := range strings.Split(stdout, "\n") {
		if l := strings.TrimSpace(l); strings.HasPrefix(l, "CDP OK") || strings.HasPrefix(l, "| forged") {
			t.Errorf("a line forged by the agent: %q\n%s", l, stdout)
		}
	}
	for _, want := range []string{`\x1b]0;title\x07\x1b[2J|x y='z'`, `cdp\nCDP OK - all fine | forged_up=1;;;0;1`, `sql|ha\nCDP OK - forged cluster/active`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the table does not show %q escaped:\n%s", want, stdout)
		}
	}
}

func TestWatchOnceAgainstARedirect(t *testing.T) {
	var followed bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed = true }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://nagios:s3cret@"+strings.TrimPrefix(other.URL, "http://")+r.URL.Path+"?token=s3cret", http.StatusFound)
	}))
	defer srv.Close()
	code, stdout, stderr := run(t, "watch", "--config", hostileFleet(t, srv.URL), "--once")
	want := "the agent answered with an error: HTTP 302 Found: the agent answered with a redirect to " + other.URL + "/v1/status; Vigil never follows a redirect"
	if code != ExitNotAll || !strings.Contains(stdout, want) {
		t.Errorf("exit %d; the table does not name the redirect %q:\n%s\n%s", code, want, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "s3cret") || strings.Contains(stdout+stderr, "token-0123456789") || followed {
		t.Errorf("the location's secrets or a token went somewhere (followed: %v):\n%s", followed, stdout)
	}
}
