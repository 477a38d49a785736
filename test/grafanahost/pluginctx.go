package grafanahost

import (
	"fmt"
	"net/http"
	"runtime"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/useragent"
)

// Request headers through which tests and the harness choose who is asking.
const (
	HeaderRole     = "X-Grafana-Role"
	HeaderLogin    = "X-Grafana-Login"
	HeaderAlerting = "X-Vigil-Alerting"
)

// PluginID is the datasource plugin this host serves.
const PluginID = "vigil-cdp-datasource"

// grafanaVersion is the Grafana version the host pretends to be.
const grafanaVersion = "12.4.0"

// userFromRequest returns the Grafana user for a request: the role from
// X-Grafana-Role (default Viewer) and the login from X-Grafana-Login (default
// admin). Alert evaluation carries no user, as in Grafana.
func userFromRequest(r *http.Request) (*backend.User, error) {
	if r.Header.Get(HeaderAlerting) == "1" {
		return nil, nil
	}
	role := r.Header.Get(HeaderRole)
	switch role {
	case "":
		role = "Viewer"
	case "Viewer", "Editor", "Admin":
	default:
		return nil, fmt.Errorf("%s: %q must be one of Viewer, Editor, Admin", HeaderRole, role)
	}
	login := r.Header.Get(HeaderLogin)
	if login == "" {
		login = "admin"
	}
	return &backend.User{Login: login, Name: login, Email: login + "@vigil.test", Role: role}, nil
}

// pluginContext builds what Grafana sends with every call for a datasource.
func (h *Host) pluginContext(ds Datasource, user *backend.User) backend.PluginContext {
	ua, _ := useragent.New(grafanaVersion, runtime.GOOS, runtime.GOARCH)
	secrets := make(map[string]string, len(ds.SecureJSONData))
	for k, v := range ds.SecureJSONData {
		secrets[k] = v
	}
	return backend.PluginContext{
		OrgID:    1,
		PluginID: PluginID,
		User:     user,
		DataSourceInstanceSettings: &backend.DataSourceInstanceSettings{
			ID:                      ds.ID,
			UID:                     ds.UID,
			Type:                    ds.Type,
			Name:                    ds.Name,
			URL:                     ds.URL,
			JSONData:                ds.JSONData,
			DecryptedSecureJSONData: secrets,
			Updated:                 ds.Updated,
		},
		GrafanaConfig: backend.NewGrafanaCfg(map[string]string{
			backend.AppURL: h.AppURL(),
		}),
		UserAgent: ua,
	}
}
