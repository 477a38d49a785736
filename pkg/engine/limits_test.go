package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-cdp/vigil/internal/agentproc"
	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
	"github.com/vigil-cdp/vigil/pkg/textlimit"
)

// Judgement records (observation, state changes, actions, notes, silence)
// of one poll, at most: docs/engine.md states this bound.
func judgementBytesPerPoll(processes int) int { return 5<<10 + processes*6<<10 }

// The bound docs/engine.md states for one agent over one hour, polled n
// times with p processes: its events' budget (a full bucket and an hour of
// refill), one notice a minute (61 in a closed hour), and the judgement
// records of every poll.
func hourBound(polls, processes int) int {
	return 2*AgentEventBytesPerHour + noticesPerHour + polls*judgementBytesPerPoll(processes)
}

// noticesPerHour: a history_limit event takes at most MaxTextBytes of
// reason and 256 bytes of the rest.
const noticesPerHour = 61 * (MaxTextBytes + 256)

// countingHistory is a real store that counts, by agent, the bytes each
// Append adds (records, keys and index entries, as package history stores
// them).
type countingHistory struct {
	*history.Store
	mu sync.Mutex
	// judged: observations, state changes, actions, notes, silences;
	// events: the agent's own events and history_limit notices.
	judged, events map[string]int
	limits         map[string][]string
}

func (c *countingHistory) Append(b history.Batch) error {
	c.mu.Lock()
	for _, ev := range b.Events {
		raw, _ := json.Marshal(ev)
		n := len(raw) + 16 + len(ev.Agent) + 1 + 16
		switch ev.Type {
		case history.TypeAgent:
			c.events[ev.Agent] += n
		case history.TypeLimit:
			c.events[ev.Agent] += n
			c.limits[ev.Agent] = append(c.limits[ev.Agent], ev.Reason)
		default:
			c.judged[ev.Agent] += n
		}
	}
	for _, o := range b.Observations {
		raw, _ := json.Marshal(o)
		c.judged[o.Agent] += len(raw) + len(o.Agent) + 1 + 16
	}
	for _, s := range b.Silences {
		raw, _ := json.Marshal(s)
		c.judged[s.Agent] += len(raw) + len(s.Agent) + 1 + 16
	}
	c.mu.Unlock()
	return c.Store.Append(b)
}

func (c *countingHistory) total(agent string) (judged, events int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.judged[agent], c.events[agent]
}

func statusJSON(id, hostname string, generation int64) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"v1","time":"2026-11-26T04:00:00Z","agent":{"id":%q,"version":"0.1.0","hostname":%q,"startedAt":"2026-11-26T03:00:00Z","pid":1},"cluster":null,`+
		`"processes":[{"name":"cdp","kind":"command","state":"running","expected":true,"pid":5,"generation":%d,"startedAt":"2026-11-26T03:00:00Z","restarts":0,"lastExit":null,"protection":null}]}`,
		id, hostname, generation)
}

// hostileAgent sends a 64 KiB hostname and serves event pages of about
// 1 MB: 505 events (more than asked for) with 1.9 KB reasons, and always
// more after them. With changeID, its agent.id changes at every answer.
func hostileAgent(t *testing.T, changeID bool) *httptest.Server {
	var mu sync.Mutex
	polls := 0
	hostname := strings.Repeat("h", 64<<10)
	reason := strings.Repeat("x", 1900)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status":
			mu.Lock()
			polls++
			id := "greedy"
			if changeID {
				id = fmt.Sprintf("id-%d", polls)
			}
			mu.Unlock()
			_, _ = w.Write(statusJSON(id, hostname, 1))
		case "/v1/events":
			since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
			var b strings.Builder
			b.WriteString(`{"events":[`)
			for i := range int64(505) {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"seq":%d,"time":"2026-11-26T04:00:00Z","type":"crashed","process":"cdp","reason":%q,"requestedBy":"r"}`, since+i+1, reason)
			}
			fmt.Fprintf(&b, `],"next":%d}`, since+505)
			if b.Len() > agentclient.MaxAnswer {
				t.Errorf("a hostile page of %d bytes is over the client's limit", b.Len())
			}
			_, _ = w.Write([]byte(b.String()))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// goodAgent is a healthy agent: its process is restarted now and then
// (restart), which records two events in its log.
type goodAgent struct {
	mu         sync.Mutex
	generation int64
	log        []agentclient.Event
}

