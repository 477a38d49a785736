package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Load reads and validates a fleet file. Every error names the file and the
// key path. Token files named in it are read relative to its folder.
func Load(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read fleet file: %w", err)
	}
	cfg, err := parse(raw, filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse is Load on bytes already read; relative token files are read from the
// working directory.
func Parse(raw []byte) (Config, error) { return parse(raw, "") }

func parse(raw []byte, baseDir string) (Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return Config{}, syntaxError(raw, err)
	}
	d := &decoder{strict: true, baseDir: baseDir, tokens: true}
	var root *yaml.Node
	if len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	cfg := d.config(root, "")
	errs := d.errs
	if len(errs) == 0 {
		if err := cfg.validate(MinPollInterval, ""); err != nil {
			errs = append(errs, err)
		}
	}
	// Missing tokens come last: the structure's problems are read first.
	errs = append(errs, d.tokenErrs...)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	cfg.warnings = d.warnings
	return cfg, nil
}

// FromJSON builds a fleet from a Grafana datasource's jsonData, which uses the
// same keys as fleet.yaml. Tokens come only from the decrypted secrets:
// readToken and controlToken for the fleet, agent.<name>.readToken and
// agent.<name>.controlToken per agent. Unknown keys are ignored; errors name
// the field as "jsonData.<path>".
func FromJSON(jsonData []byte, secrets map[string]string) (Config, error) {
	cfg, _, err := FromJSONKeys(jsonData, secrets)
	return cfg, err
}

// FromJSONKeys is FromJSON that also returns jsonData's top-level keys with
// their values, in the order written, from the same parse: the datasource
// reads the keys only it has (restartRole, ...) from them without parsing
// jsonData a second time. They are returned even when the fleet has
// problems, and are nil when jsonData is not a JSON object.
func FromJSONKeys(jsonData []byte, secrets map[string]string) (Config, []JSONKey, error) {
	const prefix = "jsonData."
	var root *yaml.Node
	if s := strings.TrimSpace(string(jsonData)); s != "" && s != "null" {
		var doc yaml.Node
		// JSON is YAML, so one walker serves both.
		if err := yaml.Unmarshal(jsonData, &doc); err != nil {
			return Config{}, nil, fmt.Errorf("%w: %w", ErrInvalid, &FieldError{Field: "jsonData", Message: "is not valid JSON: " + err.Error()})
		}
		if len(doc.Content) > 0 {
			root = doc.Content[0]
		}
	}
	var keys []JSONKey
	if root != nil && root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root.Content); i += 2 {
			keys = append(keys, JSONKey{Key: root.Content[i].Value, Value: JSONValue{root.Content[i+1]}})
		}
	}
	d := &decoder{prefix: prefix}
	cfg := d.config(root, "")
	if len(d.errs) > 0 {
		return Config{}, keys, errors.Join(d.errs...)
	}
	cfg.ReadToken = Secret(secrets["readToken"])
	cfg.ControlToken = Secret(secrets["controlToken"])
	cfg.History.Password = Secret(secrets["history.password"])
	if cfg.Cluster != nil {
		cfg.Cluster.SecretKey = Secret(secrets["cluster.secretKey"])
	}
	for i := range cfg.Handlers {
		h := &cfg.Handlers[i]
		prefix := "handler." + h.Name + ".header."
		for k, v := range secrets {
			if name, ok := strings.CutPrefix(k, prefix); ok && h.HTTP != nil && name != "" && v != "" {
				if h.HTTP.Headers == nil {
					h.HTTP.Headers = map[string]Secret{}
				}
				h.HTTP.Headers[name] = Secret(v)
			}
		}
	}
	for i := range cfg.Agents {
		a := &cfg.Agents[i]
		a.ReadToken = pickSecret(secrets, "agent."+a.Name+".readToken", cfg.ReadToken)
		a.ControlToken = pickSecret(secrets, "agent."+a.Name+".controlToken", cfg.ControlToken)
		a.ReportToken = Secret(secrets["agent."+a.Name+".reportToken"])
	}
	if err := cfg.validate(MinPollInterval, prefix); err != nil {
		return Config{}, keys, err
	}
	return cfg, keys, nil
}

// JSONKey is one top-level key of jsonData, as written, and its value.
type JSONKey struct {
	Key   string
	Value JSONValue
}

// JSONValue is one value of jsonData.
type JSONValue struct{ n *yaml.Node }

