package grafanahost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

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

// StartPlugin runs the plugin binary at path and connects to it over gRPC.
// The plugin's own logs go to logOutput.
func StartPlugin(path string, logOutput io.Writer) (*PluginProcess, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("plugin binary: %w", err)
	}
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), "GF_VERSION=12.4.0", "GF_EDITION=oss")

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
