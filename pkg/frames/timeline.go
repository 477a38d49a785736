package frames

import (
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/vigil-cdp/vigil/pkg/state"
)

// TimelineFrameName is the name of the frame answered to a "timeline" query.
const TimelineFrameName = "timeline"

// TimelineSeries is the state of one agent (Process empty) or one of its
// processes at each time of the timeline; nil where nothing is known.
type TimelineSeries struct {
	Agent   string
	Cluster string
	Process string
	States  []*state.State
}

// Timeline builds the "timeline" frame for Grafana's State timeline
// visualization: a time field, then one state-code field per series named
// "agent" or "agent/process", labelled agent, cluster and process, with
// value mappings that name and colour every code. Every series must have one
// value per time.
func Timeline(times []time.Time, series []TimelineSeries) *data.Frame {
	fields := []*data.Field{data.NewField("time", nil, times)}
	for _, s := range series {
		values := make([]*int64, len(times))
		for i := range times {
			if i < len(s.States) && s.States[i] != nil {
				values[i] = ptr(s.States[i].Code())
			}
		}
		name := s.Agent
		if s.Process != "" {
			name += "/" + s.Process
		}
		cfg := stateCodeConfig()
		cfg.DisplayNameFromDS = name
		fields = append(fields, data.NewField(name, seriesLabels(s.Agent, s.Cluster, s.Process), values).SetConfig(cfg))
	}
	frame := data.NewFrame(TimelineFrameName, fields...)
	frame.Meta = &data.FrameMeta{
		Type:                   data.FrameTypeTimeSeriesWide,
		TypeVersion:            data.FrameTypeVersion{0, 1},
		PreferredVisualization: "state-timeline",
	}
	return frame
}

// seriesLabels are the labels of a series: agent always, cluster and process
// when set.
func seriesLabels(agent, cluster, process string) data.Labels {
	l := data.Labels{"agent": agent}
	if cluster != "" {
		l["cluster"] = cluster
	}
	if process != "" {
		l["process"] = process
	}
	return l
}
