package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/frames"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// Query types. QueryTypeStatus is used when a query has none.
const (
	QueryTypeStatus   = "status"
	QueryTypeTimeline = "timeline"
	QueryTypeMetrics  = "metrics"
	QueryTypeEvents   = "events"
)

// historyReader is what queries read from the history store.
type historyReader interface {
	Observations(q history.Query) ([]history.Observation, error)
	Events(q history.Query) ([]history.Event, error)
}

// source is what one query is answered from: the engine's live snapshot
// and its history.
type source struct {
	snap         engine.Snapshot
	hist         historyReader
	pollInterval time.Duration
	// startedAt is when the engine started; staleness counts from it until
	// every agent has been polled.
	startedAt time.Time
	// shared is the monitor's view of a shared history (nil: its own).
	shared *engine.SharedView
	// alert is set for queries from Grafana Alerting (the FromAlert header):
	// answers are shaped for its server-side expressions (docs/alerting.md),
	// and an agent the engine has not judged since it started is UNKNOWN.
	alert bool
}

type queryHandler func(src source, q backend.DataQuery, f filter) (data.Frames, error)

var queryHandlers = map[string]queryHandler{
	QueryTypeStatus:   queryStatus,
	QueryTypeTimeline: queryTimeline,
	QueryTypeMetrics:  queryMetrics,
	QueryTypeEvents:   queryEvents,
}

// QueryTypes lists the query types in the order the query editor offers them
// (generated into src/shared/contract.gen.ts).
func QueryTypes() []string {
	return []string{QueryTypeStatus, QueryTypeTimeline, QueryTypeMetrics, QueryTypeEvents}
}

// QueryData answers each query on its own: one bad query does not fail the
// others in the same panel or alert rule. Queries from Grafana Alerting
// (the FromAlert header) are answered in the shapes its server-side
// expressions read.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	alert := fromAlert(req.Headers)
	orgErr := d.otherOrg(req.PluginContext)
	for _, q := range req.Queries {
		if orgErr != nil {
			resp.Responses[q.RefID] = backend.ErrDataResponseWithSource(backend.StatusForbidden, backend.ErrorSourceDownstream, orgErr.Error())
			continue
		}
		resp.Responses[q.RefID] = d.query(ctx, q, alert)
	}
	return resp, nil
}

// fromAlert reports whether Grafana Alerting sent the request: it sets the
// FromAlert header to "true" when it evaluates a rule.
func fromAlert(headers map[string]string) bool {
	for k, v := range headers {
		if strings.EqualFold(k, backend.FromAlertHeaderName) && strings.EqualFold(strings.TrimSpace(v), "true") {
			return true
		}
	}
	return false
}

func (d *Datasource) query(ctx context.Context, q backend.DataQuery, alert bool) backend.DataResponse {
	if d.settingsErr != nil {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream,
			"the Vigil datasource is misconfigured; fix its settings: "+d.settingsErr.Error())
	}
	queryType := q.QueryType
	if queryType == "" {
		queryType = QueryTypeStatus
	}
	handler, ok := queryHandlers[queryType]
	if !ok {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream,
			fmt.Sprintf("unknown query type %q: known query types are %s", q.QueryType, strings.Join(QueryTypes(), ", ")))
	}
	f, err := parseFilter(q.JSON, queryType)
	if err != nil {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, err.Error())
	}
	src, status, err := d.source(ctx, alert)
	if err != nil {
		return backend.ErrDataResponseWithSource(backend.Status(status), backend.ErrorSourcePlugin, err.Error())
	}
	fr, err := handler(src, q, f)
	if err != nil {
		return backend.ErrDataResponseWithSource(backend.StatusInternal, backend.ErrorSourcePlugin, err.Error())
	}
	return backend.DataResponse{Status: backend.StatusOK, Frames: frames.WithDatasource(fr, d.uid)}
}

// firstRoundWait bounds how long an alert query waits for a monitor that
// has just started to poll every agent once: Grafana restarted, its first
// rule evaluation should see the agents as they are now, not only their
// history. A poll takes at most the agent's response time and processing
// budget (2 s by default).
const firstRoundWait = 5 * time.Second

