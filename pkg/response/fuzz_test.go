package response

import (
	"errors"
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
		if errors.Is(err, ErrDecodePanic) {
			t.Fatalf("Parse panicked (and recovered): %v", err)
		}
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

// A panic in decoding is recovered as an error the fuzz target can tell apart.
func TestRecoveredPanicIsDistinguishable(t *testing.T) {
	_, err := recovered(func() (Status, error) { panic("index out of range") })
	if !errors.Is(err, ErrDecodePanic) || err.Error() != "the answer could not be decoded (index out of range)" {
		t.Fatalf("err = %v", err)
	}
	if _, err := Parse([]byte(`{`)); errors.Is(err, ErrDecodePanic) {
		t.Errorf("an ordinary decode error is taken for a panic: %v", err)
	}
}
