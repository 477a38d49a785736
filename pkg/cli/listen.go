package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/report"
)

// ReportsPath is where vigil watch --listen receives pushed reports.
const ReportsPath = "/v1/reports"

// listenForReports serves POST /v1/reports on addr (TLS when cert and key
// are given) until ctx ends. It returns once the listener is bound, with
// its address, or the error binding it.
func listenForReports(ctx context.Context, e *engine.Engine, addr, cert, key string, stderr io.Writer) (net.Addr, <-chan struct{}, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+ReportsPath, func(w http.ResponseWriter, r *http.Request) {
		raw, err := report.ReadBody(r.Body)
		var answer []byte
		if err == nil {
			answer, err = e.Report(r.Context(), raw)
		}
		status, code := report.Status(err)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			if status == http.StatusInternalServerError {
				fmt.Fprintf(stderr, "vigil watch: a report from %s: %s\n", r.RemoteAddr, printable(err.Error()))
			}
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": err.Error()}})
			return
		}
		_, _ = w.Write(answer)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		MaxHeaderBytes: 16 << 10}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var err error
		if cert != "" {
			err = srv.ServeTLS(ln, cert, key)
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(stderr, "vigil watch: --listen %s: %s\n", addr, printable(err.Error()))
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr(), done, nil
}
