// Package handlers runs corrective actions on state changes, as Nagios runs
// event handlers: a command (vigil watch only) or an HTTP call, given the
// agent, process, state, previous state, reason and budget, at most once
// per transition and with back-off when transitions repeat, each run
// recorded as an event with its result, exit code and output.
package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
	"github.com/vigil-cdp/vigil/pkg/textlimit"
)

// MaxOutputBytes is how much of a command's output (or an HTTP answer's
// body) an event keeps.
const MaxOutputBytes = 2048

// Transition is one state change a handler may run for.
type Transition struct {
	Agent   string
	Cluster string
	// Process is empty for the agent as a whole.
	Process       string
	From, To      state.State
	Reason        string
	BudgetSeconds float64
	Time          time.Time
}

// transitionJSON is the body of an HTTP handler and the standard input of
// a command (a contract, like the environment variables).
type transitionJSON struct {
	Handler       string  `json:"handler"`
	Agent         string  `json:"agent"`
	Cluster       string  `json:"cluster"`
	Process       string  `json:"process"`
	State         string  `json:"state"`
	PreviousState string  `json:"previousState"`
	Reason        string  `json:"reason"`
	BudgetSeconds float64 `json:"budgetSeconds"`
	Time          string  `json:"time"`
}

func (t Transition) body(handler string) []byte {
	b, _ := json.Marshal(transitionJSON{Handler: handler, Agent: t.Agent, Cluster: t.Cluster, Process: t.Process,
		State: t.To.String(), PreviousState: t.From.String(), Reason: t.Reason, BudgetSeconds: t.BudgetSeconds,
		Time: t.Time.UTC().Format(time.RFC3339Nano)})
	return b
}

// env is the environment a command gets on top of the monitor's own
// (without any VIGIL_ variable of the monitor's).
func (t Transition) env(handler string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIGIL_") {
			out = append(out, kv)
		}
	}
	return append(out,
		"VIGIL_HANDLER="+handler,
		"VIGIL_AGENT="+t.Agent,
		"VIGIL_CLUSTER="+t.Cluster,
		"VIGIL_PROCESS="+t.Process,
		"VIGIL_STATE="+t.To.String(),
		"VIGIL_PREVIOUS_STATE="+t.From.String(),
		"VIGIL_REASON="+t.Reason,
		"VIGIL_BUDGET_SECONDS="+strconv.FormatFloat(t.BudgetSeconds, 'f', -1, 64),
		"VIGIL_TIME="+t.Time.UTC().Format(time.RFC3339),
	)
}

// Matches says whether h runs for t.
func Matches(h fleet.Handler, t Transition) bool {
	if t.To == state.Standby || t.To == state.Grace || !slices.Contains(h.On, t.To) {
		return false
	}
	if len(h.From) > 0 && !slices.Contains(h.From, t.From) {
		return false
	}
	switch h.Level {
	case fleet.LevelAgent:
		if t.Process != "" {
			return false
		}
	case fleet.LevelProcess:
		if t.Process == "" {
			return false
		}
	}
	if len(h.Agents) > 0 && !slices.Contains(h.Agents, t.Agent) {
		return false
	}
	if len(h.Clusters) > 0 && !slices.Contains(h.Clusters, t.Cluster) {
		return false
	}
	if len(h.Processes) > 0 && !slices.Contains(h.Processes, t.Process) {
		return false
	}
	return true
}

// Options configure a Runner.
type Options struct {
	Clock clock.Clock
	// NoCommands refuses command handlers (the datasource: a command in
	// jsonData would be a shell on the Grafana server for any org admin).
	NoCommands bool
	// AllowURL, when set, says whether an HTTP handler may call a URL.
	AllowURL func(string) bool
	// Parallel bounds the runs at once (default 4).
	Parallel int
}

// Runner decides and runs handlers. Its zero value is not usable: New.
type Runner struct {
	opts   Options
	client *http.Client
	sem    chan struct{}

	mu   sync.Mutex
	last map[runKey]runState
}

type runKey struct{ handler, agent, process string }

type runState struct {
	at   time.Time
	wait time.Duration
}

