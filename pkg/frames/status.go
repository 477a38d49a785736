// Package frames turns monitoring results into Grafana data frames. There is
// one builder per frame kind (status, timeline, metrics, events); the shapes
// are a contract with dashboards, panels and alert rules and are checked with
// golden files.
package frames

import (
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/vigil-cdp/vigil/pkg/state"
)

// StatusFrameName is the name of the frame answered to a "status" query.
const StatusFrameName = "status"

// StatusRow is one line of the status table: one CDP process of an agent, or
// the agent itself when Process is empty (it never answered, or reports no
// process). Nil pointers are unknown values (null in the frame).
type StatusRow struct {
	Agent   string
	Cluster string
	// Role is standalone, active, passive or unknown; empty before an answer.
	Role    string
	Process string
	State   state.State
	Reason  string
	// RTTSeconds is the round trip of the latest answer.
	RTTSeconds *float64
	// BudgetSeconds is the timeout budget in force.
	BudgetSeconds *float64
	// LagSeconds is the protection lag the process reported.
	LagSeconds *float64
	// LastRestart is when the process was last restarted by the monitor.
	LastRestart *time.Time
	// Generation is the process generation a restart must name.
	Generation *int64
}

// Status builds the "status" table frame: one row per agent process with the
// state both as a name (for people) and a fixed code (for alert rules and
// value mappings).
func Status(rows []StatusRow) *data.Frame {
	n := len(rows)
	agent := make([]string, n)
	cluster := make([]string, n)
	role := make([]string, n)
	process := make([]string, n)
	stateName := make([]string, n)
	stateCode := make([]int64, n)
	reason := make([]string, n)
	rtt := make([]*float64, n)
	budget := make([]*float64, n)
	lag := make([]*float64, n)
	lastRestart := make([]*time.Time, n)
	generation := make([]*int64, n)
	for i, r := range rows {
		agent[i] = r.Agent
		cluster[i] = r.Cluster
		role[i] = r.Role
		process[i] = r.Process
		stateName[i] = r.State.String()
		stateCode[i] = r.State.Code()
		reason[i] = r.Reason
		rtt[i], budget[i], lag[i] = r.RTTSeconds, r.BudgetSeconds, r.LagSeconds
		lastRestart[i] = r.LastRestart
		generation[i] = r.Generation
	}
	seconds := func(name string, v []*float64) *data.Field {
		return data.NewField(name, nil, v).SetConfig(&data.FieldConfig{Unit: "s"})
	}
	frame := data.NewFrame(StatusFrameName,
		data.NewField("agent", nil, agent),
		data.NewField("cluster", nil, cluster),
		data.NewField("role", nil, role),
		data.NewField("process", nil, process),
		data.NewField("state", nil, stateName).SetConfig(&data.FieldConfig{Mappings: stateNameMappings()}),
		data.NewField("stateCode", nil, stateCode).SetConfig(stateCodeConfig()),
		data.NewField("reason", nil, reason),
		seconds("rtt", rtt),
		seconds("budget", budget),
		seconds("protectionLag", lag),
		data.NewField("lastRestart", nil, lastRestart),
		data.NewField("generation", nil, generation),
	)
	frame.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return frame
}

// stateNameMappings colours the state names as the codes are coloured.
func stateNameMappings() data.ValueMappings {
	m := data.ValueMapper{}
	for i, s := range state.All() {
		m[s.String()] = data.ValueMappingResult{Color: stateColors[s], Index: i}
	}
	return data.ValueMappings{m}
}
