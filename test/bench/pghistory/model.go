package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/outage"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// The simulated fleet. Every answer of every agent is a pure function of
// (agent, poll number): the bulk load, the polls given to the store's
// Append and the check of what the store compacted all see the same
// fleet. Poll k of agent i is sent at k×interval + the agent's phase, within
// ± 5 % of that slot (the engine's fixed grid), to the microsecond (what
// PostgreSQL keeps of a timestamp).
//
// Agents: half are pairs of an active and a passive node of a cluster, the
// rest standalone; each runs three processes, cdp (command), cdp-web
// (systemd) and replicator (with its protection lag, on active and
// standalone nodes). RTT and lag change at every poll (a per-agent level,
// a daily wave, noise and rare spikes).
//
// Incidents, each a time span of one agent, never overlapping:
//   - silence: no answer (GRACE, then FAILED past the budget of the
//     default policy: 182 s), then answers as before;
//   - restart: a silence after which every process runs in a new
//     generation with a new pid (an upgrade or a reboot);
//   - crash: one process exits; the poll that sees it restarts it
//     (RESTARTING, an action event, the agent's own exit event) and the
//     next poll sees the new generation;
//   - lag: the replicator lags past the RPO (DEGRADED) for minutes;
//   - error: the agent answers with an HTTP error (UNKNOWN).
//
// Rates per agent and day: 3 % of the agents are unstable (3 incidents a
// day), the others have one every 10 days; 0.5 % answer errors twice a day
// for 1 to 30 minutes; 0.2 % have one long outage (6 to 72 h) a month; 0.1 %
// always answer an error (a read token the agent refuses). From the write
// test on (applyStorm), a share of the agents changes state at every cycle
// and a share is silent throughout.

const (
	dayNs    = int64(24 * time.Hour)
	minuteNs = int64(time.Minute)
	hourNs   = int64(time.Hour)
	secondNs = int64(time.Second)
)

var procNames = [3]string{"cdp", "cdp-web", "replicator"}

type role uint8

const (
	standalone role = iota
	active
	passive
)

func (r role) String() string {
	switch r {
	case active:
		return "active"
	case passive:
		return "passive"
	}
	return ""
}

type incKind uint8

const (
	incSilence incKind = iota
	incRestart
	incCrash
	incLag
	incError
)

// incident is one span [start, end) of trouble of one agent.
type incident struct {
	start, end int64
	kind       incKind
	proc       int8 // crash: which process
	timeout    bool // silence: polls time out (2 s) rather than being refused
	peak       float64
	code       int // error: the HTTP status
}

type agentModel struct {
	name, cluster string
	role          role
	unstable      bool
	errorProne    bool
	longOutage    bool
	permError     bool
	phase         int64
	rttBase       float64 // ns
	lagBase       float64 // seconds
	gen0          [3]int64
	budget        outage.Budget
	passiveReason string // a process's reason on a passive node
	incs          []incident
	genAfter      [][3]int64 // generations gained once incident j ended
}

type model struct {
	seed     uint64
	interval int64
	agents   []agentModel
	// wave is the daily wave of RTT and lag, by minute of the day.
	wave [1440]float64
	// rpo is the default policy's RPO.
	rpo time.Duration
}

func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// u01 is a uniform number in [0, 1) from the seed, an agent, a number and a salt.
func (m *model) u01(i int, k int64, salt uint64) float64 {
	h := mix(m.seed ^ uint64(i)*0x9e3779b97f4a7c15 ^ uint64(k)*0xc2b2ae3d27d4eb4f ^ salt*0x165667b19e3779f9)
	return float64(h>>11) / (1 << 53)
}

// normal is about N(0, 1): the sum of four uniforms (16 bits of one hash
// each), scaled.
func (m *model) normal(i int, k int64, salt uint64) float64 {
	h := mix(m.seed ^ uint64(i)*0x9e3779b97f4a7c15 ^ uint64(k)*0xc2b2ae3d27d4eb4f ^ salt*0x165667b19e3779f9)
	s := float64(h&0xffff) + float64(h>>16&0xffff) + float64(h>>32&0xffff) + float64(h>>48)
	return (s/65536 - 2) * math.Sqrt(3)
}

