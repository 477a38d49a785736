package grafanahost

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"time"

	"gopkg.in/yaml.v3"
)

// Datasource is one provisioned datasource, as Grafana stores it.
type Datasource struct {
	// OrgID is the organisation the datasource belongs to (1 unless the
	// provisioning file says orgId). A UID is unique only within its org.
	OrgID          int64
	ID             int64
	UID            string
	Name           string
	Type           string
	URL            string
	JSONData       json.RawMessage
	SecureJSONData map[string]string
	Updated        time.Time
}

// SecureJSONFields is what Grafana shows the browser about secrets: which
// keys are set, never their values.
func (d Datasource) SecureJSONFields() map[string]bool {
	fields := make(map[string]bool, len(d.SecureJSONData))
	for k := range d.SecureJSONData {
		fields[k] = true
	}
	return fields
}

type provisioningFile struct {
	APIVersion  int                     `yaml:"apiVersion"`
	Datasources []provisionedDatasource `yaml:"datasources"`
}

type provisionedDatasource struct {
	Name           string            `yaml:"name"`
	OrgID          int64             `yaml:"orgId"`
	Type           string            `yaml:"type"`
	UID            string            `yaml:"uid"`
	URL            string            `yaml:"url"`
	JSONData       map[string]any    `yaml:"jsonData"`
	SecureJSONData map[string]string `yaml:"secureJsonData"`
}

// LoadProvisioning reads a Grafana datasource provisioning file (apiVersion 1),
// expanding $VAR and ${VAR} from the environment in every string value as
// Grafana does ($$ stands for a literal $).
func LoadProvisioning(path string) ([]Datasource, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read provisioning file: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read provisioning file: %w", err)
	}
	var f provisioningFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %w", path, err)
	}
	if f.APIVersion != 1 {
		return nil, fmt.Errorf("%s: apiVersion: %d is not supported, want 1", path, f.APIVersion)
	}
	if len(f.Datasources) == 0 {
		return nil, fmt.Errorf("%s: datasources: at least one datasource is required", path)
	}

	var errs []error
	seen := map[orgUID]int{}
	out := make([]Datasource, 0, len(f.Datasources))
	for i, p := range f.Datasources {
		field := fmt.Sprintf("%s: datasources[%d]", path, i)
		p.Name, p.Type, p.UID, p.URL = expandEnv(p.Name), expandEnv(p.Type), expandEnv(p.UID), expandEnv(p.URL)
		switch {
		case p.UID == "":
			errs = append(errs, fmt.Errorf("%s.uid: is required", field))
			continue
		case p.Type == "":
			errs = append(errs, fmt.Errorf("%s.type: is required", field))
			continue
		}
		if p.OrgID == 0 {
			p.OrgID = 1
		}
		if p.OrgID < 0 {
			errs = append(errs, fmt.Errorf("%s.orgId: %d is not an org", field, p.OrgID))
			continue
		}
		key := orgUID{p.OrgID, p.UID}
		if j, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("%s.uid: %q is already used by datasources[%d] in org %d", field, p.UID, j, p.OrgID))
			continue
		}
		seen[key] = i
		jsonData := map[string]any{}
		if p.JSONData != nil {
			jsonData = expandAll(p.JSONData).(map[string]any)
		}
		encoded, err := json.Marshal(jsonData)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.jsonData: cannot be encoded as JSON: %w", field, err))
			continue
		}
		secrets := make(map[string]string, len(p.SecureJSONData))
		for k, v := range p.SecureJSONData {
			secrets[k] = expandEnv(v)
		}
		out = append(out, Datasource{
			OrgID:          p.OrgID,
			ID:             int64(i + 1),
			UID:            p.UID,
			Name:           p.Name,
			Type:           p.Type,
			URL:            p.URL,
			JSONData:       encoded,
			SecureJSONData: secrets,
			Updated:        info.ModTime().UTC().Truncate(time.Second),
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// orgUID is what names a datasource in Grafana's API: its UID within the
// caller's org.
type orgUID struct {
	org int64
	uid string
}

var envPattern = regexp.MustCompile(`\$\$|\$\{(\w+)\}|\$(\w+)`)

func expandEnv(s string) string {
	return envPattern.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := envPattern.FindStringSubmatch(m)
		return os.Getenv(sub[1] + sub[2])
	})
}

// expandAll expands environment references in every string of a decoded
// YAML value, converting YAML's map keys to strings for JSON.
func expandAll(v any) any {
	switch t := v.(type) {
	case string:
		return expandEnv(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, val := range t {
			out[k] = expandAll(val)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, val := range t {
			out[fmt.Sprint(k)] = expandAll(val)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, val := range t {
			out[i] = expandAll(val)
		}
		return out
	default:
		return v
	}
}
