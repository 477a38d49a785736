package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// resource is one route under /api/datasources/uid/{uid}/resources/.
type resource struct {
	method  string
	handler func(ctx context.Context, req *backend.CallResourceRequest) (int, any)
}

func (d *Datasource) resources() map[string]resource {
	return map[string]resource{
		"agents": {method: http.MethodGet, handler: d.listAgents},
	}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// CallResource routes resource calls. Every answer, including errors, is JSON.
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	path := strings.Trim(req.Path, "/")
	routes := d.resources()
	route, ok := routes[path]
	if !ok {
		return send(sender, http.StatusNotFound, errorBody{errorDetail{
			Code:    "not_found",
			Message: fmt.Sprintf("no resource %q: known resources are GET agents", path),
		}}, nil)
	}
	if req.Method != route.method {
		return send(sender, http.StatusMethodNotAllowed, errorBody{errorDetail{
			Code:    "method_not_allowed",
			Message: fmt.Sprintf("%s %s is not allowed: use %s", req.Method, path, route.method),
		}}, map[string][]string{"Allow": {route.method}})
	}
	status, body := route.handler(ctx, req)
	return send(sender, status, body, nil)
}

type agentView struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	Cluster string `json:"cluster"`
}

// listAgents answers the configured agents, without any token.
func (d *Datasource) listAgents(_ context.Context, _ *backend.CallResourceRequest) (int, any) {
	if d.settingsErr != nil {
		return http.StatusInternalServerError, errorBody{errorDetail{
			Code:    "invalid_settings",
			Message: "the Vigil datasource is misconfigured; fix its settings: " + d.settingsErr.Error(),
		}}
	}
	agents := make([]agentView, 0, len(d.settings.Agents))
	for _, a := range d.settings.Agents {
		agents = append(agents, agentView{Name: a.Name, URL: a.URL, Cluster: a.Cluster})
	}
	return http.StatusOK, map[string]any{"agents": agents}
}

func send(sender backend.CallResourceResponseSender, status int, body any, headers map[string][]string) error {
	encoded, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode resource answer: %w", err)
	}
	h := map[string][]string{"Content-Type": {"application/json"}}
	for k, v := range headers {
		h[k] = v
	}
	return sender.Send(&backend.CallResourceResponse{Status: status, Headers: h, Body: encoded})
}