func (g *goodAgent) restart(at time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.generation++
	for _, typ := range []string{"restart_requested", "restart_done"} {
		g.log = append(g.log, agentclient.Event{Seq: int64(len(g.log) + 1), Time: at, Type: typ, Process: "cdp", Reason: "maintenance", RequestedBy: "ops"})
	}
}

func (g *goodAgent) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		switch r.URL.Path {
		case "/v1/status":
			_, _ = w.Write(statusJSON("good-agent", "db1", g.generation))
		case "/v1/events":
			since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
			limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
			out := agentclient.Events{Events: []agentclient.Event{}, Next: since}
			for _, ev := range g.log {
				if ev.Seq > since && len(out.Events) < limit {
					out.Events = append(out.Events, ev)
					out.Next = ev.Seq
				}
			}
			_ = json.NewEncoder(w).Encode(out)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// An agent that changes its id at every poll and serves 1 MB event pages,
// polled every second for an hour of the engine's clock, stays within the
// bound stated for one agent, and so does one that keeps its id and always
// has more events; what was held back is recorded, they are judged as
// before, and a healthy agent polled alongside keeps all its events.
func TestHostileAgentStaysWithinItsHistoryBound(t *testing.T) {
	agentproc.SkipShort(t, "an hour of polls on the engine's clock (about 10 s)")
	evil := hostileAgent(t, true)
	greedy := hostileAgent(t, false)
	// A full log to start with (1,000 events and 200 older failures, an
	// agent's default): more than one page, read over the first polls.
	good := &goodAgent{generation: 1}
	for range 600 {
		good.restart(t0)
	}
	goodSrv := good.serve(t)

	dir := t.TempDir()
	store, err := history.Open(dir, history.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	hist := &countingHistory{Store: store, judged: map[string]int{}, events: map[string]int{}, limits: map[string][]string{}}

	clk := clock.NewFake(t0)
	cfg := fleetOf(policy(nil), fleet.Agent{Name: "evil", URL: evil.URL}, fleet.Agent{Name: "greedy", URL: greedy.URL}, fleet.Agent{Name: "good", URL: goodSrv.URL})
	// An hour of polls: every second, or every 5 s under the race detector
	// (make test), which makes each poll several times slower.
	interval := time.Second
	if raceDetector {
		interval = 5 * time.Second
	}
	cfg.PollInterval = interval
	e, err := New(cfg, Options{Clock: clk, History: hist})
	if err != nil {
		t.Fatal(err)
	}

	polls := int(time.Hour / interval)
	ctx := context.Background()
	for i := range polls {
		if i > 0 && i%(polls/12) == 0 {
			good.restart(clk.Now())
		}
		if err := e.PollNow(ctx, ""); err != nil {
			t.Fatal(err)
		}
		// Fail as soon as the bound for the whole hour is passed (before the
		// limits, within the first polls).
		for _, name := range []string{"evil", "greedy"} {
			if judged, events := hist.total(name); judged+events > hourBound(polls, 1) {
				t.Fatalf("after %d polls (%s) the agent %s added %d bytes to the history (%d of events), over the bound of %d for an hour",
					i+1, clk.Now().Sub(t0), name, judged+events, events, hourBound(polls, 1))
			}
			if s, _ := e.Snapshot().Agent(name); s.State != state.OK {
				t.Fatalf("poll %d: the agent %s is %s (%s): its judgement must not change", i+1, name, s.State, s.Reason)
			}
		}
		clk.Advance(interval)
	}

	fi, err := os.Stat(store.Path())
	if err != nil {
		t.Fatal(err)
	}
	all := 0
	for _, name := range []string{"evil", "greedy", "good"} {
		judged, events := hist.total(name)
		all += judged + events
		t.Logf("in %d polls (an hour at %s), agent %s added %d bytes: %d of judgement records, %d of its events and notices", polls, interval, name, judged+events, judged, events)
		if events > 2*AgentEventBytesPerHour+noticesPerHour {
			t.Errorf("the agent %s's events and notices took %d bytes in an hour, over its budget", name, events)
		}
		if judged > polls*judgementBytesPerPoll(1) {
			t.Errorf("the agent %s's judgement records took %d bytes for %d polls, over %d per poll", name, judged, polls, judgementBytesPerPoll(1))
		}
	}
	// bbolt grows its file in steps of 16 MiB once past them.
	t.Logf("history file: %d bytes", fi.Size())
	if fi.Size() > int64(2*all+16<<20) {
		t.Errorf("the history file is %d bytes for %d bytes of records", fi.Size(), all)
	}

	// What was held back, and why, is in the history.
	perMinute := int(time.Minute / interval)
	for name, wants := range map[string][]string{
		"evil": {
			fmt.Sprintf("agent id changed %s times this hour (limit %d); events not re-read (%d polls)", thousands(polls-perMinute), MaxIDResetsPerHour, perMinute),
			"dropped 5 events (per-poll limit 500)",
			fmt.Sprintf("truncated (strings cut to fit %d bytes an event)", MaxAgentEventBytes),
			fmt.Sprintf("history budget of %d bytes per hour is spent", AgentEventBytesPerHour),
		},
		"greedy": {
			"dropped 5 events (per-poll limit 500)",
			fmt.Sprintf("truncated (strings cut to fit %d bytes an event)", MaxAgentEventBytes),
			fmt.Sprintf("history budget of %d bytes per hour is spent", AgentEventBytesPerHour),
		},
	} {
		notes := strings.Join(hist.limits[name], "\n")
		for _, want := range wants {
			if !strings.Contains(notes, want) {
				t.Errorf("no history_limit event of %s says %q; they say:\n%.2000s", name, want, notes)
			}
		}
		if n := len(hist.limits[name]); n > 61 {
			t.Errorf("%d history_limit events of %s in an hour, want at most one a minute", n, name)
		}
		stored, err := store.Events(history.Query{Agent: name})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range stored {
			if ev.Type == history.TypeAgent && len(ev.AgentEvent) > MaxAgentEventBytes {
				t.Fatalf("an agent event of %d bytes was stored", len(ev.AgentEvent))
			}
		}
	}
	if n := len(hist.limits["good"]); n != 0 {
		t.Errorf("the healthy agent got history_limit events: %q", hist.limits["good"])
	}

	// The healthy agent's events are all there, once each.
	stored, err := store.Events(history.Query{Agent: "good"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	for _, ev := range stored {
		if ev.Type == history.TypeAgent {
			var a agentclient.Event
			if err := json.Unmarshal(ev.AgentEvent, &a); err != nil {
				t.Fatal(err)
			}
			seen[a.Seq]++
		}
	}
	good.mu.Lock()
	defer good.mu.Unlock()
	for _, ev := range good.log {
		if seen[ev.Seq] != 1 {
			t.Errorf("the healthy agent's event %d is stored %d times", ev.Seq, seen[ev.Seq])
		}
	}
	if len(seen) != len(good.log) {
		t.Errorf("%d of the healthy agent's events stored, it has %d", len(seen), len(good.log))
	}
}

func TestClipBoundsTheStoredJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    string
	}{
		{"short", "running (pid 4, generation 2)"},
		{"ascii", strings.Repeat("a", 5000)},
		{"escaped", strings.Repeat("<\n\"", 3000)},
		{"multibyte", strings.Repeat("é€😀", 1000)},
		{"invalid utf-8", strings.Repeat("\xff", 3000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := textlimit.Clip(tc.s, MaxTextBytes)
			raw, _ := json.Marshal(got)
			if len(raw)-2 > MaxTextBytes {
				t.Errorf("%d bytes of JSON, want at most %d", len(raw)-2, MaxTextBytes)
			}
			if textlimit.JSONLen(got) != len(raw)-2 {
				t.Errorf("jsonLen %d, encoding/json %d", textlimit.JSONLen(got), len(raw)-2)
			}
			if tc.name == "short" {
				if got != tc.s {
					t.Errorf("%q cut to %q", tc.s, got)
				}
				return
			}
			if want := fmt.Sprintf("…(truncated, %d bytes)", len(tc.s)); !strings.HasSuffix(got, want) {
				t.Errorf("%q does not end with %q", got[len(got)-40:], want)
			}
			if tc.name != "invalid utf-8" && !utf8.ValidString(got) {
				t.Error("a character was split")
			}
			if !strings.HasPrefix(tc.s, strings.TrimSuffix(got, fmt.Sprintf("…(truncated, %d bytes)", len(tc.s)))) {
				t.Error("what is kept is not the start of the string")
			}
		})
	}
}

// Every string of an answer that reaches the history is bounded: names,
// messages, reasons; the resume record too.
func TestAgentStringsAreBoundedInTheHistory(t *testing.T) {
	huge := strings.Repeat("<", 80<<10)
	body := fmt.Appendf(nil, `{"apiVersion":"v1","time":"2026-11-26T04:00:00Z","agent":{"id":%q,"version":%q,"hostname":%q,"startedAt":"2026-11-26T03:00:00Z"},`+
		`"cluster":{"name":%q,"node":%q,"role":"unknown","roleError":%q},`+
		`"processes":[{"name":%q,"kind":%q,"state":"crashed","expected":false,"pid":null,"generation":1,"startedAt":null,"restarts":0,"lastExit":{"code":null,"signal":%q,"at":"2026-11-26T03:00:00Z"},`+
		`"protection":{"lastChangeAt":null,"lastReplicatedAt":null,"lagSeconds":null,"pendingChanges":null,"pendingBytes":null,"state":%q,"message":%q}}]}`,
		huge, huge, huge, huge, huge, huge, huge, huge, huge, huge, huge)
	if len(body) > agentclient.MaxAnswer {
		t.Fatal("the answer is over 1 MiB")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/status" {
			_, _ = w.Write(body)
			return
		}
		_, _ = w.Write([]byte(`{"events":[],"next":0}`))
	}))
	t.Cleanup(srv.Close)
	store, err := history.Open(t.TempDir(), history.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	hist := &countingHistory{Store: store, judged: map[string]int{}, events: map[string]int{}, limits: map[string][]string{}}
	e, err := New(fleetOf(policy(nil), fleet.Agent{Name: "a", URL: srv.URL}), Options{Clock: clock.NewFake(t0), History: hist})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.PollNow(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	s, _ := e.Snapshot().Agent("a")
	if s.State != state.Unknown || !strings.Contains(s.Reason, "…(truncated, ") {
		t.Errorf("%s %.200q", s.State, s.Reason)
	}
	judged, events := hist.total("a")
	if judged+events > judgementBytesPerPoll(1) {
		t.Errorf("one poll wrote %d bytes, over the bound of %d", judged+events, judgementBytesPerPoll(1))
	}
	recs, _ := store.Agents()
	if n := len(recs["a"]); n > 16<<10 {
		t.Errorf("the resume record takes %d bytes", n)
	}
	for _, v := range []string{s.AgentID, s.Version, s.Hostname, s.Cluster, s.Node, s.Processes[0].Name} {
		if textlimit.JSONLen(v) > MaxNameBytes {
			t.Errorf("a name of %d bytes in the snapshot", textlimit.JSONLen(v))
		}
	}
}

func TestTooManyProcessesIsNotUnderstood(t *testing.T) {
	var procs []string
	for i := range MaxProcesses + 1 {
		procs = append(procs, fmt.Sprintf(`{"name":"p%d","kind":"command","state":"running","expected":true,"pid":5,"generation":1,"startedAt":null,"restarts":0,"lastExit":null,"protection":null}`, i))
	}
	body := []byte(`{"apiVersion":"v1","time":"2026-11-26T04:00:00Z","agent":{"id":"a","version":"1","hostname":"h","startedAt":"2026-11-26T03:00:00Z"},"cluster":null,"processes":[` + strings.Join(procs, ",") + `]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	t.Cleanup(srv.Close)
	e, err := New(fleetOf(policy(nil), fleet.Agent{Name: "a", URL: srv.URL}), Options{Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.PollNow(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	s, _ := e.Snapshot().Agent("a")
	want := fmt.Sprintf("the answer could not be understood: processes: %d listed, the monitor judges at most %d", MaxProcesses+1, MaxProcesses)
	if s.State != state.Unknown || s.Reason != want {
		t.Errorf("%s %q, want UNKNOWN %q", s.State, s.Reason, want)
	}
}

// docs/engine.md states the bounds defined in limits.go; they must agree.
func TestDocsStateTheLimits(t *testing.T) {
	raw, err := os.ReadFile("../../docs/engine.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(raw)), " ")
	kib := func(n int) string { return fmt.Sprintf("%d KiB", n>>10) }
	for _, want := range []string{
		fmt.Sprintf("%d bytes of JSON each (`MaxNameBytes`)", MaxNameBytes),
		fmt.Sprintf("%s bytes of JSON each (`MaxTextBytes`)", thousands(MaxTextBytes)),
		fmt.Sprintf("| %d (`MaxProcesses`)", MaxProcesses),
		fmt.Sprintf("judges at most %d`", MaxProcesses),
		fmt.Sprintf("one that lists more than %d (`engine.MaxProcesses`)", MaxProcesses),
		fmt.Sprintf("| %d, one page (`MaxAgentEventsPerPoll`)", MaxAgentEventsPerPoll),
		fmt.Sprintf("| %s bytes (`MaxAgentEventBytes`)", thousands(MaxAgentEventBytes)),
		fmt.Sprintf("| %d times per hour (`MaxIDResetsPerHour`)", MaxIDResetsPerHour),
		fmt.Sprintf("a token bucket of %d MiB refilled at %d MiB per hour on the engine's clock (`AgentEventBytesPerHour`)", AgentEventBytesPerHour>>20, AgentEventBytesPerHour>>20),
		fmt.Sprintf("while less than %s is available", kib(fetchAtLeast)),
		fmt.Sprintf("one `history_limit` event per agent per %s at most (`LimitNoticeEvery`)", map[time.Duration]string{time.Minute: "minute"}[LimitNoticeEvery]),
		fmt.Sprintf("at most %s + %s per process", kib(judgementBytesPerPoll(0)), kib(judgementBytesPerPoll(1)-judgementBytesPerPoll(0))),
		fmt.Sprintf("at most %d MiB of its own events (within the bucket)", AgentEventBytesPerHour>>20),
		fmt.Sprintf("at most %d MiB of its own events (a full bucket and an hour of refill)", 2*AgentEventBytesPerHour>>20),
		fmt.Sprintf("%d KiB of notices", (noticesPerHour+1023)>>10),
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/engine.md does not say %q", want)
		}
	}
}