func newModel(n int, interval time.Duration, seed uint64) *model {
	m := &model{seed: seed, interval: int64(interval), agents: make([]agentModel, n), rpo: fleet.DefaultPolicy().RPO}
	pol := fleet.DefaultPolicy()
	for i := range m.wave {
		m.wave[i] = math.Sin(2 * math.Pi * float64(i) / 1440)
	}
	for i := range m.agents {
		a := &m.agents[i]
		a.name = fmt.Sprintf("cdp-node-%05d", i)
		if i < n/4*2 {
			a.cluster = fmt.Sprintf("cluster-%04d", i/2)
			a.role = active
			if i%2 == 1 {
				a.role = passive
			}
			a.passiveReason = fmt.Sprintf("not expected on passive node %s of %s (stopped)", a.name, a.cluster)
		}
		a.budget = outage.Compute(outage.Inputs{Policy: pol, InCluster: a.cluster != ""})
		a.permError = m.u01(i, 0, 1) < 0.001
		if !a.permError {
			a.longOutage = m.u01(i, 0, 2) < 0.002
			a.unstable = m.u01(i, 0, 3) < 0.03
			a.errorProne = m.u01(i, 0, 4) < 0.005
		}
		a.phase = int64(m.u01(i, 0, 5)*float64(m.interval)) / 1000 * 1000
		a.rttBase = math.Exp(math.Log(2e6) + 0.8*m.normal(i, 0, 6))
		a.lagBase = 0.3 + 2.5*m.u01(i, 0, 7)
		for p := range a.gen0 {
			a.gen0[p] = 1 + int64(m.u01(i, int64(p), 8)*6)
		}
	}
	return m
}

// pollTime is when agent i sends poll k (Unix ns, to the microsecond).
func (m *model) pollTime(i int, k int64) int64 {
	a := &m.agents[i]
	jitter := int64((m.u01(i, k, 11) - 0.5) * 0.1 * float64(m.interval))
	t := k*m.interval + a.phase + jitter
	return t - t%1000
}

// firstPoll is the first poll of agent i at or after t.
func (m *model) firstPoll(i int, t int64) int64 {
	k := (t-m.agents[i].phase)/m.interval - 1
	for m.pollTime(i, k) < t {
		k++
	}
	return k
}

func (m *model) rtt(i int, k int64, t int64) time.Duration {
	a := &m.agents[i]
	v := a.rttBase * (1 + 0.25*m.wave[t%dayNs/minuteNs]) * math.Exp(0.3*m.normal(i, k, 12))
	if m.u01(i, k, 13) < 0.01 {
		v *= 3 + 10*m.u01(i, k, 14)
	}
	return time.Duration(v)
}

func (m *model) lag(i int, k int64, t int64) float64 {
	a := &m.agents[i]
	v := a.lagBase*(0.5+m.u01(i, k, 15)) + 0.8*math.Max(0, m.wave[t%dayNs/minuteNs])
	return math.Round(v*1000) / 1000
}

// generate draws the incidents of every agent from day `from` to day `to`
// (day numbers since the Unix epoch), the same for the same seed.
func (m *model) generate(from, to int64) {
	for i := range m.agents {
		a := &m.agents[i]
		a.incs = a.incs[:0]
		busy := int64(math.MinInt64 / 2)
		for d := from; d <= to; d++ {
			r := rand.New(rand.NewPCG(m.seed^mix(uint64(i)+17), uint64(d)))
			var day []incident
			arrivals := func(perDay float64, draw func(start int64) incident) {
				if perDay <= 0 {
					return
				}
				t := d * dayNs
				for {
					t += int64(r.ExpFloat64() / perDay * float64(dayNs))
					if t >= (d+1)*dayNs {
						return
					}
					day = append(day, draw(t))
				}
			}
			switch {
			case a.permError:
			case a.role == passive:
				rate := 0.1
				if a.unstable {
					rate = 3
				}
				arrivals(rate, func(s int64) incident {
					if r.Float64() < 0.7 {
						return m.silence(r, s, a.unstable)
					}
					return m.restart(r, s)
				})
			default:
				rate := 0.1
				if a.unstable {
					rate = 3
				}
				arrivals(rate, func(s int64) incident {
					x := r.Float64()
					if a.unstable {
						switch {
						case x < 0.35:
							return m.silence(r, s, true)
						case x < 0.65:
							return m.crash(r, i, s)
						case x < 0.90:
							return m.lagging(r, s, 2, 40)
						}
						return m.restart(r, s)
					}
					switch {
					case x < 0.4:
						return m.crash(r, i, s)
					case x < 0.7:
						return m.restart(r, s)
					}
					return m.silence(r, s, false)
				})
			}
			if a.errorProne {
				arrivals(2, func(s int64) incident { return m.erroring(r, s, 60, 1800) })
			}
			if a.longOutage {
				arrivals(1.0/30, func(s int64) incident {
					return incident{start: s, end: s + int64((6+66*r.Float64())*float64(hourNs)), kind: incSilence, timeout: r.Float64() < 0.5}
				})
			}
			sort.Slice(day, func(x, y int) bool { return day[x].start < day[y].start })
			for _, inc := range day {
				if inc.start < busy+minuteNs {
					continue
				}
				if inc.kind == incCrash {
					k := m.firstPoll(i, inc.start)
					inc.start = m.pollTime(i, k)
					inc.end = inc.start + 1000
				}
				a.incs = append(a.incs, inc)
				busy = inc.end
			}
		}
		m.gens(i)
	}
}

