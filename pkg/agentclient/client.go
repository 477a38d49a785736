// Package agentclient is the only package in Vigil that talks to agents over
// the network. Everything else depends on the Client interface, so it can be
// tested with fakes.
package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Agent addresses one vigil-agent. ReadToken is sent as a bearer token when
// set; it never appears in errors.
type Agent struct {
	Name      string
	URL       string
	ReadToken string
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

// Client talks to agents.
type Client interface {
	// Healthz asks the agent whether it is alive. A nil error means the agent
	// answered with a 2xx status; any other outcome is an *Error.
	Healthz(ctx context.Context, agent Agent) (Health, error)
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
	// StatusCode is set for FaultAgent.
	StatusCode int
	// Detail says what went wrong, in words meant for the person on call.
	Detail string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: GET %s: %s", e.Fault, e.URL, e.Detail)
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

// maxBody bounds what is read from an agent: a misbehaving agent must not be
// able to exhaust the monitor's memory.
const maxBody = 1 << 20

// HTTPClient is the Client over HTTP.
type HTTPClient struct {
	http *http.Client
}

var _ Client = (*HTTPClient)(nil)

// New returns a Client using hc, or a client with its own transport when hc
// is nil. Deadlines come from the caller's context.
func New(hc *http.Client) *HTTPClient {
	if hc == nil {
		hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return &HTTPClient{http: hc}
}

// Close releases idle connections.
func (c *HTTPClient) Close() { c.http.CloseIdleConnections() }

// Healthz implements Client.
func (c *HTTPClient) Healthz(ctx context.Context, agent Agent) (Health, error) {
	target, redacted, err := endpoint(agent.URL, "/healthz")
	if err != nil {
		return Health{}, &Error{Fault: FaultConfig, Agent: agent.Name, URL: redacted, Detail: err.Error(), Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return Health{}, &Error{Fault: FaultConfig, Agent: agent.Name, URL: redacted, Detail: "cannot build request", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "vigil-monitor")
	if agent.ReadToken != "" {
		req.Header.Set("Authorization", "Bearer "+agent.ReadToken)
	}

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return Health{}, networkError(agent, redacted, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	rtt := time.Since(start)
	if err != nil {
		return Health{}, networkError(agent, redacted, err)
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Health{}, &Error{
			Fault: FaultAgent, Agent: agent.Name, URL: redacted, StatusCode: resp.StatusCode,
			Detail: statusDetail(resp.StatusCode, body),
		}
	}
	h := Health{StatusCode: resp.StatusCode, RTT: rtt}
	var parsed struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(body, &parsed) == nil {
		h.Status = parsed.Status
	}
	return h, nil
}

func networkError(agent Agent, redacted string, err error) *Error {
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
		Fault: FaultNetwork, Agent: agent.Name, URL: redacted,
		Detail: detail + " (" + cause.Error() + "): is the agent running and the host and port reachable?",
		Err:    err,
	}
}

func statusDetail(code int, body []byte) string {
	detail := fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden:
		detail += ": the agent refused the read token; check readToken for this agent"
	case http.StatusNotFound:
		detail += ": is this URL a vigil-agent?"
	}
	if msg := agentMessage(body); msg != "" {
		detail += ": " + msg
	}
	return detail
}

// agentMessage extracts the agent's own error message ({"error":{"message"}})
// or a short excerpt of a non-JSON body.
func agentMessage(body []byte) string {
	var parsed struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &parsed) == nil && parsed.Error.Message != "" {
		return truncate(parsed.Error.Message)
	}
	if json.Valid(body) {
		return ""
	}
	return truncate(strings.TrimSpace(string(body)))
}

func truncate(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

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
