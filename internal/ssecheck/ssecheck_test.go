package ssecheck

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func f(v float64) *float64 { return &v }

func multi(name string, labels data.Labels, values []*float64) *data.Frame {
	times := make([]time.Time, len(values))
	for i := range times {
		times[i] = t0.Add(time.Duration(i) * 10 * time.Second)
	}
	frame := data.NewFrame(name, data.NewField("time", nil, times), data.NewField(name, labels, values))
	frame.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
	return frame
}

func number(name string, labels data.Labels, v float64) *data.Frame {
	frame := data.NewFrame(name, data.NewField(name, labels, []float64{v}))
	frame.Meta = &data.FrameMeta{Type: data.FrameTypeNumericMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
	return frame
}

func TestEvaluate(t *testing.T) {
	a := data.Labels{"agent": "a"}
	b := data.Labels{"agent": "b"}
	tests := []struct {
		name    string
		frames  data.Frames
		want    string // instances as "labels=value" joined by "; "
		wantErr string
	}{
		{name: "nothing", want: ""},
		{name: "series reduce to their last number", frames: data.Frames{multi("x", a, []*float64{f(1), f(2), nil}), multi("x", b, []*float64{nil, nil})}, want: "agent=a=2; agent=b=null"},
		{name: "numbers", frames: data.Frames{number("n", a, 3), number("n", b, 0)}, want: "agent=a=3; agent=b=0"},
		{name: "numeric no data", frames: data.Frames{data.NewFrame("n").SetMeta(&data.FrameMeta{Type: data.FrameTypeNumericMulti, TypeVersion: data.FrameTypeVersion{0, 1}})}, want: ""},
		{
			name: "a table is a long frame", wantErr: "input data must be a wide series but got type long",
			frames: data.Frames{data.NewFrame("t", data.NewField("time", nil, []time.Time{t0}), data.NewField("agent", nil, []string{"a"}), data.NewField("v", nil, []float64{1}))},
		},
		{
			name: "strings only", wantErr: "input data must be a wide series but got type not",
			frames: data.Frames{data.NewFrame("t", data.NewField("time", nil, []time.Time{t0}), data.NewField("agent", nil, []string{"a"}))},
		},
		{
			name: "one number per row of a table of strings", want: "agent=a=1; agent=b=2",
			frames: data.Frames{data.NewFrame("t", data.NewField("agent", nil, []string{"a", "b"}), data.NewField("v", nil, []float64{1, 2}))},
		},
		{
			name: "the same labels twice", wantErr: "frame cannot uniquely be identified by its labels: has duplicate results with labels {agent=a}",
			frames: data.Frames{multi("x", a, []*float64{f(1)}), multi("y", a, []*float64{f(1)})},
		},
		{
			name: "a numeric frame without a number", wantErr: "has no numeric field",
			frames: data.Frames{number("n", a, 1), func() *data.Frame {
				fr := data.NewFrame("s", data.NewField("s", nil, []string{"x"}))
				fr.Meta = &data.FrameMeta{Type: data.FrameTypeNumericMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
				return fr
			}()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst, _, err := Evaluate(tt.frames)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, i := range inst {
				v := "null"
				if i.Value != nil {
					v = strconv.FormatFloat(*i.Value, 'g', -1, 64)
				}
				parts = append(parts, i.Labels.String()+"="+v)
			}
			if got := strings.Join(parts, "; "); got != tt.want {
				t.Errorf("instances %q, want %q", got, tt.want)
			}
		})
	}
}
