package frames

import (
	"flag"
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/experimental"

	"github.com/vigil-cdp/vigil/pkg/state"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestStatusFrame(t *testing.T) {
	tests := []struct {
		name string
		rows []StatusRow
	}{
		{name: "status-empty"},
		{name: "status-every-state", rows: []StatusRow{
			{Agent: "standalone", Process: "replicator", State: state.OK, Reason: "running"},
			{Agent: "node-a", Cluster: "ha", Process: "replicator", State: state.Restarting, Reason: "restart requested by auto-restart"},
			{Agent: "node-b", Cluster: "ha", Process: "replicator", State: state.Standby, Reason: "passive cluster node"},
			{Agent: "node-c", Cluster: "ha", State: state.Grace, Reason: "awaiting failover: 12 s of 45 s"},
			{Agent: "lagging", Process: "replicator", State: state.Degraded, Reason: "lag 95 s exceeds RPO 60 s"},
			{Agent: "silent", State: state.Failed, Reason: "no answer for 120 s, budget 45 s"},
			{Agent: "new", State: state.Unknown, Reason: "not polled yet"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dr := backend.DataResponse{Frames: []*data.Frame{Status(tt.rows)}}
			experimental.CheckGoldenJSONResponse(t, "testdata", tt.name+".golden", &dr, *update)
		})
	}
}
