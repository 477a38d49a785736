package pluginpackage

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-cdp/vigil/test/pluginpackage/internal/fixture"
)

const root = fixture.Root

// unsigned is reported for every package that has no MANIFEST.txt.
var unsigned = Diagnostic{Analyzer: "manifest", Rule: "unsigned-plugin", Severity: SeverityWarning,
	Title: "unsigned plugin: vigil-cdp-app/MANIFEST.txt not found"}

func key(d Diagnostic) string {
	return fmt.Sprintf("%s %s/%s: %s", d.Severity, d.Analyzer, d.Rule, d.Title)
}

func good(t *testing.T) *fixture.Package {
	t.Helper()
	p, err := fixture.Good()
	if err != nil {
		t.Fatalf("build fixture: %v", err)
	}
	return p
}

func writeZip(t *testing.T, p *fixture.Package, name string) string {
	t.Helper()
	zp, err := p.WriteZip(t.TempDir(), name)
	if err != nil {
		t.Fatalf("write zip: %v", err)
	}
	return zp
}

// assertExactly checks the report holds exactly the wanted diagnostics (in any order).
func assertExactly(t *testing.T, rep Report, want []Diagnostic) {
	t.Helper()
	got := map[string]int{}
	for _, d := range rep.Diagnostics {
		got[key(d)]++
	}
	for _, d := range want {
		k := key(d)
		if got[k] == 0 {
			t.Errorf("missing diagnostic:\n  %s", k)
			continue
		}
		got[k]--
	}
	for k, n := range got {
		for ; n > 0; n-- {
			t.Errorf("unexpected diagnostic:\n  %s", k)
		}
	}
}

func TestGoodPackage(t *testing.T) {
	zp := writeZip(t, good(t), fixture.ZipName)
	rep := Check(zp)
	assertExactly(t, rep, []Diagnostic{unsigned})
	if rep.PluginID != "vigil-cdp-app" {
		t.Errorf("PluginID = %q", rep.PluginID)
	}
	if len(rep.Errors()) != 0 {
		t.Errorf("errors on the good package: %v", rep.Errors())
	}
	// Every package-only analyzer must have run on the good package.
	ran := map[string]bool{}
	for _, a := range rep.Analyzers {
		ran[a] = true
	}
	for _, a := range []string{"archive", "archivename", "metadata", "nestedmetadata", "backendbinary", "backenddebug",
		"binarypermissions", "changelog", "sponsorshiplink", "circulardependencies", "discoverability",
		"grafanadependency", "includesnested", "readme", "jargon", "templatereadme", "license", "logos", "manifest",
		"metadatapaths", "modulejs", "trackingscripts", "pluginname", "restrictivedep", "screenshots", "typesuffix",
		"unsafesvg", "version", "brokenlinks", "vigil-hygiene", "vigil-templates", "vigil-version", "vigil-includes",
		"vigil-backend", "vigil-links", "vigil-go-manifest"} {
		if !ran[a] {
			t.Errorf("analyzer %s did not run", a)
		}
	}
}

