package frames

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/vigil-cdp/vigil/pkg/history"
)

// EventsFrameName is the name of the frame answered to an "events" query.
const EventsFrameName = "events"

// EventRow is one line of the events table.
type EventRow struct {
	Time    time.Time
	Agent   string
	Process string
	// Kind is the event type: state, action, note or agent.
	Kind string
	// From and To are state names, for state changes.
	From, To string
	// Action is restart or stop; By is "auto" or a login; Result ok or failed.
	Action, By, Result string
	Reason             string
	Error              string
	// Text is one line for people and annotation titles.
	Text string
}

// EventRowOf turns a stored event into a row.
func EventRowOf(ev history.Event) EventRow {
	r := EventRow{Time: ev.Time, Agent: ev.Agent, Process: ev.Process, Kind: ev.Type}
	subject := ev.Agent
	if ev.Process != "" {
		subject += "/" + ev.Process
	}
	switch ev.Type {
	case history.TypeState:
		r.From, r.To, r.Reason = ev.From.String(), ev.To.String(), ev.Reason
		if ev.Diagnosis != "" {
			r.Error = ev.Diagnosis
		}
		r.Text = fmt.Sprintf("%s: %s → %s", subject, r.From, r.To)
	case history.TypeAction:
		r.Action, r.By, r.Result, r.Reason, r.Error = ev.Action, ev.By, ev.Result, ev.Reason, ev.Error
		by := ev.By
		if ev.Manual && by == "auto" {
			// A person whose login is "auto", not Vigil's own auto-restart.
			by = "the user auto"
		}
		r.Text = fmt.Sprintf("%s: %s %s (by %s)", subject, ev.Action, ev.Result, by)
	case history.TypeHandler:
		r.From, r.To, r.Action, r.Result, r.Reason, r.Error = ev.From.String(), ev.To.String(), ev.Handler, ev.Result, ev.Reason, ev.Error
		r.By = "auto"
		detail := ev.Result
		if ev.ExitCode != nil {
			detail += fmt.Sprintf(", exit %d", *ev.ExitCode)
		}
		if ev.Error == "" && ev.Output != "" {
			r.Error = ev.Output
		}
		r.Text = fmt.Sprintf("%s: handler %s on %s → %s: %s", subject, ev.Handler, r.From, r.To, detail)
	case history.TypeAgent:
		var a struct {
			Type        string `json:"type"`
			Reason      string `json:"reason"`
			RequestedBy string `json:"requestedBy"`
		}
		_ = json.Unmarshal(ev.AgentEvent, &a)
		r.Action, r.Reason, r.By = a.Type, a.Reason, a.RequestedBy
		r.Text = fmt.Sprintf("%s: agent reported %s", subject, a.Type)
	default:
		r.Reason = ev.Reason
		r.Text = fmt.Sprintf("%s: %s", subject, ev.Reason)
	}
	return r
}

// Events builds the "events" table: time, agent, process, kind, from, to,
// action, by, result, reason, error and text; usable as annotations.
func Events(rows []EventRow) *data.Frame {
	n := len(rows)
	times := make([]time.Time, n)
	cols := map[string][]string{}
	names := []string{"agent", "process", "kind", "from", "to", "action", "by", "result", "reason", "error", "text"}
	for _, name := range names {
		cols[name] = make([]string, n)
	}
	for i, r := range rows {
		times[i] = r.Time
		for name, v := range map[string]string{
			"agent": r.Agent, "process": r.Process, "kind": r.Kind, "from": r.From, "to": r.To,
			"action": r.Action, "by": r.By, "result": r.Result, "reason": r.Reason, "error": r.Error, "text": r.Text,
		} {
			cols[name][i] = v
		}
	}
	fields := []*data.Field{data.NewField("time", nil, times)}
	for _, name := range names {
		fields = append(fields, data.NewField(name, nil, cols[name]))
	}
	frame := data.NewFrame(EventsFrameName, fields...)
	frame.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return frame
}
