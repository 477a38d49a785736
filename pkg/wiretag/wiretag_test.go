package wiretag

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		tag, want, wantErr string
	}{
		{"", "required=false min=(none) max=(none)", ""},
		{"required", "required=true min=(none) max=(none)", ""},
		{"required,min=0", "required=true min=0 max=(none)", ""},
		{"min=1,max=2147483647", "required=false min=1 max=2147483647", ""},
		{"requird", "", `unknown part "requird"`},
		{"required=yes", "", `unknown part "required=yes"`},
		{"min", "", `unknown part "min"`},
		{"min=zero", "", "min=zero is not a finite number"},
		{"max=NaN", "", "max=NaN is not a finite number"},
		{"min=2,max=1", "", "min is above max"},
	}
	show := func(b *float64) string {
		if b == nil {
			return "(none)"
		}
		return Format(*b)
	}
	for _, tt := range tests {
		r, err := Parse(tt.tag)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q): error %v, want one containing %q", tt.tag, err, tt.wantErr)
			}
			continue
		}
		got := "required=" + map[bool]string{true: "true", false: "false"}[r.Required] + " min=" + show(r.Min) + " max=" + show(r.Max)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %s, %v; want %s", tt.tag, got, err, tt.want)
		}
	}
}

func TestCheck(t *testing.T) {
	r, _ := Parse("min=1,max=10")
	for x, want := range map[float64]string{1: "", 10: "", 0: "minimum 1", 10.5: "maximum 10", -1e308: "minimum 1", 1e308: "maximum 10"} {
		if ok, bound := r.Check(x); ok != (want == "") || bound != want {
			t.Errorf("Check(%g) = %v, %q; want %q", x, ok, bound, want)
		}
	}
}
