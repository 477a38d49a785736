// The floor poller: the least a monitor must do to poll the same fleet on
// the same schedule, so that the engine's CPU per poll has something to be
// compared with. It runs in its own process, so that its CPU and memory are
// its own.

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-cdp/vigil/pkg/response"
)

// floorReport is what the floor process measured over its steady part.
type floorReport struct {
	CPUSeconds  float64 `json:"cpuSeconds"`
	WallSeconds float64 `json:"wallSeconds"`
	Polls       int64   `json:"polls"`
	Errors      int64   `json:"errors"`
	RSSMiB      float64 `json:"rssMiB"`
	PeakMiB     float64 `json:"peakMiB"`
	HeapMiB     float64 `json:"heapMiB"`
	IO          ioCounters
}

// floor polls every agent once to open its connection (as the engine's
// first cycle does), says "warm", waits for "go" on its input, then polls
// to settle (see settle), says "start", polls for steady intervals,
// says "end" and then its report. It polls each agent on the engine's fixed-rate schedule (first poll
// within jitter×interval, the second after 10 % to 100 % of the interval,
// which sets the agent's phase, then every interval ± jitter/2×interval
// around a fixed grid, not counted from the end of the poll) for steady
// intervals. Each poll is one goroutine: net/http's default transport with
// keep-alive (one idle connection per agent), the answer decoded by
// encoding/json into response.Status, nothing else.
func floor(args []string) {
	fs := flag.NewFlagSet("floor", flag.ExitOnError)
	n := fs.Int("agents", 10000, "")
	port := fs.Int("port", 17400, "")
	interval := fs.Duration("interval", 10*time.Second, "")
	steady := fs.Int("steady", 3, "")
	jitter := fs.Float64("jitter", 0.1, "")
	timeout := fs.Duration("timeout", 2*time.Second, "")
	_ = fs.Parse(args)
	raiseFileLimit(uint64(*n + 1000))

	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 1
	t.MaxIdleConns = 2 * *n
	client := &http.Client{Transport: t}
	urls := make([]string, *n)
	for i := range urls {
		urls[i] = "http://" + address(i, *port) + "/v1/status"
	}
	var polls, errs atomic.Int64
	poll := func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, urls[i], nil)
		if err != nil {
			errs.Add(1)
			return
		}
		req.Header.Set("Authorization", "Bearer bench-read-token-0123456789")
		resp, err := client.Do(req)
		if err != nil {
			errs.Add(1)
			return
		}
		var st response.Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
			errs.Add(1)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		polls.Add(1)
	}

	// Warm-up: open every connection, at most 256 at a time (as the engine).
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for i := range *n {
		sem <- struct{}{}
		wg.Go(func() { poll(i); <-sem })
	}
	wg.Wait()
	fmt.Println("warm")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "go" {
		os.Exit(1)
	}

	start := time.Now()
	measure := start.Add(settle(*interval))
	end := measure.Add(time.Duration(*steady) * *interval)
	iv := float64(*interval)
	var inflight sync.WaitGroup
	// The engine's schedule (poller.Loop): the second poll after a random 10 % to 100 % of the
	// interval sets the agent's phase; then a fixed grid, each poll within ±jitter/2 of its slot.
	var schedule func(i int, grid time.Time, first bool)
	schedule = func(i int, grid time.Time, first bool) {
		at := grid
		if !first {
			at = grid.Add(time.Duration((rand.Float64() - 0.5) * *jitter * iv))
		}
		if !at.Before(end) {
			return
		}
		inflight.Add(1)
		time.AfterFunc(time.Until(at), func() {
			defer inflight.Done()
			next := grid.Add(time.Duration(iv))
			if first {
				next = grid.Add(time.Duration((0.1 + 0.9*rand.Float64()) * iv))
			}
			schedule(i, next, false)
			poll(i)
		})
	}
	for i := range *n {
		schedule(i, start.Add(time.Duration(rand.Float64()**jitter*iv)), true)
	}
	time.Sleep(time.Until(measure))
	before, io0, polls0, errs0 := now(), readIO(), polls.Load(), errs.Load()
	fmt.Println("start") // the driver starts the phase at the agents now
	time.Sleep(time.Until(end))
	after, io1 := now(), readIO()
	fmt.Println("end") // and ends it
	rep := floorReport{CPUSeconds: (after.cpu - before.cpu).Seconds(), WallSeconds: after.wall.Sub(before.wall).Seconds(),
		Polls: polls.Load() - polls0, Errors: errs.Load() - errs0, IO: io1.sub(io0)}
	inflight.Wait()
	rep.RSSMiB, rep.PeakMiB, rep.HeapMiB = memory()
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
}
