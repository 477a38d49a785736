// Package fleet is the monitored fleet's configuration: which agents to poll,
// with which tokens, and the policy that judges them (timeout budget, measured
// mode, auto-restart, RPO).
//
// One description serves the vigil CLI (fleet.yaml, read with Load or Parse,
// strict: an unknown key is an error naming its path) and the Grafana
// datasource (jsonData, read with FromJSON: the same keys, unknown keys
// ignored because Grafana's editor may store its own). Every duration is read
// by ParseDuration, in the one grammar of docs/engine.md#durations.
//
// Fleet-wide settings live under defaults; every agent may override budget,
// measured, autoRestart, rpo and its tokens. Config.Agents holds the
// effective, merged values, so nothing downstream has to know about defaults.
package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

const (
	// DefaultPollInterval is used when pollInterval is not set.
	DefaultPollInterval = 10 * time.Second
	// MinPollInterval keeps a typo ("10ms") from hammering every agent.
	MinPollInterval = time.Second
)

// Combine says how the applicable allowances add up in a budget.
type Combine string

const (
	// CombineMax takes the largest allowance: the allowances are alternative
	// explanations for a silence (the default).
	CombineMax Combine = "max"
	// CombineSum adds them up: the conservative choice.
	CombineSum Combine = "sum"
)

// Combines are the values budget.combine takes, in the order messages name them.
func Combines() []Combine { return []Combine{CombineMax, CombineSum} }

// Description says what choosing c means, in the words the settings editor shows.
func (c Combine) Description() string {
	switch c {
	case CombineMax:
		return "The allowances are alternative explanations for one silence"
	case CombineSum:
		return "Add the allowances up: the conservative choice"
	}
	return ""
}

// Mode says where the allowances come from.
type Mode string

const (
	// ModeConfigured uses the configured allowances as they are.
	ModeConfigured Mode = "configured"
	// ModeMeasured learns each allowance from the agent's past silences, once
	// enough are known; until then the configured value holds.
	ModeMeasured Mode = "measured"
)

// Modes are the values budget.mode takes, in the order messages name them.
func Modes() []Mode { return []Mode{ModeConfigured, ModeMeasured} }

// Description says what choosing m means, in the words the settings editor shows.
func (m Mode) Description() string {
	switch m {
	case ModeConfigured:
		return "Use the allowances as configured"
	case ModeMeasured:
		return "Learn each allowance from the agent's past silences"
	}
	return ""
}