func TestGoodPackageWithSource(t *testing.T) {
	src := t.TempDir()
	if err := fixture.WriteSource(src); err != nil {
		t.Fatal(err)
	}
	zp := writeZip(t, good(t), fixture.ZipName)
	sum := md5.Sum(mustRead(t, zp))
	rep := CheckWithOptions(zp, Options{SourceDir: src, Checksum: hex.EncodeToString(sum[:])})
	assertExactly(t, rep, []Diagnostic{unsigned})
	for _, a := range []string{"sourcecode", "packagejson", "legacybuilder", "buildtools", "go-manifest", "jsMap", "checksum"} {
		found := false
		for _, r := range rep.Analyzers {
			found = found || r == a
		}
		if !found {
			t.Errorf("analyzer %s did not run with a source directory", a)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func errD(analyzer, rule, title string) Diagnostic {
	return Diagnostic{Analyzer: analyzer, Rule: rule, Severity: SeverityError, Title: title}
}

func warnD(analyzer, rule, title string) Diagnostic {
	return Diagnostic{Analyzer: analyzer, Rule: rule, Severity: SeverityWarning, Title: title}
}

func TestBrokenPackages(t *testing.T) {
	amd64, err := fixture.Binary("amd64")
	if err != nil {
		t.Fatal(err)
	}
	arm64, err := fixture.Binary("arm64")
	if err != nil {
		t.Fatal(err)
	}
	ds := root + "datasource/plugin.json"
	cases := []struct {
		name   string
		mutate func(p *fixture.Package)
		zip    string // file name, default fixture.ZipName
		opts   func(t *testing.T) Options
		want   []Diagnostic // in addition to nothing: the full expected list
	}{
		{
			name:   "empty archive",
			mutate: func(p *fixture.Package) { p.Files = map[string]fixture.File{} },
			want:   []Diagnostic{errD("archive", "empty-archive", "archive is empty")},
		},
		{
			name:   "second top-level entry",
			mutate: func(p *fixture.Package) { p.Set("notes.txt", "x") },
			want: []Diagnostic{errD("archive", "more-than-one-dir",
				"archive has 2 top-level entries (notes.txt, vigil-cdp-app); expected one folder named after the plugin id")},
		},
		{
			name:   "single file at the root",
			mutate: func(p *fixture.Package) { p.Files = map[string]fixture.File{}; p.Set("plugin.json", "{}") },
			want:   []Diagnostic{errD("archive", "no-root-dir", "archive root holds the file plugin.json instead of a folder")},
		},
		{
			name:   "root folder not named after the id",
			mutate: func(p *fixture.Package) { p.Rename(root, "vigil/") },
			want: []Diagnostic{
				errD("archivename", "no-ident-root-dir", "archive root folder is vigil; it should be named after the plugin id vigil-cdp-app"),
				{Analyzer: "manifest", Rule: "unsigned-plugin", Severity: SeverityWarning, Title: "unsigned plugin: vigil/MANIFEST.txt not found"},
			},
		},
		{
			name:   "legacy dist folder",
			mutate: func(p *fixture.Package) { p.Set(root+"dist/README.md", "old") },
			want: []Diagnostic{
				errD("archive", "dist", "archive contains vigil-cdp-app/dist; dist should be renamed to the plugin id and moved to the root"),
				errD("metadata", "missing-metadata", "missing plugin.json: vigil-cdp-app/dist/plugin.json not found in archive"),
				errD("nestedmetadata", "missing-metadata", "missing plugin.json: no plugin.json anywhere under vigil-cdp-app/dist/"),
				warnD("changelog", "missing-changelog", "missing CHANGELOG.md: vigil-cdp-app/dist/CHANGELOG.md not found"),
				errD("license", "license-not-provided", "LICENSE file not found: vigil-cdp-app/dist/LICENSE is missing or empty"),
				errD("modulejs", "missing-modulejs", "missing module.js: no module.js under vigil-cdp-app/dist/"),
				{Analyzer: "manifest", Rule: "unsigned-plugin", Severity: SeverityWarning, Title: "unsigned plugin: vigil-cdp-app/dist/MANIFEST.txt not found"},
			},
		},
		{
			name:   "top-level plugin.json missing",
			mutate: func(p *fixture.Package) { p.Delete(root + "plugin.json") },
			want:   []Diagnostic{unsigned, errD("metadata", "missing-metadata", "missing plugin.json: vigil-cdp-app/plugin.json not found in archive")},
		},
		{
			name:   "nested plugin.json does not parse",
			mutate: func(p *fixture.Package) { p.Set(ds, "{") },
			want: []Diagnostic{unsigned,
				errD("nestedmetadata", "invalid-metadata", "invalid plugin.json: vigil-cdp-app/datasource/plugin.json does not parse: unexpected end of JSON input")},
		},
		{
			name:   "executable with backend=false",
			mutate: func(p *fixture.Package) { p.EditJSON(ds, func(m map[string]any) { m["backend"] = false }) },
			want: []Diagnostic{unsigned,
				errD("backendbinary", "backend-found-but-not-declared", `vigil-cdp-app/datasource/plugin.json declares executable "gpx_vigil" but backend=false`)},
		},
		{
			name: "alerting with backend=false",
			mutate: func(p *fixture.Package) {
				p.EditJSON(ds, func(m map[string]any) { m["backend"] = false; m["alerting"] = true })
			},
			want: []Diagnostic{unsigned,
				errD("backendbinary", "alerting-found-but-backend-false", "vigil-cdp-app/datasource/plugin.json declares alerting=true but backend=false")},
		},
		{
			name:   "backend without executable",
			mutate: func(p *fixture.Package) { p.EditJSON(ds, func(m map[string]any) { delete(m, "executable") }) },
			want: []Diagnostic{unsigned,
				errD("backendbinary", "backend-binary-mission", "vigil-cdp-app/datasource/plugin.json declares backend=true but no executable")},
		},
		{
			name: "no backend binaries",
			mutate: func(p *fixture.Package) {
				p.Delete(root + "datasource/gpx_vigil_linux_amd64")
				p.Delete(root + "datasource/gpx_vigil_linux_arm64")
			},
			want: []Diagnostic{unsigned,
				errD("backendbinary", "backend-binary-mission", `no backend binaries vigil-cdp-app/datasource/gpx_vigil* found for executable "gpx_vigil" declared in vigil-cdp-app/datasource/plugin.json`),
				errD("binarypermissions", "binary-executable-found", `no binary found for executable "gpx_vigil" defined in vigil-cdp-app/datasource/plugin.json`),
				errD("vigil-backend", "missing-platform-binary", `missing backend binary vigil-cdp-app/datasource/gpx_vigil_linux_amd64 for executable "gpx_vigil" declared in vigil-cdp-app/datasource/plugin.json`),
				errD("vigil-backend", "missing-platform-binary", `missing backend binary vigil-cdp-app/datasource/gpx_vigil_linux_arm64 for executable "gpx_vigil" declared in vigil-cdp-app/datasource/plugin.json`),
			},
		},
		{
			name: "amd64 file holds an arm64 build",
			mutate: func(p *fixture.Package) {
				p.Files[root+"datasource/gpx_vigil_linux_amd64"] = fixture.File{Data: arm64, Mode: 0o755}
			},
			want: []Diagnostic{unsigned,
				errD("backendbinary", "backend-binary-not-linux-amd64", "none of the backend binaries for vigil-cdp-app/datasource/plugin.json (vigil-cdp-app/datasource/gpx_vigil_linux_amd64, vigil-cdp-app/datasource/gpx_vigil_linux_arm64) is a Go binary built for linux/amd64"),
				errD("vigil-backend", "binary-platform-mismatch", "backend binary vigil-cdp-app/datasource/gpx_vigil_linux_amd64 is built for linux/arm64, not linux/amd64"),
			},
		},
		{
			name:   "arm64 binary missing",
			mutate: func(p *fixture.Package) { p.Delete(root + "datasource/gpx_vigil_linux_arm64") },
			want: []Diagnostic{unsigned,
				errD("vigil-backend", "missing-platform-binary", `missing backend binary vigil-cdp-app/datasource/gpx_vigil_linux_arm64 for executable "gpx_vigil" declared in vigil-cdp-app/datasource/plugin.json`)},
		},
		{
			name: "binary without exec bits",
			mutate: func(p *fixture.Package) {
				p.Files[root+"datasource/gpx_vigil_linux_amd64"] = fixture.File{Data: amd64, Mode: 0o644}
			},
			want: []Diagnostic{unsigned,
				errD("binarypermissions", "binary-executable-permissions", "permissions for binary executable vigil-cdp-app/datasource/gpx_vigil_linux_amd64 are incorrect (0644 found, 0755 required)")},
		},
		{
			name:   "standalone debug file",
			mutate: func(p *fixture.Package) { p.Set(root+"datasource/standalone.txt", "true") },
			want: []Diagnostic{unsigned,
				errD("backenddebug", "backend-debug-file-present", "found standalone backend debug file vigil-cdp-app/datasource/standalone.txt")},
		},
		{
			name:   "changelog missing",
			mutate: func(p *fixture.Package) { p.Delete(root + "CHANGELOG.md") },
			want:   []Diagnostic{unsigned, warnD("changelog", "missing-changelog", "missing CHANGELOG.md: vigil-cdp-app/CHANGELOG.md not found")},
		},
		{
			name:   "changelog empty",
			mutate: func(p *fixture.Package) { p.Set(root+"CHANGELOG.md", " \n") },
			want:   []Diagnostic{unsigned, warnD("changelog", "missing-changelog", "CHANGELOG.md is empty: vigil-cdp-app/CHANGELOG.md")},
		},
		{
			name:   "readme missing",
			mutate: func(p *fixture.Package) { p.Delete(root + "README.md") },
			want:   []Diagnostic{unsigned, errD("readme", "missing-readme", "missing README.md: vigil-cdp-app/README.md not found")},
		},
		{
			name:   "readme with comment",
			mutate: func(p *fixture.Package) { p.Set(root+"README.md", "# Vigil\n<!-- todo -->\n") },
			want:   []Diagnostic{unsigned, warnD("readme", "readme-comment", `README.md contains comment(s): vigil-cdp-app/README.md has "<!-- todo -->"`)},
		},
		{
			name:   "readme jargon",
			mutate: func(p *fixture.Package) { p.Set(root+"README.md", "# Vigil\nRun yarn install.\n") },
			want:   []Diagnostic{unsigned, warnD("jargon", "developer-jargon", "README.md contains developer jargon: (yarn) in vigil-cdp-app/README.md")},
		},
		{
			name:   "template readme",
			mutate: func(p *fixture.Package) { p.Set(root+"README.md", "# Grafana App Plugin Template\n") },
			want: []Diagnostic{unsigned,
				errD("templatereadme", "template-readme", `README.md: uses README from template ("Grafana App Plugin Template" in vigil-cdp-app/README.md)`)},
		},
		{
			name:   "license missing",
			mutate: func(p *fixture.Package) { p.Delete(root + "LICENSE") },
			want:   []Diagnostic{unsigned, errD("license", "license-not-provided", "LICENSE file not found: vigil-cdp-app/LICENSE is missing or empty")},
		},
		{
			name:   "license not open source",
			mutate: func(p *fixture.Package) { p.Set(root+"LICENSE", "All rights reserved. Proprietary.\n") },
			want: []Diagnostic{unsigned,
				errD("license", "license-not-valid", "valid license not found: vigil-cdp-app/LICENSE is not recognised as BSD, MIT, Apache-2.0, LGPL-3.0, GPL-3.0 or AGPL-3.0")},
		},
		{
			name: "license template text",
			mutate: func(p *fixture.Package) {
				p.Set(root+"LICENSE", strings.Replace(fixture.MIT, "Vigil", "{name of copyright owner}", 1))
			},
			want: []Diagnostic{unsigned,
				warnD("license", "license-with-generic-text", "license file vigil-cdp-app/LICENSE contains generic template text ({name of copyright owner} or {yyyy})")},
		},
		{
			name: "empty small logo",
			mutate: func(p *fixture.Package) {
				p.EditJSON(ds, func(m map[string]any) { m["info"].(map[string]any)["logos"].(map[string]any)["small"] = "" })
			},
			want: []Diagnostic{unsigned, errD("logos", "logos", "plugin.json: empty small logo path in vigil-cdp-app/datasource/plugin.json")},
		},
		{
			name:   "logo file missing",
			mutate: func(p *fixture.Package) { p.Delete(root + "panels/restart/img/logo.svg") },
			want: []Diagnostic{unsigned,
				errD("metadatapaths", "path-not-exists", "plugin.json: small logo path doesn't exist: vigil-cdp-app/panels/restart/img/logo.svg (referenced from vigil-cdp-app/panels/restart/plugin.json)"),
				errD("metadatapaths", "path-not-exists", "plugin.json: large logo path doesn't exist: vigil-cdp-app/panels/restart/img/logo.svg (referenced from vigil-cdp-app/panels/restart/plugin.json)"),
			},
		},
		{
			name: "logo path with ./ and URL",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) {
					m["info"].(map[string]any)["logos"] = map[string]any{"small": "./img/logo.svg", "large": "https://cdn.example/logo.svg"}
				})
			},
			want: []Diagnostic{unsigned,
				errD("metadatapaths", "invalid-relative-path", `plugin.json: small logo path "./img/logo.svg" in vigil-cdp-app/plugin.json should not start with '.' or '/'`),
				errD("metadatapaths", "path-relative-to-metadata", `plugin.json: large logo path "https://cdn.example/logo.svg" in vigil-cdp-app/plugin.json should be relative to plugin.json`),
			},
		},
		{
			name: "no module.js",
			mutate: func(p *fixture.Package) {
				for _, d := range []string{"", "datasource/", "panels/restart/"} {
					p.Delete(root + d + "module.js")
				}
			},
			want: []Diagnostic{unsigned, errD("modulejs", "missing-modulejs", "missing module.js: no module.js under vigil-cdp-app/")},
		},
		{
			name: "tracking script",
			mutate: func(p *fixture.Package) {
				p.Set(root+"panels/restart/module.js", `load("https://www.google-analytics.com/analytics.js");`)
			},
			want: []Diagnostic{unsigned,
				errD("trackingscripts", "tracking-scripts", `module.js: should not include tracking scripts: vigil-cdp-app/panels/restart/module.js references https://www.google-analytics.com/analytics.js");`)},
		},
		{
			name: "svg with script",
			mutate: func(p *fixture.Package) {
				p.Set(root+"img/logo.svg", `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`)
			},
			want: []Diagnostic{unsigned, errD("unsafesvg", "unsafe-svg-file", "SVG file vigil-cdp-app/img/logo.svg is unsafe: element <script> is not allowed")},
		},
		{
			name: "svg with event handler",
			mutate: func(p *fixture.Package) {
				p.Set(root+"datasource/img/logo.svg", `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>`)
			},
			want: []Diagnostic{unsigned, errD("unsafesvg", "unsafe-svg-file", "SVG file vigil-cdp-app/datasource/img/logo.svg is unsafe: attribute onload on <svg> is not allowed")},
		},
		{
			name: "no screenshots",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) { delete(m["info"].(map[string]any), "screenshots") })
			},
			want: []Diagnostic{unsigned, warnD("screenshots", "screenshots", "plugin.json: should include screenshots for the plugin catalog (vigil-cdp-app/plugin.json has none)")},
		},
		{
			name: "screenshot content does not match extension",
			mutate: func(p *fixture.Package) {
				p.Set(root+"img/screenshot.png", `<svg xmlns="http://www.w3.org/2000/svg"></svg>`)
			},
			want: []Diagnostic{unsigned,
				errD("screenshots", "screenshots-image-type", `screenshot image has extension mismatch: vigil-cdp-app/img/screenshot.png has extension ".png" but content is image/svg+xml`)},
		},
		{
			name: "name equals id",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) { m["name"] = "vigil-cdp-app" })
			},
			want: []Diagnostic{unsigned,
				errD("pluginname", "human-friendly-name", `plugin.json: plugin name "vigil-cdp-app" equals the plugin id; use a human-friendly name`)},
		},
		{
			name: "id with two parts",
			mutate: func(p *fixture.Package) {
				p.Rename(root, "vigil-app/")
				p.EditJSON("vigil-app/plugin.json", func(m map[string]any) { m["id"] = "vigil-app" })
			},
			want: []Diagnostic{
				{Analyzer: "manifest", Rule: "unsigned-plugin", Severity: SeverityWarning, Title: "unsigned plugin: vigil-app/MANIFEST.txt not found"},
				warnD("pluginname", "invalid-id-format", `plugin.json: plugin id "vigil-app" should follow the format org-name-type`),
			},
		},
		{
			name: "id without type suffix",
			mutate: func(p *fixture.Package) {
				p.Rename(root, "vigil-cdp-application/")
				p.EditJSON("vigil-cdp-application/plugin.json", func(m map[string]any) { m["id"] = "vigil-cdp-application" })
			},
			want: []Diagnostic{
				{Analyzer: "manifest", Rule: "unsigned-plugin", Severity: SeverityWarning, Title: "unsigned plugin: vigil-cdp-application/MANIFEST.txt not found"},
				errD("typesuffix", "plugin-type-suffix", `plugin.json: plugin id "vigil-cdp-application" should end with its type "app"`),
			},
		},
		{
			name: "version placeholder left in",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) { m["info"].(map[string]any)["version"] = "%VERSION%" })
			},
			want: []Diagnostic{unsigned,
				errD("version", "wrong-plugin-version", `plugin version "%VERSION%" in vigil-cdp-app/plugin.json is invalid`),
				errD("vigil-templates", "unreplaced-template", "vigil-cdp-app/plugin.json:50 still contains build placeholder(s) %VERSION%"),
				errD("vigil-version", "version-mismatch", `vigil-cdp-app/datasource/plugin.json has info.version "1.2.3" but vigil-cdp-app/plugin.json has "%VERSION%"`),
				errD("vigil-version", "version-mismatch", `vigil-cdp-app/panels/restart/plugin.json has info.version "1.2.3" but vigil-cdp-app/plugin.json has "%VERSION%"`),
				errD("vigil-version", "archive-name-version", `archive file vigil-cdp-app-1.2.3.zip is named for version 1.2.3 but plugin.json says "%VERSION%"`),
			},
		},
		{
			name:   "date placeholder in changelog",
			mutate: func(p *fixture.Package) { p.Set(root+"CHANGELOG.md", "# Changelog\n\n## 1.2.3 (%TODAY%)\n") },
			want: []Diagnostic{unsigned,
				errD("vigil-templates", "unreplaced-template", "vigil-cdp-app/CHANGELOG.md:3 still contains build placeholder(s) %TODAY%")},
		},
		{
			name: "nested version differs",
			mutate: func(p *fixture.Package) {
				p.EditJSON(ds, func(m map[string]any) { m["info"].(map[string]any)["version"] = "1.2.2" })
			},
			want: []Diagnostic{unsigned,
				errD("vigil-version", "version-mismatch", `vigil-cdp-app/datasource/plugin.json has info.version "1.2.2" but vigil-cdp-app/plugin.json has "1.2.3"`)},
		},
		{
			name:   "zip named for another version",
			mutate: func(p *fixture.Package) {},
			zip:    "vigil-cdp-app-1.3.0.zip",
			want: []Diagnostic{unsigned,
				errD("vigil-version", "archive-name-version", `archive file vigil-cdp-app-1.3.0.zip is named for version 1.3.0 but plugin.json says "1.2.3"`)},
		},
		{
			name: "invalid grafanaDependency",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) { m["dependencies"] = map[string]any{"grafanaDependency": ""} })
			},
			want: []Diagnostic{unsigned,
				errD("grafanadependency", "invalid-grafana-dependency", `plugin.json: dependencies.grafanaDependency has an invalid or empty version constraint "" (empty constraint)`)},
		},
		{
			name: "grafanaDependency pins a minor",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) { m["dependencies"] = map[string]any{"grafanaDependency": "11.2.x"} })
			},
			want: []Diagnostic{unsigned,
				warnD("restrictivedep", "depends-on-patch-releases", `plugin.json: grafanaDependency "11.2.x" only targets patch releases of Grafana 11.2`)},
		},
		{
			name: "grafanaDependency pins a release",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) { m["dependencies"] = map[string]any{"grafanaDependency": "11.2.1"} })
			},
			want: []Diagnostic{unsigned,
				warnD("restrictivedep", "depends-on-single-release", `plugin.json: grafanaDependency "11.2.1" only targets a single Grafana release`)},
		},
		{
			name: "no description or keywords",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) {
					info := m["info"].(map[string]any)
					delete(info, "description")
					delete(info, "keywords")
				})
			},
			want: []Diagnostic{unsigned,
				warnD("discoverability", "empty-description", "plugin.json: description is empty in vigil-cdp-app/plugin.json"),
				warnD("discoverability", "empty-keywords", "plugin.json: keywords are empty in vigil-cdp-app/plugin.json"),
			},
		},
		{
			name: "no sponsorship link",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) { delete(m["info"].(map[string]any), "links") })
			},
			want: []Diagnostic{unsigned, {Analyzer: "sponsorshiplink", Rule: "sponsorshiplink", Severity: SeverityRecommendation,
				Title: "plugin.json: no sponsorship link in info.links"}},
		},
		{
			name: "nested plugin not declared",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) {
					m["includes"] = []any{map[string]any{"type": "datasource", "path": "datasource/plugin.json"}}
				})
			},
			want: []Diagnostic{unsigned,
				errD("includesnested", "nested-plugins-not-declared", "nested plugin panels/restart/plugin.json is not declared in the includes of plugin.json")},
		},
		{
			name: "nested plugin declared with wrong or no type",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) {
					m["includes"] = []any{
						map[string]any{"type": "panel", "path": "datasource/plugin.json"},
						map[string]any{"path": "panels/restart/plugin.json"},
					}
				})
			},
			want: []Diagnostic{unsigned,
				errD("includesnested", "nested-plugin-type-missmatch", "nested plugin datasource/plugin.json is included as type panel but its plugin.json says datasource"),
				errD("includesnested", "nested-plugin-missing-type", "nested plugin panels/restart/plugin.json is included in plugin.json without a type"),
			},
		},
		{
			name: "nested plugins in a non-app",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) { m["type"] = "panel"; m["id"] = "vigil-cdp-app" })
			},
			want: []Diagnostic{unsigned,
				errD("includesnested", "nested-plugin-id-in-non-app", `nested plugins found but the top-level plugin.json has type "panel"; only app plugins may nest plugins`),
				errD("typesuffix", "plugin-type-suffix", `plugin.json: plugin id "vigil-cdp-app" should end with its type "panel"`),
			},
		},
		{
			name:   "included dashboard missing",
			mutate: func(p *fixture.Package) { p.Delete(root + "dashboards/overview.json") },
			want: []Diagnostic{unsigned,
				errD("vigil-includes", "include-path-missing", `vigil-cdp-app/plugin.json includes dashboard "dashboards/overview.json" but vigil-cdp-app/dashboards/overview.json is not in the archive`)},
		},
		{
			name: "circular dependency between nested plugins",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"plugin.json", func(m map[string]any) {
					m["dependencies"].(map[string]any)["plugins"] = []any{map[string]any{"id": "vigil-cdp-datasource"}}
				})
				p.EditJSON(ds, func(m map[string]any) {
					m["dependencies"] = map[string]any{"plugins": []any{map[string]any{"id": "vigil-cdp-app"}}}
				})
			},
			want: []Diagnostic{unsigned,
				errD("circulardependencies", "circular-dependency", "circular dependency detected: vigil-cdp-app -> vigil-cdp-datasource"),
				errD("circulardependencies", "circular-dependency", "circular dependency detected: vigil-cdp-datasource -> vigil-cdp-app"),
			},
		},
		{
			name: "signed manifest with a stale digest",
			mutate: func(p *fixture.Package) {
				files := map[string]string{}
				for n, f := range p.Files {
					files[strings.TrimPrefix(n, root)] = sha256hex(f.Data)
				}
				files["README.md"] = strings.Repeat("0", 64)
				p.Set(root+"MANIFEST.txt", clearsign(files))
			},
			want: []Diagnostic{errD("manifest", "invalid-sha-sum", "invalid file checksum for vigil-cdp-app/README.md")},
		},
		{
			name: "unsafe, symlinked, duplicated and VCS entries",
			mutate: func(p *fixture.Package) {
				p.Raw = []fixture.Raw{
					{Name: root + "../escape.txt", Data: []byte("x"), Mode: 0o644},
					{Name: root + "img/link.svg", Data: []byte("logo.svg"), Mode: fs.ModeSymlink | 0o777},
					{Name: root + "README.md", Data: []byte("# again"), Mode: 0o644},
					{Name: root + ".git/config", Data: []byte("[core]"), Mode: 0o644},
				}
			},
			want: []Diagnostic{unsigned,
				errD("vigil-hygiene", "unsafe-path", `zip entry "vigil-cdp-app/../escape.txt" escapes the extraction directory (..)`),
				errD("vigil-hygiene", "symlink", "zip entry vigil-cdp-app/img/link.svg is a symlink"),
				errD("vigil-hygiene", "duplicate-entry", "zip entry vigil-cdp-app/README.md is stored more than once"),
				errD("vigil-hygiene", "vcs-data", "archive contains version-control data vigil-cdp-app/.git"),
			},
		},
		{
			name:   "package.json version differs",
			mutate: func(p *fixture.Package) {},
			opts: func(t *testing.T) Options {
				src := sourceDir(t)
				write(t, filepath.Join(src, "package.json"), `{"version":"1.2.0","scripts":{"build":"webpack"}}`)
				return Options{SourceDir: src}
			},
			want: []Diagnostic{unsigned, errD("packagejson", "packagecode-version-mismatch", "")}, // path-dependent title, see below
		},
		{
			name:   "legacy toolkit script",
			mutate: func(p *fixture.Package) {},
			opts: func(t *testing.T) Options {
				src := sourceDir(t)
				write(t, filepath.Join(src, "package.json"), `{"version":"1.2.3","scripts":{"build":"grafana-toolkit plugin:build"}}`)
				return Options{SourceDir: src}
			},
			want: []Diagnostic{unsigned, errD("legacybuilder", "legacy-builder", `package.json script "build" uses the legacy builder grafana-toolkit`)},
		},
		{
			name:   "source map missing",
			mutate: func(p *fixture.Package) { p.Delete(root + "datasource/module.js.map") },
			opts:   func(t *testing.T) Options { return Options{SourceDir: sourceDir(t)} },
			want:   []Diagnostic{unsigned, errD("jsMap", "js-map-not-found", "missing vigil-cdp-app/datasource/module.js.map in archive")},
		},
		{
			name:   "source map differs from source",
			mutate: func(p *fixture.Package) {},
			opts: func(t *testing.T) Options {
				src := sourceDir(t)
				write(t, filepath.Join(src, "src", "module.ts"), "export const changed = true;\n")
				return Options{SourceDir: src}
			},
			want: []Diagnostic{unsigned, errD("jsMap", "js-map-no-match", "")},
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := good(t)
			tc.mutate(p)
			name := tc.zip
			if name == "" {
				name = fixture.ZipName
			}
			zp := writeZip(t, p, name)
			opts := Options{}
			if tc.opts != nil {
				opts = tc.opts(t)
			}
			rep := CheckWithOptions(zp, opts)
			// A few titles embed temporary paths; match those by analyzer and rule.
			want := make([]Diagnostic, len(tc.want))
			copy(want, tc.want)
			for i, w := range want {
				if w.Title != "" {
					continue
				}
				for _, d := range rep.Diagnostics {
					if d.Analyzer == w.Analyzer && d.Rule == w.Rule && d.Severity == w.Severity {
						want[i].Title = d.Title
					}
				}
			}
			assertExactly(t, rep, want)
			if t.Failed() {
				for _, d := range rep.Diagnostics {
					t.Logf("got %s", key(d))
				}
			}
		})
	}
}