// Type is the value's JSON type: "string", "number", "bool", "null",
// "array" or "object".
func (v JSONValue) Type() string {
	switch {
	case v.n.Kind == yaml.SequenceNode:
		return "array"
	case v.n.Kind == yaml.MappingNode:
		return "object"
	case v.n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		return "string"
	case v.n.Tag == "!!null":
		return "null"
	case v.n.Tag == "!!bool":
		return "bool"
	}
	// The one other unquoted JSON value: a number, even one too large for
	// a float64 (which YAML would take for a string).
	return "number"
}

// Text is a string's value, the JSON text of a number, bool or null, and
// the compact JSON of an array or object.
func (v JSONValue) Text() string {
	if v.n.Kind == yaml.ScalarNode {
		return v.n.Value
	}
	var x any
	_ = v.n.Decode(&x)
	raw, _ := json.Marshal(x)
	return string(raw)
}

func pickSecret(secrets map[string]string, key string, fallback Secret) Secret {
	if v := secrets[key]; v != "" {
		return Secret(v)
	}
	return fallback
}

// decoder walks a YAML (or JSON) node tree by hand so that every problem is
// reported with its key path, and all problems at once.
type decoder struct {
	strict  bool   // unknown keys are errors (fleet.yaml), or ignored (jsonData)
	tokens  bool   // token keys are accepted (fleet.yaml only)
	prefix  string // prepended to every key path in errors
	baseDir string // for relative token files
	errs    []error
	// tokenErrs are agents without a usable read token (fleet.yaml only),
	// reported after every other problem; warnings are agents whose CDP
	// cannot be restarted for want of a control token.
	tokenErrs []error
	warnings  []string
	// reported keeps a token key whose $VAR is empty from being reported
	// once for every agent that inherits it.
	reported map[string]bool
}

type field func(n *yaml.Node, path string)

func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Field: d.prefix + path, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) line(n *yaml.Node) string {
	if !d.strict {
		return ""
	}
	return fmt.Sprintf(" (line %d)", n.Line)
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// mapping decodes a mapping, calling each known key's field in the order of
// fields' keys as given by order (so defaults are read before agents).
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]field, order ...string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(orRoot(path), "must be a mapping of keys to values%s", d.line(n))
		return
	}
	values := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		if _, ok := fields[key.Value]; !ok {
			if d.strict {
				d.fail(join(path, key.Value), "unknown key%s; known keys: %s", d.line(key), keys(fields))
			}
			continue
		}
		if _, dup := values[key.Value]; dup {
			d.fail(join(path, key.Value), "is given twice%s", d.line(key))
			continue
		}
		values[key.Value] = value
	}
	seen := map[string]bool{}
	for _, k := range order {
		seen[k] = true
		if v, ok := values[k]; ok {
			fields[k](v, join(path, k))
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if v, ok := values[k]; ok && !seen[k] {
			seen[k] = true
			fields[k](v, join(path, k))
		}
	}
}

func keys(fields map[string]field) string {
	ks := make([]string, 0, len(fields))
	for k := range fields {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func (d *decoder) scalar(n *yaml.Node, path string) bool {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, "must be a single value%s", d.line(n))
		return false
	}
	return true
}

func (d *decoder) str(dst *string) field {
	return func(n *yaml.Node, path string) {
		if isNull(n) || !d.scalar(n, path) {
			return
		}
		*dst = strings.TrimSpace(n.Value)
	}
}

func (d *decoder) duration(dst *time.Duration) field {
	return func(n *yaml.Node, path string) {
		if isNull(n) || !d.scalar(n, path) {
			return
		}
		v, err := ParseDuration(n.Value)
		if err != nil {
			d.fail(path, "%q is not a duration%s (%s)", strings.TrimSpace(n.Value), d.line(n), durationExamples)
			return
		}
		*dst = v
	}
}

func (d *decoder) boolean(dst *bool) field {
	return func(n *yaml.Node, path string) {
		if isNull(n) || !d.scalar(n, path) {
			return
		}
		if n.Tag != "!!bool" {
			d.fail(path, "%q must be true or false%s", n.Value, d.line(n))
			return
		}
		*dst = strings.EqualFold(n.Value, "true")
	}
}

func (d *decoder) integer(dst *int) field {
	return func(n *yaml.Node, path string) {
		if isNull(n) || !d.scalar(n, path) {
			return
		}
		v, err := strconv.Atoi(n.Value)
		if err != nil || n.Tag != "!!int" {
			d.fail(path, "%q must be a whole number%s", n.Value, d.line(n))
			return
		}
		*dst = v
	}
}

func (d *decoder) number(dst *float64) field {
	return func(n *yaml.Node, path string) {
		if isNull(n) || !d.scalar(n, path) {
			return
		}
		v, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || (n.Tag != "!!int" && n.Tag != "!!float") || math.IsNaN(v) || math.IsInf(v, 0) {
			d.fail(path, "%q must be a number%s", n.Value, d.line(n))
			return
		}
		*dst = v
	}
}