// OneOf names the values a setting takes, for a message: "a or b", "a, b or c".
func OneOf[S ~string](values []S) string {
	var b strings.Builder
	for i, v := range values {
		switch {
		case i == 0:
		case i == len(values)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(string(v))
	}
	return b.String()
}

// Budget is how long an agent may stay silent before it is FAILED.
type Budget struct {
	// ResponseTime is the expected transit and answer time; the measured
	// RTT p99 replaces it when larger.
	ResponseTime time.Duration `json:"responseTime"`
	// Processing is the monitor's own processing time.
	Processing time.Duration `json:"processing"`
	// Failover applies only to cluster members.
	Failover time.Duration `json:"failover"`
	// Restart is a machine (or agent) restart.
	Restart             time.Duration `json:"restart"`
	NetworkInterruption time.Duration `json:"networkInterruption"`
	AppErrorRecovery    time.Duration `json:"appErrorRecovery"`
	Combine             Combine       `json:"combine"`
	Mode                Mode          `json:"mode"`
}

// Measured tunes measured mode.
type Measured struct {
	// Percentile of the past silences of one kind (0 < p <= 100).
	Percentile float64 `json:"percentile"`
	// Floor and Ceiling clamp a learned allowance.
	Floor   time.Duration `json:"floor"`
	Ceiling time.Duration `json:"ceiling"`
	// MinSamples is how many past silences of a kind must be known before
	// the learned value replaces the configured one.
	MinSamples int `json:"minSamples"`
}

// AutoRestart is the remediation policy.
type AutoRestart struct {
	Enabled bool `json:"enabled"`
	// MaxRestarts successful restarts of one process within Window are
	// tolerated; one more trips the flap guard.
	MaxRestarts int           `json:"maxRestarts"`
	Window      time.Duration `json:"window"`
	// BackoffInitial and BackoffMax bound the wait between failed attempts.
	BackoffInitial time.Duration `json:"backoffInitial"`
	BackoffMax     time.Duration `json:"backoffMax"`
	// StopWhenNotExpected stops CDP on a node that is no longer active, once
	// it is confirmed running on the active one.
	StopWhenNotExpected bool `json:"stopWhenNotExpected"`
}

// Policy is everything an agent can override.
type Policy struct {
	Budget      Budget      `json:"budget"`
	Measured    Measured    `json:"measured"`
	AutoRestart AutoRestart `json:"autoRestart"`
	// RPO is the protection lag objective; 0 switches the lag check off.
	RPO time.Duration `json:"rpo"`
}

// DefaultPolicy is what applies when nothing is configured.
func DefaultPolicy() Policy {
	return Policy{
		Budget: Budget{
			ResponseTime: time.Second, Processing: time.Second,
			Failover: 60 * time.Second, Restart: 180 * time.Second,
			NetworkInterruption: 30 * time.Second, AppErrorRecovery: 60 * time.Second,
			Combine: CombineMax, Mode: ModeConfigured,
		},
		Measured: Measured{Percentile: 95, Floor: 5 * time.Second, Ceiling: 15 * time.Minute, MinSamples: 5},
		AutoRestart: AutoRestart{
			Enabled: true, MaxRestarts: 3, Window: 10 * time.Minute,
			BackoffInitial: 5 * time.Second, BackoffMax: 5 * time.Minute, StopWhenNotExpected: true,
		},
		RPO: 60 * time.Second,
	}
}

// LagBeyondRPO says whether a protection lag (seconds) misses an RPO: it
// is above it (an RPO of 0 checks nothing).
func LagBeyondRPO(lagSeconds float64, rpo time.Duration) bool {
	return rpo > 0 && lagSeconds > rpo.Seconds()
}

// Secret holds a token. It never prints or marshals its value.
type Secret string

// Reveal returns the token for the one place that needs it: the request header.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether a token was configured.
func (s Secret) IsSet() bool { return s != "" }

// String redacts the token.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString redacts the token in %#v output.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// MarshalJSON redacts the token.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Agent is one monitored client with its effective settings.
type Agent struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Cluster is the configured cluster, if any; the agent reports its own too.
	Cluster      string `json:"cluster,omitempty"`
	ReadToken    Secret `json:"-"`
	ControlToken Secret `json:"-"`
	// Transport is "poll" (the monitor asks; the default) or "push" (the
	// agent sends its status every ReportEvery and at once on a change,
	// signed with its own ReportToken; the monitor cannot call it).
	Transport   string        `json:"transport"`
	ReportEvery time.Duration `json:"reportEvery"`
	ReportToken Secret        `json:"-"`
	Policy
}

// Transports an agent can use.
const (
	TransportPoll = "poll"
	TransportPush = "push"
)

// MinReportTokenLength keeps a report token from being guessed.
const MinReportTokenLength = 16

// Pushes says whether the agent reports by itself instead of being polled.
func (a Agent) Pushes() bool { return a.Transport == TransportPush }

// Config is a validated fleet.
type Config struct {
	PollInterval time.Duration `json:"pollInterval"`
	// Defaults is the fleet-wide policy (already merged into every agent).
	Defaults     Policy  `json:"defaults"`
	ReadToken    Secret  `json:"-"`
	ControlToken Secret  `json:"-"`
	Agents       []Agent `json:"agents"`
	// Handlers are the corrective actions run on state changes.
	Handlers []Handler `json:"handlers,omitempty"`
	// History, when History.Postgres is set, is shared by the fleet's
	// monitors; Cluster, when set, divides the agents among them.
	History SharedHistory `json:"history,omitzero"`
	Cluster *Cluster      `json:"cluster,omitempty"`
	// warnings are what Load and Parse found usable but doubtful.
	warnings []string
}