func (m *model) silence(r *rand.Rand, s int64, unstable bool) incident {
	d := 15 + 45*r.Float64()
	if unstable {
		d = math.Min(math.Max(15, math.Exp(math.Log(90)+1.3*r.NormFloat64())), 6*3600)
	}
	return incident{start: s, end: s + int64(d*float64(secondNs)), kind: incSilence, timeout: r.Float64() < 0.5}
}

func (m *model) restart(r *rand.Rand, s int64) incident {
	d := 20 + 40*r.Float64()
	if r.Float64() < 0.5 {
		d = 120 + 240*r.Float64()
	}
	return incident{start: s, end: s + int64(d*float64(secondNs)), kind: incRestart}
}

func (m *model) crash(r *rand.Rand, i int, s int64) incident {
	return incident{start: s, end: s + 1000, kind: incCrash, proc: int8(r.IntN(3))}
}

func (m *model) lagging(r *rand.Rand, s int64, minMin, maxMin float64) incident {
	d := minMin + (maxMin-minMin)*r.Float64()
	return incident{start: s, end: s + int64(d*float64(minuteNs)), kind: incLag, peak: 90 + 500*r.Float64()}
}

func (m *model) erroring(r *rand.Rand, s int64, minS, maxS float64) incident {
	d := minS + (maxS-minS)*r.Float64()
	code := 503
	if r.Float64() < 0.3 {
		code = 500
	}
	return incident{start: s, end: s + int64(d*float64(secondNs)), kind: incError, code: code}
}

// gens computes the generations each incident of agent i leaves behind.
func (m *model) gens(i int) {
	a := &m.agents[i]
	a.genAfter = make([][3]int64, len(a.incs))
	var g [3]int64
	for j, inc := range a.incs {
		switch inc.kind {
		case incCrash:
			g[inc.proc]++
		case incRestart:
			for p := range g {
				g[p]++
			}
		}
		a.genAfter[j] = g
	}
}

// applyStorm replaces agent incidents from `from` on: a share `failing`
// of the agents is silent from then on (for 3 days), and each of the others
// has incidents at a rate that makes about `change` of the agents change
// state at every interval (an incident changes the agent's state twice).
func (m *model) applyStorm(from int64, change, failing float64) {
	perCycle := change / 2
	perDay := perCycle * float64(dayNs) / float64(m.interval)
	for i := range m.agents {
		a := &m.agents[i]
		if a.permError {
			continue
		}
		j := sort.Search(len(a.incs), func(j int) bool { return a.incs[j].start >= from })
		a.incs = a.incs[:j]
		busy := int64(math.MinInt64 / 2)
		if j > 0 {
			busy = a.incs[j-1].end
		}
		r := rand.New(rand.NewPCG(m.seed^mix(uint64(i)+91), uint64(from/minuteNs)))
		if m.u01(i, 0, 21) < failing {
			s := max(from, busy+minuteNs)
			a.incs = append(a.incs, incident{start: s, end: s + 3*dayNs, kind: incSilence, timeout: true})
			m.gens(i)
			continue
		}
		t := from
		for t < from+dayNs {
			// An incident that would start during the previous one starts
			// a minute after it, so that the rate holds.
			t = max(t+int64(r.ExpFloat64()/perDay*float64(dayNs)), busy+minuteNs)
			var inc incident
			x := r.Float64()
			switch {
			case a.role == passive && x < 0.6, a.role != passive && x < 0.2:
				inc = incident{start: t, end: t + int64((15+105*r.Float64())*float64(secondNs)), kind: incSilence, timeout: r.Float64() < 0.5}
			case a.role == passive || x < 0.4:
				inc = m.erroring(r, t, 30, 180)
			case x < 0.7:
				inc = m.crash(r, i, t)
				k := m.firstPoll(i, inc.start)
				inc.start = m.pollTime(i, k)
				inc.end = inc.start + 1000
			default:
				inc = m.lagging(r, t, 1, 5)
			}
			a.incs = append(a.incs, inc)
			busy = inc.end
		}
		m.gens(i)
	}
}

