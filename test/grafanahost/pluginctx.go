package grafanahost

import (
	"fmt"
	"net/http"
	"runtime"
	"strconv"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/useragent"
	"github.com/grafana/grafana-plugin-sdk-go/config"
)

// Request headers through which tests and the harness choose who is asking.
const (
	HeaderRole     = "X-Grafana-Role"
	HeaderLogin    = "X-Grafana-Login"
	HeaderAlerting = "X-Vigil-Alerting"
	// HeaderOrg picks the caller's org, as in Grafana's HTTP API.
	HeaderOrg = "X-Grafana-Org-Id"
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

// orgFromRequest is the org a request acts in: X-Grafana-Org-Id, else 1.
func orgFromRequest(r *http.Request) (int64, error) {
	v := r.Header.Get(HeaderOrg)
	if v == "" {
		return 1, nil
	}
	org, err := strconv.ParseInt(v, 10, 64)
	if err != nil || org < 1 {
		return 0, fmt.Errorf("%s: %q is not an org ID", HeaderOrg, v)
	}
	return org, nil
}

// namespace is how Grafana names an org to plugins: "default" for org 1,
// "org-N" otherwise.
func namespace(org int64) string {
	if org <= 1 {
		return "default"
	}
	return "org-" + strconv.FormatInt(org, 10)
}

// pluginContext builds what Grafana sends with every call for a datasource.
func (h *Host) pluginContext(ds Datasource, user *backend.User) backend.PluginContext {
	ua, _ := useragent.New(grafanaVersion, runtime.GOOS, runtime.GOARCH)
	secrets := make(map[string]string, len(ds.SecureJSONData))
	for k, v := range ds.SecureJSONData {
		secrets[k] = v
	}
	return backend.PluginContext{
		//lint:ignore SA1019 Grafana sends OrgID with every call, and Namespace beside it
		OrgID:     ds.OrgID,
		Namespace: namespace(ds.OrgID),
		PluginID:  PluginID,
		User:      user,
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
		GrafanaConfig: config.NewGrafanaCfg(map[string]string{
			config.AppURL: h.AppURL(),
		}),
		UserAgent: ua,
	}
}
