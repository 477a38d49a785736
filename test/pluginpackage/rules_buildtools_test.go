package pluginpackage

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-cdp/vigil/test/pluginpackage/internal/fixture"
)

func TestBackendBuildTooling(t *testing.T) {
	backendErr := func(title string) Diagnostic {
		return errD("buildtools", "non-standard-backend-build-tooling", title)
	}
	cases := []struct {
		name string
		edit func(t *testing.T, src string) // on a copy of the fixture source
		want func(src string) []Diagnostic
	}{
		{
			name: "Magefile.go with the SDK's build package",
			edit: func(t *testing.T, src string) {},
			want: func(string) []Diagnostic { return []Diagnostic{unsigned} },
		},
		{
			name: "lowercase magefile.go",
			edit: func(t *testing.T, src string) {
				if err := os.Rename(filepath.Join(src, "Magefile.go"), filepath.Join(src, "magefile.go")); err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(src, "build.mk"), "") // no other build file is looked at
			},
			want: func(string) []Diagnostic {
				// The manifest still names Magefile.go, the file as it was built.
				return []Diagnostic{unsigned,
					errD("vigil-go-manifest", "go-manifest-issue", "invalid Go manifest: magefile.go is in the source code but not in vigil-cdp-app/datasource/go_plugin_build_manifest"),
					errD("vigil-go-manifest", "go-manifest-issue", "invalid Go manifest: Magefile.go is in vigil-cdp-app/datasource/go_plugin_build_manifest but not in the source code"),
				}
			},
		},
		{
			// The backend built by a Makefile calling go build, as Vigil did before.
			name: "go.mod without a Magefile",
			edit: func(t *testing.T, src string) {
				if err := os.Remove(filepath.Join(src, "Magefile.go")); err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(src, "Makefile"), "backend:\n\tgo build -o dist/datasource/gpx_vigil_linux_amd64 ./cmd/gpx_vigil\n")
				write(t, filepath.Join(src, "cmd", "gpx_vigil", "main.go"), "package main\n\nfunc main() {}\n")
			},
			want: func(src string) []Diagnostic {
				return []Diagnostic{unsigned,
					backendErr(fmt.Sprintf("non-standard backend build tooling: no Magefile.go in %s", src)),
					errD("vigil-go-manifest", "go-manifest-issue", "invalid Go manifest: cmd/gpx_vigil/main.go is in the source code but not in vigil-cdp-app/datasource/go_plugin_build_manifest"),
					errD("vigil-go-manifest", "go-manifest-issue", "invalid Go manifest: Magefile.go is in vigil-cdp-app/datasource/go_plugin_build_manifest but not in the source code"),
				}
			},
		},
		{
			name: "Magefile.go without the SDK's build package",
			edit: func(t *testing.T, src string) {
				write(t, filepath.Join(src, "Magefile.go"), "//go:build mage\n\npackage main\n\nimport \"github.com/magefile/mage/sh\"\n\n"+
					"func Build() error { return sh.Run(\"go\", \"build\", \"./cmd/gpx_vigil\") }\n")
			},
			want: func(src string) []Diagnostic {
				return []Diagnostic{unsigned,
					backendErr(fmt.Sprintf("non-standard backend build tooling: %s does not use grafana-plugin-sdk-go/build", filepath.Join(src, "Magefile.go"))),
					errD("vigil-go-manifest", "go-manifest-issue", "invalid Go manifest: sha256 of Magefile.go does not match vigil-cdp-app/datasource/go_plugin_build_manifest"),
				}
			},
		},
		{
			// The validator asks for a Magefile only when the source has a go.mod.
			name: "no go.mod, no Go",
			edit: func(t *testing.T, src string) {
				for _, f := range []string{"go.mod", "Magefile.go"} {
					if err := os.Remove(filepath.Join(src, f)); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: func(string) []Diagnostic { return []Diagnostic{unsigned} },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := sourceDir(t)
			tc.edit(t, src)
			rep := CheckWithOptions(writeZip(t, good(t), fixture.ZipName), Options{SourceDir: src})
			assertExactly(t, rep, tc.want(src))
		})
	}
}

// A package built the old way has no go_plugin_build_manifest beside the datasource's executables:
// the SDK's build package writes one with every build, go build does not.
func TestNestedGoManifest(t *testing.T) {
	const mp = "vigil-cdp-app/datasource/go_plugin_build_manifest"
	cases := []struct {
		name   string
		mutate func(p *fixture.Package)
		source bool
		want   []Diagnostic
	}{
		{
			name:   "missing",
			mutate: func(p *fixture.Package) { p.Delete(root + "datasource/go_plugin_build_manifest") },
			want: []Diagnostic{unsigned, errD("vigil-go-manifest", "no-go-manifest",
				`could not find or parse Go manifest `+mp+` for executable "gpx_vigil" declared in vigil-cdp-app/datasource/plugin.json: file does not exist`)},
		},
		{
			name:   "does not parse",
			mutate: func(p *fixture.Package) { p.Set(root+"datasource/go_plugin_build_manifest", "Magefile.go\n") },
			want: []Diagnostic{unsigned, errD("vigil-go-manifest", "no-go-manifest",
				`could not find or parse Go manifest `+mp+` for executable "gpx_vigil" declared in vigil-cdp-app/datasource/plugin.json: invalid line "Magefile.go"`)},
		},
		{
			name: "a frontend-only package needs none",
			mutate: func(p *fixture.Package) {
				p.EditJSON(root+"datasource/plugin.json", func(m map[string]any) { delete(m, "backend"); delete(m, "executable") })
				for _, f := range []string{"go_plugin_build_manifest", "gpx_vigil_linux_amd64", "gpx_vigil_linux_arm64"} {
					p.Delete(root + "datasource/" + f)
				}
			},
			want: []Diagnostic{unsigned},
		},
		{
			name: "lists a file the source does not have",
			mutate: func(p *fixture.Package) {
				p.Set(root+"datasource/go_plugin_build_manifest", fixture.GoManifest()+sha256hex([]byte("x"))+":pkg/gone.go\n")
			},
			source: true,
			want: []Diagnostic{unsigned, errD("vigil-go-manifest", "go-manifest-issue",
				"invalid Go manifest: pkg/gone.go is in "+mp+" but not in the source code")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := good(t)
			tc.mutate(p)
			opts := Options{}
			if tc.source {
				opts.SourceDir = sourceDir(t)
			}
			assertExactly(t, CheckWithOptions(writeZip(t, p, fixture.ZipName), opts), tc.want)
		})
	}
}

// The repository itself passes the validator's build-tooling rules: create-plugin's webpack
// configuration and a Magefile.go with the SDK's build package beside go.mod.
func TestRepositoryBuildTooling(t *testing.T) {
	c := &checker{rep: Report{Diagnostics: []Diagnostic{}}}
	c.checkBuildTools(filepath.Join("..", ".."))
	for _, d := range c.rep.Diagnostics {
		t.Errorf("%s", d)
	}
}
