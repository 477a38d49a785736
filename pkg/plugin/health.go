package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/models"
	"github.com/vigil-cdp/vigil/pkg/response"
)

// outcome is what one agent's health poll found.
type outcome int

const (
	// outcomeAnswered: a status answer the engine would accept.
	outcomeAnswered outcome = iota
	// outcomeUnreachable: no answer (refused connection, DNS, timeout).
	outcomeUnreachable
	// outcomeTokenRefused: 401 or 403 to the configured read token.
	outcomeTokenRefused
	// outcomeTokenEmpty: no read token, and the agent wants one.
	outcomeTokenEmpty
	// outcomeNotUnderstood: a 2xx answer that response.Parse rejects.
	outcomeNotUnderstood
	// outcomeAgentError: any other error answer (404, 500, too large...).
	outcomeAgentError
	// outcomeNotPolled: the request could not even be built.
	outcomeNotPolled
)

// label is the first word of the agent's line in the details.
func (o outcome) label() string {
	switch o {
	case outcomeAnswered:
		return "answered"
	case outcomeUnreachable:
		return "unreachable"
	case outcomeTokenRefused:
		return "token refused"
	case outcomeTokenEmpty:
		return "token empty"
	case outcomeNotUnderstood:
		return "answer not understood"
	case outcomeAgentError:
		return "error answer"
	default:
		return "not polled"
	}
}

// agentCheck is one agent's health poll, kept with its reason instead of a
// bare bool.
type agentCheck struct {
	name    string
	outcome outcome
	// detail follows the label on the agent's line; it never holds a token.
	detail string
}

func (c agentCheck) line() string {
	if c.outcome == outcomeAnswered {
		return c.name + ": " + c.detail
	}
	return c.name + ": " + c.outcome.label() + ": " + c.detail
}

// healthSection is one part of the health answer's details: a title line and
// one line per thing checked. The answer is an error when any section failed.
// The agents are one section; others (the monitor itself) can be appended.
type healthSection struct {
	title  string
	lines  []string
	failed bool
}

// CheckHealth is "Save & test": settings first, then, for every agent
// concurrently, what a poll does (GET /v1/status with the read token, the
// answer parsed as the engine parses it), each with its own timeout. It is OK
// only when every configured agent (at least one) was polled successfully.
func (d *Datasource) CheckHealth(ctx context.Context, req *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	if err := d.otherOrg(req.PluginContext); err != nil {
		return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: err.Error()}, nil
	}
	if d.settingsErr != nil {
		return &backend.CheckHealthResult{
			Status:  backend.HealthStatusError,
			Message: d.settingsErr.Error(),
		}, nil
	}
	agents, summary := d.agentsSection(ctx)
	monitor, warning := d.monitorSection()
	if warning {
		summary += "; warning: nothing keeps the monitor running, or its history may not survive a reboot (see details)"
	}
	sections := []healthSection{agents, monitor}
	if len(d.settings.Fleet.Handlers) > 0 {
		handlers, warning := d.handlersSection()
		if warning {
			summary += "; warning: some handlers will not run (see details)"
		}
		sections = append(sections, handlers)
	}
	return healthResult(summary, sections)
}

