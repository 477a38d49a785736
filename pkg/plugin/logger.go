package plugin

import (
	"context"
	"log/slog"

	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
)

// grafanaHandler sends the engine's slog records to the SDK's logger, which
// Grafana collects with its own logs.
type grafanaHandler struct {
	attrs []any
}

func slogFromGrafana(ident identity) *slog.Logger {
	return slog.New(grafanaHandler{attrs: []any{"datasource", ident.String()}})
}

func (h grafanaHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h grafanaHandler) Handle(_ context.Context, r slog.Record) error {
	args := append([]any{}, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		args = append(args, a.Key, a.Value.Any())
		return true
	})
	switch {
	case r.Level >= slog.LevelError:
		log.DefaultLogger.Error(r.Message, args...)
	case r.Level >= slog.LevelWarn:
		log.DefaultLogger.Warn(r.Message, args...)
	case r.Level >= slog.LevelInfo:
		log.DefaultLogger.Info(r.Message, args...)
	default:
		log.DefaultLogger.Debug(r.Message, args...)
	}
	return nil
}

func (h grafanaHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	next := grafanaHandler{attrs: append([]any{}, h.attrs...)}
	for _, a := range attrs {
		next.attrs = append(next.attrs, a.Key, a.Value.Any())
	}
	return next
}

func (h grafanaHandler) WithGroup(string) slog.Handler { return h }