func (d *decoder) enum(dst *string) field { return d.str(dst) }

func (d *decoder) policy(p *Policy) map[string]field {
	var combine, mode string
	return map[string]field{
		"budget": func(n *yaml.Node, path string) {
			combine, mode = string(p.Budget.Combine), string(p.Budget.Mode)
			d.mapping(n, path, map[string]field{
				"responseTime":        d.duration(&p.Budget.ResponseTime),
				"processing":          d.duration(&p.Budget.Processing),
				"failover":            d.duration(&p.Budget.Failover),
				"restart":             d.duration(&p.Budget.Restart),
				"networkInterruption": d.duration(&p.Budget.NetworkInterruption),
				"appErrorRecovery":    d.duration(&p.Budget.AppErrorRecovery),
				"combine":             d.enum(&combine),
				"mode":                d.enum(&mode),
			})
			p.Budget.Combine, p.Budget.Mode = Combine(combine), Mode(mode)
		},
		"measured": func(n *yaml.Node, path string) {
			d.mapping(n, path, map[string]field{
				"percentile": d.number(&p.Measured.Percentile),
				"floor":      d.duration(&p.Measured.Floor),
				"ceiling":    d.duration(&p.Measured.Ceiling),
				"minSamples": d.integer(&p.Measured.MinSamples),
			})
		},
		"autoRestart": func(n *yaml.Node, path string) {
			d.mapping(n, path, map[string]field{
				"enabled":             d.boolean(&p.AutoRestart.Enabled),
				"maxRestarts":         d.integer(&p.AutoRestart.MaxRestarts),
				"window":              d.duration(&p.AutoRestart.Window),
				"backoffInitial":      d.duration(&p.AutoRestart.BackoffInitial),
				"backoffMax":          d.duration(&p.AutoRestart.BackoffMax),
				"stopWhenNotExpected": d.boolean(&p.AutoRestart.StopWhenNotExpected),
			})
		},
		"rpo": d.duration(&p.RPO),
	}
}

// tokenSource is one token written as a value or as a file.
type tokenSource struct{ value, file string }

func (d *decoder) tokenFields(fields map[string]field, read, control *tokenSource) {
	if !d.tokens {
		return
	}
	fields["readToken"] = d.str(&read.value)
	fields["readTokenFile"] = d.str(&read.file)
	fields["controlToken"] = d.str(&control.value)
	fields["controlTokenFile"] = d.str(&control.file)
}

var envRef = regexp.MustCompile(`^\$(?:\{(\w+)\}|(\w+))$`)

// token is a token key as resolved: the secret and where it came from.
type token struct {
	secret Secret
	// key is the key path that was set ("defaults.readToken",
	// "agents[1].readTokenFile"), "" when none was.
	key string
	// envVar is the variable a $VAR value names.
	envVar string
	// failed: a problem with it was already reported.
	failed bool
}

// resolve turns a token source into the token: $VAR or ${VAR} reads the
// environment (so a fleet file can be committed without its tokens), a file
// is read and trimmed. Neither set gives the fallback.
func (d *decoder) resolve(src tokenSource, path, key string, fallback token) token {
	switch {
	case src.value != "" && src.file != "":
		d.fail(join(path, key), "set either %s or %sFile, not both", key, key)
		return token{key: join(path, key), failed: true}
	case src.file != "":
		t := token{key: join(path, key+"File")}
		file := src.file
		if !filepath.IsAbs(file) && d.baseDir != "" {
			file = filepath.Join(d.baseDir, file)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			d.fail(t.key, "cannot read %s: %v", file, errors.Unwrap(err))
			t.failed = true
			return t
		}
		t.secret = Secret(strings.TrimSpace(string(b)))
		if t.secret == "" {
			d.fail(t.key, "%s is empty", file)
			t.failed = true
		}
		return t
	case src.value != "":
		t := token{key: join(path, key), secret: Secret(src.value)}
		if m := envRef.FindStringSubmatch(src.value); m != nil {
			t.envVar = m[1] + m[2]
			t.secret = Secret(os.Getenv(t.envVar))
		}
		return t
	}
	return fallback
}

