// The simulated fleet: one server process answers every agent address as a
// real vigil-agent would, computing each answer when it is asked, and records
// when each agent was asked, so that the schedule is measured where the agent
// sees it.

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// simOptions describe the simulated fleet; the driver passes them to the
// server process as flags.
type simOptions struct {
	agents    int
	port      int
	seed      uint64
	interval  time.Duration
	change    float64 // share of agents whose process crashes (or whose protection lags), then recovers
	restart   float64 // share of agents that restart (agent and processes: new pid, startedAt, generation)
	silent    float64 // share of agents that go silent (half refuse, half hang)
	clustered float64 // share of agents in two-node clusters (one active, one passive)
	every     float64 // period of an unstable agent's incidents, in intervals (0: the steady part's length)
	down      float64 // how long a crash or a silence lasts, in intervals
	steady    int
}

func (o *simOptions) flags(fs *flag.FlagSet) {
	fs.IntVar(&o.agents, "agents", 10000, "simulated agents")
	fs.IntVar(&o.port, "port", 17400, "port every simulated agent listens on (at its own address 127.1.x.y)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the simulated fleet (which agents change, when, their counters)")
	fs.DurationVar(&o.interval, "interval", 10*time.Second, "poll interval for the steady-state part")
	fs.Float64Var(&o.change, "change", 0.05, "share of agents that change state once per incident period: a process crashes (or, for a third of them, the replicator lags past the RPO) and recovers")
	fs.Float64Var(&o.restart, "restart", 0.02, "share of agents that restart once per incident period (agent pid and startedAt, every process's pid, startedAt and generation change)")
	fs.Float64Var(&o.silent, "silent", 0.02, "share of agents that go silent once per incident period (half reset connections, half never answer)")
	fs.Float64Var(&o.clustered, "clustered", 0.5, "share of agents in two-node clusters (one active, one passive node); the others are standalone")
	fs.Float64Var(&o.every, "every", 0, "incident period of an unstable agent, in intervals (0: the steady part's length, so one incident per agent and phase)")
	fs.Float64Var(&o.down, "down", 1.5, "how long a crash, a lag or a silence lasts, in intervals (a restart through the API ends a crash earlier)")
}

func (o *simOptions) args() []string {
	return []string{
		"-agents", strconv.Itoa(o.agents), "-port", strconv.Itoa(o.port), "-seed", strconv.FormatUint(o.seed, 10),
		"-interval", o.interval.String(), "-change", ftoa(o.change), "-restart", ftoa(o.restart), "-silent", ftoa(o.silent),
		"-clustered", ftoa(o.clustered), "-every", ftoa(o.every), "-down", ftoa(o.down), "-steady", strconv.Itoa(o.steady),
	}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// period is the time between two incidents of one unstable agent.
func (o *simOptions) period() time.Duration {
	every := o.every
	if every <= 0 {
		every = float64(max(o.steady, 1))
	}
	return time.Duration(every * float64(o.interval))
}

func address(i, port int) string {
	return fmt.Sprintf("127.1.%d.%d:%d", i/250, i%250+1, port)
}

// agentIndex is the inverse of address, from the local address of a connection.
func agentIndex(a net.Addr) int {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return -1
	}
	ip := ta.IP.To4()
	if ip == nil || ip[0] != 127 || ip[1] != 1 || ip[3] == 0 {
		return -1
	}
	return int(ip[2])*250 + int(ip[3]) - 1
}

type incident int

const (
	none incident = iota
	crash
	lag
	restart
	refuse
	hang
)

var incidentNames = [...]string{"none", "crash", "lag", "restart", "refuse", "hang"}

type exit struct {
	code   int
	signal string // "" is null
	at     time.Time
}

type proc struct {
	name, kind    string
	activeOnly    bool // runOn active: stopped on a passive node
	state         string
	pid           int64 // 0 is null
	generation    int64
	startedAt     time.Time // zero is null
	restarts      int64
	lastExit      *exit
	recentCrashes int64
	autoRestart   bool
}

