package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigil-cdp/vigil/pkg/models"
)

// fleetFile is fleet.yaml. Its keys match the datasource's jsonData, so one
// fleet description serves both the CLI and Grafana.
type fleetFile struct {
	PollInterval string       `yaml:"pollInterval"`
	Agents       []fleetAgent `yaml:"agents"`
	Defaults     struct {
		ReadToken string `yaml:"readToken"`
	} `yaml:"defaults"`
}

type fleetAgent struct {
	Name    string `yaml:"name"`
	URL     string `yaml:"url"`
	Cluster string `yaml:"cluster"`
}

// shape describes the allowed keys of fleet.yaml, so that an unknown key is
// reported with its full path ("agents[1].tokn") rather than a Go type name.
type shape interface {
	check(n *yaml.Node, path string) []error
}

type scalar struct{}

type object map[string]shape

type list struct{ item shape }

var fleetShape = object{
	"pollInterval": scalar{},
	"agents":       list{object{"name": scalar{}, "url": scalar{}, "cluster": scalar{}}},
	"defaults":     object{"readToken": scalar{}},
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func (scalar) check(n *yaml.Node, path string) []error {
	if n.Kind != yaml.ScalarNode {
		return []error{fmt.Errorf("%s: must be a single value (line %d)", path, n.Line)}
	}
	return nil
}

func (o object) check(n *yaml.Node, path string) []error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return []error{fmt.Errorf("%s: must be a mapping of keys to values (line %d)", orRoot(path), n.Line)}
	}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		sub, ok := o[key.Value]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown key (line %d); known keys: %s", join(path, key.Value), key.Line, o.keys()))
			continue
		}
		errs = append(errs, sub.check(value, join(path, key.Value))...)
	}
	return errs
}

func (o object) keys() string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

func (l list) check(n *yaml.Node, path string) []error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return []error{fmt.Errorf("%s: must be a list (line %d)", path, n.Line)}
	}
	var errs []error
	for i, item := range n.Content {
		errs = append(errs, l.item.check(item, fmt.Sprintf("%s[%d]", path, i))...)
	}
	return errs
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

var envRef = regexp.MustCompile(`^\$(?:\{(\w+)\}|(\w+))$`)

// expandToken resolves a token written as $VAR or ${VAR}, so fleet.yaml can
// be committed without the token itself.
func expandToken(v string) string {
	m := envRef.FindStringSubmatch(v)
	if m == nil {
		return v
	}
	return os.Getenv(m[1] + m[2])
}

// LoadFleet reads and validates fleet.yaml. Every error names the key path.
func LoadFleet(path string) (*models.Settings, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read fleet file: %w", err)
	}
	settings, err := ParseFleet(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return settings, nil
}

// ParseFleet is LoadFleet on bytes already read.
func ParseFleet(raw []byte) (*models.Settings, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("agents: at least one agent is required")
	}
	if errs := fleetShape.check(doc.Content[0], ""); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// The shape check above gives the friendly message; KnownFields is the
	// backstop should the two ever disagree.
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var f fleetFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a fleet file: %w", err)
	}
	secrets := map[string]string{}
	if t := expandToken(f.Defaults.ReadToken); t != "" {
		secrets["readToken"] = t
	}
	agents := make([]models.Agent, 0, len(f.Agents))
	for _, a := range f.Agents {
		agents = append(agents, models.Agent{Name: a.Name, URL: a.URL, Cluster: a.Cluster})
	}
	settings := models.FromFleet(f.PollInterval, agents, secrets)
	if err := settings.ValidateAt(""); err != nil {
		return nil, err
	}
	return settings, nil
}