// Warnings are what loading a fleet file found usable but doubtful, one
// sentence each naming the agent and the key to set: an agent without a
// control token while autoRestart is on (its CDP cannot be restarted).
func (c *Config) Warnings() []string { return c.warnings }

// Agent returns the configured agent with that name.
func (c *Config) Agent(name string) (Agent, bool) {
	for _, a := range c.Agents {
		if a.Name == name {
			return a, true
		}
	}
	return Agent{}, false
}

// ErrInvalid wraps every validation error, so callers can tell a
// configuration problem (the person who wrote it can fix it) from others.
var ErrInvalid = errors.New("invalid fleet configuration")

// FieldError is a problem with one key, named by its path ("agents[1].url").
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Is makes every FieldError match ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// AgentNamePattern is what an agent's name must match (it names the agent in
// URLs, metrics and variables).
const AgentNamePattern = `^[A-Za-z0-9_-]{1,63}$`

var agentNamePattern = regexp.MustCompile(AgentNamePattern)

// Validate checks a configuration built in code or loaded from a file. It
// reports every problem, each as a *FieldError naming the key path.
func (c *Config) Validate() error { return c.ValidateMin(MinPollInterval) }

// ValidateMin is Validate with another lower bound for pollInterval; tests
// that run real agents poll faster than a fleet file may.
func (c *Config) ValidateMin(minPoll time.Duration) error { return c.validate(minPoll, "") }

func (c *Config) validate(minPoll time.Duration, prefix string) error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: prefix + field, Message: fmt.Sprintf(format, args...)})
	}
	if c.PollInterval < minPoll {
		fail("pollInterval", "%s is below the minimum of %s", c.PollInterval, minPoll)
	}
	errs = append(errs, c.validateShared(prefix)...)
	// A problem an agent inherits unchanged from defaults is named once,
	// under defaults.
	inherited := map[[2]string]bool{}
	validatePolicy(c.Defaults, func(key, message string) {
		inherited[[2]string{key, message}] = true
		fail("defaults."+key, "%s", message)
	})
	if len(c.Agents) == 0 {
		fail("agents", "at least one agent is required")
	}
	firstUse := map[string]int{}
	for i, a := range c.Agents {
		field := fmt.Sprintf("agents[%d]", i)
		switch {
		case a.Name == "":
			fail(field+".name", "is required")
		case !agentNamePattern.MatchString(a.Name):
			fail(field+".name", "%q must be 1 to 63 letters, digits, '-' or '_'", a.Name)
		default:
			if j, dup := firstUse[a.Name]; dup {
				fail(field+".name", "%q is already used by %sagents[%d]", a.Name, prefix, j)
			} else {
				firstUse[a.Name] = i
			}
		}
		switch a.Transport {
		case TransportPoll, "":
		case TransportPush:
			switch {
			case a.ReportToken == "":
				fail(field+".reportToken", "is required for transport push: the agent signs its reports with it (its own; give every agent another)")
			case len(a.ReportToken) < MinReportTokenLength:
				fail(field+".reportToken", "must be at least %d characters", MinReportTokenLength)
			}
			for j := range i {
				if c.Agents[j].Pushes() && c.Agents[j].ReportToken == a.ReportToken && a.ReportToken != "" {
					fail(field+".reportToken", "is also agents[%d]'s: each agent needs its own, or one could sign the other's reports", j)
				}
			}
			if a.ReportEvery < time.Second {
				fail(field+".reportEvery", "%s is below the minimum of 1s", a.ReportEvery)
			}
		default:
			fail(field+".transport", "%q must be poll or push", a.Transport)
		}
		// A push agent need not be reachable: its URL is optional.
		if a.URL == "" && !a.Pushes() {
			fail(field+".url", "is required")
		} else if problem, secretsPlace := AgentURLProblem(a.URL); a.URL != "" && problem != "" {
			if secretsPlace {
				problem += tokensGoTo(prefix)
			}
			fail(field+".url", "%s", problem)
		}
		validatePolicy(a.Policy, func(key, message string) {
			if !inherited[[2]string{key, message}] {
				fail(field+"."+key, "%s", message)
			}
		})
	}
	validateHandlers(c.Handlers, c.Agents, fail)
	return errors.Join(errs...)
}