// simAgent is one simulated agent. Its fields are guarded by mu; requests of
// one agent arrive on one connection, so mu is rarely contended.
type simAgent struct {
	mu        sync.Mutex
	rng       *rand.Rand
	id, host  string
	cluster   string // "" standalone
	node      string
	passive   bool
	startedAt time.Time
	pid       int64
	procs     []proc
	verifyAt  time.Time

	kind     incident
	offset   time.Duration // of its incidents within the period
	on       bool
	next     time.Time // next incident
	active   incident  // the incident under way
	end      time.Time // when it ends
	lagSince time.Time

	seq    int64
	events []agentEvent // the newest events

	// schedule statistics of the current phase
	phase   int64
	last    time.Time
	polls   int64
	retries int64
	maxGap  time.Duration
	gapSum  time.Duration
	gaps    int64
	late    int64
}

const keepEvents = 64

type agentEvent struct {
	seq int64
	raw []byte
}

func (a *simAgent) event(t time.Time, typ, reason, process string, fields string) {
	a.seq++
	b := make([]byte, 0, 192)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, a.seq, 10)
	b = append(b, `,"time":`...)
	b = appendTime(b, t)
	b = append(b, `,"type":"`...)
	b = append(b, typ...)
	b = append(b, `","reason":`...)
	b = strconv.AppendQuote(b, reason)
	if process != "" {
		b = append(b, `,"process":`...)
		b = strconv.AppendQuote(b, process)
	}
	b = append(b, fields...)
	b = append(b, '}')
	if len(a.events) == keepEvents {
		a.events = append(a.events[:0], a.events[1:]...)
	}
	a.events = append(a.events, agentEvent{a.seq, b})
}

func (a *simAgent) newPID() int64 { return 1000 + a.rng.Int64N(4_000_000) }

func (a *simAgent) start(t time.Time, p *proc, why string) {
	p.generation++
	p.pid, p.startedAt, p.state = a.newPID(), t, "running"
	a.event(t, "started", why, p.name, fmt.Sprintf(`,"generation":%d,"pid":%d`, p.generation, p.pid))
}

// target is the process an incident of kind crash or lag affects.
func (a *simAgent) target(k incident) *proc {
	if k == lag || a.passive {
		return &a.procs[2] // the replicator
	}
	return &a.procs[0]
}

func (a *simAgent) begin(t time.Time, opt *simOptions) {
	a.active, a.end = a.kind, t.Add(time.Duration(opt.down*float64(opt.interval)))
	switch a.kind {
	case crash:
		p := a.target(crash)
		if p.state != "running" {
			a.active = none
			return
		}
		p.recentCrashes++
		p.lastExit = &exit{code: 1, at: t}
		a.event(t, "crashed", "exited with code 1", p.name, fmt.Sprintf(`,"generation":%d,"code":1,"signal":null,"pid":%d,"recentCrashes":%d`, p.generation, p.pid, p.recentCrashes))
		p.state, p.pid, p.startedAt = "crashed", 0, time.Time{}
	case lag:
		a.lagSince = t
	case restart:
		a.event(t, "agent_stopped", "SIGTERM", "", "")
		a.startedAt, a.pid = t, a.newPID()
		a.event(t, "agent_started", fmt.Sprintf("vigil-agent 1.4.2 started (pid %d)", a.pid), "", fmt.Sprintf(`,"version":"1.4.2","pid":%d`, a.pid))
		for i := range a.procs {
			if p := &a.procs[i]; p.state == "running" {
				p.lastExit = &exit{signal: "SIGTERM", at: t}
				a.start(t.Add(200*time.Millisecond), p, "startOnBoot")
			}
		}
		a.active = none
	}
}

func (a *simAgent) finish(t time.Time) {
	if a.active == crash {
		if p := a.target(crash); p.state == "crashed" {
			a.start(t, p, "started by the operator")
		}
	}
	a.active = none
}

