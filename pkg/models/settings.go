// Package models loads and validates the settings of a Vigil datasource. It is
// the one place where jsonData and secureJsonData are read; the datasource
// factory and CheckHealth both go through LoadSettings.
//
// The jsonData keys are a contract shared with the CLI's fleet.yaml:
// pollInterval, agents[{name, url, cluster}], restartRole, historyPath.
package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

const (
	// DefaultPollInterval is used when jsonData.pollInterval is empty.
	DefaultPollInterval = 10 * time.Second
	// MinPollInterval keeps a typo ("10ms") from hammering every agent.
	MinPollInterval = time.Second
	// DefaultRestartRole is the least Grafana role allowed to restart CDP by hand.
	DefaultRestartRole = RoleEditor
)

// Role is a Grafana organisation role.
type Role string

// The Grafana roles a restart can be limited to.
const (
	RoleViewer Role = "Viewer"
	RoleEditor Role = "Editor"
	RoleAdmin  Role = "Admin"
)

// Secret holds a token. It never prints or marshals its value, so a Settings
// value can be logged or encoded without leaking credentials.
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

// Agent is one monitored client as configured in the datasource.
type Agent struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	Cluster string `json:"cluster,omitempty"`

	// ReadToken and ControlToken are the effective tokens for this agent: the
	// per-agent secret when set, otherwise the datasource-wide one.
	ReadToken    Secret `json:"-"`
	ControlToken Secret `json:"-"`
}

// Settings is the validated configuration of one Vigil datasource instance.
type Settings struct {
	PollInterval time.Duration
	Agents       []Agent
	RestartRole  Role
	HistoryPath  string

	// ReadToken and ControlToken are the datasource-wide defaults.
	ReadToken    Secret
	ControlToken Secret

	// unknownSecrets are secureJsonData keys that name no configured agent;
	// kept for Validate so a typo in an agent name is reported, not ignored.
	unknownSecrets []string
	// rawPollInterval keeps the user's spelling for error messages.
	rawPollInterval string
	pollIntervalErr error
}

// jsonData mirrors the stored JSON. Unknown keys are ignored: Grafana's own
// config editor may store keys this backend does not read.
type jsonData struct {
	PollInterval string  `json:"pollInterval"`
	Agents       []Agent `json:"agents"`
	RestartRole  string  `json:"restartRole"`
	HistoryPath  string  `json:"historyPath"`
}

// Secret keys in DecryptedSecureJSONData.
const (
	secretReadToken    = "readToken"
	secretControlToken = "controlToken"
	agentSecretPrefix  = "agent."
)

// FieldError is a settings error that names the offending field, e.g.
// "jsonData.agents[1].url".
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// ErrInvalidSettings wraps every error from LoadSettings, so callers can tell a
// configuration problem (the person who configured the datasource can fix it)
// from anything else.
var ErrInvalidSettings = errors.New("invalid Vigil datasource settings")

// LoadSettings reads jsonData and the decrypted secrets, applies defaults and
// validates the result. The error names each offending field.
func LoadSettings(s backend.DataSourceInstanceSettings) (*Settings, error) {
	var raw jsonData
	if len(s.JSONData) > 0 && string(s.JSONData) != "null" {
		if err := json.Unmarshal(s.JSONData, &raw); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidSettings, &FieldError{Field: "jsonData", Message: "is not valid: " + describeJSONError(err)})
		}
	}
	settings := fromJSON(raw, s.DecryptedSecureJSONData)
	if err := settings.ValidateAt("jsonData."); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSettings, err)
	}
	return settings, nil
}

// FromFleet builds settings from values read elsewhere (the CLI's fleet.yaml)
// with the same defaults and token rules as the datasource.
func FromFleet(pollInterval string, agents []Agent, secrets map[string]string) *Settings {
	return fromJSON(jsonData{PollInterval: pollInterval, Agents: agents}, secrets)
}

