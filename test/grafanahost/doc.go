// Package grafanahost is a TEST-ONLY stand-in for the part of a Grafana server
// that hosts a backend datasource plugin. It is not part of the Vigil product
// and is never shipped.
//
// It starts a built gpx_vigil binary the way Grafana does (hashicorp/go-plugin
// over gRPC with the SDK's handshake), builds the PluginContext Grafana would
// send (org, user and role, datasource settings with decrypted secrets,
// Grafana config), reads datasources from a Grafana provisioning file, and
// serves the HTTP paths the Vigil frontend calls: /api/ds/query,
// /api/datasources/uid/{uid}/resources/* and /api/datasources/uid/{uid}/health,
// plus the built frontend under /public/plugins/. End-to-end tests and the
// browser harness run against it where no Grafana server is available.
package grafanahost
