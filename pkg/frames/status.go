// Package frames turns monitoring results into Grafana data frames. There is
// one builder per frame kind; the shapes are a contract with dashboards and
// alert rules and are checked with golden files.
package frames

import (
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/vigil-cdp/vigil/pkg/state"
)

// StatusFrameName is the name of the frame answered to a "status" query.
const StatusFrameName = "status"

// StatusRow is one line of the status table: an agent, or one CDP process of
// an agent when Process is set.
type StatusRow struct {
	Agent   string
	Cluster string
	Process string
	State   state.State
	Reason  string
}

// Status builds the "status" table frame: one row per agent or process with
// the state both as a name (for people) and a fixed code (for alert rules and
// value mappings).
func Status(rows []StatusRow) *data.Frame {
	n := len(rows)
	agent := make([]string, n)
	cluster := make([]string, n)
	process := make([]string, n)
	stateName := make([]string, n)
	stateCode := make([]int64, n)
	reason := make([]string, n)
	for i, r := range rows {
		agent[i] = r.Agent
		cluster[i] = r.Cluster
		process[i] = r.Process
		stateName[i] = r.State.String()
		stateCode[i] = r.State.Code()
		reason[i] = r.Reason
	}
	frame := data.NewFrame(StatusFrameName,
		data.NewField("agent", nil, agent),
		data.NewField("cluster", nil, cluster),
		data.NewField("process", nil, process),
		data.NewField("state", nil, stateName),
		data.NewField("stateCode", nil, stateCode),
		data.NewField("reason", nil, reason),
	)
	frame.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return frame
}
