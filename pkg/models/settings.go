// Package models loads and validates the settings of a Vigil datasource. It is
// the one place where jsonData and secureJsonData are read; the datasource
// factory and CheckHealth both go through LoadSettings.
//
// The fleet keys (pollInterval, defaults, agents) are those of the CLI's
// fleet.yaml and are read by pkg/fleet; this package adds the keys only a
// datasource has: restartRole, historyPath and idleStop, read from the same
// parse of jsonData (fleet.FromJSONKeys).
package models

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/pkg/fleet"
)

// Role is a Grafana organisation role.
type Role string

// The Grafana roles a restart can be limited to.
const (
	RoleViewer Role = "Viewer"
	RoleEditor Role = "Editor"
	RoleAdmin  Role = "Admin"
)

// Roles are the values restartRole takes, least first.
func Roles() []Role { return []Role{RoleViewer, RoleEditor, RoleAdmin} }

// DefaultRestartRole is the least Grafana role allowed to restart CDP by hand.
const DefaultRestartRole = RoleEditor

// roleRank orders the roles as Roles lists them: 1 for the least.
var roleRank = func() map[Role]int {
	rank := map[Role]int{}
	for i, r := range Roles() {
		rank[r] = i + 1
	}
	return rank
}()

// Reaches reports whether a user with Grafana org role userRole ("None",
// "Viewer", "Editor" or "Admin") has at least this role.
func (r Role) Reaches(userRole string) bool {
	have, ok := roleRank[Role(userRole)]
	return ok && have >= roleRank[r]
}

// Settings is the validated configuration of one Vigil datasource instance.
type Settings struct {
	// Fleet is what the monitor engine runs: agents with their effective
	// policy and tokens.
	Fleet fleet.Config
	// RestartRole is the least role allowed to restart a process by hand.
	RestartRole Role
	// HistoryPath is the configured history folder; empty means the default
	// (see the plugin package).
	HistoryPath string
	// IdleStop is how long the monitor runs on without any request before
	// it stops (Grafana never tells a plugin that a datasource was deleted);
	// the next request starts it again.
	IdleStop time.Duration

	// staleSecrets are non-empty secureJsonData keys naming no agent.
	staleSecrets []string
	// secretSet tells, for every secureJsonData key present, whether it holds
	// a value. Only presence is kept, never the value: it lets messages say
	// which key a token came from, or that a key is there but empty.
	secretSet map[string]bool
}

// TokenSource says where an agent's read token comes from.
type TokenSource struct {
	// Key is the secureJsonData key, "readToken" or "agent.<name>.readToken".
	Key string
	// Present reports whether Key exists in secureJsonData, even as an empty
	// string: a provisioning file's $VIGIL_READ_TOKEN that grafana-server did
	// not have in its environment becomes an empty value, not a missing key.
	Present bool
}

// ReadTokenSource names the secureJsonData key an agent's read token is
// taken from (the agent's own key when it holds a value, else the fleet's)
// and, for an empty token, which key is there but empty.
func (s *Settings) ReadTokenSource(agent string) TokenSource {
	own := "agent." + agent + ".readToken"
	if s.secretSet[own] {
		return TokenSource{Key: own, Present: true}
	}
	if _, ok := s.secretSet["readToken"]; ok {
		return TokenSource{Key: "readToken", Present: true}
	}
	if _, ok := s.secretSet[own]; ok {
		return TokenSource{Key: own, Present: true}
	}
	return TokenSource{Key: "readToken"}
}

// ownKeys are the jsonData keys only the datasource reads. Unknown keys are
// ignored: Grafana's config editor may store keys this backend does not read.
type ownKeys struct {
	restartRole, historyPath *string
	// idleStop is the text of jsonData.idleStop; "" when absent, null or blank.
	idleStop string
	// typeErr: the first of restartRole and historyPath that is not a string.
	typeErr error
}

// readOwnKeys reads the datasource's keys from jsonData's top-level keys
// as encoding/json reads an object into a struct: names are matched
// without regard to case, a later key overrides an earlier one, and only
// the first value of the wrong type is an error.
func readOwnKeys(keys []fleet.JSONKey) ownKeys {
	var o ownKeys
	str := func(dst **string, field string, v fleet.JSONValue) {
		switch v.Type() {
		case "string":
			text := v.Text()
			*dst = &text
		case "null":
			*dst = nil
		default:
			if o.typeErr == nil {
				o.typeErr = &FieldError{Field: "jsonData." + field, Message: "must be a string, got " + v.Type()}
			}
		}
	}
	for _, k := range keys {
		switch {
		case strings.EqualFold(k.Key, "restartRole"):
			str(&o.restartRole, "restartRole", k.Value)
		case strings.EqualFold(k.Key, "historyPath"):
			str(&o.historyPath, "historyPath", k.Value)
		case strings.EqualFold(k.Key, "idleStop"):
			o.idleStop = durationText(k.Value)
		}
	}
	return o
}

// DefaultIdleStop is jsonData.idleStop's default: longer than any sensible
// alert evaluation interval, so that alert rules keep the monitor running.
const DefaultIdleStop = 15 * time.Minute

