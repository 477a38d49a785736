package frames

import (
	"strconv"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/vigil-cdp/vigil/pkg/state"
)

// stateColors are Grafana's named theme colours for each state, the same as
// src/shared/states.ts: dashboards and the app pages colour states alike.
var stateColors = map[state.State]string{
	state.OK:         "green",
	state.Standby:    "blue",
	state.Restarting: "yellow",
	state.Grace:      "orange",
	state.Degraded:   "purple",
	state.Failed:     "red",
	state.Unknown:    "text",
}

// StateColor is the theme colour of a state.
func StateColor(s state.State) string { return stateColors[s] }

// StateMappings maps every state code to its name and colour, for fields
// that hold state codes (value mappings in Grafana).
func StateMappings() data.ValueMappings {
	m := data.ValueMapper{}
	for i, s := range state.All() {
		m[strconv.FormatInt(s.Code(), 10)] = data.ValueMappingResult{Text: s.String(), Color: stateColors[s], Index: i}
	}
	return data.ValueMappings{m}
}

// stateCodeConfig is the field config of every state-code field.
func stateCodeConfig() *data.FieldConfig {
	return &data.FieldConfig{
		Mappings: StateMappings(),
		Min:      ptr(data.ConfFloat64(0)),
		Max:      ptr(data.ConfFloat64(6)),
	}
}

func ptr[T any](v T) *T { return &v }
