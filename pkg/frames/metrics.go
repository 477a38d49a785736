package frames

import (
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// Metric names: the value field's name in each metrics frame, and what a
// query's "metrics" list selects.
const (
	MetricStateCode              = "stateCode"
	MetricUp                     = "up"
	MetricRTTSeconds             = "rttSeconds"
	MetricBudgetSeconds          = "budgetSeconds"
	MetricProcessRunning         = "processRunning"
	MetricProtectionLagSeconds   = "protectionLagSeconds"
	MetricRestarts               = "restarts"
	MetricAutoRestartSuspended   = "autoRestartSuspended"
	MetricEngineStalenessSeconds = "engineStalenessSeconds"
	MetricUnpolledAgents         = "unpolledAgents"
)

// AgentMetrics are the series of an agent as a whole, ProcessMetrics those of
// each process, EngineMetrics that of the monitor itself.
var (
	AgentMetrics   = []string{MetricStateCode, MetricUp, MetricRTTSeconds, MetricBudgetSeconds}
	ProcessMetrics = []string{MetricProcessRunning, MetricProtectionLagSeconds, MetricRestarts, MetricAutoRestartSuspended}
	EngineMetrics  = []string{MetricEngineStalenessSeconds, MetricUnpolledAgents}
)

// metricUnits are Grafana unit ids of the metrics that have one.
var metricUnits = map[string]string{
	MetricRTTSeconds:             "s",
	MetricBudgetSeconds:          "s",
	MetricProtectionLagSeconds:   "s",
	MetricEngineStalenessSeconds: "s",
}

// metricDescriptions say what each metric holds (the query editor shows them).
var metricDescriptions = map[string]string{
	MetricStateCode:              "the agent's state code (0 OK ... 6 UNKNOWN)",
	MetricUp:                     "1 when the agent answered its latest poll",
	MetricRTTSeconds:             "round trip of the latest poll",
	MetricBudgetSeconds:          "the timeout budget in force",
	MetricProcessRunning:         "0 when a process that should run does not",
	MetricProtectionLagSeconds:   "how far protection lags behind the data",
	MetricRestarts:               "restarts of the process",
	MetricAutoRestartSuspended:   "1 while the flap guard holds auto-restart",
	MetricEngineStalenessSeconds: "seconds since the monitor's last completed poll cycle",
	MetricUnpolledAgents:         "agents no monitor sharing the history has polled for two intervals (shared history only)",
}

// MetricInfo describes one metric: whose series it is (agent, process or
// engine), its Grafana unit and what it holds.
type MetricInfo struct {
	Name        string `json:"name"`
	Scope       string `json:"scope"`
	Unit        string `json:"unit"`
	Description string `json:"description"`
}

// MetricCatalog lists every metric, agent metrics first, then process
// metrics, then the engine's.
func MetricCatalog() []MetricInfo {
	var out []MetricInfo
	for _, group := range []struct {
		scope string
		names []string
	}{{"agent", AgentMetrics}, {"process", ProcessMetrics}, {"engine", EngineMetrics}} {
		for _, name := range group.names {
			out = append(out, MetricInfo{Name: name, Scope: group.scope, Unit: metricUnits[name], Description: metricDescriptions[name]})
		}
	}
	return out
}

// Series is one metric of one agent (Process empty), of one process, or of
// the engine (Agent empty). Values align with Times; nil is no value.
type Series struct {
	Metric  string
	Agent   string
	Cluster string
	Process string
	Times   []time.Time
	Values  []*float64
}

// Metrics builds the "metrics" frames: one per series, typed
// timeseries-multi (dataplane 0.1), each a time field and one value field
// named after the metric and labelled agent, cluster and process, so that an
// alert rule gets one alert instance per agent or process.
func Metrics(series []Series) data.Frames {
	frames := make(data.Frames, 0, len(series))
	for _, s := range series {
		var labels data.Labels
		if s.Agent != "" {
			labels = seriesLabels(s.Agent, s.Cluster, s.Process)
		}
		value := data.NewField(s.Metric, labels, s.Values)
		cfg := &data.FieldConfig{Unit: metricUnits[s.Metric]}
		if s.Metric == MetricStateCode {
			cfg = stateCodeConfig()
		}
		value.SetConfig(cfg)
		frame := data.NewFrame(s.Metric, data.NewField("time", nil, s.Times), value)
		frame.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
		frames = append(frames, frame)
	}
	return frames
}
