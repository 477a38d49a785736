// Package plugin is the glue between Grafana and Vigil: it turns Grafana's
// QueryData, CheckHealth and CallResource calls into calls on the settings,
// the monitor engine, its history and the frame builders. Nothing below this
// package knows about Grafana.
package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/grafana/grafana-plugin-sdk-go/backend/resource/httpadapter"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/models"
)

// PluginID is the id of the Vigil datasource in plugin.json.
const PluginID = "vigil-cdp-datasource"

// healthTimeout bounds each agent's status poll during CheckHealth, so one
// silent agent cannot hold the "Save & test" button for long.
const healthTimeout = 5 * time.Second

var (
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// Datasource is one configured Vigil datasource instance. The SDK creates it
// lazily on the first request and replaces it when the settings change; the
// monitor engine it drives lives on in the process-wide registry.
type Datasource struct {
	// ident is the datasource as Grafana identifies it (org, ID, UID);
	// uid is ident.uid, kept for messages.
	ident   identity
	uid     string
	updated time.Time

	// settings is nil when settingsErr is set. An instance with invalid
	// settings is still created, so that CheckHealth can tell the person
	// configuring it which field is wrong instead of a generic failure.
	settings    *models.Settings
	settingsErr error

	agents        agentclient.API
	close         func()
	healthTimeout time.Duration
	monitors      *monitors
	// resources answers CallResource (resources.go).
	resources backend.CallResourceHandler
}

// NewDatasource is the instance factory handed to datasource.Manage.
func NewDatasource(ctx context.Context, s backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	client := agentclient.New(nil)
	ds := newDatasourceIn(identityOf(ctx, s), s, client, running)
	ds.close = client.Close
	return ds, nil
}

// newDatasource is an instance whose org is not known (tests).
func newDatasource(s backend.DataSourceInstanceSettings, client agentclient.API, ms *monitors) *Datasource {
	return newDatasourceIn(identity{id: s.ID, uid: s.UID}, s, client, ms)
}

func newDatasourceIn(ident identity, s backend.DataSourceInstanceSettings, client agentclient.API, ms *monitors) *Datasource {
	settings, err := models.LoadSettings(s)
	if err != nil {
		// Settings errors name fields and secret keys, never secret values.
		log.DefaultLogger.Warn("Vigil datasource settings are invalid", "datasource", ident.String(), "error", err)
	}
	ds := &Datasource{
		ident:         ident,
		uid:           s.UID,
		updated:       s.Updated,
		settings:      settings,
		settingsErr:   err,
		agents:        client,
		healthTimeout: healthTimeout,
		monitors:      ms,
	}
	ds.resources = httpadapter.New(ds.resourceMux())
	ms.attach(ds)
	return ds
}

// Dispose stops the engine when this is still the newest instance of its
// datasource, and releases idle connections.
func (d *Datasource) Dispose() {
	d.monitors.detach(d)
	if d.close != nil {
		d.close()
	}
}

// otherOrg is the error for a request from an org this datasource is not
// in. The SDK keys instances by ID and UID, so this does not happen with a
// Grafana that keeps to its contract; it is checked all the same, since an
// answer or a restart must never cross orgs.
func (d *Datasource) otherOrg(pc backend.PluginContext) error {
	if d.ident.sameOrg(pc) {
		return nil
	}
	return fmt.Errorf("this Vigil datasource belongs to org %d; the request came from org %d", d.ident.org, orgOf(pc))
}

func toClientAgent(a fleet.Agent) agentclient.Agent {
	return agentclient.Agent{Name: a.Name, URL: a.URL, ReadToken: a.ReadToken.Reveal()}
}