// at finds the incident of agent i at t: its index and whether t is in
// it; otherwise the index of the last incident before t (-1: none).
func (m *model) at(i int, t int64) (int, bool) {
	a := &m.agents[i]
	j := sort.Search(len(a.incs), func(j int) bool { return a.incs[j].start > t }) - 1
	return j, j >= 0 && t < a.incs[j].end
}

// quiet says whether agent i has no incident that overlaps [from, to).
func (m *model) quiet(i int, from, to int64) bool {
	a := &m.agents[i]
	j := sort.Search(len(a.incs), func(j int) bool { return a.incs[j].start >= to }) - 1
	return j < 0 || a.incs[j].end <= from
}

// generations of agent i's processes after incident j (before the first: -1).
func (m *model) generations(i, j int) [3]int64 {
	a := &m.agents[i]
	g := a.gen0
	if j >= 0 {
		for p := range g {
			g[p] += a.genAfter[j][p]
		}
	}
	return g
}

func (m *model) pid(i, p int, gen int64) int64 {
	return 1000 + int64(m.u01(i, gen, 30+uint64(p))*60000)
}

// builder builds observations and runs with few allocations; one per
// goroutine.
type builder struct {
	m      *model
	floats []float64
	procs  []history.ProcessObservation
	cache  []reasonCache
}

type reasonCache struct {
	gens  [3]int64
	ok    bool
	agent string
	procs [3]string
}

func newBuilder(m *model) *builder {
	return &builder{m: m, cache: make([]reasonCache, len(m.agents))}
}

func (b *builder) f(v float64) *float64 {
	if len(b.floats) == cap(b.floats) {
		b.floats = make([]float64, 0, 8192)
	}
	b.floats = append(b.floats, v)
	return &b.floats[len(b.floats)-1]
}

func (b *builder) ps(n int) []history.ProcessObservation {
	if cap(b.procs)-len(b.procs) < n {
		b.procs = make([]history.ProcessObservation, 0, 3*4096)
	}
	l := len(b.procs)
	b.procs = b.procs[:l+n]
	return b.procs[l : l+n : l+n]
}

func (b *builder) reasons(i int, g [3]int64) *reasonCache {
	c := &b.cache[i]
	if c.ok && c.gens == g {
		return c
	}
	c.ok, c.gens = true, g
	for p := range procNames {
		c.procs[p] = fmt.Sprintf("running (pid %d, generation %d)", b.m.pid(i, p, g[p]), g[p])
	}
	c.agent = procNames[0] + ": " + c.procs[0]
	return c
}

// base is poll k of agent i at t when nothing is wrong.
func (b *builder) base(i int, k, t int64, g [3]int64) history.Observation {
	m := b.m
	a := &m.agents[i]
	o := history.Observation{Time: time.Unix(0, t).UTC(), Answered: true, Agent: a.name, RTT: m.rtt(i, k, t),
		BudgetSeconds: a.budget.Total.Seconds(), Role: a.role.String(), Cluster: a.cluster}
	switch {
	case a.permError:
		o.State, o.Reason = state.Unknown, "the agent answered with an error: HTTP 401: the read token is not accepted"
	case a.role == passive:
		o.State, o.Reason = state.Standby, procNames[0]+": "+a.passiveReason
		o.Processes = b.ps(3)
		for p := range procNames {
			o.Processes[p] = history.ProcessObservation{Name: procNames[p], State: state.Standby, Reason: a.passiveReason, Generation: g[p]}
		}
	default:
		c := b.reasons(i, g)
		o.State, o.Reason = state.OK, c.agent
		o.Processes = b.ps(3)
		for p := range procNames {
			o.Processes[p] = history.ProcessObservation{Name: procNames[p], State: state.OK, Reason: c.procs[p], Generation: g[p]}
		}
		o.Processes[2].LagSeconds = b.f(m.lag(i, k, t))
	}
	return o
}

