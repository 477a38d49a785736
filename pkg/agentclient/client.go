// Package agentclient is the only package in Vigil that talks to agents over
// the network. Everything else depends on the API interface, so it can be
// tested with fakes.
package agentclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-cdp/vigil/pkg/textlimit"
)

// Agent addresses one vigil-agent. ReadToken is sent as a bearer token on
// reads, ControlToken on restart and stop; neither ever appears in errors.
type Agent struct {
	Name         string
	URL          string
	ReadToken    string
	ControlToken string
}

// Health is what an agent said on GET /healthz.
type Health struct {
	// StatusCode is the HTTP status of the answer (2xx).
	StatusCode int
	// Status is the "status" field of the JSON body, when the agent sent one.
	Status string
	// RTT is the time from sending the request to reading the whole answer.
	RTT time.Duration
}

// HealthChecker is the health-only part of API: is the agent alive?
type HealthChecker interface {
	// Healthz asks the agent whether it is alive. A nil error means the agent
	// answered with a 2xx status; any other outcome is an *Error.
	Healthz(ctx context.Context, agent Agent) (Health, error)
}

// API is everything the monitor engine asks of agents. Every failed call
// returns an *Error, except a refused ifGeneration, which is a
// *StaleGenerationError.
type API interface {
	HealthChecker
	// Status fetches GET /v1/status. The body is returned undecoded: the
	// response package decodes it, so that an answer that cannot be
	// understood is an observation with a reason, not a transport error.
	Status(ctx context.Context, agent Agent) (Answer, error)
	// Restart asks POST /v1/processes/{name}/restart with the control token.
	Restart(ctx context.Context, agent Agent, process string, req ControlRequest) (StartResult, error)
	// Stop asks POST /v1/processes/{name}/stop with the control token.
	Stop(ctx context.Context, agent Agent, process string, req ControlRequest) (StopResult, error)
	// Events fetches GET /v1/events?since=SEQ&limit=N (since is exclusive).
	Events(ctx context.Context, agent Agent, since int64, limit int) (Events, error)
	// Diagnose finds out why an agent is silent: DNS, TCP connect, HTTP.
	Diagnose(ctx context.Context, agent Agent) Diagnosis
}

// Fault says whose fault a failed call is.
type Fault string

const (
	// FaultNetwork: no answer arrived (DNS, refused connection, timeout, reset).
	FaultNetwork Fault = "network"
	// FaultAgent: the agent answered, but not with what was asked for.
	FaultAgent Fault = "agent answer"
	// FaultConfig: the request could not even be built from the configuration.
	FaultConfig Fault = "configuration"
)

// Error describes a failed call to an agent. It carries the URL (with any
// user:password removed) and never the token.
type Error struct {
	Fault Fault
	Agent string
	// URL is the URL that was requested, redacted.
	URL string
	// Method is the HTTP method; empty means GET.
	Method string
	// StatusCode is set for FaultAgent.
	StatusCode int
	// Code is the agent's own error code ("unknown_process", ...), when it
	// sent one.
	Code string
	// Detail says what went wrong, in words meant for the person on call.
	Detail string
	Err    error
}

