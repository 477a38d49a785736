// Package ha tests a fleet divided among three vigil watch processes that
// share a history in PostgreSQL: real processes, a real PostgreSQL, a real
// agent with a real CDP child, and a farm of simulated agents that count
// who polls them. Skipped under -short.
package ha

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/internal/agentproc"
	"github.com/vigil-cdp/vigil/internal/pgtest"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/response"
)

const (
	farmSize = 300
	interval = time.Second
	// budget is every agent's: responseTime 1 s + processing 1 s + the
	// largest allowance, 8 s.
	budget = 10 * time.Second
)

// farm serves many simulated agents (/a000 ... /a299) and records, per
// agent, which member polled it when (from the User-Agent).
type farm struct {
	srv  *http.Server
	addr string

	mu       sync.Mutex
	polls    map[string][]poll
	silent   map[string]bool
	answered map[string]time.Time // the last answer of each agent
	// proxies: real agents served under the farm's address.
	proxies map[string]*httputil.ReverseProxy
}

type poll struct {
	member string
	at     time.Time
}

func startFarm(t *testing.T) *farm {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &farm{addr: ln.Addr().String(), polls: map[string][]poll{}, silent: map[string]bool{}, answered: map[string]time.Time{},
		proxies: map[string]*httputil.ReverseProxy{}}
	started := time.Now().Add(-time.Hour)
	f.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		f.mu.Lock()
		target := f.proxies[name]
		f.mu.Unlock()
		if target != nil {
			// A real agent behind the farm: counted, then passed on.
			if rest == "v1/status" {
				member := strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("User-Agent"), "vigil-monitor (member "), ")")
				f.mu.Lock()
				f.polls[name] = append(f.polls[name], poll{member, time.Now()})
				f.mu.Unlock()
			}
			r.URL.Path = "/" + rest
			target.ServeHTTP(w, r)
			return
		}
		if rest != "v1/status" || r.Header.Get("Authorization") != "Bearer "+agentproc.ReadToken {
			http.NotFound(w, r)
			return
		}
		member := strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("User-Agent"), "vigil-monitor (member "), ")")
		now := time.Now()
		f.mu.Lock()
		f.polls[name] = append(f.polls[name], poll{member, now})
		silent := f.silent[name]
		if !silent {
			f.answered[name] = now
		}
		f.mu.Unlock()
		if silent {
			// No answer: the connection is dropped.
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
				}
			}
			return
		}
		pid, gen := int64(4242), int64(1)
		st := response.Status{APIVersion: "v1", Time: now,
			Agent:     response.AgentInfo{ID: "id-" + name, Version: "0.1.0", Hostname: name, StartedAt: started},
			Processes: []response.Process{{Name: "cdp", Kind: "command", State: "running", Expected: true, PID: &pid, Generation: gen, StartedAt: &started}}}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})}
	go func() { _ = f.srv.Serve(ln) }()
	t.Cleanup(func() { _ = f.srv.Close() })
	return f
}

// front serves a real agent as f.addr/name, counting its polls.
func (f *farm) front(t *testing.T, name, agentURL string) string {
	t.Helper()
	u, err := url.Parse(agentURL)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.proxies[name] = httputil.NewSingleHostReverseProxy(u)
	f.mu.Unlock()
	return "http://" + f.addr + "/" + name
}

func (f *farm) setSilent(name string) {
	f.mu.Lock()
	f.silent[name] = true
	f.mu.Unlock()
}

// pollersBetween returns, by agent, the members that polled it in [from, to).
func (f *farm) pollersBetween(from, to time.Time) map[string]map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]map[string]int{}
	for name, ps := range f.polls {
		for _, p := range ps {
			if !p.at.Before(from) && p.at.Before(to) {
				if out[name] == nil {
					out[name] = map[string]int{}
				}
				out[name][p.member]++
			}
		}
	}
	return out
}

// firstPollAfter returns when an agent was first polled after t by a
// member other than not (zero if not yet).
func (f *farm) firstPollAfter(name string, t time.Time, not string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.polls[name] {
		if p.at.After(t) && p.member != not {
			return p.at
		}
	}
	return time.Time{}
}