// obs is poll k of agent i as the engine records it.
func (b *builder) obs(i int, k int64) history.Observation {
	m := b.m
	a := &m.agents[i]
	t := m.pollTime(i, k)
	j, in := m.at(i, t)
	if !in {
		return b.base(i, k, t, m.generations(i, j))
	}
	g := m.generations(i, j-1)
	inc := &a.incs[j]
	switch inc.kind {
	case incSilence, incRestart:
		kp := m.firstPoll(i, inc.start) - 1
		tp := m.pollTime(i, kp)
		o := b.base(i, kp, tp, g)
		late := 3 * time.Millisecond
		if inc.timeout {
			late = 2 * time.Second
		}
		jd := a.budget.Judge(time.Duration(t-tp) + late)
		o.Time, o.Answered, o.State, o.Reason = time.Unix(0, t).UTC(), false, jd.State, jd.Reason
		for p := range o.Processes {
			o.Processes[p].State, o.Processes[p].Reason = jd.State, jd.Reason
		}
		return o
	case incCrash:
		o := b.base(i, k, t, g)
		p := inc.proc
		r := fmt.Sprintf("restarted (generation %d); awaiting confirmation", g[p]+1)
		o.Processes[p].State, o.Processes[p].Reason = state.Restarting, r
		if p == 2 {
			o.Processes[p].LagSeconds = nil
		}
		o.State, o.Reason = state.Restarting, procNames[p]+": "+r
		return o
	case incLag:
		o := b.base(i, k, t, g)
		x := float64(t-inc.start) / float64(inc.end-inc.start)
		lag := m.rpo.Seconds() + 0.5 + inc.peak*math.Sin(math.Pi*x) + m.lag(i, k, t)
		lag = math.Round(lag*1000) / 1000
		o.Processes[2].LagSeconds = b.f(lag)
		r := fmt.Sprintf("protection lag %s exceeds RPO %s", outage.Seconds(time.Duration(lag*float64(time.Second))), outage.Seconds(m.rpo))
		o.Processes[2].State, o.Processes[2].Reason = state.Degraded, r
		o.State, o.Reason = state.Degraded, procNames[2]+": "+r
		return o
	default: // incError
		kp := m.firstPoll(i, inc.start) - 1
		o := b.base(i, kp, m.pollTime(i, kp), g)
		o.Time, o.RTT = time.Unix(0, t).UTC(), m.rtt(i, k, t)
		detail := "the supervisor is reloading its configuration"
		if inc.code == 500 {
			detail = "internal error: status snapshot failed"
		}
		r := fmt.Sprintf("the agent answered with an error: HTTP %d: %s", inc.code, detail)
		o.State, o.Reason = state.Unknown, r
		for p := range o.Processes {
			o.Processes[p].State, o.Processes[p].Reason = state.Unknown, r
		}
		return o
	}
}