func (e *Error) Error() string {
	method := e.Method
	if method == "" {
		method = http.MethodGet
	}
	return fmt.Sprintf("%s: %s %s: %s", e.Fault, method, e.URL, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// IsTimeout reports whether the call failed because no answer arrived in time.
func (e *Error) IsTimeout() bool {
	return e.Fault == FaultNetwork && (errors.Is(e.Err, context.DeadlineExceeded) || isNetTimeout(e.Err))
}

func isNetTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// MaxAnswer bounds what is read from an agent: a misbehaving agent must not
// be able to exhaust the monitor's memory. A longer answer is refused.
const MaxAnswer = 1 << 20

// ErrTooLarge is wrapped by the *Error for an answer over MaxAnswer.
var ErrTooLarge = errors.New("answer larger than 1 MiB")

// HTTPClient is the API over HTTP.
type HTTPClient struct {
	http *http.Client
	// userAgent names the monitor to agents (default "vigil-monitor").
	userAgent string
}

// WithUserAgent returns a client that names itself ua to agents (a member
// of a divided fleet adds its name, so an agent's log tells who polled).
func (c *HTTPClient) WithUserAgent(ua string) *HTTPClient {
	cc := *c
	cc.userAgent = ua
	return &cc
}

var _ API = (*HTTPClient)(nil)

// New returns an API over HTTP using hc, or a client with its own transport when hc
// is nil. Deadlines come from the caller's context.
func New(hc *http.Client) *HTTPClient {
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Keep one idle connection per agent between polls: the default caps
		// idle connections at 100 in all, so a larger fleet would open (and
		// for TLS agents, handshake) a new connection at nearly every poll.
		// Polls come every few seconds, well within the idle timeout.
		t.MaxIdleConns = 0
		t.MaxIdleConnsPerHost = 2
		t.IdleConnTimeout = 5 * time.Minute
		// Requests are a few hundred bytes and answers a few KiB: smaller
		// buffers than the default 4 KiB each keep thousands of idle
		// connections cheap.
		t.WriteBufferSize = 1 << 10
		t.ReadBufferSize = 2 << 10
		hc = &http.Client{Transport: t}
	}
	// Never follow a redirect: it would carry the token (and a control
	// request's body) to wherever the agent points. A redirect is an error
	// naming its location (see do).
	own := *hc
	own.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &HTTPClient{http: &own}
}

// redirectDetail says where a redirecting answer pointed, without any user
// name, password or query it carried.
func redirectDetail(code int, location string) string {
	where := "no location"
	if location != "" {
		where = "a location that is not a URL"
		if u, err := url.Parse(location); err == nil {
			u.User, u.RawQuery, u.Fragment = nil, "", ""
			where = textlimit.Clip(u.String(), maxQuoted)
		}
	}
	return fmt.Sprintf("HTTP %d %s: the agent answered with a redirect to %s; Vigil never follows a redirect (it would send the token there): configure the agent's own URL", code, http.StatusText(code), where)
}

// Close releases idle connections.
func (c *HTTPClient) Close() { c.http.CloseIdleConnections() }

// Healthz implements HealthChecker.
func (c *HTTPClient) Healthz(ctx context.Context, agent Agent) (Health, error) {
	ans, err := c.do(ctx, agent, http.MethodGet, "/healthz", "", agent.ReadToken, nil)
	if err != nil {
		return Health{}, err
	}
	h := Health{StatusCode: ans.StatusCode, RTT: ans.RTT}
	var parsed struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(ans.Body, &parsed) == nil {
		h.Status = parsed.Status
	}
	return h, nil
}

// do sends one request and reads the whole answer, refusing one over
// MaxAnswer. A non-2xx answer is an *Error with the agent's own message.
func (c *HTTPClient) do(ctx context.Context, agent Agent, method, path, query, token string, body []byte) (Answer, error) {
	target, redacted, err := endpoint(agent.URL, path)
	if err != nil {
		return Answer{}, &Error{Fault: FaultConfig, Agent: agent.Name, Method: method, URL: redacted, Detail: err.Error(), Err: err}
	}
	if query != "" {
		target += "?" + query
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return Answer{}, &Error{Fault: FaultConfig, Agent: agent.Name, Method: method, URL: redacted, Detail: "cannot build request", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	ua := c.userAgent
	if ua == "" {
		ua = "vigil-monitor"
	}
	req.Header.Set("User-Agent", ua)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return Answer{}, networkError(agent, method, redacted, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	rtt := time.Since(start)
	if err != nil {
		return Answer{}, networkError(agent, method, redacted, err)
	}
	if len(raw) > MaxAnswer {
		return Answer{}, &Error{
			Fault: FaultAgent, Agent: agent.Name, Method: method, URL: redacted, StatusCode: resp.StatusCode,
			Detail: "answer larger than 1 MiB refused: is this URL a vigil-agent?", Err: ErrTooLarge,
		}
	}
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		return Answer{StatusCode: resp.StatusCode, RTT: rtt}, &Error{
			Fault: FaultAgent, Agent: agent.Name, Method: method, URL: redacted, StatusCode: resp.StatusCode,
			Detail: redirectDetail(resp.StatusCode, resp.Header.Get("Location")),
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Answer{StatusCode: resp.StatusCode, Body: raw, RTT: rtt}, &Error{
			Fault: FaultAgent, Agent: agent.Name, Method: method, URL: redacted, StatusCode: resp.StatusCode,
			Code: agentCode(raw), Detail: statusDetail(method, resp.StatusCode, resp.Header.Get("Content-Type"), raw),
		}
	}
	return Answer{StatusCode: resp.StatusCode, Body: raw, RTT: rtt}, nil
}

func networkError(agent Agent, method, redacted string, err error) *Error {
	detail := "no answer"
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isNetTimeout(err):
		detail = "no answer before the timeout"
	case errors.Is(err, context.Canceled):
		detail = "request cancelled"
	}
	// url.Error repeats the full URL; keep only the cause so the message
	// names the URL exactly once, redacted.
	var ue *url.Error
	cause := err
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	return &Error{
		Fault: FaultNetwork, Agent: agent.Name, Method: method, URL: redacted,
		Detail: detail + " (" + cause.Error() + "): is the agent running and the host and port reachable?",
		Err:    err,
	}
}

func statusDetail(method string, code int, contentType string, body []byte) string {
	detail := fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden:
		if method == http.MethodPost {
			detail += ": the agent refused the control token; check controlToken for this agent"
		} else {
			detail += ": the agent refused the read token; check readToken for this agent"
		}
	case http.StatusNotFound:
		detail += ": is this URL a vigil-agent?"
	}
	if msg := agentMessage(body); msg != "" {
		detail += ": " + msg
	} else if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		// Not an agent: a proxy's error page, a web server's 404. Its text
		// (HTML, often many lines) is said to be there, never repeated.
		detail += ": " + bodyKind(contentType, len(body)) + ", not an agent's answer"
	}
	return detail
}

// bodyKind describes a body without repeating it: "a text/html body (1,234 bytes)".
func bodyKind(contentType string, size int) string {
	kind := "a body without a content type"
	if contentType != "" {
		kind = "a body of an unreadable content type"
		if mt, _, err := mime.ParseMediaType(contentType); err == nil && len(mt) <= 60 {
			kind = "a " + mt + " body"
		}
	}
	return fmt.Sprintf("%s (%s bytes)", kind, thousands(size))
}

// thousands writes n with a comma every three digits: 1,234.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// agentCode extracts the agent's error code ({"error":{"code"}}).
func agentCode(body []byte) string {
	var parsed struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &parsed) == nil {
		return parsed.Error.Code
	}
	return ""
}

// agentMessage extracts the agent's own error message ({"error":{"message"}}),
// cut to maxQuoted; "" when there is none.
func agentMessage(body []byte) string {
	var parsed struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &parsed) == nil && parsed.Error.Message != "" {
		return textlimit.Clip(parsed.Error.Message, maxQuoted)
	}
	return ""
}

// maxQuoted bounds what an error quotes of an agent's answer (its message,
// a redirect's location), as JSON bytes with the marker of a cut.
const maxQuoted = 200

// endpoint joins the agent's base URL (which may carry a path prefix) with an
// API path, and returns the URL to request and its redacted form for messages.
func endpoint(base, path string) (target, redacted string, err error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", "(unparseable agent URL)", errors.New("agent URL does not parse")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", u.Redacted(), errors.New("agent URL must be an absolute http or https URL")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = ""
	u.Fragment = ""
	return u.String(), u.Redacted(), nil
}