// advance applies the incidents due at t.
func (a *simAgent) advance(t time.Time, opt *simOptions, period time.Duration) {
	for {
		switch {
		case a.active != none && !t.Before(a.end):
			a.finish(a.end)
		case a.active == none && a.on && a.kind != none && !t.Before(a.next):
			at := a.next
			a.next = a.next.Add(period)
			a.begin(at, opt)
		default:
			return
		}
	}
}

// arrived records a request at t (the agent's view of the schedule). A request
// within 100 ms of the previous one is a transport retry, not a poll. The
// first gap of a phase runs from the agent's last poll before it, so that a
// poller that fell behind before the phase began is seen.
func (a *simAgent) arrived(t time.Time, phase int64, interval time.Duration) {
	if a.phase != phase {
		a.phase, a.polls, a.retries, a.maxGap, a.gapSum, a.gaps, a.late = phase, 0, 0, 0, 0, 0, 0
	}
	if !a.last.IsZero() {
		gap := t.Sub(a.last)
		if gap < 100*time.Millisecond {
			a.retries++
			return
		}
		a.gaps++
		a.gapSum += gap
		gapHist[min(int(100*gap/interval), len(gapHist)-1)].Add(1)
		a.maxGap = max(a.maxGap, gap)
		if gap > lateGap(interval) {
			a.late++
		}
	}
	a.last = t
	a.polls++
	if length := phaseLength.Load(); length > 0 {
		if tenth := 10 * (t.UnixNano() - phaseStart.Load()) / length; tenth >= 0 && tenth < int64(len(timeline)) {
			timeline[tenth].Add(1)
		}
	}
}

// gapHist counts the gaps of the phase by percent of the interval (the last
// bucket: 300 % and more).
var gapHist [301]atomic.Int64

// timeline counts the polls of the phase by tenth of its expected length
// (phaseStart and phaseLength are set before the phase begins).
var (
	timeline                [10]atomic.Int64
	phaseStart, phaseLength atomic.Int64 // Unix nanoseconds, nanoseconds
)

func lateGap(interval time.Duration) time.Duration { return interval * 115 / 100 }

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	return append(b, '"')
}

func appendNullTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	return appendTime(b, t)
}

func appendNullInt(b []byte, n int64) []byte {
	if n == 0 {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, n, 10)
}

// status renders the agent's answer to GET /v1/status at t, with the
// counters and timestamps a real agent's answer changes at every poll.
func (a *simAgent) status(b []byte, t time.Time) []byte {
	b = append(b, `{"apiVersion":"v1","time":`...)
	b = appendTime(b, t)
	b = append(b, `,"agent":{"id":"`...)
	b = append(b, a.id...)
	b = append(b, `","version":"1.4.2","hostname":"`...)
	b = append(b, a.host...)
	b = append(b, `","startedAt":`...)
	b = appendTime(b, a.startedAt)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, a.pid, 10)
	b = append(b, `},"cluster":`...)
	if a.cluster == "" {
		b = append(b, "null"...)
	} else {
		role := "active"
		if a.passive {
			role = "passive"
		}
		b = append(b, `{"name":"`...)
		b = append(b, a.cluster...)
		b = append(b, `","node":"`...)
		b = append(b, a.node...)
		b = append(b, `","role":"`...)
		b = append(b, role...)
		b = append(b, `","roleReadAt":`...)
		b = appendTime(b, t.Add(-time.Duration(a.rng.Int64N(int64(5*time.Second)))))
		b = append(b, '}')
	}
	b = append(b, `,"processes":[`...)
	for i := range a.procs {
		if i > 0 {
			b = append(b, ',')
		}
		b = a.process(b, &a.procs[i], t)
	}
	return append(b, `],"warnings":[]}`...)
}

