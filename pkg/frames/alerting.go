package frames

import (
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// Frames for Grafana Alerting. An alert rule reads a query's answer through
// Grafana's server-side expressions, which take time series (wide, or
// dataplane timeseries-multi) and dataplane numeric frames, and identify
// each series or number by its labels alone: a table (a "long" frame) or a
// frame without a numeric field fails the rule, and so do two series with
// the same labels. The builders below answer the status and events queries
// in that form, one labelled number per alert instance.

// EventsFieldName is the value field of an events count.
const EventsFieldName = "events"

// MetricLabel is the label that names a series' metric when one answer
// holds several metrics.
const MetricLabel = "metric"

// StatusCodes builds the "status" answer for alert rules: one numeric frame
// (dataplane numeric-multi 0.1) per table row, named and valued stateCode,
// labelled agent, cluster and process like the metrics series. No rows is
// the numeric no-data answer: one frame without fields.
func StatusCodes(rows []StatusRow) data.Frames {
	if len(rows) == 0 {
		return data.Frames{numericFrame(StatusFrameName)}
	}
	out := make(data.Frames, 0, len(rows))
	for _, r := range rows {
		value := data.NewField(MetricStateCode, seriesLabels(r.Agent, r.Cluster, r.Process), []float64{float64(r.State.Code())}).
			SetConfig(stateCodeConfig())
		out = append(out, numericFrame(MetricStateCode, value))
	}
	return out
}

// EventCount is the number of events of one kind (state, action, note,
// agent) of one agent over a query's range.
type EventCount struct {
	Agent   string
	Cluster string
	Kind    string
	Count   int
}

// EventCounts builds the "events" answer for alert rules: one numeric frame
// (numeric-multi 0.1) per agent and event kind, value field "events",
// labelled agent, cluster (when known) and kind.
func EventCounts(counts []EventCount) data.Frames {
	if len(counts) == 0 {
		return data.Frames{numericFrame(EventsFrameName)}
	}
	out := make(data.Frames, 0, len(counts))
	for _, c := range counts {
		labels := seriesLabels(c.Agent, c.Cluster, "")
		labels["kind"] = c.Kind
		out = append(out, numericFrame(EventsFrameName, data.NewField(EventsFieldName, labels, []float64{float64(c.Count)})))
	}
	return out
}

func numericFrame(name string, fields ...*data.Field) *data.Frame {
	frame := data.NewFrame(name, fields...)
	frame.Meta = &data.FrameMeta{Type: data.FrameTypeNumericMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
	return frame
}

// WithMetricLabel adds metric=<the value field's name> to the labels of
// every metrics series, so that the series of several metrics of one agent
// (or the engine's, which has no labels) stay apart once an expression
// drops their names.
func WithMetricLabel(frames data.Frames) data.Frames {
	for _, frame := range frames {
		for _, field := range frame.Fields {
			if field.Type() == data.FieldTypeTime {
				continue
			}
			labels := data.Labels{}
			for k, v := range field.Labels {
				labels[k] = v
			}
			labels[MetricLabel] = field.Name
			field.Labels = labels
		}
	}
	return frames
}

// Custom is what every frame carries in meta.custom.
type Custom struct {
	// DatasourceUID names the datasource that answered, for panels that
	// call its resources (the restart panel) when the query does not say.
	DatasourceUID string `json:"datasourceUid"`
}

// WithDatasource sets meta.custom.datasourceUid on every frame.
func WithDatasource(frames data.Frames, uid string) data.Frames {
	for _, frame := range frames {
		if frame.Meta == nil {
			frame.Meta = &data.FrameMeta{}
		}
		frame.Meta.Custom = Custom{DatasourceUID: uid}
	}
	return frames
}