func TestSourceTitlesNameTheFiles(t *testing.T) {
	src := sourceDir(t)
	write(t, filepath.Join(src, "package.json"), `{"version":"1.2.0"}`)
	write(t, filepath.Join(src, "src", "module.ts"), "export const changed = true;\n")
	zp := writeZip(t, good(t), fixture.ZipName)
	rep := CheckWithOptions(zp, Options{SourceDir: src})
	assertExactly(t, rep, []Diagnostic{unsigned,
		errD("packagejson", "packagecode-version-mismatch",
			fmt.Sprintf("the version in %s (1.2.0) doesn't match the version in plugin.json (1.2.3)", filepath.Join(src, "package.json"))),
		errD("jsMap", "js-map-no-match",
			fmt.Sprintf("vigil-cdp-app/module.js.map does not match the source code in %s: 1 file(s) differ or are missing (./module.ts)", filepath.Join(src, "src"))),
	})
}

func TestChecksumMismatch(t *testing.T) {
	zp := writeZip(t, good(t), fixture.ZipName)
	sum := md5.Sum(mustRead(t, zp))
	wrong := strings.Repeat("a", 32)
	rep := CheckWithOptions(zp, Options{Checksum: wrong})
	assertExactly(t, rep, []Diagnostic{unsigned,
		errD("checksum", "checksum-invalid", fmt.Sprintf("the provided checksum %s does not match %s (%s)", wrong, zp, hex.EncodeToString(sum[:])))})
}

