package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
)

// agentHealth is the outcome of one agent's /healthz, kept with its reason
// instead of a bare bool.
type agentHealth struct {
	name string
	rtt  time.Duration
	err  error
}

// CheckHealth is "Save & test": settings first, then every agent's /healthz,
// concurrently, each with its own timeout.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	if d.settingsErr != nil {
		return &backend.CheckHealthResult{
			Status:  backend.HealthStatusError,
			Message: d.settingsErr.Error(),
		}, nil
	}

	results := make([]agentHealth, len(d.settings.Fleet.Agents))
	var wg sync.WaitGroup
	for i, a := range d.settings.Fleet.Agents {
		wg.Go(func() {
			actx, cancel := context.WithTimeout(ctx, d.healthTimeout)
			defer cancel()
			h, err := d.agents.Healthz(actx, toClientAgent(a))
			results[i] = agentHealth{name: a.Name, rtt: h.RTT, err: err}
		})
	}
	wg.Wait()

	answered := 0
	lines := make([]string, 0, len(results))
	for _, r := range results {
		if r.err == nil {
			answered++
			lines = append(lines, fmt.Sprintf("%s: answered in %s", r.name, r.rtt.Round(time.Millisecond)))
			continue
		}
		lines = append(lines, fmt.Sprintf("%s: %s", r.name, d.describe(r.err)))
	}

	result := &backend.CheckHealthResult{
		Status:  backend.HealthStatusOk,
		Message: fmt.Sprintf("%d of %d agents answered", answered, len(results)),
	}
	if answered < len(results) {
		result.Status = backend.HealthStatusError
	}
	details, err := json.Marshal(map[string]string{"verboseMessage": strings.Join(lines, "\n")})
	if err != nil {
		return nil, fmt.Errorf("encode health details: %w", err)
	}
	result.JSONDetails = details
	return result, nil
}

func (d *Datasource) describe(err error) string {
	var ae *agentclient.Error
	if errors.As(err, &ae) && ae.IsTimeout() {
		return fmt.Sprintf("%s (health check timeout %s)", ae.Error(), d.healthTimeout)
	}
	return err.Error()
}
