package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-cdp/vigil/pkg/wiretag"
)

// Answer is a raw 2xx answer.
type Answer struct {
	StatusCode int
	Body       []byte
	// RTT is the time from sending the request to reading the whole answer.
	RTT time.Duration
}

// ControlRequest is the body of restart and stop (schema ControlRequest).
type ControlRequest struct {
	// IfGeneration makes the agent refuse (409) unless it is the current
	// generation, so two monitors never restart one process twice.
	IfGeneration *int64 `json:"ifGeneration,omitempty" vigil:"min=0"`
	Reason       string `json:"reason,omitempty"`
	RequestedBy  string `json:"requestedBy,omitempty"`
}

// The wire types below follow agent/openapi.json; TestTypesMatchOpenAPI keeps
// them equal to it (tags as in package response, read by package wiretag:
// vigil:"required" for a required key, min=N and max=N for bounds, enum for
// accepted values, "-" when not checked).

// StartResult is the answer to restart (schema StartResult).
type StartResult struct {
	Generation int64      `json:"generation" vigil:"required"`
	PID        *int64     `json:"pid" vigil:"required"`
	StartedAt  *time.Time `json:"startedAt" vigil:"required"`
}

// StopResult is the answer to stop (schema StopResult).
type StopResult struct {
	Generation int64  `json:"generation" vigil:"required"`
	State      string `json:"state" vigil:"required" enum:"-"`
}

// Events is the answer to GET /v1/events (schema Events).
type Events struct {
	Events []Event `json:"events" vigil:"required"`
	// Next is passed as since on the following call.
	Next int64 `json:"next" vigil:"required"`
}

// Event is one agent event (schema Event). Fields besides Seq, Time, Type and
// Reason depend on the type.
type Event struct {
	Seq         int64     `json:"seq" vigil:"required"`
	Time        time.Time `json:"time" vigil:"required"`
	Type        string    `json:"type" vigil:"required" enum:"-"`
	Reason      string    `json:"reason" vigil:"required"`
	Process     string    `json:"process,omitempty"`
	Generation  *int64    `json:"generation,omitempty"`
	PID         *int64    `json:"pid,omitempty"`
	Code        *int64    `json:"code,omitempty"`
	Signal      *string   `json:"signal,omitempty"`
	RequestedBy string    `json:"requestedBy,omitempty"`
	// RecentCrashes: crashed, exited and auto_restart_suspended events.
	RecentCrashes *int64  `json:"recentCrashes,omitempty"`
	From          *string `json:"from,omitempty"`
	To            string  `json:"to,omitempty"`
}

// StaleGenerationError is the agent's 409: the generation the caller
// expected is no longer current, so someone else already restarted (or
// stopped) the process. It is not a failure of the agent.
type StaleGenerationError struct {
	Agent   string
	Process string
	// Expected is the ifGeneration that was sent; Current is the agent's.
	Expected int64
	Current  int64
}

func (e *StaleGenerationError) Error() string {
	return fmt.Sprintf("agent %s refused the call on %s: generation %d is no longer current (now %d); another monitor or a person acted first",
		e.Agent, e.Process, e.Expected, e.Current)
}

// Status implements API.
func (c *HTTPClient) Status(ctx context.Context, agent Agent) (Answer, error) {
	return c.do(ctx, agent, http.MethodGet, "/v1/status", "", agent.ReadToken, nil)
}

// Restart implements API.
func (c *HTTPClient) Restart(ctx context.Context, agent Agent, process string, req ControlRequest) (StartResult, error) {
	var res StartResult
	err := c.control(ctx, agent, process, "restart", req, &res)
	return res, err
}

// Stop implements API.
func (c *HTTPClient) Stop(ctx context.Context, agent Agent, process string, req ControlRequest) (StopResult, error) {
	var res StopResult
	err := c.control(ctx, agent, process, "stop", req, &res)
	return res, err
}

func (c *HTTPClient) control(ctx context.Context, agent Agent, process, verb string, req ControlRequest, out any) error {
	path := "/v1/processes/" + url.PathEscape(process) + "/" + verb
	if agent.ControlToken == "" {
		_, redacted, _ := endpoint(agent.URL, path)
		return &Error{Fault: FaultConfig, Agent: agent.Name, Method: http.MethodPost, URL: redacted,
			Detail: "no control token configured for this agent: set controlToken (or controlTokenFile)"}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ans, err := c.do(ctx, agent, http.MethodPost, path, "", agent.ControlToken, body)
	if err != nil {
		var ae *Error
		if errors.As(err, &ae) && ae.StatusCode == http.StatusConflict && ae.Code == "stale_generation" {
			stale := &StaleGenerationError{Agent: agent.Name, Process: process}
			if req.IfGeneration != nil {
				stale.Expected = *req.IfGeneration
			}
			var parsed struct {
				Error struct {
					Generation int64 `json:"generation"`
				} `json:"error"`
			}
			if json.Unmarshal(ans.Body, &parsed) == nil {
				stale.Current = parsed.Error.Generation
			}
			return stale
		}
		return err
	}
	if err := json.Unmarshal(ans.Body, out); err != nil {
		_, redacted, _ := endpoint(agent.URL, path)
		return &Error{Fault: FaultAgent, Agent: agent.Name, Method: http.MethodPost, URL: redacted, StatusCode: ans.StatusCode,
			Detail: "the answer is not the expected JSON: " + err.Error(), Err: err}
	}
	// A stop's answer to a restart (or any other JSON) is not a restart: the
	// keys the contract requires must all be there.
	if missing := missingKeys(ans.Body, requiredKeys(out)); len(missing) > 0 {
		_, redacted, _ := endpoint(agent.URL, path)
		return &Error{Fault: FaultAgent, Agent: agent.Name, Method: http.MethodPost, URL: redacted, StatusCode: ans.StatusCode,
			Detail: fmt.Sprintf("the answer is not a %s's answer: %s missing", verb, strings.Join(missing, ", "))}
	}
	return nil
}

// requiredKeys are the JSON keys of the struct out points to that the
// contract requires (tag vigil:"required", kept equal to agent/openapi.json
// by TestTypesMatchOpenAPI).
func requiredKeys(out any) []string {
	t := reflect.TypeOf(out)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if rules, _ := wiretag.Of(f); rules.Required {
			keys = append(keys, strings.Split(f.Tag.Get("json"), ",")[0])
		}
	}
	return keys
}