// events are what the engine records at poll k of agent i (prev is poll
// k-1): the agent's own events it copies, actions, then state changes.
func (b *builder) events(i int, k int64, prev, cur *history.Observation) []history.Event {
	m := b.m
	a := &m.agents[i]
	t := cur.Time.UnixNano()
	now := cur.Time.Add(cur.RTT + time.Millisecond)
	if !cur.Answered {
		now = cur.Time.Add(3 * time.Millisecond)
	}
	var out []history.Event
	agentEvent := func(n int, typ, proc, reason string, gen int64) {
		g := gen
		pid := m.pid(i, 0, gen)
		raw, _ := json.Marshal(agentclient.Event{Seq: k*8 + int64(n), Time: cur.Time.Add(-time.Duration(n+1) * time.Second), Type: typ,
			Reason: reason, Process: proc, Generation: &g, PID: &pid})
		out = append(out, history.Event{Type: history.TypeAgent, Time: now, Agent: a.name, Process: proc, AgentEvent: raw})
	}
	j, in := m.at(i, t)
	if in && a.incs[j].kind == incCrash {
		inc := a.incs[j]
		p := int(inc.proc)
		g := m.generations(i, j-1)[p]
		code := int64(137)
		agentEvent(0, "exited", procNames[p], "exited with code "+strconv.FormatInt(code, 10), g)
		out = append(out, history.Event{Type: history.TypeAction, Time: now, Agent: a.name, Process: procNames[p],
			Action: "restart", By: "auto", Generation: g + 1, Result: "ok"})
	}
	if !in && j >= 0 && prev.Time.UnixNano() < a.incs[j].end {
		// The first poll after an incident.
		switch a.incs[j].kind {
		case incRestart:
			g := m.generations(i, j)
			agentEvent(0, "agent_started", "", "the agent started", 0)
			for p := range procNames {
				if a.role != passive {
					agentEvent(p+1, "started", procNames[p], "started by the agent", g[p])
				}
			}
		case incCrash:
			g := m.generations(i, j)
			p := int(a.incs[j].proc)
			agentEvent(1, "started", procNames[p], "restart requested by vigil", g[p])
		}
	}
	budget := a.budget.Total.Seconds()
	if prev.State != cur.State {
		ev := history.Event{Type: history.TypeState, Time: now, Agent: a.name, From: prev.State, To: cur.State, Reason: cur.Reason, BudgetSeconds: budget}
		if cur.State == state.Failed {
			ev.Diagnosis = "no TCP connection to " + a.name + ":7070: connection timed out (the host does not answer ping either)"
		}
		out = append(out, ev)
	}
	for p := range cur.Processes {
		from := state.Unknown
		if p < len(prev.Processes) {
			from = prev.Processes[p].State
		}
		if from != cur.Processes[p].State {
			out = append(out, history.Event{Type: history.TypeState, Time: now, Agent: a.name, Process: cur.Processes[p].Name,
				From: from, To: cur.Processes[p].State, Reason: cur.Processes[p].Reason, BudgetSeconds: budget})
		}
	}
	return out
}

// silences is the silence the engine records at poll k of agent i: at the
// first answer after one.
func (b *builder) silences(i int, prev, cur *history.Observation) []history.Silence {
	if prev.Answered || !cur.Answered {
		return nil
	}
	m := b.m
	a := &m.agents[i]
	j, _ := m.at(i, prev.Time.UnixNano())
	if j < 0 {
		return nil
	}
	inc := a.incs[j]
	kind := outage.NetworkInterruption
	if inc.kind == incRestart {
		kind = outage.Restart
	}
	kp := m.firstPoll(i, inc.start) - 1
	last := time.Unix(0, m.pollTime(i, kp)).UTC()
	return []history.Silence{{Agent: a.name, Cluster: a.cluster, Kind: string(kind), Start: last, Duration: cur.Time.Sub(last)}}
}

// significant is the engine's test for writing the resume record now.
func significant(prev, next *history.Observation) bool {
	if prev.State != next.State || prev.Reason != next.Reason || prev.Role != next.Role || prev.Cluster != next.Cluster ||
		prev.Answered != next.Answered || len(prev.Processes) != len(next.Processes) {
		return true
	}
	for i := range next.Processes {
		p, q := &next.Processes[i], &prev.Processes[i]
		if p.State != q.State || p.Reason != q.Reason || p.Generation != q.Generation {
			return true
		}
	}
	return false
}

// Runs, as pkg/history/runs.go forms them: consecutive polls of one agent
// within one minute whose answers differ only in time, RTT, lag and budget.

func sameShape(a, b *history.Observation) bool {
	if a.Agent != b.Agent || a.Answered != b.Answered || a.State != b.State || a.Reason != b.Reason ||
		a.Role != b.Role || a.Cluster != b.Cluster || len(a.Processes) != len(b.Processes) {
		return false
	}
	for i := range a.Processes {
		p, q := &a.Processes[i], &b.Processes[i]
		if p.Name != q.Name || p.State != q.State || p.Reason != q.Reason || p.Generation != q.Generation ||
			p.AutoRestartSuspended != q.AutoRestartSuspended || (p.LagSeconds == nil) != (q.LagSeconds == nil) {
			return false
		}
	}
	return a.Time.Truncate(time.Minute).Equal(b.Time.Truncate(time.Minute))
}

