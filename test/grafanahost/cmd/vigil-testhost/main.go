// Command vigil-testhost is a TEST-ONLY stand-in for a Grafana server hosting
// the Vigil datasource backend. It is not part of the product; see package
// test/grafanahost.
//
//	vigil-testhost --plugin dist/gpx_vigil_linux_amd64 \
//	  --provisioning provisioning/datasources/vigil-cdp.yaml \
//	  [--dist dist] [--harness test/harness] [--listen 127.0.0.1:0] [--data DIR]
//
// Once ready it prints exactly one line to stdout:
//
//	listening on http://127.0.0.1:PORT
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vigil-cdp/vigil/test/grafanahost"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-testhost:", err)
		stop()
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil-testhost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pluginPath := fs.String("plugin", "", "path to the built gpx_vigil binary (required)")
	provisioning := fs.String("provisioning", "", "Grafana datasource provisioning YAML (required)")
	dist := fs.String("dist", "", "built frontend, served under /public/plugins/")
	harness := fs.String("harness", "", "browser harness directory, served at /harness/, with index.html at / and /harness-page*")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	dataDir := fs.String("data", "", "Grafana's data folder: the plugin is installed in its plugins/ folder and, like a stock Grafana 12.4, gets no GF_PATHS_DATA (the datasource finds its history folder from where it lies); default: $GF_PATHS_DATA, else a temporary folder removed on exit")
	forwardEnv := fs.Bool("forward-host-env", false, "pass the host's environment (and GF_PATHS_DATA) to the plugin, as Grafana does when [plugins] forward_host_env_vars names it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pluginPath == "" || *provisioning == "" {
		return errors.New("--plugin and --provisioning are required")
	}

	datasources, err := grafanahost.LoadProvisioning(*provisioning)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	defer ln.Close()

	// Each host gets its own data folder unless told otherwise: two plugin
	// processes cannot share a datasource's history.
	if *dataDir == "" {
		*dataDir = os.Getenv("GF_PATHS_DATA")
	}
	if *dataDir == "" {
		tmp, err := os.MkdirTemp("", "vigil-testhost-data-")
		if err != nil {
			return fmt.Errorf("create a data folder: %w", err)
		}
		defer os.RemoveAll(tmp)
		*dataDir = tmp
	}
	installed, err := grafanahost.Install(*pluginPath, *dataDir)
	if err != nil {
		return err
	}
	var env []string
	if *forwardEnv {
		env = append(env, "GF_PATHS_DATA="+*dataDir)
	}
	plugin, err := grafanahost.StartPluginWith(grafanahost.PluginOptions{Path: installed, Log: stderr, ForwardHostEnv: *forwardEnv, Env: env})
	if err != nil {
		return err
	}
	defer plugin.Close()

	host, err := grafanahost.New(grafanahost.Options{
		Backend:     plugin,
		Datasources: datasources,
		DistDir:     *dist,
		HarnessDir:  *harness,
	})
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()
	host.SetAppURL(url)

	srv := &http.Server{Handler: host.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "listening on %s\n", url)

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}
