package engine

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/response"
	"github.com/vigil-cdp/vigil/pkg/textlimit"
)

// What one agent can make the engine write to the history. An agent is a
// peer the monitor does not control: whatever it answers, what it adds to
// the history is bounded per poll and per hour. A healthy agent never
// reaches these bounds (it records a few events a minute, each a few
// hundred bytes); docs/engine.md ("What one agent can write") derives the
// bounds from them.
const (
	// MaxNameBytes bounds an identifier an agent sends (agent id, version,
	// hostname, cluster, node, process name and kind, signal, replicator
	// state, and its events' type, process, requestedBy, from and to), as
	// stored JSON. A longer one is cut and ends with "…(truncated, N bytes)".
	MaxNameBytes = 256
	// MaxTextBytes bounds a text stored in the history (reasons, messages,
	// errors, diagnoses), as stored JSON, cut the same way.
	MaxTextBytes = 1024
	// MaxProcesses is the most processes an answer may list; an answer
	// with more is not understood (UNKNOWN).
	MaxProcesses = 32
	// MaxAgentEventsPerPoll is the most of the agent's own events one poll
	// reads (one page of GET /v1/events); more in one answer are dropped.
	MaxAgentEventsPerPoll = 500
	// MaxAgentEventBytes bounds one of the agent's events as stored (its
	// JSON); its strings are cut to fit.
	MaxAgentEventBytes = 4096
	// MaxIDResetsPerHour is how often per hour a change of agent.id makes
	// the engine read the agent's event log again from its start. Beyond
	// it the agent is still polled and judged, but its events are not read
	// until its id settles.
	MaxIDResetsPerHour = 4
	// AgentEventBytesPerHour is the history budget of one agent's own
	// events: a token bucket of this many bytes, refilled at this many
	// bytes per hour on the engine's clock. Events the budget cannot take
	// are read later (the cursor waits), not lost by the engine.
	AgentEventBytesPerHour = 2 << 20
	// LimitNoticeEvery: at most one history_limit event per agent this
	// often, saying what was dropped, cut or put off since the last one.
	LimitNoticeEvery = time.Minute
)

func clipPtr(p **string, max int) {
	if *p != nil {
		s := textlimit.Clip(**p, max)
		*p = &s
	}
}

// boundStatus cuts every string of a parsed answer to its bound, before it
// is judged: reasons, snapshots and resume records built from it are then
// bounded too. A healthy agent's strings are far shorter.
func boundStatus(st *response.Status) {
	st.APIVersion = textlimit.Clip(st.APIVersion, MaxNameBytes)
	st.Agent.ID = textlimit.Clip(st.Agent.ID, MaxNameBytes)
	st.Agent.Version = textlimit.Clip(st.Agent.Version, MaxNameBytes)
	st.Agent.Hostname = textlimit.Clip(st.Agent.Hostname, MaxNameBytes)
	if c := st.Cluster; c != nil {
		c.Name, c.Node, c.Role = textlimit.Clip(c.Name, MaxNameBytes), textlimit.Clip(c.Node, MaxNameBytes), textlimit.Clip(c.Role, MaxNameBytes)
		clipPtr(&c.RoleError, MaxTextBytes)
	}
	for i := range st.Processes {
		p := &st.Processes[i]
		p.Name, p.Kind, p.State = textlimit.Clip(p.Name, MaxNameBytes), textlimit.Clip(p.Kind, MaxNameBytes), textlimit.Clip(p.State, MaxNameBytes)
		if e := p.LastExit; e != nil {
			clipPtr(&e.Signal, MaxNameBytes)
		}
		if pr := p.Protection; pr != nil {
			clipPtr(&pr.State, MaxNameBytes)
			clipPtr(&pr.Message, MaxTextBytes)
			if v := pr.Verify; v != nil {
				clipPtr(&v.FirstProblem, MaxTextBytes)
			}
		}
	}
}

// boundSnapshot cuts the strings of a snapshot that may come from an
// agent (directly, or quoted in a reason or an error).
func boundSnapshot(s *AgentSnapshot) {
	s.Reason, s.LastError, s.Diagnosis = textlimit.Clip(s.Reason, MaxTextBytes), textlimit.Clip(s.LastError, MaxTextBytes), textlimit.Clip(s.Diagnosis, MaxTextBytes)
	for i := range s.Processes {
		p := &s.Processes[i]
		p.Reason = textlimit.Clip(p.Reason, MaxTextBytes)
		if la := p.LastAction; la != nil && textlimit.JSONLen(la.Error) > MaxTextBytes {
			c := *la
			c.Error = textlimit.Clip(c.Error, MaxTextBytes)
			p.LastAction = &c
		}
	}
}

// boundEvent cuts the strings of an event the engine made (state change,
// action, note); names were bounded with the answer they came from.
func boundEvent(ev *Event) {
	ev.Process = textlimit.Clip(ev.Process, MaxNameBytes)
	ev.Reason, ev.Diagnosis, ev.Error = textlimit.Clip(ev.Reason, MaxTextBytes), textlimit.Clip(ev.Diagnosis, MaxTextBytes), textlimit.Clip(ev.Error, MaxTextBytes)
}