// missingKeys lists the keys of want that the JSON object body lacks.
func missingKeys(body []byte, want []string) []string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return want
	}
	var missing []string
	for _, k := range want {
		if _, ok := obj[k]; !ok {
			missing = append(missing, k)
		}
	}
	return missing
}

// Events implements API.
func (c *HTTPClient) Events(ctx context.Context, agent Agent, since int64, limit int) (Events, error) {
	q := url.Values{}
	q.Set("since", strconv.FormatInt(since, 10))
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	ans, err := c.do(ctx, agent, http.MethodGet, "/v1/events", q.Encode(), agent.ReadToken, nil)
	if err != nil {
		return Events{}, err
	}
	var ev Events
	if err := json.Unmarshal(ans.Body, &ev); err != nil {
		_, redacted, _ := endpoint(agent.URL, "/v1/events")
		return Events{}, &Error{Fault: FaultAgent, Agent: agent.Name, URL: redacted, StatusCode: ans.StatusCode,
			Detail: "the answer is not the expected JSON: " + err.Error(), Err: err}
	}
	return ev, nil
}

// Step is one check of a diagnosis.
type Step struct {
	// Done is false when an earlier step failed and this one was not tried.
	Done   bool   `json:"done"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Diagnosis says how far a request to a silent agent gets.
type Diagnosis struct {
	DNS  Step `json:"dns"`
	TCP  Step `json:"tcp"`
	HTTP Step `json:"http"`
	// Ping is an ICMP echo and Path a trace of the route to the agent's
	// host (the first IPv4 address DNS gave), run beside TCP and HTTP.
	// Either is skipped, with the reason in Detail, where the system does
	// not allow it.
	Ping Step `json:"ping"`
	Path Step `json:"path"`
}

// String is one line for an event: "dns ok (127.0.0.1); tcp failed
// (connection refused); http not tried; ping ok (3 of 3 replies, best
// 80µs); path ok (reached in 1 hop: 1: 127.0.0.1 90µs)".
func (d Diagnosis) String() string {
	parts := make([]string, 0, 5)
	for _, s := range []struct {
		name string
		step Step
	}{{"dns", d.DNS}, {"tcp", d.TCP}, {"http", d.HTTP}, {"ping", d.Ping}, {"path", d.Path}} {
		switch {
		case !s.step.Done && s.step.Detail != "":
			parts = append(parts, s.name+" "+s.step.Detail)
		case !s.step.Done && (s.name == "ping" || s.name == "path"):
			// Not run (no address to probe): nothing to say.
		case !s.step.Done:
			parts = append(parts, s.name+" not tried")
		case s.step.OK:
			parts = append(parts, s.name+" ok ("+s.step.Detail+")")
		default:
			parts = append(parts, s.name+" failed ("+s.step.Detail+")")
		}
	}
	return strings.Join(parts, "; ")
}

// Diagnose implements API. Each step gets the caller's deadline.
// The result is named: the ICMP echo and the path trace write it until the
// deferred wait, after each return.
func (c *HTTPClient) Diagnose(ctx context.Context, agent Agent) (d Diagnosis) {
	u, err := url.Parse(agent.URL)
	if err != nil || u.Hostname() == "" {
		d.DNS = Step{Done: true, Detail: "the agent URL has no host"}
		return d
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		d.DNS = Step{Done: true, Detail: shortNetError(err)}
		return d
	}
	d.DNS = Step{Done: true, OK: true, Detail: strings.Join(addrs, ", ")}

	// ICMP echo and the path trace go beside TCP and HTTP, within the same
	// deadline: a host that drops TCP takes the whole of it.
	if ip := firstIPv4(addrs); ip != nil {
		// The trace first, then the echo: together they would spend a
		// router's ICMP rate limit (one error a second after a burst of
		// six, on Linux) on each other.
		var wg sync.WaitGroup
		wg.Go(func() {
			d.Path = pathStep(ctx, ip)
			d.Ping = pingStep(ctx, ip)
		})
		defer wg.Wait()
	}

	var dialer net.Dialer
	start := time.Now()
	conn, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		d.TCP = Step{Done: true, Detail: shortNetError(err)}
		return d
	}
	_ = conn.Close()
	d.TCP = Step{Done: true, OK: true, Detail: "port " + port + " open in " + time.Since(start).Round(time.Millisecond).String()}

	h, err := c.Healthz(ctx, agent)
	if err != nil {
		var ae *Error
		detail := err.Error()
		if errors.As(err, &ae) {
			detail = ae.Detail
		}
		d.HTTP = Step{Done: true, Detail: detail}
		return d
	}
	d.HTTP = Step{Done: true, OK: true, Detail: fmt.Sprintf("/healthz answered %d in %s", h.StatusCode, h.RTT.Round(time.Millisecond))}
	return d
}

func firstIPv4(addrs []string) net.IP {
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip != nil && ip.To4() != nil {
			return ip
		}
	}
	return nil
}

func shortNetError(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer before the timeout"
	}
	return err.Error()
}