func (a *simAgent) process(b []byte, p *proc, t time.Time) []byte {
	expected := !p.activeOnly || !a.passive
	b = append(b, `{"name":"`...)
	b = append(b, p.name...)
	b = append(b, `","kind":"`...)
	b = append(b, p.kind...)
	b = append(b, `","state":"`...)
	b = append(b, p.state...)
	b = append(b, `","expected":`...)
	b = strconv.AppendBool(b, expected)
	b = append(b, `,"pid":`...)
	b = appendNullInt(b, p.pid)
	b = append(b, `,"generation":`...)
	b = strconv.AppendInt(b, p.generation, 10)
	b = append(b, `,"startedAt":`...)
	b = appendNullTime(b, p.startedAt)
	b = append(b, `,"restarts":`...)
	b = strconv.AppendInt(b, p.restarts, 10)
	b = append(b, `,"lastExit":`...)
	if e := p.lastExit; e == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"code":`...)
		if e.signal != "" {
			b = append(b, `null,"signal":"`...)
			b = append(b, e.signal...)
			b = append(b, '"')
		} else {
			b = strconv.AppendInt(b, int64(e.code), 10)
			b = append(b, `,"signal":null`...)
		}
		b = append(b, `,"at":`...)
		b = appendTime(b, e.at)
		b = append(b, '}')
	}
	b = append(b, `,"protection":`...)
	if p.kind != "replicator" {
		b = append(b, "null"...)
	} else {
		b = a.protection(b, p, t)
	}
	b = append(b, `,"autoRestart":`...)
	b = strconv.AppendBool(b, p.autoRestart)
	b = append(b, `,"autoRestartSuspended":false,"recentCrashes":`...)
	b = strconv.AppendInt(b, p.recentCrashes, 10)
	return append(b, `,"autoRestartAt":null}`...)
}

func (a *simAgent) protection(b []byte, p *proc, t time.Time) []byte {
	lagS := float64(a.rng.IntN(2500)) / 1000
	state, message := "watching", "null"
	pending := a.rng.Int64N(40)
	switch {
	case a.active == lag:
		lagS = 65 + t.Sub(a.lagSince).Seconds()
		state, message = "catching_up", `"catching up after a watch overflow sent /srv/cdp/data to periodic scanning"`
		pending = 20000 + a.rng.Int64N(5000)
	case p.state != "running":
		state, message = "not_running", `"the replicator is not running; changes are not protected"`
	}
	b = append(b, `{"lastChangeAt":`...)
	b = appendTime(b, t.Add(-time.Duration(a.rng.Int64N(int64(2*time.Second)))))
	b = append(b, `,"lastReplicatedAt":`...)
	b = appendTime(b, t.Add(-time.Duration(lagS*float64(time.Second))))
	b = append(b, `,"lagSeconds":`...)
	b = strconv.AppendFloat(b, math.Round(lagS*1000)/1000, 'f', -1, 64)
	b = append(b, `,"pendingChanges":`...)
	b = strconv.AppendInt(b, pending, 10)
	b = append(b, `,"pendingBytes":`...)
	b = strconv.AppendInt(b, pending*a.rng.Int64N(65536), 10)
	b = append(b, `,"state":"`...)
	b = append(b, state...)
	b = append(b, `","message":`...)
	b = append(b, message...)
	b = append(b, `,"notCovered":0,"verify":{"at":`...)
	b = appendTime(b, a.verifyAt)
	return append(b, `,"ok":true,"problems":0,"firstProblem":null,"durationSeconds":12.84}}`...)
}

// simServer is the simulated fleet.
type simServer struct {
	opt     simOptions
	period  time.Duration
	agents  []*simAgent
	phase   atomic.Int64
	started time.Time // of the phase

	statusN, eventsN, controlN, otherN, refused, hung, bytes atomic.Int64
}