// boundAgentEvent returns one of the agent's own events as stored: its
// strings cut to their bounds, and all of them to MaxNameBytes should the
// event still exceed MaxAgentEventBytes. cut says whether anything was cut.
func boundAgentEvent(ev agentclient.Event) (raw []byte, cut bool) {
	orig := ev
	strs := func(e *agentclient.Event, name, text int) {
		e.Type, e.Reason, e.Process = textlimit.Clip(e.Type, name), textlimit.Clip(e.Reason, text), textlimit.Clip(e.Process, name)
		e.RequestedBy, e.To = textlimit.Clip(e.RequestedBy, name), textlimit.Clip(e.To, name)
		clipPtr(&e.Signal, name)
		clipPtr(&e.From, name)
	}
	strs(&ev, MaxNameBytes, MaxTextBytes)
	raw, _ = json.Marshal(ev)
	if len(raw) > MaxAgentEventBytes {
		strs(&ev, MaxNameBytes/2, MaxNameBytes)
		raw, _ = json.Marshal(ev)
	}
	cut = ev.Type != orig.Type || ev.Reason != orig.Reason || ev.Process != orig.Process || ev.RequestedBy != orig.RequestedBy ||
		ev.To != orig.To || (ev.Signal != nil && *ev.Signal != *orig.Signal) || (ev.From != nil && *ev.From != *orig.From)
	return raw, cut
}

// storedSize is what one event adds to the history: its JSON, its key and
// its index entry (see package history).
func storedSize(ev Event) int {
	raw, _ := json.Marshal(ev)
	return len(raw) + 16 + len(ev.Agent) + 1 + 16
}

// eventBucket is one agent's history budget for its own events: a token
// bucket of AgentEventBytesPerHour bytes, refilled at that rate. It is part
// of the resume record, so that a restarted engine does not refill it.
type eventBucket struct {
	// Used is how many bytes the bucket lacks at At (0: full).
	Used float64   `json:"used"`
	At   time.Time `json:"at"`
}

// available returns the bytes the bucket holds at now.
func (b *eventBucket) available(now time.Time) float64 {
	if !b.At.IsZero() && now.After(b.At) {
		b.Used -= now.Sub(b.At).Hours() * AgentEventBytesPerHour
		if b.Used < 0 {
			b.Used = 0
		}
	}
	if b.At.IsZero() || now.After(b.At) {
		b.At = now
	}
	return AgentEventBytesPerHour - b.Used
}

// take spends n bytes if the bucket holds them.
func (b *eventBucket) take(now time.Time, n int) bool {
	if b.available(now) < float64(n) {
		return false
	}
	b.Used += float64(n)
	return true
}

// limitNotes gathers what the limits did to one agent's writes since the
// last history_limit event.
type limitNotes struct {
	lastAt time.Time
	// idChanges are the times of the agent.id changes within the last hour.
	idChanges []time.Time
	// unread: polls whose events were not read because the id changed too often.
	unread int
	// dropped: events beyond the per-poll limit in one answer.
	dropped int
	// cut: events cut to MaxAgentEventBytes.
	cut int
	// deferred: polls that left events unread for the budget.
	deferred int
}

func (n *limitNotes) pending() bool { return n.unread+n.dropped+n.cut+n.deferred > 0 }

// idChanged records a change of agent.id at now and returns the changes
// within the last hour.
func (n *limitNotes) idChanged(now time.Time) int {
	n.idChanges = append(n.idChanges, now)
	i := 0
	for i < len(n.idChanges) && now.Sub(n.idChanges[i]) >= time.Hour {
		i++
	}
	n.idChanges = n.idChanges[i:]
	return len(n.idChanges)
}

// notice returns the history_limit event due at now, if any, and starts
// a new count.
func (n *limitNotes) notice(agent string, now time.Time) (Event, bool) {
	if !n.pending() || (!n.lastAt.IsZero() && now.Sub(n.lastAt) < LimitNoticeEvery) {
		return Event{}, false
	}
	var parts []string
	if n.unread > 0 {
		parts = append(parts, fmt.Sprintf("agent id changed %s this hour (limit %d); events not re-read (%s)",
			times(len(n.idChanges), "time"), MaxIDResetsPerHour, times(n.unread, "poll")))
	}
	if n.dropped > 0 {
		parts = append(parts, fmt.Sprintf("dropped %s (per-poll limit %d)", times(n.dropped, "event"), MaxAgentEventsPerPoll))
	}
	if n.cut > 0 {
		parts = append(parts, fmt.Sprintf("%s truncated (strings cut to fit %d bytes an event)", times(n.cut, "event"), MaxAgentEventBytes))
	}
	if n.deferred > 0 {
		parts = append(parts, fmt.Sprintf("events put off (%s): this agent's history budget of %d bytes per hour is spent",
			times(n.deferred, "poll"), AgentEventBytesPerHour))
	}
	*n = limitNotes{lastAt: now, idChanges: n.idChanges}
	return Event{Type: history.TypeLimit, Time: now, Agent: agent, Reason: textlimit.Clip(strings.Join(parts, "; "), MaxTextBytes)}, true
}

func times(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return thousands(n) + " " + what + "s"
}

// thousands writes n with commas: 4,500.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
