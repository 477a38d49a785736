package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/frames"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/models"
	"github.com/vigil-cdp/vigil/pkg/report"
)

// actionTimeout bounds a restart or a poll asked for through a resource.
const actionTimeout = 60 * time.Second

// recentEvents is how many events GET agents/{name} answers, newest last,
// from recentWindow back.
const (
	recentEvents = 50
	recentWindow = 7 * 24 * time.Hour
)

// resourceRoutes are the resources under /api/datasources/uid/{uid}/resources/:
// method, ServeMux pattern without its leading slash, and handler.
var resourceRoutes = []struct {
	method, path string
	handle       func(d *Datasource, r *http.Request) answer
}{
	{http.MethodGet, "agents", (*Datasource).listAgents},
	{http.MethodGet, "agents/{name}", (*Datasource).agentDetail},
	{http.MethodPost, "agents/{name}/processes/{process}/restart", (*Datasource).restart},
	{http.MethodPost, "poll", (*Datasource).poll},
	{http.MethodPost, "reports", (*Datasource).reports},
	{http.MethodGet, "monitor", (*Datasource).monitorInfo},
}

// knownResources names the routes in the answer to an unknown path.
var knownResources = func() string {
	var names []string
	for _, rt := range resourceRoutes {
		names = append(names, rt.method+" "+rt.path)
	}
	return strings.Join(names, ", ")
}()

// answer is one resource answer: status and a JSON body.
type answer struct {
	status int
	body   any
}

