package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/report"
)

const listenToken = "nat-report-token-0123456789"

// startListening runs vigil watch --listen on a free loopback port and
// returns the reports URL and the JSON lines it prints.
func startListening(t *testing.T, fleetFile string) (string, *watchRun) {
	t.Helper()
	return startWatchArgs(t, []string{"watch", "--config", fleetFile, "--json", "--listen", "127.0.0.1:0"})
}

// startWatchArgs runs vigil watch with args (which must hold --json and
// --listen) and returns the reports URL it prints and its JSON lines.
func startWatchArgs(t *testing.T, args []string) (string, *watchRun) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw, _ := os.Pipe()
	er, ew, _ := os.Pipe()
	w := &watchRun{lines: make(chan jsonLine, 1000), cancel: cancel, done: make(chan struct{})}
	go w.read(t, pr)
	go func() {
		defer close(w.done)
		Run(ctx, args, pw, ew)
		pw.Close()
		ew.Close()
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(er)
		for sc.Scan() {
			if _, u, ok := strings.Cut(sc.Text(), "receiving reports at "); ok {
				url <- u
			}
		}
	}()
	select {
	case u := <-url:
		return u, w
	case <-time.After(10 * time.Second):
		t.Fatal("vigil watch --listen did not say where it listens")
	}
	return "", nil
}

func post(t *testing.T, url string, body []byte) (int, []byte) {
	t.Helper()
	res, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// vigil watch --listen receives signed reports of push agents: a crash in a
// report gets a restart request in the signed answer; replays, forgeries
// and garbage are refused with their status; a push agent that stops
// reporting turns GRACE.
func TestWatchReceivesReports(t *testing.T) {
	fleetFile := writeFleet(t, "pollInterval: 1s\ndefaults:\n  budget: { responseTime: 1s, processing: 0, failover: 0, restart: 3s, networkInterruption: 0, appErrorRecovery: 0 }\n"+
		"agents:\n  - name: nat\n    transport: push\n    reportEvery: 1s\n    reportToken: "+listenToken+"\n")
	url, w := startListening(t, fleetFile)
	status := `{"apiVersion":"v1","time":"2026-12-03T04:00:00Z","agent":{"id":"a1","version":"0.1.0","hostname":"nat-host","startedAt":"2026-12-03T03:00:00Z","pid":1},"cluster":null,` +
		`"processes":[{"name":"cdp","kind":"command","state":"crashed","expected":true,"pid":null,"generation":2,"startedAt":null,"restarts":0,"lastExit":{"code":1,"signal":null,"at":"2026-12-03T03:59:59Z"},"protection":null}]}`
	sign := func(seq int64, token string) []byte {
		raw, _ := report.Make(report.Report{Agent: "nat", Seq: seq, SentAt: time.Now(), Reason: "change", Status: json.RawMessage(status)}, token)
		return raw
	}
	code, body := post(t, url, sign(1, listenToken))
	var env report.Envelope
	_ = json.Unmarshal(body, &env)
	if code != 200 || env.MAC != report.Sign(listenToken, env.Answer) || !strings.Contains(env.Answer, `"actions":[{"action":"restart","process":"cdp","ifGeneration":2,`) {
		t.Fatalf("a crash: %d %s", code, body)
	}
	for _, tc := range []struct {
		name string
		body []byte
		code int
		err  string
	}{
		{"a replay", sign(1, listenToken), 409, "stale_report"},
		{"a forgery", sign(2, "another-token-0123456789"), 401, "report_refused"},
		{"garbage", []byte("not json"), 400, "malformed_report"},
		{"too large", bytes.Repeat([]byte(" "), report.MaxBytes+10), 413, "report_too_large"},
	} {
		code, body := post(t, url, tc.body)
		if code != tc.code || !strings.Contains(string(body), `"code":"`+tc.err+`"`) || strings.Contains(string(body), listenToken) {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
	if res, err := http.Get(url); err != nil || res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v %v", res, err)
	}
	w.waitFor(t, "the push agent GRACE", 10*time.Second, func(l jsonLine) bool { return l.Agent == "nat" && l.Process == "" && l.To == "GRACE" })
}

func TestWatchListenUsage(t *testing.T) {
	fleetFile := writeFleet(t, "defaults: { readToken: r }\nagents:\n  - { name: a, url: \"http://127.0.0.1:1\" }\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", ":0", "--once"}, "--listen receives reports over time; it does not go with --once"},
		{[]string{"--listen", ":0", "--tls-cert", "c.pem"}, "give both --tls-cert and --tls-key, or neither"},
		{[]string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, "--tls-cert and --tls-key go with --listen"},
		{[]string{"--listen", "127.0.0.1:99999"}, "--listen 127.0.0.1:99999: "},
	} {
		code, _, stderr := run(t, append([]string{"watch", "--config", fleetFile}, tc.args...)...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, %s", tc.args, code, stderr)
		}
	}
}
