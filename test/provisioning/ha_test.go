package provisioning

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vigil-cdp/vigil/pkg/fleet"
)

// docker-compose.ha.yaml runs two Grafana replicas dividing the agents: its
// datasource file follows Grafana's fields and is a valid Vigil fleet with
// a shared history and a cluster, each replica advertises an address the
// join list names, and the demo gossip key has a valid length.
func TestHAComposeAndProvisioning(t *testing.T) {
	haRoot := filepath.Join("..", "..", "deploy", "ha", "provisioning")
	problems, err := Check(haRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	raw, err := os.ReadFile(filepath.Join(haRoot, "datasources", "vigil-cdp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Datasources []struct {
			JSONData       map[string]any    `yaml:"jsonData"`
			SecureJSONData map[string]string `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(raw, &ds); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(ds.Datasources[0].JSONData)

	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	craw, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.ha.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(craw, &compose); err != nil {
		t.Fatal(err)
	}
	env := compose.Services["grafana-1"].Environment
	defaultOf := func(v string) string {
		// ${VAR:-default}
		if i := len("${"); len(v) > i && v[:i] == "${" {
			for j := i; j+1 < len(v); j++ {
				if v[j] == ':' && v[j+1] == '-' {
					return v[j+2 : len(v)-1]
				}
			}
		}
		return v
	}
	secrets := map[string]string{}
	for k, v := range ds.Datasources[0].SecureJSONData {
		secrets[k] = defaultOf(env[v[1:]])
	}
	cfg, err := fleet.FromJSON(js, secrets)
	if err != nil {
		t.Fatalf("the HA datasource's settings: %v", err)
	}
	if cfg.History.Postgres == "" || !cfg.Divided() || len(cfg.Cluster.SecretKeyBytes()) != 32 || cfg.History.Password.Reveal() == "" {
		t.Fatalf("history %+v, cluster %+v", cfg.History, cfg.Cluster)
	}
	names := map[string]bool{}
	for _, svc := range []string{"grafana-1", "grafana-2"} {
		e := compose.Services[svc].Environment
		if !slices.Contains(cfg.Cluster.Join, e["VIGIL_CLUSTER_ADVERTISE"]) || e["GF_PLUGINS_FORWARD_HOST_ENV_VARS"] != "vigil-cdp-datasource" {
			t.Errorf("%s advertises %q, not in the join list %v, or does not forward its environment to the plugin", svc, e["VIGIL_CLUSTER_ADVERTISE"], cfg.Cluster.Join)
		}
		names[e["VIGIL_CLUSTER_NAME"]] = true
	}
	if len(names) != 2 {
		t.Errorf("the replicas need names of their own: %v", names)
	}
}