// monitorSection says whether the monitor runs, what keeps it running and
// where its history is. Its warnings do not fail the check: right after
// provisioning no alert rule has run yet, and the agents are what Save &
// test is about.
func (d *Datasource) monitorSection() (healthSection, bool) {
	st := d.monitors.status(d)
	s := healthSection{title: "Monitor:"}
	s.lines = append(s.lines, st.Summary)
	durable := "durable"
	if !st.History.Durable {
		durable = "NOT durable: " + st.History.Note
	}
	s.lines = append(s.lines, fmt.Sprintf("history: %s (from %s); %s", st.History.Dir, st.History.Source, durable))
	if !st.KeptAliveByAlerts {
		if _, w := describeMonitor(st, d.settings.IdleStop); w != "" {
			s.lines = append(s.lines, "warning: "+w)
		}
	}
	if pg := st.Postgres; pg != nil {
		if pg.Writable {
			s.lines = append(s.lines, "shared history in PostgreSQL: written")
		} else {
			s.failed = true
			s.lines = append(s.lines, fmt.Sprintf("shared history in PostgreSQL: NOT written since %s ago (%s); polling and restarts go on, and writes wait in the local buffer",
				ago(st.Now, pg.Since), pg.LastError))
		}
		if pg.SpoolRecords > 0 || pg.Dropped > 0 {
			s.lines = append(s.lines, fmt.Sprintf("local buffer: %d records (%d bytes) waiting; %d observations dropped because it was full", pg.SpoolRecords, pg.SpoolBytes, pg.Dropped))
		}
	}
	if c := st.Cluster; c != nil {
		if c.Self != "" {
			s.lines = append(s.lines, fmt.Sprintf("cluster: this replica is %s at %s; %d members: %s", c.Self, c.Addr, len(c.Members), strings.Join(c.Members, ", ")))
		}
		s.lines = append(s.lines, fmt.Sprintf("this replica polls %d of %d agents", c.Owned, c.Agents))
		if len(c.Unpolled) > 0 {
			s.failed = true
			s.lines = append(s.lines, fmt.Sprintf("NOT polled by any replica for two intervals: %s", strings.Join(c.Unpolled, ", ")))
		}
		if c.Error != "" {
			s.lines = append(s.lines, "the shared history could not be read: "+c.Error)
		}
	}
	return s, st.Warning != ""
}

// healthResult is the answer: message is the one-line summary Grafana shows,
// the sections go to the details ("verboseMessage") in order.
func healthResult(message string, sections []healthSection) (*backend.CheckHealthResult, error) {
	result := &backend.CheckHealthResult{Status: backend.HealthStatusOk, Message: message}
	parts := make([]string, 0, len(sections))
	for _, s := range sections {
		if s.failed {
			result.Status = backend.HealthStatusError
		}
		parts = append(parts, strings.Join(append([]string{s.title}, s.lines...), "\n"))
	}
	details, err := json.Marshal(map[string]string{"verboseMessage": strings.Join(parts, "\n\n")})
	if err != nil {
		return nil, fmt.Errorf("encode health details: %w", err)
	}
	result.JSONDetails = details
	return result, nil
}

// agentsSection polls every agent once and returns their lines with the
// summary "N of M agents answered".
func (d *Datasource) agentsSection(ctx context.Context) (healthSection, string) {
	configured := d.settings.Fleet.Agents
	checks := make([]agentCheck, len(configured))
	var wg sync.WaitGroup
	for i, a := range configured {
		wg.Go(func() { checks[i] = d.checkAgent(ctx, a) })
	}
	wg.Wait()

	section := healthSection{
		title: fmt.Sprintf("Agents (GET /v1/status with the read token, as every poll does; %s each):", d.healthTimeout),
		// An empty fleet proves nothing: it is never OK.
		failed: len(checks) == 0,
	}
	if len(checks) == 0 {
		section.lines = append(section.lines, "no agents are configured: add at least one under jsonData.agents")
	}
	answered := 0
	for _, c := range checks {
		if c.outcome == outcomeAnswered {
			answered++
		} else {
			section.failed = true
		}
		section.lines = append(section.lines, c.line())
	}
	return section, fmt.Sprintf("%d of %d agents answered", answered, len(checks))
}