// New returns a Runner.
func New(opts Options) *Runner {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	return &Runner{
		opts: opts,
		client: &http.Client{
			// A handler's target answers; it does not send Vigil elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		sem:  make(chan struct{}, opts.Parallel),
		last: map[runKey]runState{},
	}
}

// Job is one handler to run for one transition.
type Job struct {
	Handler    fleet.Handler
	Transition Transition
}

// Plan says which handlers run for a transition, and records as skipped
// those that ran for the same agent and process within their back-off.
func (r *Runner) Plan(hs []fleet.Handler, t Transition) (jobs []Job, skipped []history.Event) {
	now := r.opts.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range hs {
		if !Matches(h, t) {
			continue
		}
		k := runKey{h.Name, t.Agent, t.Process}
		last, ran := r.last[k]
		if ran && now.Before(last.at.Add(last.wait)) {
			ev := event(h, t, now)
			ev.Result = "skipped"
			ev.Error = fmt.Sprintf("back-off: it ran at %s; it may run again from %s",
				last.at.UTC().Format(time.RFC3339), last.at.Add(last.wait).UTC().Format(time.RFC3339))
			skipped = append(skipped, ev)
			continue
		}
		wait := h.Backoff
		if ran && now.Sub(last.at) < h.BackoffMax {
			// Transitions keep coming: wait longer before the next run.
			wait = min(max(last.wait*2, h.Backoff), h.BackoffMax)
		}
		r.last[k] = runState{at: now, wait: wait}
		jobs = append(jobs, Job{Handler: h, Transition: t})
	}
	return jobs, skipped
}

// Forget drops the back-off of an agent no longer configured.
func (r *Runner) Forget(agent string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.last {
		if k.agent == agent {
			delete(r.last, k)
		}
	}
}

func event(h fleet.Handler, t Transition, at time.Time) history.Event {
	return history.Event{Type: history.TypeHandler, Time: at, Agent: t.Agent, Process: t.Process, Handler: h.Name,
		From: t.From, To: t.To, Reason: textlimit.Clip(t.Reason, MaxOutputBytes), BudgetSeconds: t.BudgetSeconds}
}

// Run runs one job within its timeout (waiting for a free slot first) and
// returns its event.
func (r *Runner) Run(ctx context.Context, j Job) history.Event {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		ev := event(j.Handler, j.Transition, r.opts.Clock.Now())
		ev.Result, ev.Error = "failed", "not run: the monitor is stopping"
		return ev
	}
	defer func() { <-r.sem }()
	start := time.Now()
	ev := event(j.Handler, j.Transition, r.opts.Clock.Now())
	ctx, cancel := context.WithTimeout(ctx, j.Handler.Timeout)
	defer cancel()
	if len(j.Handler.Command) > 0 {
		r.command(ctx, j, &ev)
	} else {
		r.http(ctx, j, &ev)
	}
	ev.Duration = time.Since(start).Round(time.Millisecond)
	ev.Output = textlimit.Clip(printableOutput(ev.Output), MaxOutputBytes)
	ev.Error = textlimit.Clip(ev.Error, MaxOutputBytes)
	return ev
}

func (r *Runner) command(ctx context.Context, j Job, ev *history.Event) {
	if r.opts.NoCommands {
		ev.Result, ev.Error = "failed", "command handlers run only in vigil watch"
		return
	}
	cmd := exec.CommandContext(ctx, j.Handler.Command[0], j.Handler.Command[1:]...)
	cmd.Env = j.Transition.env(j.Handler.Name)
	cmd.Stdin = bytes.NewReader(j.Transition.body(j.Handler.Name))
	out := &capped{max: MaxOutputBytes}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, killed whole at the timeout: a shell's
	// children do not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	ev.Output = out.String()
	var exit *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		ev.Result, ev.Error = "timeout", fmt.Sprintf("killed after %s", j.Handler.Timeout)
	case errors.As(err, &exit):
		code := exit.ExitCode()
		ev.ExitCode = &code
		ev.Result = "failed"
		if code < 0 {
			ev.Error = exit.String()
		}
	case err != nil:
		ev.Result, ev.Error = "failed", err.Error()
	default:
		code := 0
		ev.ExitCode = &code
		ev.Result = "ok"
	}
}

func (r *Runner) http(ctx context.Context, j Job, ev *history.Event) {
	h := j.Handler.HTTP
	where := WithoutQuery(h.URL)
	if r.opts.AllowURL != nil && !r.opts.AllowURL(h.URL) {
		ev.Result, ev.Error = "failed", "not run: "+where+" is not among the URLs the server allows"
		return
	}
	var body io.Reader
	if h.Method != http.MethodGet {
		body = bytes.NewReader(j.Transition.body(j.Handler.Name))
	}
	req, err := http.NewRequestWithContext(ctx, h.Method, h.URL, body)
	if err != nil {
		ev.Result, ev.Error = "failed", "bad request to "+where
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vigil-handler")
	for k, v := range h.Headers {
		req.Header.Set(k, v.Reveal())
	}
	res, err := r.client.Do(req)
	if err != nil {
		ev.Result = "failed"
		if ctx.Err() == context.DeadlineExceeded {
			ev.Result = "timeout"
		}
		// Not err itself: it repeats the URL, query string included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		ev.Error = fmt.Sprintf("%s %s: %v", h.Method, where, err)
		return
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, MaxOutputBytes))
	ev.Output = string(b)
	code := res.StatusCode
	if code >= 200 && code < 300 {
		ev.Result = "ok"
		return
	}
	ev.Result = "failed"
	ev.Error = fmt.Sprintf("%s %s answered HTTP %d", h.Method, where, code)
	if code >= 300 && code < 400 {
		ev.Error += " (redirects are not followed)"
	}
}

// WithoutQuery is a handler's URL as errors and the health check show it:
// without its query string, fragment or user info, which may hold a secret.
func WithoutQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the handler's URL"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// capped keeps the first max bytes written to it.
type capped struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// printableOutput keeps text readable in a table or a terminal: control
// characters other than newline and tab become spaces.
func printableOutput(s string) string {
	s = strings.ToValidUTF8(s, "?")
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimRight(s, "\n"))
}
