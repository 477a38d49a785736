package cli

import (
	"context"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/models"
)

// maxPollTimeout bounds one agent's answer time within a round.
const maxPollTimeout = 5 * time.Second

type watcher struct {
	agents []models.Agent
	client agentclient.Client
	out    io.Writer
	now    func() time.Time
	// timeout overrides the per-agent timeout; zero means min(interval, 5s).
	timeout time.Duration
}

type pollResult struct {
	agent models.Agent
	rtt   time.Duration
	err   error
}

// loop polls every interval until ctx is cancelled.
func (w *watcher) loop(ctx context.Context, interval time.Duration) {
	if w.timeout == 0 {
		w.timeout = min(interval, maxPollTimeout)
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		w.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// round polls every agent once, concurrently, prints the table and reports
// whether every agent answered.
func (w *watcher) round(ctx context.Context) bool {
	timeout := w.timeout
	if timeout == 0 {
		timeout = maxPollTimeout
	}
	results := make([]pollResult, len(w.agents))
	var wg sync.WaitGroup
	for i, a := range w.agents {
		wg.Go(func() {
			actx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			h, err := w.client.Healthz(actx, agentclient.Agent{Name: a.Name, URL: a.URL, ReadToken: a.ReadToken.Reveal()})
			results[i] = pollResult{agent: a, rtt: h.RTT, err: err}
		})
	}
	wg.Wait()
	return w.print(results)
}

func (w *watcher) print(results []pollResult) bool {
	answered := 0
	for _, r := range results {
		if r.err == nil {
			answered++
		}
	}
	fmt.Fprintf(w.out, "%s  %d of %d agents answered\n", w.now().UTC().Format(time.RFC3339), answered, len(results))
	tw := tabwriter.NewWriter(w.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tURL\tANSWERED\tRTT\tERROR")
	for _, r := range results {
		if r.err == nil {
			fmt.Fprintf(tw, "%s\t%s\tyes\t%s\t-\n", r.agent.Name, r.agent.URL, r.rtt.Round(time.Millisecond))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\tno\t-\t%s\n", r.agent.Name, r.agent.URL, r.err)
	}
	_ = tw.Flush()
	fmt.Fprintln(w.out)
	return answered == len(results)
}
