// Command gpx_vigil is the backend of the Vigil datasource. Grafana starts it;
// it hands the instance factory to the SDK and, when the SDK returns, stops
// the monitor engines so that their histories close cleanly.
package main

import (
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/vigil-cdp/vigil/pkg/plugin"
)

func main() {
	err := datasource.Manage(plugin.PluginID, plugin.NewDatasource, datasource.ManageOpts{})
	plugin.StopMonitors()
	if err != nil {
		log.DefaultLogger.Error("Vigil datasource backend stopped", "error", err)
		os.Exit(1)
	}
}
