package fleet

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-cdp/vigil/pkg/state"
)

// Handler is a corrective action run when an agent or one of its processes
// changes state, as a Nagios event handler is: a command (vigil watch only)
// or an HTTP call, given the agent, process, state, previous state, reason
// and budget.
type Handler struct {
	// Name names the handler in events and logs.
	Name string `json:"name"`
	// On are the states entered that run it; From, when set, the states
	// left. STANDBY and GRACE are never accepted: a passive node and a
	// failover's grace are expected, not faults.
	On   []state.State `json:"on"`
	From []state.State `json:"from,omitempty"`
	// Agents, Clusters and Processes narrow it down (empty: every one).
	// Level is "agent" (the agent as a whole), "process" or "any".
	Agents    []string `json:"agents,omitempty"`
	Clusters  []string `json:"clusters,omitempty"`
	Processes []string `json:"processes,omitempty"`
	Level     string   `json:"level"`
	// Command is argv, run without a shell; HTTP a request. Exactly one.
	Command []string     `json:"command,omitempty"`
	HTTP    *HandlerHTTP `json:"http,omitempty"`
	// Timeout bounds one run; Backoff is the least time between two runs
	// for one agent and process, doubled after each run that follows a
	// transition within it, up to BackoffMax.
	Timeout    time.Duration `json:"timeout"`
	Backoff    time.Duration `json:"backoff"`
	BackoffMax time.Duration `json:"backoffMax"`
}

// HandlerHTTP is an HTTP handler: the JSON of the transition is its body.
type HandlerHTTP struct {
	URL    string `json:"url"`
	Method string `json:"method"`
	// Headers may carry a secret (Authorization): never shown.
	Headers map[string]Secret `json:"-"`
}

// Handler levels.
const (
	LevelAny     = "any"
	LevelAgent   = "agent"
	LevelProcess = "process"
)

// Handler defaults and bounds.
const (
	DefaultHandlerTimeout    = 30 * time.Second
	MaxHandlerTimeout        = 10 * time.Minute
	DefaultHandlerBackoff    = time.Minute
	DefaultHandlerBackoffMax = time.Hour
)

var handlerNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,63}$`)

// handlers decodes the handlers list.
func (d *decoder) handlers(dst *[]Handler) field {
	return func(n *yaml.Node, path string) {
		for i, hn := range d.list(n, path) {
			hp := fmt.Sprintf("%s[%d]", path, i)
			h := Handler{Level: LevelAny, Timeout: DefaultHandlerTimeout, Backoff: DefaultHandlerBackoff, BackoffMax: DefaultHandlerBackoffMax}
			var on, from []string
			var httpNode *yaml.Node
			d.mapping(hn, hp, map[string]field{
				"name":       d.str(&h.Name),
				"on":         d.strings(&on),
				"from":       d.strings(&from),
				"agents":     d.strings(&h.Agents),
				"clusters":   d.strings(&h.Clusters),
				"processes":  d.strings(&h.Processes),
				"level":      d.str(&h.Level),
				"command":    d.strings(&h.Command),
				"http":       func(n *yaml.Node, _ string) { httpNode = n },
				"timeout":    d.duration(&h.Timeout),
				"backoff":    d.duration(&h.Backoff),
				"backoffMax": d.duration(&h.BackoffMax),
			})
			if !isNull(httpNode) {
				h.HTTP = &HandlerHTTP{Method: http.MethodPost}
				var headers map[string]string
				d.mapping(httpNode, hp+".http", map[string]field{
					"url":     d.str(&h.HTTP.URL),
					"method":  d.str(&h.HTTP.Method),
					"headers": d.stringMap(&headers),
				})
				if len(headers) > 0 {
					if !d.tokens {
						d.fail(hp+".http.headers", "are not read from jsonData: give them in secureJsonData as handler.%s.header.<Name>", h.Name)
					}
					h.HTTP.Headers = map[string]Secret{}
					for k, v := range headers {
						h.HTTP.Headers[k] = Secret(v)
					}
				}
			}
			h.On = d.states(on, hp+".on")
			h.From = d.states(from, hp+".from")
			*dst = append(*dst, h)
		}
	}
}

func (d *decoder) states(names []string, path string) []state.State {
	var out []state.State
	for _, s := range names {
		st, err := state.Parse(strings.ToUpper(strings.TrimSpace(s)))
		if err != nil {
			d.fail(path, "%q is not a state (%s)", s, stateNames())
			continue
		}
		out = append(out, st)
	}
	return out
}

func stateNames() string {
	var names []string
	for _, s := range state.All() {
		names = append(names, s.String())
	}
	return strings.Join(names, ", ")
}

// list is a sequence's items: none for null, and none with a problem
// reported for anything else.
func (d *decoder) list(n *yaml.Node, path string) []*yaml.Node {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(path, "must be a list%s", d.line(n))
		return nil
	}
	return n.Content
}

// strings decodes a list of strings.
func (d *decoder) strings(dst *[]string) field {
	return func(n *yaml.Node, path string) {
		for i, v := range d.list(n, path) {
			if v.Kind != yaml.ScalarNode || isNull(v) {
				d.fail(fmt.Sprintf("%s[%d]", path, i), "must be a single value%s", d.line(v))
				continue
			}
			*dst = append(*dst, v.Value)
		}
	}
}

// stringMap decodes a mapping of names to strings.
func (d *decoder) stringMap(dst *map[string]string) field {
	return func(n *yaml.Node, path string) {
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(path, "must be a mapping%s", d.line(n))
			return
		}
		*dst = map[string]string{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				d.fail(join(path, k.Value), "must be a single value%s", d.line(v))
				continue
			}
			(*dst)[k.Value] = v.Value
		}
	}
}

// validateHandlers reports each problem of the handlers by its key.
func validateHandlers(hs []Handler, agents []Agent, fail func(field, format string, args ...any)) {
	names := map[string]int{}
	for i, h := range hs {
		p := fmt.Sprintf("handlers[%d]", i)
		switch {
		case h.Name == "":
			fail(p+".name", "is required")
		case !handlerNamePattern.MatchString(h.Name):
			fail(p+".name", "%q must be 1 to 63 letters, digits, '.', '-' or '_'", h.Name)
		default:
			if j, dup := names[h.Name]; dup {
				fail(p+".name", "%q is already used by handlers[%d]", h.Name, j)
			}
			names[h.Name] = i
		}
		if len(h.On) == 0 {
			fail(p+".on", "name at least one state that runs it (%s)", stateNames())
		}
		for _, s := range h.On {
			if s == state.Standby || s == state.Grace {
				fail(p+".on", "%s never runs a handler: a passive node and a failover's grace are expected; run it on FAILED, which follows a grace that ran out", s)
			}
		}
		switch h.Level {
		case LevelAny, LevelAgent, LevelProcess:
		default:
			fail(p+".level", "%q must be %s, %s or %s", h.Level, LevelAny, LevelAgent, LevelProcess)
		}
		if len(h.Processes) > 0 && h.Level == LevelAgent {
			fail(p+".processes", "a handler of level agent runs for no process")
		}
		for _, a := range h.Agents {
			if !slices.ContainsFunc(agents, func(x Agent) bool { return x.Name == a }) {
				fail(p+".agents", "%q is not a configured agent", a)
			}
		}
		switch {
		case len(h.Command) == 0 && h.HTTP == nil:
			fail(p, "give a command or an http request")
		case len(h.Command) > 0 && h.HTTP != nil:
			fail(p, "give a command or an http request, not both")
		case len(h.Command) > 0 && strings.TrimSpace(h.Command[0]) == "":
			fail(p+".command", "the program (its first element) is empty")
		case h.HTTP != nil:
			if problem := handlerURLProblem(h.HTTP.URL); problem != "" {
				fail(p+".http.url", "%s", problem)
			}
			switch h.HTTP.Method {
			case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodGet:
			default:
				fail(p+".http.method", "%q must be POST, PUT, PATCH or GET", h.HTTP.Method)
			}
		}
		if h.Timeout <= 0 || h.Timeout > MaxHandlerTimeout {
			fail(p+".timeout", "%s must be above 0 and at most %s", h.Timeout, MaxHandlerTimeout)
		}
		if h.Backoff < 0 || h.BackoffMax < h.Backoff {
			fail(p+".backoff", "%s must not be negative nor above backoffMax (%s)", h.Backoff, h.BackoffMax)
		}
	}
}

// handlerURLProblem says what is wrong with a handler's URL: it must be an
// absolute http or https URL without a user name or password (a secret
// goes in a header).
func handlerURLProblem(raw string) string {
	if raw == "" {
		return "is required"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Sprintf("%q is not an absolute http or https URL", raw)
	}
	if u.User != nil {
		return "must not carry a user name or password (user:password@): give an Authorization header"
	}
	return ""
}
