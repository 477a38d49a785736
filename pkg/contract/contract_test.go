package contract

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/plugin"
)

var update = flag.Bool("update", false, "rewrite "+Path+" from the Go code")

// The checked-in TypeScript says what the Go code says: a changed default,
// state, metric or answer field fails here until the file is regenerated.
func TestGenerated(t *testing.T) {
	want, err := TypeScript()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join("..", "..", filepath.FromSlash(Path))
	if *update {
		if err := os.WriteFile(file, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v: generate it with `go test ./pkg/contract -update`", err)
	}
	if !bytes.Equal(got, want) {
		gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		line := 0
		for line < len(gotLines) && line < len(wantLines) && gotLines[line] == wantLines[line] {
			line++
		}
		at := func(lines []string) string {
			if line < len(lines) {
				return lines[line]
			}
			return "(end of file)"
		}
		t.Fatalf("%s is stale: the Go code now says otherwise. Regenerate it with `go test ./pkg/contract -update` and commit it.\n"+
			"first difference, line %d:\n  checked in: %s\n  Go says:    %s", Path, line+1, at(gotLines), at(wantLines))
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{time.Second, "1s"}, {60 * time.Second, "60s"}, {180 * time.Second, "180s"}, {5 * time.Minute, "5m"},
		{15 * time.Minute, "15m"}, {90 * time.Minute, "90m"}, {6 * time.Hour, "6h"}, {1500 * time.Millisecond, "1.5s"},
	}
	for _, tt := range tests {
		if got := duration(tt.d); got != tt.want {
			t.Errorf("duration(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            `'plain'`,
		"the agent's code": `"the agent's code"`,
		`say "hi"`:         `'say "hi"'`,
		`back\slash`:       `'back\\slash'`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

type inner struct {
	N int `json:"n"`
}

type outer struct {
	Name    string            `json:"name"`
	Opt     string            `json:"opt,omitempty"`
	Ptr     *float64          `json:"ptr"`
	OptPtr  *time.Time        `json:"optPtr,omitempty"`
	Items   []inner           `json:"items"`
	Labels  map[string]string `json:"labels"`
	Skipped string            `json:"-"`
	hidden  string
}

func TestSchemas(t *testing.T) {
	got, err := Schemas([]plugin.Shape{{Name: "Outer", Value: outer{hidden: "x"}}, {Name: "Inner", Value: inner{}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `
export const innerSchema = z.looseObject({
  n: z.number(),
});
export type Inner = z.infer<typeof innerSchema>;

export const outerSchema = z.looseObject({
  name: z.string(),
  opt: z.string().optional(),
  ptr: z.number().nullable(),
  optPtr: z.string().optional(),
  items: list(innerSchema),
  labels: z.record(z.string(), z.string()).nullable(),
});
export type Outer = z.infer<typeof outerSchema>;
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

type selfMarshalled struct{}

func (selfMarshalled) MarshalJSON() ([]byte, error) { return []byte(`"x"`), nil }

func TestSchemasRefuseWhatTheyCannotRead(t *testing.T) {
	tests := []struct {
		name  string
		value any
		want  string
	}{
		{"unnamed struct", struct {
			In inner `json:"in"`
		}{}, "X.in: contract.inner is not a named shape (add it to plugin.ResourceShapes)"},
		{"self-marshalled", struct {
			S selfMarshalled `json:"s"`
		}{}, "X.s: contract.selfMarshalled marshals itself: its JSON shape cannot be read from its type"},
		{"not a struct", "text", "shape X is a string, not a struct"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Schemas([]plugin.Shape{{Name: "X", Value: tt.value}})
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}