func fromJSON(raw jsonData, secrets map[string]string) *Settings {
	s := &Settings{
		PollInterval:    DefaultPollInterval,
		RestartRole:     Role(strings.TrimSpace(raw.RestartRole)),
		HistoryPath:     strings.TrimSpace(raw.HistoryPath),
		ReadToken:       Secret(secrets[secretReadToken]),
		ControlToken:    Secret(secrets[secretControlToken]),
		rawPollInterval: strings.TrimSpace(raw.PollInterval),
	}
	if s.RestartRole == "" {
		s.RestartRole = DefaultRestartRole
	}
	if s.rawPollInterval != "" {
		s.PollInterval, s.pollIntervalErr = time.ParseDuration(s.rawPollInterval)
	}

	known := map[string]bool{}
	for _, a := range raw.Agents {
		a.Name = strings.TrimSpace(a.Name)
		a.URL = strings.TrimSpace(a.URL)
		a.Cluster = strings.TrimSpace(a.Cluster)
		a.ReadToken = pick(secrets, agentSecretPrefix+a.Name+"."+secretReadToken, s.ReadToken)
		a.ControlToken = pick(secrets, agentSecretPrefix+a.Name+"."+secretControlToken, s.ControlToken)
		known[a.Name] = true
		s.Agents = append(s.Agents, a)
	}
	for key := range secrets {
		if key == secretReadToken || key == secretControlToken || !strings.HasPrefix(key, agentSecretPrefix) {
			continue
		}
		rest := strings.TrimPrefix(key, agentSecretPrefix)
		dot := strings.LastIndex(rest, ".")
		if dot < 0 {
			s.unknownSecrets = append(s.unknownSecrets, key)
			continue
		}
		name, kind := rest[:dot], rest[dot+1:]
		if !known[name] || (kind != secretReadToken && kind != secretControlToken) {
			s.unknownSecrets = append(s.unknownSecrets, key)
		}
	}
	sort.Strings(s.unknownSecrets)
	return s
}

func pick(secrets map[string]string, key string, fallback Secret) Secret {
	if v, ok := secrets[key]; ok && v != "" {
		return Secret(v)
	}
	return fallback
}

// Validate checks the settings as stored in a datasource (fields named
// jsonData.*). All problems are reported, each as a *FieldError.
func (s *Settings) Validate() error { return s.ValidateAt("jsonData.") }

var agentNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}$`)

// ValidateAt is Validate with a caller-chosen prefix for field names, so the
// CLI can report "agents[1].url" for the same rule.
func (s *Settings) ValidateAt(prefix string) error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	switch {
	case s.pollIntervalErr != nil:
		fail(prefix+"pollInterval", "%q is not a duration (examples: 10s, 1m30s)", s.rawPollInterval)
	case s.PollInterval < MinPollInterval:
		fail(prefix+"pollInterval", "%s is below the minimum of %s", s.PollInterval, MinPollInterval)
	}

	if len(s.Agents) == 0 {
		fail(prefix+"agents", "at least one agent is required")
	}
	firstUse := map[string]int{}
	for i, a := range s.Agents {
		field := fmt.Sprintf("%sagents[%d]", prefix, i)
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
		if a.URL == "" {
			fail(field+".url", "is required")
		} else if !isHTTPURL(a.URL) {
			fail(field+".url", "must be an absolute http or https URL")
		}
	}

	switch s.RestartRole {
	case RoleViewer, RoleEditor, RoleAdmin:
	default:
		fail(prefix+"restartRole", "%q must be one of Viewer, Editor, Admin", s.RestartRole)
	}

	for _, key := range s.unknownSecrets {
		fail("secureJsonData."+key, "names no configured agent (expected agent.<name>.readToken or agent.<name>.controlToken)")
	}
	return errors.Join(errs...)
}

func isHTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	return (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Hostname() != ""
}

// AgentByName returns the configured agent with that name.
func (s *Settings) AgentByName(name string) (Agent, bool) {
	for _, a := range s.Agents {
		if a.Name == name {
			return a, true
		}
	}
	return Agent{}, false
}

func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("%s must be a %s, got %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	}
	return err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "slice", "array":
		return "list"
	case "struct", "map":
		return "object"
	case "string":
		return "string"
	default:
		return goKind
	}
}
