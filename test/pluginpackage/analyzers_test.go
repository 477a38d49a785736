package pluginpackage

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/vigil-cdp/vigil/test/pluginpackage/internal/fixture"
)

// TestAnalyzerListMatchesCode keeps analyzers.txt honest: every analyzer it
// calls mirrored, partial, source or vigil runs on a good package checked with
// a source directory and a checksum, and nothing runs that it does not list.
func TestAnalyzerListMatchesCode(t *testing.T) {
	f, err := os.Open("analyzers.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		listed[fields[0]] = fields[1]
	}
	src := sourceDir(t)
	zp := writeZip(t, good(t), fixture.ZipName)
	rep := CheckWithOptions(zp, Options{SourceDir: src, Checksum: "0000000000000000000000000000000000000000"})
	ran := map[string]bool{}
	for _, a := range rep.Analyzers {
		ran[a] = true
		if st := listed[a]; st == "" || st == "no" {
			t.Errorf("analyzer %s runs but analyzers.txt lists it as %q", a, st)
		}
	}
	for a, st := range listed {
		if st != "no" && !ran[a] {
			t.Errorf("analyzers.txt lists %s as %s but it did not run", a, st)
		}
	}
}