// takenOver waits until every one of agents was polled after since by a
// member other than gone, and returns how long the last one took.
func (f *farm) takenOver(t *testing.T, what string, agents []string, since time.Time, gone string) time.Duration {
	t.Helper()
	var took time.Duration
	waitFor(t, what, 30*time.Second, func() bool {
		took = 0
		for _, a := range agents {
			at := f.firstPollAfter(a, since, gone)
			if at.IsZero() {
				return false
			}
			took = max(took, at.Sub(since))
		}
		return true
	})
	return took
}

// member is one vigil watch process.
type member struct {
	name   string
	cmd    *exec.Cmd
	out    *os.File
	outLog string
	errLog string
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func buildVigil(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/vigil")
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/vigil: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		// A UDP and a TCP port both free: memberlist uses both.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			_ = pc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func startMember(t *testing.T, bin, fleet, dsn, name string, port int) *member {
	t.Helper()
	dir := t.TempDir()
	m := &member{name: name, outLog: filepath.Join(dir, "out.log"), errLog: filepath.Join(dir, "err.log")}
	out, err := os.Create(m.outLog)
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(m.errLog)
	if err != nil {
		t.Fatal(err)
	}
	m.out = out
	m.cmd = exec.Command(bin, "watch", "--config", fleet, "--history", filepath.Join(dir, "history"), "--json",
		"--history-postgres", dsn, "--cluster-bind", fmt.Sprintf("127.0.0.1:%d", port), "--cluster-name", name)
	m.cmd.Stdout, m.cmd.Stderr = out, errf
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if m.cmd.ProcessState == nil {
			_ = m.cmd.Process.Kill()
			_ = m.cmd.Wait()
		}
		_ = out.Close()
		_ = errf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(m.errLog)
			t.Logf("%s stderr:\n%s", name, b)
		}
	})
	return m
}

// events reads the member's JSON events.
func (m *member) events(t *testing.T) []map[string]any {
	t.Helper()
	f, err := os.Open(m.outLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func writeFleet(t *testing.T, f *farm, real *agentproc.Agent, dsn string, ports []int) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `pollInterval: 1s
defaults:
  readToken: %s
  controlToken: %s
  budget: { responseTime: 1s, processing: 1s, failover: 8s, restart: 8s, networkInterruption: 8s, appErrorRecovery: 8s }
  autoRestart: { enabled: true, backoffInitial: 1s, backoffMax: 5s }
history:
  postgres: %s
cluster:
  join: [`, agentproc.ReadToken, agentproc.ControlToken, dsn)
	for i, p := range ports {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "127.0.0.1:%d", p)
	}
	b.WriteString("]\nagents:\n")
	for i := range farmSize {
		fmt.Fprintf(&b, "  - { name: a%03d, url: http://%s/a%03d }\n", i, f.addr, i)
	}
	fmt.Fprintf(&b, "  - { name: real, url: %s }\n", f.front(t, "real", real.URL()))
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ownersIn maps each agent to the one member that polled it in the window,
// and lists the agents polled by none or by more than one.
func ownersIn(pollers map[string]map[string]int, agents []string) (owner map[string]string, none, several []string) {
	owner = map[string]string{}
	for _, a := range agents {
		switch ms := pollers[a]; len(ms) {
		case 0:
			none = append(none, a)
		case 1:
			for m := range ms {
				owner[a] = m
			}
		default:
			several = append(several, a)
		}
	}
	return owner, none, several
}

