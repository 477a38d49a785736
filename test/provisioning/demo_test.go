package provisioning

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// `make demo` plus the repository's provisioning (or docker-compose.yaml) works out of the box:
// the demo's agents listen where the provisioned datasource looks for them, with the tokens
// docker-compose gives Grafana by default, and the docs say the same ports.
func TestDemoAndProvisioningAgree(t *testing.T) {
	repo := filepath.Join("..", "..")
	read := func(rel string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(repo, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	demo := read("scripts/demo.sh")
	m := regexp.MustCompile(`base_port=\$\{DEMO_PORT:-(\d+)\}`).FindStringSubmatch(demo)
	if m == nil {
		t.Fatal("scripts/demo.sh: no base_port=${DEMO_PORT:-N}")
	}
	first, _ := strconv.Atoi(m[1])

	var ds struct {
		Datasources []struct {
			JSONData struct {
				Agents []struct {
					Name string `yaml:"name"`
					URL  string `yaml:"url"`
				} `yaml:"agents"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal([]byte(read("provisioning/datasources/vigil-cdp.yaml")), &ds); err != nil || len(ds.Datasources) == 0 {
		t.Fatalf("provisioning/datasources/vigil-cdp.yaml: %v", err)
	}
	names := []string{"demo-standalone", "demo-node-a", "demo-node-b"}
	agents := ds.Datasources[0].JSONData.Agents
	if len(agents) != len(names) {
		t.Fatalf("the provisioned datasource has %d agents, the demo %d", len(agents), len(names))
	}
	for i, a := range agents {
		want := fmt.Sprintf("http://127.0.0.1:%d", first+i)
		if a.Name != names[i] || a.URL != want {
			t.Errorf("provisioned agent %d is %s at %s; the demo runs %s at %s", i, a.Name, a.URL, names[i], want)
		}
	}

	span := fmt.Sprintf("127.0.0.1:%d-%d", first, first+2)
	for _, rel := range []string{"docker-compose.yaml", "docs/install.md", "README.md"} {
		if !strings.Contains(read(rel), span) {
			t.Errorf("%s does not name the demo's agents at %s", rel, span)
		}
	}
	compose := read("docker-compose.yaml")
	for _, token := range regexp.MustCompile(`(read|control)_token=(\S+)`).FindAllStringSubmatch(demo, -1) {
		if !strings.Contains(compose, ":-"+token[2]+"}") {
			t.Errorf("docker-compose.yaml's default %s token is not the demo's (%s)", token[1], token[2])
		}
	}
}
