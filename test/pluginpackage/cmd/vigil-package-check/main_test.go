package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-cdp/vigil/test/pluginpackage"
	"github.com/vigil-cdp/vigil/test/pluginpackage/internal/fixture"
)

func zipOf(t *testing.T, mutate func(p *fixture.Package)) string {
	t.Helper()
	p, err := fixture.Good()
	if err != nil {
		t.Fatal(err)
	}
	mutate(p)
	zp, err := p.WriteZip(t.TempDir(), fixture.ZipName)
	if err != nil {
		t.Fatal(err)
	}
	return zp
}

func TestGoodPackageExitsZero(t *testing.T) {
	zp := zipOf(t, func(*fixture.Package) {})
	var out, errOut bytes.Buffer
	if code := run([]string{zp}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, output:\n%s%s", code, out.String(), errOut.String())
	}
	if got := out.String(); got != "WARNING manifest: unsigned plugin: vigil-cdp-app/MANIFEST.txt not found\n" {
		t.Errorf("output:\n%s", got)
	}
}

func TestErrorExitsOne(t *testing.T) {
	zp := zipOf(t, func(p *fixture.Package) { p.Delete(fixture.Root + "README.md") })
	var out, errOut bytes.Buffer
	if code := run([]string{zp}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; output:\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "ERROR readme: missing README.md: vigil-cdp-app/README.md not found\n") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestWarningsOnlyExitZero(t *testing.T) {
	zp := zipOf(t, func(p *fixture.Package) { p.Delete(fixture.Root + "CHANGELOG.md") })
	var out, errOut bytes.Buffer
	if code := run([]string{zp}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, want 0; output:\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "WARNING changelog: missing CHANGELOG.md") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestJSON(t *testing.T) {
	zp := zipOf(t, func(p *fixture.Package) { p.Delete(fixture.Root + "LICENSE") })
	var out, errOut bytes.Buffer
	if code := run([]string{"-json", zp}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var rep pluginpackage.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, out.String())
	}
	errs := rep.Errors()
	if len(errs) != 1 || errs[0].Analyzer != "license" || errs[0].Rule != "license-not-provided" {
		t.Errorf("errors = %+v", errs)
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 2 {
		t.Errorf("no args: exit %d, want 2", code)
	}
	if code := run([]string{filepath.Join(t.TempDir(), "nope.zip")}, &out, &errOut); code != 1 {
		t.Errorf("missing zip: exit %d, want 1", code)
	}
}