// source starts the engine when needed and returns what a query reads. An
// alert query (which also counts as what keeps the monitor running) first
// waits (bounded by firstRoundWait and by half of what remains of the
// request's deadline) until the engine has judged every agent once; an
// agent still not judged then is answered as UNKNOWN.
func (d *Datasource) source(ctx context.Context, alert bool) (source, int, error) {
	u := useRequest
	if alert {
		u = useAlert
	}
	m, err := d.monitors.engineFor(d, u)
	if err != nil {
		return source{}, http.StatusInternalServerError, fmt.Errorf("the Vigil monitor cannot run: %w", err)
	}
	if alert {
		if deadline, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Until(deadline)/2)
			defer cancel()
		}
		m.eng.WaitFirstRound(ctx, firstRoundWait)
	}
	var shared *engine.SharedView
	if _, ok := m.store.(history.Shared); ok {
		v := m.eng.Shared()
		shared = &v
	}
	return source{
		shared:       shared,
		snap:         m.eng.Snapshot(),
		hist:         m.store,
		pollInterval: m.eng.Config().PollInterval,
		startedAt:    m.startedAt,
		alert:        alert,
	}, http.StatusOK, nil
}

// queryModel is the query as dashboards and alert rules store it.
type queryModel struct {
	Agents  []string `json:"agents"`
	Cluster string   `json:"cluster"`
	States  []string `json:"states"`
	Metrics []string `json:"metrics"`
}

// filter is a parsed queryModel; nil maps select everything.
type filter struct {
	agents  map[string]bool
	cluster string
	states  map[state.State]bool
	metrics map[string]bool
}

var knownMetrics = func() map[string]bool {
	m := map[string]bool{}
	for _, list := range [][]string{frames.AgentMetrics, frames.ProcessMetrics, frames.EngineMetrics} {
		for _, name := range list {
			m[name] = true
		}
	}
	return m
}()

func parseFilter(raw json.RawMessage, queryType string) (filter, error) {
	var qm queryModel
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &qm); err != nil {
			return filter{}, fmt.Errorf("the query is not valid: %v", err)
		}
	}
	var f filter
	for _, a := range qm.Agents {
		a = strings.TrimSpace(a)
		switch a {
		case "", "*", "$__all", "All":
			continue // a variable's "All" stands for every agent
		}
		if f.agents == nil {
			f.agents = map[string]bool{}
		}
		f.agents[a] = true
	}
	f.cluster = strings.TrimSpace(qm.Cluster)
	for i, name := range qm.States {
		s, err := state.Parse(strings.ToUpper(strings.TrimSpace(name)))
		if err != nil {
			return filter{}, fmt.Errorf("states[%d]: %v", i, err)
		}
		if f.states == nil {
			f.states = map[state.State]bool{}
		}
		f.states[s] = true
	}
	for i, name := range qm.Metrics {
		if !knownMetrics[name] {
			return filter{}, fmt.Errorf("metrics[%d]: unknown metric %q: known metrics are %s, %s, %s", i, name,
				strings.Join(frames.AgentMetrics, ", "), strings.Join(frames.ProcessMetrics, ", "), strings.Join(frames.EngineMetrics, ", "))
		}
		if queryType != QueryTypeMetrics {
			continue
		}
		if f.metrics == nil {
			f.metrics = map[string]bool{}
		}
		f.metrics[name] = true
	}
	return f, nil
}

func (f filter) wantMetric(name string) bool  { return f.metrics == nil || f.metrics[name] }
func (f filter) wantState(s state.State) bool { return f.states == nil || f.states[s] }

// selected returns the agents the filter keeps, in configuration order.
func (f filter) selected(snap engine.Snapshot) []engine.AgentSnapshot {
	var out []engine.AgentSnapshot
	for _, a := range snap.Agents {
		if f.agents != nil && !f.agents[a.Name] {
			continue
		}
		if f.cluster != "" && a.Cluster != f.cluster {
			continue
		}
		out = append(out, a)
	}
	return out
}

// agentWide are the states that belong to an agent as a whole.
func agentWide(s state.State) bool {
	return s == state.Grace || s == state.Failed || s == state.Unknown
}

func seconds(d time.Duration) *float64 {
	v := d.Seconds()
	return &v
}

// unjudged reports whether an alert query must answer the agent as UNKNOWN:
// the engine has not polled and judged it since it started, so its state is
// only the one restored from the history.
func (src source) unjudged(a engine.AgentSnapshot) bool { return src.alert && !a.Judged }

// asJudged is the agent as an alert query reports it: UNKNOWN, with its
// processes, while not judged since the engine started.
func (src source) asJudged(a engine.AgentSnapshot) engine.AgentSnapshot {
	if !src.unjudged(a) {
		return a
	}
	if !a.LastPollAt.IsZero() {
		a.Reason = fmt.Sprintf("not polled since the monitor started; last recorded %s: %s", a.State, a.Reason)
	}
	a.State = state.Unknown
	procs := make([]engine.ProcessSnapshot, len(a.Processes))
	for i, p := range a.Processes {
		p.State, p.Reason = state.Unknown, a.Reason
		procs[i] = p
	}
	a.Processes = procs
	return a
}

