package models

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"

	"github.com/vigil-cdp/vigil/pkg/fleet"
)

// TestSettingsTable runs the settings cases shared with the settings editor's
// tests (src/datasource/settings.test.ts), which check the same rules as a
// person types: every problem, by its path under jsonData, with the same
// message.
func TestSettingsTable(t *testing.T) {
	raw, err := os.ReadFile("testdata/settings.json")
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		Cases []struct {
			Name     string            `json:"name"`
			JSONData json.RawMessage   `json:"jsonData"`
			Problems map[string]string `json:"problems"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &table); err != nil || len(table.Cases) == 0 {
		t.Fatalf("testdata/settings.json: %v", err)
	}
	for _, tt := range table.Cases {
		t.Run(tt.Name, func(t *testing.T) {
			_, err := LoadSettings(instance(string(tt.JSONData), nil))
			got := map[string]string{}
			for _, e := range fieldErrors(err) {
				if _, seen := got[e[0]]; !seen {
					got[e[0]] = strings.ReplaceAll(e[1], "jsonData.", "")
				}
			}
			if !maps.Equal(got, tt.Problems) {
				t.Errorf("problems\n got: %q\nwant: %q", got, tt.Problems)
			}
		})
	}
}

// fieldErrors are the field errors in err, in order, as path (under
// jsonData) and message.
func fieldErrors(err error) [][2]string {
	var fe *fleet.FieldError
	var me *FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe) && fe == err:
		return [][2]string{{strings.TrimPrefix(fe.Field, "jsonData."), fe.Message}}
	case errors.As(err, &me) && me == err:
		return [][2]string{{strings.TrimPrefix(me.Field, "jsonData."), me.Message}}
	}
	var out [][2]string
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			out = append(out, fieldErrors(e)...)
		}
	}
	return out
}
