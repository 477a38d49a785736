// Command gpx_vigil is the backend of the Vigil datasource. Grafana starts it;
// it only hands the instance factory to the SDK.
package main

import (
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/vigil-cdp/vigil/pkg/plugin"
)

func main() {
	if err := datasource.Manage(plugin.PluginID, plugin.NewDatasource, datasource.ManageOpts{}); err != nil {
		log.DefaultLogger.Error("Vigil datasource backend stopped", "error", err)
		os.Exit(1)
	}
}
