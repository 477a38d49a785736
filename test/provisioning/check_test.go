package provisioning

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var root = filepath.Join("..", "..", "provisioning")

func TestProvisionedFilesFollowGrafanasFields(t *testing.T) {
	problems, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func TestEveryKindIsChecked(t *testing.T) {
	seen := map[Kind]int{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if kind, ok := KindOf(rel); ok {
			seen[kind]++
		} else if filepath.Ext(path) != ".md" {
			t.Errorf("%s: no checker knows this file; Grafana may still read it", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []Kind{Datasources, Plugins, DashboardProvider, Dashboard, Alerting} {
		if seen[kind] == 0 {
			t.Errorf("no %s file under %s", kind, root)
		}
	}
}

// The app includes src/dashboards; the provisioned copies must be the same dashboards.
func TestProvisionedDashboardsAreTheAppsOwn(t *testing.T) {
	app, err := filepath.Glob(filepath.Join("..", "..", "src", "dashboards", "*.json"))
	if err != nil || len(app) == 0 {
		t.Fatalf("no dashboards in src/dashboards (%v)", err)
	}
	for _, src := range app {
		want, _ := os.ReadFile(src)
		got, err := os.ReadFile(filepath.Join(root, "dashboards", "vigil", filepath.Base(src)))
		if err != nil {
			t.Errorf("%s is not provisioned: %v", filepath.Base(src), err)
			continue
		}
		if !bytes.Equal(want, got) {
			t.Errorf("provisioning/dashboards/vigil/%s differs from src/dashboards: copy it over", filepath.Base(src))
		}
	}
	// The app's dashboards are checked against the same datasources.
	known, err := KnownIn(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range app {
		for _, p := range CheckFile(src, Dashboard, known) {
			t.Error(p)
		}
	}
}

// One fixture per check: each must fail with its own message, so no check passes by accident.
func TestEachCheckCanFail(t *testing.T) {
	known := Known{DatasourceUIDs: map[string]string{"vigil-cdp": "vigil-cdp-datasource"}}
	cases := []struct {
		file string
		kind Kind
		want string // empty: the fixture is valid
	}{
		{"alerting-valid.yaml", Alerting, ""},
		{"alerting-unknown-key.yaml", Alerting, `groups[0].rules[0].severity: unknown key`},
		{"alerting-missing-uid.yaml", Alerting, `groups[0].rules[0].uid: is required`},
		{"alerting-missing-condition.yaml", Alerting, `groups[0].rules[0].condition: is required`},
		{"alerting-condition-not-refid.yaml", Alerting, `condition: "C" is not the refId of one of the rule's queries`},
		{"alerting-unknown-datasource.yaml", Alerting, `datasourceUid: datasource uid "vigil-typo" matches no provisioned datasource`},
		{"alerting-bad-nodata-state.yaml", Alerting, `noDataState: "Silence" is not one of`},
		{"alerting-bad-for.yaml", Alerting, `for: "soon" is not a duration`},
		{"datasources-missing-uid.yaml", Datasources, `datasources[0].uid: is required`},
		{"datasources-unknown-key.yaml", Datasources, `datasources[0].jsondata: unknown key`},
		{"plugins-unknown-key.yaml", Plugins, `apps[0].orgId: unknown key`},
		{"dashboards-provider-missing-path.yaml", DashboardProvider, `providers[0].options.path: is required`},
		{"dashboard-unknown-datasource.json", Dashboard, `panels[0].datasource.uid: datasource uid "prom-main" matches no provisioned datasource`},
		{"dashboard-missing-uid.json", Dashboard, `uid: is required`},
		{"dashboard-unknown-variable.json", Dashboard, `datasource "${ds}" names no datasource variable`},
		{"dashboard-unknown-key.json", Dashboard, `variables: unknown dashboard key`},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			problems := CheckFile(filepath.Join("testdata", tc.file), tc.kind, known)
			if tc.want == "" {
				for _, p := range problems {
					t.Errorf("valid fixture: %s", p)
				}
				return
			}
			if len(problems) != 1 {
				t.Errorf("want exactly one problem, got %d: %v", len(problems), problems)
			}
			for _, p := range problems {
				if strings.Contains(p.String(), tc.want) {
					return
				}
			}
			t.Errorf("no problem says %q; got %v", tc.want, problems)
		})
	}
}

func TestKindOf(t *testing.T) {
	cases := map[string]Kind{
		"datasources/vigil-cdp.yaml":        Datasources,
		"plugins/vigil-cdp-app.yaml":        Plugins,
		"dashboards/vigil.yaml":             DashboardProvider,
		"dashboards/vigil/fleet.json":       Dashboard,
		"alerting/vigil-cdp-rules.yaml":     Alerting,
		"alerting/vigil-cdp-templates.yaml": Alerting,
	}
	for rel, want := range cases {
		if got, ok := KindOf(rel); !ok || got != want {
			t.Errorf("KindOf(%s) = %s, %v; want %s", rel, got, ok, want)
		}
	}
	if _, ok := KindOf("alerting/README.md"); ok {
		t.Error("a README is not a provisioning file")
	}
}