// statusRows turns the snapshot into table rows: one per process, or one
// for the agent when it reports none; agent-wide states show on every row.
func statusRows(src source, agents []engine.AgentSnapshot, f filter) []frames.StatusRow {
	var rows []frames.StatusRow
	for _, a := range agents {
		a = src.asJudged(a)
		base := frames.StatusRow{Agent: a.Name, Cluster: a.Cluster, Role: a.Role, State: a.State, Reason: a.Reason}
		if !a.LastAnswerAt.IsZero() {
			base.RTTSeconds = seconds(a.RTT)
		}
		if a.Budget.Total > 0 {
			base.BudgetSeconds = seconds(a.Budget.Total)
		}
		if len(a.Processes) == 0 {
			if f.wantState(base.State) {
				rows = append(rows, base)
			}
			continue
		}
		for _, p := range a.Processes {
			r := base
			r.Process = p.Name
			if !agentWide(a.State) {
				r.State, r.Reason = p.State, p.Reason
			}
			r.LagSeconds = p.LagSeconds
			gen := p.Generation
			r.Generation = &gen
			r.LastRestart = p.LastRestartAt()
			if f.wantState(r.State) {
				rows = append(rows, r)
			}
		}
	}
	return rows
}

// queryStatus answers the status table; for an alert rule, one state code
// per row (frames.StatusCodes), which server-side expressions read as
// numbers.
func queryStatus(src source, _ backend.DataQuery, f filter) (data.Frames, error) {
	rows := statusRows(src, f.selected(src.snap), f)
	if src.alert {
		return frames.StatusCodes(rows), nil
	}
	return data.Frames{frames.Status(rows)}, nil
}

func queryEvents(src source, q backend.DataQuery, f filter) (data.Frames, error) {
	hq := history.Query{From: q.TimeRange.From, To: gridOf(src, q).Until.Add(time.Nanosecond)}
	var events []history.Event
	if f.agents == nil && f.cluster == "" {
		all, err := src.hist.Events(hq)
		if err != nil {
			return nil, fmt.Errorf("read the history: %w", err)
		}
		events = all
	} else {
		for _, a := range f.selected(src.snap) {
			hq.Agent = a.Name
			evs, err := src.hist.Events(hq)
			if err != nil {
				return nil, fmt.Errorf("read the history: %w", err)
			}
			events = append(events, evs...)
		}
		sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	}
	keep := func(ev history.Event) bool {
		return f.states == nil || (ev.Type == history.TypeState && (f.states[ev.From] || f.states[ev.To]))
	}
	if src.alert {
		return frames.EventCounts(eventCounts(src, f, events, keep)), nil
	}
	rows := make([]frames.EventRow, 0, len(events))
	for _, ev := range events {
		if keep(ev) {
			rows = append(rows, frames.EventRowOf(ev))
		}
	}
	// The newest ones when there are more than the panel can show.
	if limit := int(q.MaxDataPoints); limit > 0 && len(rows) > limit {
		rows = rows[len(rows)-limit:]
	}
	return data.Frames{frames.Events(rows)}, nil
}

// eventKinds are the event types an alert query counts, in answer order.
var eventKinds = []string{history.TypeState, history.TypeAction, history.TypeNote, history.TypeAgent}

// eventCounts counts the kept events per agent and kind: every selected
// agent and kind (only state changes under a state filter) has a count, 0
// included, so that an alert instance resolves when its events stop; agents
// no longer configured that have events in the range follow, by name.
func eventCounts(src source, f filter, events []history.Event, keep func(history.Event) bool) []frames.EventCount {
	kinds := eventKinds
	if f.states != nil {
		kinds = []string{history.TypeState}
	}
	type key struct{ agent, kind string }
	n := map[key]int{}
	var others []string
	configured := map[string]bool{}
	for _, a := range src.snap.Agents {
		configured[a.Name] = true
	}
	for _, ev := range events {
		// The monitor's own notes (started, stopped when idle) belong to
		// no agent: the events table shows them, an alert count does not.
		if ev.Agent == "" || !keep(ev) {
			continue
		}
		k := key{ev.Agent, ev.Type}
		if _, seen := n[key{ev.Agent, ""}]; !seen && !configured[ev.Agent] {
			others = append(others, ev.Agent)
		}
		n[key{ev.Agent, ""}]++
		n[k]++
	}
	sort.Strings(others)
	var out []frames.EventCount
	add := func(agent, cluster string) {
		for _, kind := range kinds {
			out = append(out, frames.EventCount{Agent: agent, Cluster: cluster, Kind: kind, Count: n[key{agent, kind}]})
		}
	}
	for _, a := range f.selected(src.snap) {
		add(a.Name, a.Cluster)
	}
	if f.agents == nil && f.cluster == "" {
		for _, name := range others {
			add(name, "")
		}
	}
	return out
}