func TestDividedFleet(t *testing.T) {
	agentproc.SkipShort(t, "runs PostgreSQL, three monitors and an agent")
	pg := pgtest.Start(t)
	bin := buildVigil(t)
	f := startFarm(t)
	real := agentproc.Start(t, agentproc.Options{Processes: []agentproc.Process{{Name: "cdp", Kind: "command",
		Command: []string{"sleep", "100000"}, AutoRestart: new(false)}}})
	ports := []int{freePort(t), freePort(t), freePort(t)}
	fleet := writeFleet(t, f, real, pg.DSN(), ports)
	names := []string{"m1", "m2", "m3"}
	members := map[string]*member{}
	for i, n := range names {
		members[n] = startMember(t, bin, fleet, pg.DSN(), n, ports[i])
	}
	var agents []string
	for i := range farmSize {
		agents = append(agents, fmt.Sprintf("a%03d", i))
	}
	agents = append(agents, "real")

	// Steady state: every agent polled by exactly one member.
	start := time.Now()
	var owner map[string]string
	waitFor(t, "every agent polled by exactly one member over 3 s", 40*time.Second, func() bool {
		now := time.Now()
		o, none, several := ownersIn(f.pollersBetween(now.Add(-3*time.Second), now), agents)
		owner = o
		if time.Since(start) > 30*time.Second && len(none)+len(several) > 0 {
			t.Logf("polled by none: %d %v; by several: %d %v", len(none), none[:min(5, len(none))], len(several), several[:min(5, len(several))])
		}
		return len(none) == 0 && len(several) == 0
	})
	t.Logf("steady state %.1f s after the members started", time.Since(start).Seconds())
	time.Sleep(3 * time.Second)
	now := time.Now()
	o, none, several := ownersIn(f.pollersBetween(now.Add(-3*time.Second), now), agents)
	if len(none) > 0 || len(several) > 0 {
		t.Fatalf("steady state broke: polled by none %v, by several %v", none, several)
	}
	owner = o
	perMember := map[string]int{}
	for _, m := range owner {
		perMember[m]++
	}
	t.Logf("agents per member: %v", perMember)
	for _, n := range names {
		if perMember[n] < len(agents)/6 {
			t.Errorf("member %s polls %d of %d agents: rendezvous hashing should give each about a third", n, perMember[n], len(agents))
		}
	}

	// kill -9 of the member that owns the real agent; at the same moment
	// its CDP is killed and one of its simulated agents falls silent.
	victim := owner["real"]
	var silentAgent string
	var victimAgents []string
	for _, a := range agents {
		if owner[a] == victim {
			victimAgents = append(victimAgents, a)
			if silentAgent == "" && a != "real" {
				silentAgent = a
			}
		}
	}
	procs := real.Processes(t)
	genBefore := procs[0].Generation
	killedAt := time.Now()
	if err := members[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = members[victim].cmd.Wait()
	f.setSilent(silentAgent)
	if err := syscall.Kill(procs[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	handover := f.takenOver(t, "every agent of the killed member polled by another", victimAgents, killedAt, victim)
	t.Logf("handover after kill -9: %.1f s until all %d agents of %s were polled by another member; %d agents polled by both survivors in that time",
		handover.Seconds(), len(victimAgents), victim, countSeveral(f.pollersBetween(killedAt, killedAt.Add(handover+2*time.Second)), victim))
	if handover > 10*time.Second {
		t.Errorf("handover took %s, the target is under 10 s", handover)
	}

	// Exactly one restart of the CDP killed during the handover.
	waitFor(t, "the real agent's CDP restarted", 30*time.Second, func() bool {
		p := real.Processes(t)[0]
		return p.State == "running" && p.Generation > genBefore
	})
	time.Sleep(3 * time.Second)
	if g := real.Processes(t)[0].Generation; g != genBefore+1 {
		t.Fatalf("generation went from %d to %d: want exactly one restart", genBefore, g)
	}

	// The silent agent turns FAILED at its budget from its last answer,
	// not at budget plus the handover.
	f.mu.Lock()
	lastAnswer := f.answered[silentAgent]
	f.mu.Unlock()
	var failedAt time.Time
	waitFor(t, silentAgent+" FAILED", 30*time.Second, func() bool {
		for _, n := range names {
			if n == victim {
				continue
			}
			for _, e := range members[n].events(t) {
				if e["type"] == "state" && e["agent"] == silentAgent && e["process"] == "" && e["to"] == "FAILED" {
					failedAt, _ = time.Parse(time.RFC3339Nano, e["time"].(string))
					return true
				}
			}
		}
		return false
	})
	late := failedAt.Sub(lastAnswer)
	t.Logf("%s: last answer %s, FAILED %.1f s later (budget %s, handover %.1f s)", silentAgent, lastAnswer.Format("15:04:05.000"), late.Seconds(), budget, handover.Seconds())
	if late < budget || late > budget+interval+1500*time.Millisecond {
		t.Errorf("FAILED %.1f s after the last answer; the budget is %s", late.Seconds(), budget)
	}

	// Graceful leave: the others take over without a gap.
	var survivors []string
	for _, n := range names {
		if n != victim {
			survivors = append(survivors, n)
		}
	}
	leaver, stayer := survivors[0], survivors[1]
	now = time.Now()
	o, _, _ = ownersIn(f.pollersBetween(now.Add(-2*time.Second), now), agents)
	var leaverAgents []string
	for a, m := range o {
		if m == leaver && a != silentAgent {
			leaverAgents = append(leaverAgents, a)
		}
	}
	leftAt := time.Now()
	if err := members[leaver].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = members[leaver].cmd.Wait()
	gap := f.takenOver(t, "the leaver's agents polled by the member that stays", leaverAgents, leftAt, leaver)
	t.Logf("graceful leave of %s: its %d agents polled by %s within %.2f s", leaver, len(leaverAgents), stayer, gap.Seconds())
	if gap > 2*interval+500*time.Millisecond {
		t.Errorf("after a graceful leave, %s until every agent was polled again; want no gap beyond an interval or two", gap)
	}

	// PostgreSQL killed and restarted mid-run: nothing lost, order kept.
	time.Sleep(2 * time.Second)
	pgKilled := time.Now()
	pg.Kill()
	time.Sleep(4 * time.Second)
	pg.Restart()
	time.Sleep(4 * time.Second)
	checkUntil := time.Now().Add(-1500 * time.Millisecond)
	checkFrom := pgKilled.Add(-2 * time.Second)
	store, err := history.OpenPostgres(context.Background(), pg.DSN(), history.PGOptions{Scope: history.Scope{UID: "vigil-watch"}, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sample := []string{"a001", "a150", "a299", "real"}
	for _, a := range sample {
		var obs []history.Observation
		waitFor(t, "the buffered observations of "+a+" in PostgreSQL", 15*time.Second, func() bool {
			obs, err = store.Observations(history.Query{Agent: a, From: checkFrom, To: checkUntil})
			return err == nil && len(obs) > 0 && !obs[len(obs)-1].End().Before(checkUntil.Add(-2*interval))
		})
		polls := 0
		for i, o := range obs {
			polls += o.PollCount()
			if i > 0 && o.Time.Sub(obs[i-1].End()) > 2*interval+300*time.Millisecond {
				t.Errorf("%s: a gap of %s in the history at %s (PostgreSQL was down from %s for 4 s)", a, o.Time.Sub(obs[i-1].End()),
					o.Time.Format("15:04:05.000"), pgKilled.Format("15:04:05.000"))
			}
			if i > 0 && !o.Time.After(obs[i-1].Time) {
				t.Errorf("%s: out of order at %s", a, o.Time)
			}
		}
		want := int(checkUntil.Sub(checkFrom) / interval)
		if polls < want-2 {
			t.Errorf("%s: %d polls recorded between %s and %s, want about %d", a, polls, checkFrom.Format("15:04:05"), checkUntil.Format("15:04:05"), want)
		}
	}
	t.Logf("PostgreSQL down for 4 s: the member buffered its writes and wrote them when it came back")
}

// countSeveral counts agents polled by more than one member other than not.
func countSeveral(p map[string]map[string]int, not string) int {
	n := 0
	for _, ms := range p {
		var who []string
		for m := range ms {
			if m != not {
				who = append(who, m)
			}
		}
		if len(who) > 1 {
			n++
		}
	}
	return n
}