// MinIdleStop is the shortest jsonData.idleStop.
const MinIdleStop = time.Second

// FieldError is a datasource-only settings error naming its field, e.g.
// "jsonData.restartRole". Fleet errors are *fleet.FieldError.
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
// validates the result. Every problem is reported, each naming its field.
func LoadSettings(s backend.DataSourceInstanceSettings) (*Settings, error) {
	settings := &Settings{RestartRole: DefaultRestartRole, IdleStop: DefaultIdleStop, secretSet: make(map[string]bool, len(s.DecryptedSecureJSONData))}
	for key, value := range s.DecryptedSecureJSONData {
		settings.secretSet[key] = value != ""
	}
	var errs []error

	// One parse of jsonData: the fleet's keys and the datasource's own. The
	// fleet's problems are reported after those of the datasource's keys.
	cfg, keys, fleetErr := fleet.FromJSONKeys(s.JSONData, s.DecryptedSecureJSONData)
	own := readOwnKeys(keys)
	if own.typeErr != nil {
		errs = append(errs, own.typeErr)
	}
	if own.restartRole != nil && strings.TrimSpace(*own.restartRole) != "" {
		settings.RestartRole = Role(strings.TrimSpace(*own.restartRole))
	}
	if own.historyPath != nil {
		settings.HistoryPath = strings.TrimSpace(*own.historyPath)
	}
	if text := own.idleStop; text != "" {
		d, err := fleet.ParseDuration(text)
		switch {
		case err != nil:
			errs = append(errs, &FieldError{Field: "jsonData.idleStop", Message: err.Error()})
		case d < MinIdleStop:
			errs = append(errs, &FieldError{Field: "jsonData.idleStop", Message: fmt.Sprintf("%q is below the minimum of %s", text, MinIdleStop)})
		default:
			settings.IdleStop = d
		}
	}

	if fleetErr != nil {
		errs = append(errs, fleetErr)
	} else {
		for i, h := range cfg.Handlers {
			if len(h.Command) > 0 {
				errs = append(errs, &FieldError{Field: fmt.Sprintf("jsonData.handlers[%d].command", i),
					Message: "command handlers run only in vigil watch: in a datasource a command would be a shell on the Grafana server for every org admin; use an http handler"})
			}
		}
		settings.Fleet = cfg
		// Only a fleet that loaded says which agents exist.
		settings.staleSecrets = staleSecrets(s.DecryptedSecureJSONData, cfg)
	}

	if err := settings.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSettings, errors.Join(errs...))
	}
	return settings, nil
}

// durationText is a duration setting as text: a JSON string ("15m") or a
// number of seconds (900); "" when null or blank.
func durationText(v fleet.JSONValue) string {
	if v.Type() == "null" {
		return ""
	}
	return strings.TrimSpace(v.Text())
}

// staleSecrets lists the per-agent secrets that name no configured agent and
// still hold a value. An empty one is what remains of an agent that was
// renamed or removed (Grafana cannot delete a secure key, only empty it), so
// it is ignored.
func staleSecrets(secrets map[string]string, cfg fleet.Config) []string {
	var out []string
	for key, value := range secrets {
		if rest, ok := strings.CutPrefix(key, "handler."); ok && value != "" {
			name, header, ok := strings.Cut(rest, ".header.")
			if !ok || header == "" || !slices.ContainsFunc(cfg.Handlers, func(h fleet.Handler) bool { return h.Name == name && h.HTTP != nil }) {
				out = append(out, key)
			}
			continue
		}
		rest, ok := strings.CutPrefix(key, "agent.")
		if !ok || value == "" {
			continue
		}
		dot := strings.LastIndex(rest, ".")
		if dot < 0 {
			out = append(out, key)
			continue
		}
		name, kind := rest[:dot], rest[dot+1:]
		if _, known := cfg.Agent(name); !known || (kind != "readToken" && kind != "controlToken" && kind != "reportToken") {
			out = append(out, key)
		}
	}
	sort.Strings(out)
	return out
}

// Validate checks what LoadSettings adds to the fleet (whose own rules are
// pkg/fleet's). Every problem is a *FieldError.
func (s *Settings) Validate() error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if _, ok := roleRank[s.RestartRole]; !ok {
		fail("jsonData.restartRole", "%q must be one of %s", s.RestartRole, roleList())
	}
	if s.HistoryPath != "" && !filepath.IsAbs(s.HistoryPath) {
		fail("jsonData.historyPath", "%q must be an absolute path (or empty for the default under Grafana's data folder)", s.HistoryPath)
	}
	for _, key := range s.staleSecrets {
		fail("secureJsonData."+key, "is not the read or control token of a configured agent (agent.<name>.readToken or agent.<name>.controlToken): reset it in the datasource settings")
	}
	return errors.Join(errs...)
}

// roleList names the roles for a message: "Viewer, Editor, Admin".
func roleList() string {
	names := make([]string, len(Roles()))
	for i, r := range Roles() {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}
