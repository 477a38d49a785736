package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
)

// BenchmarkPollCycle polls a fleet of agents answered by one light server
// (each agent at its own path) once per iteration, judging and storing every
// answer. go test -run XXX -bench PollCycle -benchtime 5x ./pkg/engine
func BenchmarkPollCycle(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n, "-agents"), func(b *testing.B) {
			status := []byte(`{"apiVersion":"v1","time":"2026-11-26T04:23:58.477Z","agent":{"id":"a","version":"0.1.0","hostname":"h","startedAt":"2026-11-26T04:00:00Z","pid":1},"cluster":null,"processes":[{"name":"cdp","kind":"command","state":"running","expected":true,"pid":5,"generation":2,"startedAt":"2026-11-26T04:20:00Z","restarts":0,"lastExit":null,"protection":null}]}`)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(status) }))
			defer srv.Close()
			agents := make([]fleet.Agent, n)
			for i := range agents {
				agents[i] = fleet.Agent{Name: fmt.Sprint("agent-", i), URL: fmt.Sprintf("%s/a%d", srv.URL, i)}
			}
			store, err := history.Open(b.TempDir(), history.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.MaxIdleConnsPerHost = poller256
			e, err := engine.New(fleetFor(fleet.DefaultPolicy(), agents...), engine.Options{
				History: store, Client: agentclient.New(&http.Client{Transport: tr}), MinPollInterval: time.Millisecond,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if err := e.PollNow(context.Background(), ""); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "agents/cycle")
		})
	}
}

const poller256 = 256