type errorBody struct {
	Error errorDetail `json:"error"`
	// Generation is the process's current generation, with a 409.
	Generation *int64 `json:"generation,omitempty"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func fail(status int, code, format string, args ...any) answer {
	return answer{status, errorBody{Error: errorDetail{Code: code, Message: fmt.Sprintf(format, args...)}}}
}

// CallResource answers a resource call through httpadapter, which turns it
// into an HTTP request. Grafana passes the path decoded and the adapter
// parses it as a URL: it is escaped first, so that a "%", "?" or "#" in
// it stays part of the name asked for.
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	escaped := *req
	escaped.Path = (&url.URL{Path: req.Path}).EscapedPath()
	return d.resources.CallResource(ctx, &escaped, sender)
}

// resourceMux routes resource calls with a ServeMux. Every answer, including errors, is JSON: a
// path no route has is our 404 (not ServeMux's text, nor its redirect of
// an unclean path), and a route asked with another method our 405, after
// the org check. ServeMux sends HEAD to a GET route; that is a 405 too.
func (d *Datasource) resourceMux() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range resourceRoutes {
		h := d.serve(rt.method, rt.handle)
		mux.Handle(rt.method+" /"+rt.path, h)
		mux.Handle("/"+rt.path, h) // every other method
	}
	mux.HandleFunc("/", notFound)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Grafana's resource path may end with a slash; an empty body is nil.
		r.URL.Path, r.URL.RawPath = "/"+strings.Trim(r.URL.Path, "/"), ""
		if r.Body == nil {
			r.Body = http.NoBody
		}
		if path.Clean(r.URL.Path) != r.URL.Path {
			notFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	send(w, fail(http.StatusNotFound, "not_found", "no resource %q: known resources are %s", resourcePath(r), knownResources))
}

// resourcePath is the path as people wrote it, without its slashes.
func resourcePath(r *http.Request) string { return strings.Trim(r.URL.Path, "/") }

func (d *Datasource) serve(method string, handle func(d *Datasource, r *http.Request) answer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := d.otherOrg(backend.PluginConfigFromContext(r.Context())); err != nil {
			send(w, fail(http.StatusForbidden, "other_org", "%s", err))
			return
		}
		if r.Method != method {
			w.Header().Set("Allow", method)
			send(w, fail(http.StatusMethodNotAllowed, "method_not_allowed", "%s %s is not allowed: use %s", r.Method, resourcePath(r), method))
			return
		}
		if d.settingsErr != nil {
			send(w, fail(http.StatusInternalServerError, "invalid_settings",
				"the Vigil datasource is misconfigured; fix its settings: %s", d.settingsErr))
			return
		}
		send(w, handle(d, r))
	}
}

// monitorInfo is GET monitor, for the app's Configuration page: whether the
// monitor runs, what keeps it running and where its history is. Server
// paths are for Grafana admins only. It neither starts the monitor nor keeps
// it running.
func (d *Datasource) monitorInfo(r *http.Request) answer {
	user := backend.UserFromContext(r.Context())
	if user == nil || !models.RoleAdmin.Reaches(user.Role) {
		return fail(http.StatusForbidden, "forbidden", "the monitor's status is for Grafana admins (it names folders on the Grafana server)")
	}
	return answer{http.StatusOK, d.monitors.status(d)}
}

type agentView struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	Cluster string `json:"cluster"`
}

// listAgents answers the configured agents, without any token. It does not
// start the monitor: variables and editors call it.
func (d *Datasource) listAgents(*http.Request) answer {
	agents := make([]agentView, 0, len(d.settings.Fleet.Agents))
	for _, a := range d.settings.Fleet.Agents {
		agents = append(agents, agentView{Name: a.Name, URL: a.URL, Cluster: a.Cluster})
	}
	return answer{http.StatusOK, agentList{Agents: agents}}
}

func (d *Datasource) engine() (live, *answer) {
	m, err := d.monitors.engineFor(d, useRequest)
	if err != nil {
		a := fail(http.StatusInternalServerError, "monitor_unavailable", "the Vigil monitor cannot run: %s", err)
		return live{}, &a
	}
	return m, nil
}

type processView struct {
	Name                 string             `json:"name"`
	State                string             `json:"state"`
	StateCode            int64              `json:"stateCode"`
	Reason               string             `json:"reason"`
	Verdict              string             `json:"verdict"`
	AgentState           string             `json:"agentState"`
	Expected             bool               `json:"expected"`
	Generation           int64              `json:"generation"`
	PID                  *int64             `json:"pid"`
	LagSeconds           *float64           `json:"lagSeconds"`
	AutoRestartSuspended bool               `json:"autoRestartSuspended"`
	LastAction           *engine.LastAction `json:"lastAction,omitempty"`
}

type eventView struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Agent   string    `json:"agent"`
	Process string    `json:"process,omitempty"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Action  string    `json:"action,omitempty"`
	By      string    `json:"by,omitempty"`
	User    string    `json:"user,omitempty"`
	Result  string    `json:"result,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Error   string    `json:"error,omitempty"`
	Text    string    `json:"text"`
	// Manual: a person acted, By (and User) being their login, even "auto".
	Manual bool `json:"manual,omitempty"`
}

type agentDetailView struct {
	Name         string            `json:"name"`
	URL          string            `json:"url"`
	Cluster      string            `json:"cluster"`
	Node         string            `json:"node,omitempty"`
	Role         string            `json:"role"`
	State        string            `json:"state"`
	StateCode    int64             `json:"stateCode"`
	Reason       string            `json:"reason"`
	RTTSeconds   *float64          `json:"rttSeconds"`
	LagSeconds   *float64          `json:"lagSeconds"`
	LastPollAt   *time.Time        `json:"lastPollAt"`
	LastAnswerAt *time.Time        `json:"lastAnswerAt"`
	SilentSince  *time.Time        `json:"silentSince"`
	LastError    string            `json:"lastError,omitempty"`
	Diagnosis    string            `json:"diagnosis,omitempty"`
	Version      string            `json:"version,omitempty"`
	Hostname     string            `json:"hostname,omitempty"`
	Budget       engine.BudgetView `json:"budget"`
	Processes    []processView     `json:"processes"`
	Events       []eventView       `json:"events"`
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// agentDetail answers one agent's last status, budget breakdown and recent
// events.
func (d *Datasource) agentDetail(r *http.Request) answer {
	name := r.PathValue("name")
	if _, ok := d.settings.Fleet.Agent(name); !ok {
		return fail(http.StatusNotFound, "unknown_agent", "no agent %q in this datasource", name)
	}
	m, failed := d.engine()
	if failed != nil {
		return *failed
	}
	snap := m.eng.Snapshot()
	a, ok := snap.Agent(name)
	if !ok {
		return fail(http.StatusNotFound, "unknown_agent", "no agent %q in this datasource", name)
	}
	v := agentDetailView{
		Name: a.Name, URL: a.URL, Cluster: a.Cluster, Node: a.Node, Role: a.Role,
		State: a.State.String(), StateCode: a.State.Code(), Reason: a.Reason,
		LastPollAt: timeOrNil(a.LastPollAt), LastAnswerAt: timeOrNil(a.LastAnswerAt), SilentSince: timeOrNil(a.SilentSince),
		LastError: a.LastError, Diagnosis: a.Diagnosis, Version: a.Version, Hostname: a.Hostname,
		Budget: a.BudgetView(), Processes: []processView{}, Events: []eventView{},
	}
	if !a.LastAnswerAt.IsZero() {
		v.RTTSeconds = seconds(a.RTT)
	}
	if lag, ok := a.MaxLagSeconds(); ok {
		v.LagSeconds = &lag
	}
	for _, p := range a.Processes {
		v.Processes = append(v.Processes, processView{
			Name: p.Name, State: p.State.String(), StateCode: p.State.Code(), Reason: p.Reason, Verdict: p.Verdict,
			AgentState: p.AgentState, Expected: p.Expected, Generation: p.Generation, PID: p.PID, LagSeconds: p.LagSeconds,
			AutoRestartSuspended: p.AutoRestartSuspended, LastAction: p.LastAction,
		})
	}
	events, err := m.store.Events(history.Query{Agent: name, From: snap.Time.Add(-recentWindow)})
	if err != nil {
		return fail(http.StatusInternalServerError, "history_unreadable", "read the history: %s", err)
	}
	if len(events) > recentEvents {
		events = events[len(events)-recentEvents:]
	}
	for _, ev := range events {
		r := frames.EventRowOf(ev)
		v.Events = append(v.Events, eventView{
			Time: r.Time, Kind: r.Kind, Agent: r.Agent, Process: r.Process, From: r.From, To: r.To,
			Action: r.Action, By: r.By, Manual: ev.Manual, User: r.By, Result: r.Result, Reason: r.Reason, Error: r.Error, Text: r.Text,
		})
	}
	return answer{http.StatusOK, v}
}

// defaultRestartReason is recorded when a person gives no reason.
const defaultRestartReason = "restarted from Grafana"

type restartRequest struct {
	Reason       string `json:"reason"`
	IfGeneration *int64 `json:"ifGeneration"`
}

type restartAnswer struct {
	Generation int64      `json:"generation"`
	PID        *int64     `json:"pid"`
	StartedAt  *time.Time `json:"startedAt"`
}

// restart is a person's restart of one process: role-checked, with their
// login in the event, the control token added here and never sent back.
func (d *Datasource) restart(r *http.Request) answer {
	agentName, process := r.PathValue("name"), r.PathValue("process")
	user := backend.UserFromContext(r.Context())
	need := d.settings.RestartRole
	if user == nil || user.Login == "" {
		return fail(http.StatusForbidden, "forbidden", "restarting CDP needs a signed-in Grafana user with the role %s or higher", need)
	}
	if !need.Reaches(user.Role) {
		return fail(http.StatusForbidden, "forbidden", "restarting CDP needs the Grafana role %s or higher (jsonData.restartRole); %s has the role %s", need, user.Login, orNone(user.Role))
	}
	var body restartRequest
	raw, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		return fail(http.StatusBadRequest, "invalid_request", "the body must be JSON {\"reason\": \"...\", \"ifGeneration\": N}: %s", err)
	}
	body.Reason = strings.TrimSpace(body.Reason)
	if body.Reason == "" {
		// The restart panel makes a reason optional unless its options require one; the
		// event still says who restarted, and from where.
		body.Reason = defaultRestartReason
	}
	if body.IfGeneration == nil {
		return fail(http.StatusBadRequest, "invalid_request", "ifGeneration: is required: the process generation you saw (GET agents/%s), or -1 for whatever runs", agentName)
	}
	a, ok := d.settings.Fleet.Agent(agentName)
	if !ok {
		return fail(http.StatusNotFound, "unknown_agent", "no agent %q in this datasource", agentName)
	}
	if !a.ControlToken.IsSet() {
		return fail(http.StatusInternalServerError, "no_control_token",
			"no control token is configured for agent %q: set secureJsonData.controlToken (or agent.%s.controlToken) in the datasource settings", agentName, agentName)
	}
	m, failed := d.engine()
	if failed != nil {
		return *failed
	}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	ifGen := *body.IfGeneration
	if ifGen < 0 {
		ifGen = engine.AnyGeneration
	}
	res, err := m.eng.Restart(ctx, agentName, process, user.Login, body.Reason, ifGen)
	if err == nil {
		log.DefaultLogger.Info("CDP process restarted by hand", "datasource", d.ident.String(), "agent", agentName, "process", process, "by", user.Login, "generation", res.Generation)
		return answer{http.StatusAccepted, restartAnswer{Generation: res.Generation, PID: res.PID, StartedAt: res.StartedAt}}
	}
	var reported []string
	if a, ok := m.eng.Snapshot().Agent(agentName); ok {
		for _, p := range a.Processes {
			reported = append(reported, p.Name)
		}
	}
	return restartError(agentName, process, reported, err)
}

func orNone(role string) string {
	if role == "" {
		return "None"
	}
	return role
}

// restartError says whose fault a failed restart is; reported are the
// processes the agent reported at its last answer.
func restartError(agentName, process string, reported []string, err error) answer {
	var stale *agentclient.StaleGenerationError
	var ae *agentclient.Error
	switch {
	case errors.As(err, &stale):
		a := fail(http.StatusConflict, "stale_generation",
			"%s/%s was already restarted by someone else: its generation is %d, you saw %d; look at its state before restarting again",
			agentName, process, stale.Current, stale.Expected)
		body := a.body.(errorBody)
		cur := stale.Current
		body.Generation = &cur
		a.body = body
		return a
	case errors.Is(err, engine.ErrUnknownAgent):
		return fail(http.StatusNotFound, "unknown_agent", "no agent %q in this datasource", agentName)
	case errors.As(err, &ae) && ae.Fault == agentclient.FaultNetwork:
		return fail(http.StatusBadGateway, "agent_unreachable", "agent %q did not answer the restart: %s", agentName, ae.Detail)
	case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
		known := "none yet"
		if len(reported) > 0 {
			known = strings.Join(reported, ", ")
		}
		return fail(http.StatusNotFound, "unknown_process", "agent %q has no process %q (it reports: %s): %s",
			agentName, process, known, ae.Detail)
	case errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden):
		return fail(http.StatusBadGateway, "agent_refused", "agent %q refused the control token (%s): check the datasource's control token", agentName, ae.Detail)
	case errors.As(err, &ae):
		return fail(http.StatusBadGateway, "agent_error", "agent %q could not restart %q: %s", agentName, process, ae.Error())
	}
	return fail(http.StatusInternalServerError, "restart_failed", "restart of %s/%s failed: %s", agentName, process, err)
}

type pollRequest struct {
	Agent string `json:"agent"`
}

type pollAnswer struct {
	Agents []pollAgent `json:"agents"`
}

type pollAgent struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	StateCode int64  `json:"stateCode"`
	Reason    string `json:"reason"`
	// LastPollAt says how fresh the state is: a Viewer's poll may answer
	// the latest one rather than poll.
	LastPollAt *time.Time `json:"lastPollAt"`
}

// pollRole is the least Grafana role whose poll polls now (as does the
// restart role, when a datasource lets Viewers restart: whoever may restart
// CDP may see its effect at once). Below both (Viewers, and callers without
// a user, such as a backup server's service account with no role) a poll
// polls an agent only when its last poll is at least a poll interval old,
// and otherwise answers the latest state: anyone may ask, but only those
// trusted to act may drive the polling.
const pollRole = models.RoleEditor

// pollsNow reports whether user's poll polls now rather than at most once
// per poll interval.
func (d *Datasource) pollsNow(user *backend.User) bool {
	return user != nil && (pollRole.Reaches(user.Role) || d.settings.RestartRole.Reaches(user.Role))
}

// poll polls one agent, or all, and answers their states: now for an Editor
// or above, else at most once per poll interval.
func (d *Datasource) poll(r *http.Request) answer {
	var body pollRequest
	if raw, _ := io.ReadAll(r.Body); len(strings.TrimSpace(string(raw))) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			return fail(http.StatusBadRequest, "invalid_request", "the body must be JSON {\"agent\": \"name\"} or {}: %s", err)
		}
	}
	if body.Agent != "" {
		if _, ok := d.settings.Fleet.Agent(body.Agent); !ok {
			return fail(http.StatusNotFound, "unknown_agent", "no agent %q in this datasource", body.Agent)
		}
	}
	m, failed := d.engine()
	if failed != nil {
		return *failed
	}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	var err error
	if d.pollsNow(backend.UserFromContext(r.Context())) {
		err = m.eng.PollNow(ctx, body.Agent)
	} else {
		err = m.eng.PollIfOlder(ctx, body.Agent, m.eng.Config().PollInterval)
	}
	if err != nil {
		if errors.Is(err, engine.ErrUnknownAgent) {
			return fail(http.StatusNotFound, "unknown_agent", "no agent %q in this datasource", body.Agent)
		}
		return fail(http.StatusGatewayTimeout, "poll_timeout", "the poll did not finish: %s", err)
	}
	out := pollAnswer{Agents: []pollAgent{}}
	for _, a := range m.eng.Snapshot().Agents {
		if body.Agent == "" || a.Name == body.Agent {
			out.Agents = append(out.Agents, pollAgent{Name: a.Name, State: a.State.String(), StateCode: a.State.Code(), Reason: a.Reason,
				LastPollAt: timeOrNil(a.LastPollAt)})
		}
	}
	return answer{http.StatusOK, out}
}

func send(w http.ResponseWriter, a answer) {
	encoded, err := json.Marshal(a.body)
	if err != nil {
		a = fail(http.StatusInternalServerError, "unencodable_answer", "encode resource answer: %s", err)
		encoded, _ = json.Marshal(a.body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = w.Write(encoded)
}

// reports receives a push agent's report (see pkg/report): through
// Grafana's API with a service account token the agent holds, and signed
// with the agent's own report token, so that a Grafana identity alone
// cannot forge an agent's report. The answer is signed the same way.
func (d *Datasource) reports(r *http.Request) answer {
	raw, err := report.ReadBody(r.Body)
	if err != nil {
		status, code := report.Status(err)
		return fail(status, code, "%s", err)
	}
	m, failed := d.engine()
	if failed != nil {
		return *failed
	}
	signed, err := m.eng.Report(r.Context(), raw)
	if err != nil {
		status, code := report.Status(err)
		if status == http.StatusInternalServerError {
			log.DefaultLogger.Error("Vigil could not process a report", "datasource", d.ident.String(), "error", err)
		}
		return fail(status, code, "%s", err)
	}
	return answer{http.StatusOK, json.RawMessage(signed)}
}