// An agent's error quoted in a record is bounded too: here a redirect to a
// 200 KB location, answered to a person's restart and then to a poll.
func TestAgentErrorsAreBoundedInTheHistory(t *testing.T) {
	location := "http://127.0.0.1:1/" + strings.Repeat("a", 200<<10)
	var mu sync.Mutex
	redirect := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPost || redirect {
			w.Header().Set("Location", location)
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		switch r.URL.Path {
		case "/v1/status":
			_, _ = w.Write(statusJSON("a", "h", 1))
		default:
			_, _ = w.Write([]byte(`{"events":[],"next":0}`))
		}
	}))
	t.Cleanup(srv.Close)
	store, err := history.Open(t.TempDir(), history.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	e, err := New(fleetOf(policy(nil), fleet.Agent{Name: "a", URL: srv.URL}), Options{Clock: clock.NewFake(t0), History: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.PollNow(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Restart(ctx, "a", "cdp", "alice", "test", AnyGeneration); err == nil {
		t.Fatal("a redirected restart succeeded")
	}
	mu.Lock()
	redirect = true
	mu.Unlock()
	if err := e.PollNow(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	events, err := store.Events(history.Query{Agent: "a"})
	if err != nil {
		t.Fatal(err)
	}
	actions := 0
	for _, ev := range events {
		if ev.Type == history.TypeAction {
			actions++
		}
		for _, s := range []string{ev.Reason, ev.Error, ev.Diagnosis} {
			if textlimit.JSONLen(s) > MaxTextBytes {
				t.Errorf("a %s event holds %d bytes of text", ev.Type, textlimit.JSONLen(s))
			}
		}
	}
	if actions != 1 {
		t.Errorf("%d actions recorded, want 1", actions)
	}
	obs, err := store.Observations(history.Query{Agent: "a"})
	if err != nil {
		t.Fatal(err)
	}
	// The agent client already shortens a redirect's location; whatever the text, it stays bounded.
	if last := obs[len(obs)-1]; last.State != state.Unknown || textlimit.JSONLen(last.Reason) > MaxTextBytes || !strings.Contains(last.Reason, "redirect to ") {
		t.Errorf("the last observation: %s, %d bytes of reason", last.State, textlimit.JSONLen(last.Reason))
	}
	recs, _ := store.Agents()
	if n := len(recs["a"]); n > 16<<10 {
		t.Errorf("the resume record takes %d bytes", n)
	}
}
