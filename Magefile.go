//go:build mage

// Vigil's backend build: mage with the plugin SDK's build package, as @grafana/create-plugin scaffolds.
package main

import (
	"os"
	"strings"

	"github.com/magefile/mage/mg"

	// mage:import
	"github.com/grafana/grafana-plugin-sdk-go/build"
)

// The SDK's defaults fit a datasource whose manifest is src/plugin.json and whose main package is
// ./pkg. Vigil is an app (./plugin.json) with the backend datasource nested in it: the datasource's
// manifest (which names the executable, gpx_vigil) is src/datasource/plugin.json, its main package
// ./cmd/gpx_vigil, and its executables belong in dist/datasource beside its module.js.
const (
	datasourceManifestDir = "src/datasource"
	datasourceDist        = "dist/datasource"
	backendMain           = "./cmd/gpx_vigil"
)

func init() {
	_ = build.SetBeforeBuildCallback(func(cfg build.Config) (build.Config, error) {
		cfg.PluginJSONPath = datasourceManifestDir
		cfg.OutputBinaryPath = datasourceDist
		cfg.RootPackagePath = backendMain
		if cfg.Env == nil { // GenerateManifestFile passes an empty Config
			cfg.Env = map[string]string{}
		}
		// No build machine paths in the shipped executables.
		cfg.Env["GOFLAGS"] = strings.TrimSpace(os.Getenv("GOFLAGS") + " -trimpath")
		return cfg, nil
	})
}

// Default is the target of a bare `mage`.
var Default = Executables

// Executables builds the executables Grafana runs, gpx_vigil_linux_amd64 and gpx_vigil_linux_arm64
// (static, without cgo, stripped), and go_plugin_build_manifest into dist/datasource.
func Executables() {
	b := build.Build{}
	mg.SerialDeps(b.Linux, b.LinuxARM64)
}
