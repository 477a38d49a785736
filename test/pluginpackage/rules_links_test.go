package pluginpackage

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-cdp/vigil/test/pluginpackage/internal/fixture"
)

func TestRelativeLinks(t *testing.T) {
	readmeTitle := func(target string) string {
		return "README.md: convert relative link to absolute: " + target + " (in vigil-cdp-app/README.md)"
	}
	cases := []struct {
		name   string
		mutate func(p *fixture.Package)
		want   []Diagnostic
	}{
		{
			name: "README links and images the validator reads as relative",
			mutate: func(p *fixture.Package) {
				p.Set(root+"README.md", "# Vigil\n\n"+
					"See [install](docs/install.md), ![fleet](docs/img/fleet-page.png \"The Fleet page\"),\n"+
					"[the image](./img/screenshot.png), [root](/docs/cli.md) and [contributing](CONTRIBUTING.md).\n")
			},
			want: []Diagnostic{unsigned,
				errD("brokenlinks", "relative-link", readmeTitle("docs/install.md")),
				errD("brokenlinks", "relative-link", readmeTitle("docs/img/fleet-page.png")),
				errD("brokenlinks", "relative-link", readmeTitle("./img/screenshot.png")),
				errD("brokenlinks", "relative-link", readmeTitle("/docs/cli.md")),
				errD("brokenlinks", "relative-link", readmeTitle("CONTRIBUTING.md")),
			},
		},
		{
			name: "README with only absolute links, anchors and mail",
			mutate: func(p *fixture.Package) {
				p.Set(root+"README.md", "# Vigil\n\n"+
					"![fleet](https://raw.githubusercontent.com/vigil-cdp/vigil/main/src/img/screenshot-fleet.png)\n"+
					"[docs](https://github.com/vigil-cdp/vigil/blob/main/docs/install.md), [plain](http://example.com),\n"+
					"[below](#configure), [mail](mailto:ops@example.com), [x] (not a link)\n")
			},
			want: []Diagnostic{unsigned},
		},
		{
			name: "nested README, CHANGELOG and HTML links",
			mutate: func(p *fixture.Package) {
				p.Set(root+"datasource/README.md", "# Datasource\n\nSee [settings](../docs/datasource.md).\n")
				p.Set(root+"panels/restart/README.md", "# Panel\n\n[Docs][docs]\n\n[docs]: docs/panel.md\n")
				p.Set(root+"CHANGELOG.md", "# Changelog\n\n## 1.2.3\n\n- First release, see [notes](https://example.com/notes).\n")
				p.Set(root+"README.md", "# Vigil\n\n<img src=\"img/screenshot.png\" alt=\"x\">\n"+
					"<a href='https://example.com'>ok</a>\n")
			},
			want: []Diagnostic{unsigned,
				errD("vigil-links", "relative-link", "vigil-cdp-app/datasource/README.md: convert relative link to absolute: ../docs/datasource.md"),
				errD("vigil-links", "relative-link", "vigil-cdp-app/panels/restart/README.md: convert relative link to absolute: docs/panel.md"),
				errD("vigil-links", "relative-link", "vigil-cdp-app/README.md: convert relative link to absolute: img/screenshot.png"),
			},
		},
		{
			name: "relative link in the CHANGELOG",
			mutate: func(p *fixture.Package) {
				p.Set(root+"CHANGELOG.md", "# Changelog\n\n- See [the docs](docs/install.md).\n")
			},
			want: []Diagnostic{unsigned,
				errD("vigil-links", "relative-link", "vigil-cdp-app/CHANGELOG.md: convert relative link to absolute: docs/install.md")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := good(t)
			tc.mutate(p)
			rep := Check(writeZip(t, p, fixture.ZipName))
			assertExactly(t, rep, tc.want)
		})
	}
}

// The README the package shipped before it had one for Grafana admins: the developer README at
// the repository root, with its links into docs/ and its screenshots from docs/img/. The
// validator's brokenlinks reported 13 relative links on it.
func TestDeveloperReadmeIsRejected(t *testing.T) {
	dev, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	p := good(t)
	p.Set(root+"README.md", string(dev))
	rep := Check(writeZip(t, p, fixture.ZipName))
	// The README changes; count its relative links independently of the rule.
	want := map[string]bool{}
	for _, m := range regexp.MustCompile(`\]\(([^)\s]+)`).FindAllStringSubmatch(string(dev), -1) {
		link := m[1]
		if !strings.HasPrefix(link, "http://") && !strings.HasPrefix(link, "https://") && !strings.HasPrefix(link, "#") && !strings.HasPrefix(link, "mailto:") {
			want[link] = true
		}
	}
	if n := len(rep.ByAnalyzer("brokenlinks")); n == 0 || n != len(want) {
		t.Errorf("brokenlinks on the developer README: %d relative links, want %d (%v): %v", n, len(want), want, rep.ByAnalyzer("brokenlinks"))
	}
}

// The README shipped in the package for Grafana admins, and the nested plugins' READMEs, link only
// absolutely.
func TestPluginReadmesLinkAbsolutely(t *testing.T) {
	p := good(t)
	for zipPath, src := range map[string]string{
		root + "README.md":                "../../src/README.md",
		root + "datasource/README.md":     "../../src/datasource/README.md",
		root + "panels/restart/README.md": "../../src/panels/restart/README.md",
	} {
		b, err := os.ReadFile(filepath.FromSlash(src))
		if err != nil {
			t.Fatal(err)
		}
		p.Set(zipPath, string(b))
	}
	rep := Check(writeZip(t, p, fixture.ZipName))
	for _, a := range []string{"brokenlinks", "vigil-links", "readme", "jargon", "templatereadme"} {
		for _, d := range rep.ByAnalyzer(a) {
			t.Errorf("%s", d)
		}
	}
}