// checkAgent polls one agent as the engine does and says what went wrong.
func (d *Datasource) checkAgent(ctx context.Context, a fleet.Agent) agentCheck {
	c := agentCheck{name: a.Name}
	source := d.settings.ReadTokenSource(a.Name)
	// A vigil-agent always requires a read token (its configuration refuses
	// an empty one), but something else may answer for it: the poll is sent
	// anyway, without an Authorization header, and its outcome decides.
	empty := !a.ReadToken.IsSet()

	actx, cancel := context.WithTimeout(ctx, d.healthTimeout)
	defer cancel()
	ans, err := d.agents.Status(actx, toClientAgent(a))

	var ae *agentclient.Error
	switch {
	case err == nil:
		st, perr := response.Parse(ans.Body)
		if perr != nil {
			c.outcome = outcomeNotUnderstood
			c.detail = fmt.Sprintf("the agent answered in %s, but the answer could not be understood: %s: is this URL a vigil-agent, of a version this plugin supports?",
				roundRTT(ans.RTT), perr)
			break
		}
		c.outcome = outcomeAnswered
		c.detail = fmt.Sprintf("answered in %s (%s)", roundRTT(ans.RTT), statusSummary(st))
		if empty {
			c.detail += "; no read token is configured (" + emptyTokenWhere(source) + ") and this agent answered without one"
		}
		return c
	case errors.As(err, &ae) && ae.Fault == agentclient.FaultNetwork:
		c.outcome = outcomeUnreachable
		c.detail = ae.Error()
		if ae.IsTimeout() {
			c.detail += fmt.Sprintf(" (health check timeout %s)", d.healthTimeout)
		}
	case ae != nil && ae.Fault == agentclient.FaultAgent && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden):
		if empty {
			c.outcome = outcomeTokenEmpty
			c.detail = emptyTokenMessage(source) + fmt.Sprintf("; GET %s answered HTTP %d", ae.URL, ae.StatusCode)
			return c
		}
		c.outcome = outcomeTokenRefused
		c.detail = fmt.Sprintf("the agent refused the read token: check %s: it must be one of the agent's read tokens (auth.readToken in its configuration); GET %s answered HTTP %d",
			tokenKeys(source, a.Name), ae.URL, ae.StatusCode)
		return c
	case ae != nil && ae.Fault == agentclient.FaultConfig:
		c.outcome = outcomeNotPolled
		c.detail = "cannot poll this agent: " + ae.Detail
	case ae != nil:
		c.outcome = outcomeAgentError
		c.detail = "the agent answered with an error: " + ae.Error()
	default:
		c.outcome = outcomeAgentError
		c.detail = err.Error()
	}
	if empty {
		// The other failure comes first, but the empty token will be next.
		c.detail += "; besides, " + emptyTokenMessage(source)
	}
	return c
}

// roundRTT keeps a loopback answer from reading "answered in 0s".
func roundRTT(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// statusSummary is a short proof that the answer was read.
func statusSummary(st response.Status) string {
	processes := fmt.Sprintf("%d processes", len(st.Processes))
	if len(st.Processes) == 1 {
		processes = "1 process"
	}
	s := fmt.Sprintf("vigil-agent %s on %s, %s", st.Agent.Version, st.Agent.Hostname, processes)
	if st.Cluster != nil {
		s += fmt.Sprintf(", %s node of cluster %s", st.Cluster.Role, st.Cluster.Name)
	}
	return s
}

// tokenKeys says which secureJsonData key to check for a refused token.
func tokenKeys(source models.TokenSource, agent string) string {
	if source.Key == "readToken" {
		return "secureJsonData.readToken (or agent." + agent + ".readToken, which overrides it for this agent)"
	}
	return "secureJsonData." + source.Key
}

func emptyTokenWhere(source models.TokenSource) string {
	if source.Present {
		return "secureJsonData." + source.Key + " is an empty string"
	}
	return "there is no secureJsonData.readToken"
}

// emptyTokenMessage explains an empty read token. The usual cause is a
// provisioning file's $VIGIL_READ_TOKEN that grafana-server did not have in
// its environment: Grafana expands it to an empty string without a warning.
func emptyTokenMessage(source models.TokenSource) string {
	return "the read token is empty (" + emptyTokenWhere(source) + "): " +
		"if the provisioning file says $VIGIL_READ_TOKEN, grafana-server did not have it in its environment; " +
		"for a systemd service add it with `systemctl edit grafana-server` ([Service] Environment=VIGIL_READ_TOKEN=... or EnvironmentFile=...), then restart Grafana; " +
		"a datasource configured by hand needs the token entered in its settings"
}
