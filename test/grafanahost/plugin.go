package grafanahost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/grpcplugin"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
)

// Backend is what the host needs from a datasource backend. PluginProcess is
// the real one; tests may use an in-process fake.
type Backend interface {
	QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error)
	CheckHealth(ctx context.Context, req *backend.CheckHealthRequest) (*backend.CheckHealthResult, error)
	CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error
}

// PluginProcess is a backend plugin binary started as Grafana starts one.
type PluginProcess struct {
	client      *goplugin.Client
	data        grpcplugin.DataClient
	diagnostics grpcplugin.DiagnosticsClient
	resource    grpcplugin.ResourceClient
}

var _ Backend = (*PluginProcess)(nil)

// Install copies the plugin's executable to where a Grafana with data
// folder dataDir keeps it (<data>/plugins/vigil-cdp-app/datasource/) and
// returns its new path.
func Install(executable, dataDir string) (string, error) {
	dir := filepath.Join(dataDir, "plugins", "vigil-cdp-app", "datasource")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install the plugin: %w", err)
	}
	dst := filepath.Join(dir, "gpx_vigil_linux_"+runtime.GOARCH)
	src, err := os.Open(executable)
	if err != nil {
		return "", fmt.Errorf("install the plugin: %w", err)
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", fmt.Errorf("install the plugin: %w", err)
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return "", fmt.Errorf("install the plugin: %w", err)
	}
	if err := out.Close(); err != nil {
		return "", fmt.Errorf("install the plugin: %w", err)
	}
	return dst, nil
}

// PluginOptions says how the plugin process is started.
type PluginOptions struct {
	// Path is the plugin's executable.
	Path string
	// Log receives the plugin's own logs.
	Log io.Writer
	// ForwardHostEnv passes the host's environment to the plugin, as
	// Grafana 12.4 does only when [plugins] forward_host_env_vars names the
	// plugin. Without it the plugin sees what a stock Grafana 12.4 gives:
	// its version and edition, and Env.
	ForwardHostEnv bool
	// Env is added to the plugin's environment.
	Env []string
}

// StartPlugin runs the plugin binary at path, with the host's environment
// forwarded (StartPluginWith without ForwardHostEnv is a stock Grafana
// 12.4), and connects to it over gRPC. The plugin's own logs go to logOutput.
func StartPlugin(path string, logOutput io.Writer) (*PluginProcess, error) {
	return StartPluginWith(PluginOptions{Path: path, Log: logOutput, ForwardHostEnv: true})
}

// StartPluginWith runs the plugin as Grafana does and connects to it.
func StartPluginWith(opts PluginOptions) (*PluginProcess, error) {
	path, logOutput := opts.Path, opts.Log
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("plugin binary: %w", err)
	}
	cmd := exec.Command(path)
	cmd.Env = []string{"GF_VERSION=12.4.0", "GF_EDITION=oss"}
	if opts.ForwardHostEnv {
		cmd.Env = append(os.Environ(), cmd.Env...)
	}
	cmd.Env = append(cmd.Env, opts.Env...)

	client := goplugin.NewClient(&goplugin.ClientConfig{
		Cmd: cmd,
		HandshakeConfig: goplugin.HandshakeConfig{
			ProtocolVersion:  grpcplugin.ProtocolVersion,
			MagicCookieKey:   grpcplugin.MagicCookieKey,
			MagicCookieValue: grpcplugin.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{
			grpcplugin.ProtocolVersion: {
				"diagnostics": &grpcplugin.DiagnosticsGRPCPlugin{},
				"resource":    &grpcplugin.ResourceGRPCPlugin{},
				"data":        &grpcplugin.DataGRPCPlugin{},
			},
		},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "plugin.vigil-cdp-datasource",
			Output: logOutput,
			Level:  hclog.Info,
		}),
	})

	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("start plugin %s: %w", path, err)
	}
	p := &PluginProcess{client: client}
	var ok bool
	raw, err := rpc.Dispense("diagnostics")
	if err == nil {
		p.diagnostics, ok = raw.(grpcplugin.DiagnosticsClient)
		if !ok {
			err = fmt.Errorf("diagnostics client has type %T", raw)
		}
	}
	if err == nil {
		raw, err = rpc.Dispense("resource")
		if err == nil {
			if p.resource, ok = raw.(grpcplugin.ResourceClient); !ok {
				err = fmt.Errorf("resource client has type %T", raw)
			}
		}
	}
	if err == nil {
		raw, err = rpc.Dispense("data")
		if err == nil {
			if p.data, ok = raw.(grpcplugin.DataClient); !ok {
				err = fmt.Errorf("data client has type %T", raw)
			}
		}
	}
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("connect to plugin %s: %w", path, err)
	}
	return p, nil
}

// Close kills the plugin process.
func (p *PluginProcess) Close() {
	p.client.Kill()
}

// Exited reports whether the plugin process has stopped.
func (p *PluginProcess) Exited() bool { return p.client.Exited() }

// QueryData implements Backend over gRPC.
func (p *PluginProcess) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp, err := p.data.QueryData(ctx, backend.ToProto().QueryDataRequest(req))
	if err != nil {
		return nil, fmt.Errorf("plugin QueryData: %w", err)
	}
	return backend.FromProto().QueryDataResponse(resp)
}

// CheckHealth implements Backend over gRPC.
func (p *PluginProcess) CheckHealth(ctx context.Context, req *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	resp, err := p.diagnostics.CheckHealth(ctx, &pluginv2.CheckHealthRequest{
		PluginContext: backend.ToProto().PluginContext(req.PluginContext),
		Headers:       req.Headers,
	})
	if err != nil {
		return nil, fmt.Errorf("plugin CheckHealth: %w", err)
	}
	return backend.FromProto().CheckHealthResponse(resp), nil
}

// CallResource implements Backend over gRPC, streaming each answer chunk.
func (p *PluginProcess) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	stream, err := p.resource.CallResource(ctx, backend.ToProto().CallResourceRequest(req))
	if err != nil {
		return fmt.Errorf("plugin CallResource: %w", err)
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("plugin CallResource: %w", err)
		}
		if err := sender.Send(backend.FromProto().CallResourceResponse(msg)); err != nil {
			return err
		}
	}
}