func TestNotAZip(t *testing.T) {
	p := filepath.Join(t.TempDir(), fixture.ZipName)
	write(t, p, "not a zip")
	rep := Check(p)
	if len(rep.Diagnostics) != 1 || rep.Diagnostics[0].Rule != "archive-unreadable" || rep.Diagnostics[0].Severity != SeverityError {
		t.Fatalf("want one archive-unreadable error, got %v", rep.Diagnostics)
	}
	rep = Check(filepath.Join(t.TempDir(), "missing.zip"))
	if len(rep.Errors()) != 1 || rep.Errors()[0].Analyzer != "archive" {
		t.Fatalf("missing file: want one archive error, got %v", rep.Diagnostics)
	}
}

func TestGrafanaDependencyConstraints(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{">=11.0.0", true}, {">= 10.4.0, < 12", true}, {"^11.2", true}, {"~11.2.0", true},
		{"11.x", true}, {"*", true}, {">=10.4.0 || >=11.1.0", true}, {"10.4 - 11.2", true},
		{">=11.0.0-beta.1", true},
		{"", false}, {">=", false}, {"eleven", false}, {">=11.0.0 ||", false}, {"%GRAFANA%", false},
	} {
		if err := validConstraint(c.in); (err == nil) != c.ok {
			t.Errorf("validConstraint(%q) = %v, want ok=%v", c.in, err, c.ok)
		}
	}
}

func TestPluginVersions(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"1.2.3", true}, {"v1.2.3", true}, {"1.2", true}, {"1.2.3-beta.1", true}, {"1.2.3+build.5", true},
		{"", false}, {"%VERSION%", false}, {"one", false}, {"1..2", false},
	} {
		if validVersion(c.in) != c.ok {
			t.Errorf("validVersion(%q) != %v", c.in, c.ok)
		}
	}
}

func TestLicenseDetection(t *testing.T) {
	if got := detectLicense(fixture.MIT); got != "MIT" {
		t.Errorf("MIT detected as %q", got)
	}
	apache := "                                 Apache License\n                           Version 2.0, January 2004\n"
	if got := detectLicense(apache); got != "Apache-2.0" {
		t.Errorf("Apache detected as %q", got)
	}
	if got := detectLicense("GNU AFFERO GENERAL PUBLIC LICENSE\nVersion 3, 19 November 2007"); got != "AGPL-3.0" {
		t.Errorf("AGPL detected as %q", got)
	}
	if got := detectLicense("GNU GENERAL PUBLIC LICENSE\nVersion 2, June 1991"); got != "" {
		t.Errorf("GPL-2.0 must not be accepted, got %q", got)
	}
}

func sourceDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := fixture.WriteSource(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