// checkTokens applies fleet.yaml's token rules to one agent: a read token is
// required (a vigil-agent refuses every poll without one), and an agent whose
// CDP Vigil should restart needs a control token, else it is a warning.
func (d *decoder) checkTokens(ap string, n *yaml.Node, a Agent, read, control token) {
	if !d.tokens {
		return
	}
	who := "this agent" + d.line(n)
	if a.Name != "" {
		who = fmt.Sprintf("agent %q%s", a.Name, d.line(n))
	}
	if a.Transport == TransportPush {
		// The monitor never calls a push agent: no read or control token.
		return
	}
	switch {
	case read.failed || read.secret != "":
	case read.envVar != "":
		if !d.reported[read.key] {
			d.reported[read.key] = true
			d.tokenErrs = append(d.tokenErrs, &FieldError{Field: read.key,
				Message: fmt.Sprintf("$%s is empty or not set in the environment, so there is no read token and the agent would refuse every poll", read.envVar)})
		}
	default:
		d.tokenErrs = append(d.tokenErrs, &FieldError{Field: ap + ".readToken",
			Message: fmt.Sprintf("%s has no read token (a vigil-agent refuses every poll without one): set defaults.readToken for every agent or %s.readToken for this one (or the readTokenFile of either)", who, ap)})
	}
	if control.secret != "" || control.failed || !a.AutoRestart.Enabled {
		return
	}
	why := fmt.Sprintf("set defaults.controlToken for every agent or %s.controlToken for this one (or the controlTokenFile of either)", ap)
	if control.envVar != "" {
		why = fmt.Sprintf("%s names $%s, which is empty or not set in the environment", control.key, control.envVar)
	}
	d.warnings = append(d.warnings, fmt.Sprintf("%s: %s has no control token, so Vigil cannot restart its CDP although autoRestart is on: %s", ap, who, why))
}

func (d *decoder) config(root *yaml.Node, path string) Config {
	cfg := Config{PollInterval: DefaultPollInterval, Defaults: DefaultPolicy()}
	var read, control tokenSource
	var agentNodes *yaml.Node
	defaults := d.policy(&cfg.Defaults)
	d.tokenFields(defaults, &read, &control)
	d.mapping(root, path, map[string]field{
		"pollInterval": d.duration(&cfg.PollInterval),
		"defaults": func(n *yaml.Node, p string) {
			d.mapping(n, p, defaults)
		},
		"agents":   func(n *yaml.Node, _ string) { agentNodes = n },
		"handlers": d.handlers(&cfg.Handlers),
		"history":  d.sharedHistory(&cfg.History),
		"cluster":  d.cluster(&cfg.Cluster),
	}, "pollInterval", "defaults", "agents", "handlers", "history", "cluster")
	fleetRead := d.resolve(read, join(path, "defaults"), "readToken", token{})
	fleetControl := d.resolve(control, join(path, "defaults"), "controlToken", token{})
	cfg.ReadToken, cfg.ControlToken = fleetRead.secret, fleetControl.secret
	d.reported = map[string]bool{}

	agentsPath := join(path, "agents")
	if isNull(agentNodes) {
		return cfg
	}
	if agentNodes.Kind != yaml.SequenceNode {
		d.fail(agentsPath, "must be a list%s", d.line(agentNodes))
		return cfg
	}
	for i, n := range agentNodes.Content {
		ap := fmt.Sprintf("%s[%d]", agentsPath, i)
		a := Agent{Policy: cfg.Defaults}
		var aread, acontrol tokenSource
		fields := d.policy(&a.Policy)
		fields["name"] = d.str(&a.Name)
		fields["url"] = d.str(&a.URL)
		fields["cluster"] = d.str(&a.Cluster)
		fields["transport"] = d.str(&a.Transport)
		fields["reportEvery"] = d.duration(&a.ReportEvery)
		var areport tokenSource
		if d.tokens {
			fields["reportToken"] = d.str(&areport.value)
			fields["reportTokenFile"] = d.str(&areport.file)
		}
		d.tokenFields(fields, &aread, &acontrol)
		if isNull(n) {
			d.fail(ap, "must be a mapping with at least name and url")
			continue
		}
		d.mapping(n, ap, fields)
		readTok := d.resolve(aread, ap, "readToken", fleetRead)
		controlTok := d.resolve(acontrol, ap, "controlToken", fleetControl)
		a.ReadToken, a.ControlToken = readTok.secret, controlTok.secret
		// A report token is the agent's own: no default, or one agent
		// could sign another's reports.
		a.ReportToken = d.resolve(areport, ap, "reportToken", token{}).secret
		if a.Transport == "" {
			a.Transport = TransportPoll
		}
		if a.ReportEvery == 0 {
			a.ReportEvery = cfg.PollInterval
		}
		d.checkTokens(ap, n, a, readTok, controlTok)
		cfg.Agents = append(cfg.Agents, a)
	}
	return cfg
}
