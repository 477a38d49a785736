package plugin

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/vigil-cdp/vigil/pkg/frames"
	"github.com/vigil-cdp/vigil/pkg/models"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// Query types. QueryTypeStatus is used when a query has none.
const (
	QueryTypeStatus = "status"
)

// NotPolledReason is the reason given for every agent until the monitor
// engine polls them.
const NotPolledReason = "not polled yet: the monitor engine arrives in a later release"

type queryHandler func(ctx context.Context, s *models.Settings, q backend.DataQuery) backend.DataResponse

var queryHandlers = map[string]queryHandler{
	QueryTypeStatus: queryStatus,
}

func knownQueryTypes() string {
	names := make([]string, 0, len(queryHandlers))
	for name := range queryHandlers {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// QueryData answers each query on its own: one bad query does not fail the
// others in the same panel or alert rule.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	for _, q := range req.Queries {
		resp.Responses[q.RefID] = d.query(ctx, q)
	}
	return resp, nil
}

func (d *Datasource) query(ctx context.Context, q backend.DataQuery) backend.DataResponse {
	if d.settingsErr != nil {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream,
			"the Vigil datasource is misconfigured; fix its settings: "+d.settingsErr.Error())
	}
	queryType := q.QueryType
	if queryType == "" {
		queryType = QueryTypeStatus
	}
	handler, ok := queryHandlers[queryType]
	if !ok {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream,
			fmt.Sprintf("unknown query type %q: known query types are %s", q.QueryType, knownQueryTypes()))
	}
	return handler(ctx, d.settings, q)
}

func queryStatus(_ context.Context, s *models.Settings, _ backend.DataQuery) backend.DataResponse {
	rows := make([]frames.StatusRow, 0, len(s.Agents))
	for _, a := range s.Agents {
		rows = append(rows, frames.StatusRow{
			Agent:   a.Name,
			Cluster: a.Cluster,
			State:   state.Unknown,
			Reason:  NotPolledReason,
		})
	}
	return backend.DataResponse{Status: backend.StatusOK, Frames: data.Frames{frames.Status(rows)}}
}