func newSim(opt simOptions) *simServer {
	s := &simServer{opt: opt, period: opt.period()}
	boot := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	for i := range opt.agents {
		rng := rand.New(rand.NewPCG(opt.seed, uint64(i)))
		pair := rand.New(rand.NewPCG(opt.seed, uint64(i/2)|1<<62)) // the same draw for both nodes of a pair
		a := &simAgent{rng: rng, host: fmt.Sprintf("cdp-node-%05d.dc%d.example.net", i, i%3+1)}
		a.id = fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Int64N(1<<48))
		if pair.Float64() < opt.clustered && i/2*2+1 < opt.agents {
			a.cluster = fmt.Sprintf("cdp-cluster-%04d", i/2)
			a.node = fmt.Sprintf("cdp-node-%05d", i)
			a.passive = i%2 == 1
		}
		a.startedAt = boot.Add(time.Duration(rng.Int64N(int64(time.Hour))))
		a.pid = a.newPID()
		a.verifyAt = a.startedAt.Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
		a.procs = []proc{
			{name: "cdp", kind: "command", activeOnly: true, autoRestart: false},
			{name: "cdp-web", kind: "systemd", activeOnly: true, autoRestart: true},
			{name: "replicator", kind: "replicator", autoRestart: true},
		}
		a.event(a.startedAt, "agent_started", fmt.Sprintf("vigil-agent 1.4.2 started (pid %d)", a.pid), "", fmt.Sprintf(`,"version":"1.4.2","pid":%d`, a.pid))
		for j := range a.procs {
			p := &a.procs[j]
			p.state, p.generation = "stopped", rng.Int64N(12)
			if !p.activeOnly || !a.passive {
				a.start(a.startedAt.Add(time.Second), p, "startOnBoot")
			}
		}
		u := rng.Float64()
		switch {
		case u < opt.change:
			a.kind = crash
			if rng.IntN(3) == 0 {
				a.kind = lag
			}
		case u < opt.change+opt.restart:
			a.kind = restart
		case u < opt.change+opt.restart+opt.silent:
			a.kind = refuse
			if rng.IntN(2) == 0 {
				a.kind = hang
			}
		}
		a.offset = time.Duration(rng.Float64() * float64(s.period))
		s.agents = append(s.agents, a)
	}
	return s
}

// incidents switches the agents' incidents on (from now, each at its offset
// in the period) or off (ending those under way).
func (s *simServer) incidents(on bool) {
	now := time.Now()
	for _, a := range s.agents {
		a.mu.Lock()
		a.advance(now, &s.opt, s.period)
		a.on, a.next = on, now.Add(a.offset)
		if !on && a.active != none {
			a.finish(now)
		}
		a.mu.Unlock()
	}
}

func writeJSON(w http.ResponseWriter, code int, b []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (s *simServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := agentIndex(r.Context().Value(http.LocalAddrContextKey).(net.Addr))
	if i < 0 || i >= len(s.agents) {
		http.NotFound(w, r)
		return
	}
	a := s.agents[i]
	now := time.Now()
	a.mu.Lock()
	a.advance(now, &s.opt, s.period)
	if r.URL.Path == "/v1/status" {
		a.arrived(now, s.phase.Load(), s.opt.interval)
	}
	silent := a.active
	a.mu.Unlock()

	switch silent {
	case refuse:
		// Reset the connection, as a host whose agent is down answers a
		// connection (the one listener cannot refuse a single address).
		s.refused.Add(1)
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
		return
	case hang:
		s.hung.Add(1)
		a.mu.Lock()
		end := a.end
		a.mu.Unlock()
		t := time.NewTimer(time.Until(end))
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}

	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	b := (*bp)[:0]
	code := http.StatusOK
	a.mu.Lock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/status":
		s.statusN.Add(1)
		b = a.status(b, now)
		s.bytes.Add(int64(len(b)))
	case r.Method == http.MethodGet && r.URL.Path == "/v1/events":
		s.eventsN.Add(1)
		b = a.eventsPage(b, r)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/processes/"):
		s.controlN.Add(1)
		code, b = a.control(b, r, now)
	default:
		s.otherN.Add(1)
		b = append(b, `{"status":"ok"}`...)
	}
	a.mu.Unlock()
	*bp = b
	writeJSON(w, code, b)
}

func (a *simAgent) eventsPage(b []byte, r *http.Request) []byte {
	q := r.URL.Query()
	since, _ := strconv.ParseInt(q.Get("since"), 10, 64)
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		limit = 500
	}
	next := since
	b = append(b, `{"events":[`...)
	n := 0
	for _, e := range a.events {
		if e.seq <= since || n >= limit {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, e.raw...)
		next = e.seq
		n++
	}
	b = append(b, `],"next":`...)
	b = strconv.AppendInt(b, next, 10)
	return append(b, '}')
}