// absorb makes run r stand also for the single poll o after it.
func (b *builder) absorb(r *history.Observation, o *history.Observation) {
	b.absorbCounters(r, o.Time, o.RTT, o.BudgetSeconds, func(p int) *float64 { return o.Processes[p].LagSeconds })
}

func (b *builder) absorbCounters(r *history.Observation, t time.Time, rtt time.Duration, budget float64, lag func(p int) *float64) {
	lo, hi := r.RTT, r.RTT
	if r.PollCount() > 1 {
		lo, hi = r.RTTMin, r.RTTMax
	}
	r.RTTMin, r.RTTMax = min(lo, rtt), max(hi, rtt)
	for p := range r.Processes {
		rp := &r.Processes[p]
		q := lag(p)
		plo, phi := rp.LagSeconds, rp.LagSeconds
		if rp.LagMin != nil {
			plo, phi = rp.LagMin, rp.LagMax
		}
		if l := lowF(plo, q); l != nil {
			rp.LagMin = b.f(*l)
		}
		if h := highF(phi, q); h != nil {
			rp.LagMax = b.f(*h)
		}
		rp.LagSeconds = q
	}
	r.Polls = r.PollCount() + 1
	r.Until = t
	r.RTT, r.BudgetSeconds = rtt, budget
}

// absorbQuiet is absorb for a poll of the same shape whose only process
// with a lag is the replicator (the third): the values absorb gives, with
// the run's own lag values updated in place.
func (b *builder) absorbQuiet(r *history.Observation, t int64, rtt time.Duration, lag func() float64) {
	lo, hi := r.RTT, r.RTT
	if r.PollCount() > 1 {
		lo, hi = r.RTTMin, r.RTTMax
	}
	r.RTTMin, r.RTTMax = min(lo, rtt), max(hi, rtt)
	if len(r.Processes) == 3 && r.Processes[2].LagSeconds != nil {
		p := &r.Processes[2]
		q := lag()
		if p.LagMin == nil {
			p.LagMin, p.LagMax = b.f(min(*p.LagSeconds, q)), b.f(max(*p.LagSeconds, q))
		} else {
			*p.LagMin, *p.LagMax = min(*p.LagMin, q), max(*p.LagMax, q)
		}
		*p.LagSeconds = q
	}
	r.Polls = r.PollCount() + 1
	r.Until = time.Unix(0, t).UTC()
	r.RTT = rtt
}

func lowF(a, b *float64) *float64 {
	if a == nil || (b != nil && *b < *a) {
		return b
	}
	return a
}

func highF(a, b *float64) *float64 {
	if a == nil || (b != nil && *b > *a) {
		return b
	}
	return a
}

// hourStats are what a worker learns while building chunks.
type hourStats struct {
	polls       int64
	slowMinutes int64
}

// chunk appends to runs agent i's runs of the polls in [from, to) (at
// most an hour, starting on a minute), and its events and silences to evs
// and sils; a minute with no incident near it is built in one step.
func (b *builder) chunk(runs []history.Observation, i int, from, to int64, evs *[]history.Event, sils *[]history.Silence, st *hourStats) []history.Observation {
	m := b.m
	k := m.firstPoll(i, from)
	for ms := from; ms < to; ms += minuteNs {
		me := min(ms+minuteNs, to)
		t := m.pollTime(i, k)
		if t >= me {
			continue
		}
		if m.quiet(i, ms-21*secondNs, me+secondNs) {
			j, _ := m.at(i, t)
			run := b.base(i, k, t, m.generations(i, j))
			st.polls++
			for k++; ; k++ {
				t = m.pollTime(i, k)
				if t >= me {
					break
				}
				st.polls++
				b.absorbQuiet(&run, t, m.rtt(i, k, t), func() float64 { return m.lag(i, k, t) })
			}
			runs = append(runs, run)
			continue
		}
		st.slowMinutes++
		prev := b.obs(i, k-1)
		first := len(runs)
		for ; ; k++ {
			if m.pollTime(i, k) >= me {
				break
			}
			st.polls++
			o := b.obs(i, k)
			*evs = append(*evs, b.events(i, k, &prev, &o)...)
			*sils = append(*sils, b.silences(i, &prev, &o)...)
			if n := len(runs); n > first && sameShape(&runs[n-1], &o) {
				b.absorb(&runs[n-1], &o)
			} else {
				runs = append(runs, o)
			}
			prev = o
		}
	}
	return runs
}