// validatePolicy reports each problem of a policy by its key under the policy.
func validatePolicy(p Policy, report func(key, message string)) {
	fail := func(key, format string, args ...any) { report(key, fmt.Sprintf(format, args...)) }
	durs := []struct {
		key string
		d   time.Duration
	}{
		{"budget.responseTime", p.Budget.ResponseTime}, {"budget.processing", p.Budget.Processing},
		{"budget.failover", p.Budget.Failover}, {"budget.restart", p.Budget.Restart},
		{"budget.networkInterruption", p.Budget.NetworkInterruption}, {"budget.appErrorRecovery", p.Budget.AppErrorRecovery},
		{"measured.floor", p.Measured.Floor}, {"measured.ceiling", p.Measured.Ceiling},
		{"autoRestart.window", p.AutoRestart.Window}, {"autoRestart.backoffInitial", p.AutoRestart.BackoffInitial},
		{"autoRestart.backoffMax", p.AutoRestart.BackoffMax}, {"rpo", p.RPO},
	}
	for _, d := range durs {
		if d.d < 0 {
			fail(d.key, "%s must not be negative", d.d)
		}
	}
	if !slices.Contains(Combines(), p.Budget.Combine) {
		fail("budget.combine", "%q must be %s", p.Budget.Combine, OneOf(Combines()))
	}
	if !slices.Contains(Modes(), p.Budget.Mode) {
		fail("budget.mode", "%q must be %s", p.Budget.Mode, OneOf(Modes()))
	}
	if p.Measured.Percentile <= 0 || p.Measured.Percentile > 100 {
		fail("measured.percentile", "%v must be above 0 and at most 100", p.Measured.Percentile)
	}
	if p.Measured.Floor > p.Measured.Ceiling {
		fail("measured.floor", "%s is above measured.ceiling %s", p.Measured.Floor, p.Measured.Ceiling)
	}
	if p.Measured.MinSamples < 1 {
		fail("measured.minSamples", "%d must be at least 1", p.Measured.MinSamples)
	}
	if p.AutoRestart.MaxRestarts < 0 {
		fail("autoRestart.maxRestarts", "%d must not be negative", p.AutoRestart.MaxRestarts)
	}
	if p.AutoRestart.BackoffInitial > p.AutoRestart.BackoffMax {
		fail("autoRestart.backoffInitial", "%s is above autoRestart.backoffMax %s", p.AutoRestart.BackoffInitial, p.AutoRestart.BackoffMax)
	}
}

// AgentURLProblem says what is wrong with an agent's base URL, or "" when
// nothing is. It is the one rule for agent URLs: fleet.yaml and a
// datasource's jsonData (through Validate) and `vigil check --agent` apply it,
// and the datasource's settings editor (src/datasource/settings.ts) mirrors
// it, both checked against the cases in testdata/agent-urls.json.
//
// A URL may not carry a user name or password, a query string or a
// fragment: Vigil sends none of them to an agent as a token, and an agent URL
// is shown to every Viewer, so they are where secrets get pasted by mistake.
// secretsPlace reports such a problem, for the caller to say where tokens
// belong instead. The message never repeats the URL.
func AgentURLProblem(raw string) (problem string, secretsPlace bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return "must be an absolute http or https URL", false
	}
	switch {
	case u.User != nil:
		return "must not carry a user name or password (user:password@)", true
	case u.RawQuery != "" || u.ForceQuery:
		return "must not carry a query string (?...): agents take no URL parameters", true
	case strings.Contains(raw, "#"):
		return "must not carry a fragment (#...)", true
	}
	return "", false
}

// tokensGoTo says where an agent's tokens belong, in a datasource's jsonData
// (prefix "jsonData.") or in fleet.yaml.
func tokensGoTo(prefix string) string {
	if prefix == "jsonData." {
		return "; tokens belong in secureJsonData (readToken, controlToken)"
	}
	return "; give tokens as readToken or readTokenFile, and controlToken or controlTokenFile"
}