func (a *simAgent) control(b []byte, r *http.Request, t time.Time) (int, []byte) {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/processes/")
	name, verb, _ := strings.Cut(rest, "/")
	var p *proc
	for i := range a.procs {
		if a.procs[i].name == name {
			p = &a.procs[i]
		}
	}
	if p == nil {
		return http.StatusNotFound, append(b, `{"error":{"code":"unknown_process","message":"no such process"}}`...)
	}
	var req struct {
		IfGeneration *int64 `json:"ifGeneration"`
		Reason       string `json:"reason"`
		RequestedBy  string `json:"requestedBy"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	if req.IfGeneration != nil && *req.IfGeneration != p.generation {
		return http.StatusConflict, fmt.Appendf(b, `{"error":{"code":"stale_generation","message":"generation %d is not current","generation":%d}}`, *req.IfGeneration, p.generation)
	}
	by := fmt.Sprintf(`,"requestedBy":%q`, req.RequestedBy)
	switch verb {
	case "restart", "start":
		a.event(t, verb+"_requested", req.Reason, p.name, by)
		p.restarts++
		p.recentCrashes = 0
		a.start(t, p, verb+" requested by "+req.RequestedBy+": "+req.Reason)
		a.event(t, verb+"_done", req.Reason, p.name, by)
		if a.active == crash && a.target(crash) == p {
			a.active = none
		}
		return http.StatusAccepted, fmt.Appendf(b, `{"generation":%d,"pid":%d,"startedAt":"%s"}`, p.generation, p.pid, p.startedAt.UTC().Format("2006-01-02T15:04:05.000Z"))
	case "stop":
		a.event(t, "stop_requested", req.Reason, p.name, by)
		p.state, p.pid, p.startedAt, p.lastExit = "stopped", 0, time.Time{}, &exit{signal: "SIGTERM", at: t}
		a.event(t, "stop_done", req.Reason, p.name, by)
		return http.StatusAccepted, fmt.Appendf(b, `{"generation":%d,"state":"stopped"}`, p.generation)
	}
	return http.StatusNotFound, append(b, `{"error":{"code":"not_found","message":"no such route"}}`...)
}

// phaseReport is what the server measured between "start" and "stop".
type phaseReport struct {
	Seconds       float64 `json:"seconds"`
	Polls         int64   `json:"polls"`
	Retries       int64   `json:"retries"`
	Gaps          int64   `json:"gaps"`
	Late          int64   `json:"late"`
	MaxGapSeconds float64 `json:"maxGapSeconds"`
	// GapSeconds is the sum of the Gaps: interval × Gaps / GapSeconds is
	// the polls done per interval, whatever the edges of the phase cut.
	GapSeconds float64 `json:"gapSeconds"`
	// GapPercentiles are the 50th, 90th, 99th and 99.9th percentile of the
	// gaps closed in the phase, in percent of the interval.
	GapPercentiles [4]int `json:"gapPercentiles"`
	// Timeline counts the polls by tenth of the phase's expected length.
	Timeline    [10]int64 `json:"timeline"`
	MaxGapAgent int       `json:"maxGapAgent"`
	NeverPolled int       `json:"neverPolled"`
	Status      int64     `json:"status"`
	Events      int64     `json:"events"`
	Control     int64     `json:"control"`
	Other       int64     `json:"other"`
	Refused     int64     `json:"refused"`
	Hung        int64     `json:"hung"`
	StatusBytes int64     `json:"statusBytes"`
}

func (s *simServer) startPhase() {
	s.started = time.Now()
	for i := range gapHist {
		gapHist[i].Store(0)
	}
	for i := range timeline {
		timeline[i].Store(0)
	}
	phaseStart.Store(s.started.UnixNano())
	phaseLength.Store(int64(max(s.opt.steady, 1)) * int64(s.opt.interval))
	s.phase.Add(1)
	for _, c := range []*atomic.Int64{&s.statusN, &s.eventsN, &s.controlN, &s.otherN, &s.refused, &s.hung, &s.bytes} {
		c.Store(0)
	}
}

// report ends the phase. A gap still open at the end counts as well when
// it is already late (an agent the poller fell behind on).
func (s *simServer) report() phaseReport {
	now := time.Now()
	phase := s.phase.Load()
	s.phase.Add(1) // requests from now on belong to no phase
	r := phaseReport{Seconds: now.Sub(s.started).Seconds(), MaxGapAgent: -1,
		Status: s.statusN.Load(), Events: s.eventsN.Load(), Control: s.controlN.Load(), Other: s.otherN.Load(),
		Refused: s.refused.Load(), Hung: s.hung.Load(), StatusBytes: s.bytes.Load()}
	late := lateGap(s.opt.interval)
	var maxGap, sum time.Duration
	for i, a := range s.agents {
		a.mu.Lock()
		open, worst := now.Sub(s.started), time.Duration(0)
		if !a.last.IsZero() {
			open = now.Sub(a.last)
		}
		if a.phase != phase {
			r.NeverPolled++
		} else {
			r.Polls += a.polls
			r.Retries += a.retries
			r.Gaps += a.gaps
			r.Late += a.late
			sum += a.gapSum
			worst = a.maxGap
		}
		if open > late {
			r.Gaps++
			r.Late++
			sum += open
		}
		if gap := max(worst, open); gap > maxGap {
			maxGap, r.MaxGapAgent = gap, i
		}
		a.mu.Unlock()
	}
	var total, seen int64
	for i := range gapHist {
		total += gapHist[i].Load()
	}
	q := 0
	for i := range gapHist {
		seen += gapHist[i].Load()
		for ; q < 4 && float64(seen) >= []float64{0.5, 0.9, 0.99, 0.999}[q]*float64(total) && total > 0; q++ {
			r.GapPercentiles[q] = i
		}
	}
	r.MaxGapSeconds, r.GapSeconds = maxGap.Seconds(), sum.Seconds()
	for i := range timeline {
		r.Timeline[i] = timeline[i].Load()
	}
	return r
}

// info counts the agents by the incident they have, and the clustered ones.
func (s *simServer) info() string {
	var kinds [len(incidentNames)]int
	clustered := 0
	for _, a := range s.agents {
		kinds[a.kind]++
		if a.cluster != "" {
			clustered++
		}
	}
	var parts []string
	for k := crash; int(k) < len(incidentNames); k++ {
		parts = append(parts, fmt.Sprintf("%s %d", incidentNames[k], kinds[k]))
	}
	return fmt.Sprintf("%s agents (%d stable); %d in two-node clusters", strings.Join(parts, ", "), kinds[none], clustered)
}

// serve runs the simulated fleet until its control input ends. Commands, one
// a line: "incidents on|off", "start" (a phase), "stop" (prints the phase's
// report as one JSON line), "sample" (prints one status answer).
func serve(args []string) {
	var opt simOptions
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	opt.flags(fs)
	fs.IntVar(&opt.steady, "steady", 3, "")
	_ = fs.Parse(args)
	raiseFileLimit(uint64(opt.agents + 1000))
	s := newSim(opt)
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, "lo")
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	l, err := lc.Listen(context.Background(), "tcp4", fmt.Sprintf("0.0.0.0:%d", opt.port))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	go func() { _ = http.Serve(l, s) }()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "incidents on":
			s.incidents(true)
			fmt.Println("ok")
		case "incidents off":
			s.incidents(false)
			fmt.Println("ok")
		case "start":
			s.startPhase()
			fmt.Println("ok")
		case "stop":
			b, _ := json.Marshal(s.report())
			fmt.Println(string(b))
		case "info":
			fmt.Println(s.info())
		case "sample":
			a := s.agents[0]
			a.mu.Lock()
			b := a.status(nil, time.Now())
			a.mu.Unlock()
			fmt.Println(string(b))
		default:
			fmt.Println("error: unknown command")
		}
	}
	// The driver is gone: so is the fleet.
	os.Exit(0)
}
