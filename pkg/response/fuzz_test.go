package response

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse and Classify: they must never
// panic, and a successful Parse must classify every process. The corpus in
// testdata/fuzz/FuzzParse runs with every go test; grow it with
// go test -fuzz=FuzzParse -fuzztime=30s ./pkg/response.
func FuzzParse(f *testing.F) {
	f.Add(status(nil))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	seeds, _ := filepath.Glob("testdata/*.json")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := Parse(body)
		if err != nil {
			if err.Error() == "" {
				t.Error("an error without a reason")
			}
			return
		}
		o := Classify(st)
		if len(o.Processes) != len(st.Processes) {
			t.Errorf("%d processes, %d verdicts", len(st.Processes), len(o.Processes))
		}
	})
}
