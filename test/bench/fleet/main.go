// Command fleet-bench measures the monitor engine on a large simulated fleet:
// N agents, each at its own loopback address (127.1.x.y), all answered by one
// light server in a separate process, polled by the same engine and history
// store that `vigil watch` and the Grafana datasource run.
//
// It reports, for the engine's process only (the server's CPU is not counted):
// the time to finish one poll cycle, CPU seconds per cycle, memory, and
// history writes per second, first for back-to-back cycles (PollNow) and then
// in steady state at the fleet's poll interval (Run).
//
//	go run ./test/bench/fleet -agents 10000 -interval 10s -steady 3
//
// Test tooling, not part of the product.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
)

const port = 17400

// status is one standalone agent's answer: one CDP process running.
const status = `{"apiVersion":"v1","time":"2026-11-26T04:23:58.477Z","agent":{"id":"bench","version":"0.1.0","hostname":"bench","startedAt":"2026-11-26T04:00:00Z","pid":1},"cluster":null,"processes":[{"name":"cdp","kind":"command","state":"running","expected":true,"pid":5,"generation":2,"startedAt":"2026-11-26T04:20:00Z","restarts":0,"lastExit":null,"protection":null}]}`

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		serve(os.Args[2:])
		return
	}
	agents := flag.Int("agents", 10000, "simulated agents")
	interval := flag.Duration("interval", 10*time.Second, "poll interval for the steady-state part")
	burst := flag.Int("cycles", 3, "back-to-back cycles after the first")
	steady := flag.Int("steady", 3, "poll intervals of steady state to measure")
	flag.Parse()
	if err := run(*agents, *interval, *burst, *steady); err != nil {
		fmt.Fprintln(os.Stderr, "fleet-bench:", err)
		os.Exit(1)
	}
}

func address(i int) string {
	return fmt.Sprintf("127.1.%d.%d:%d", i/250, i%250+1, port)
}

// serve answers every agent address with the same status: one listener on
// the port for all of 127.0.0.0/8, tied to the loopback device so nothing
// outside this machine could reach it. It holds the monitor's kept-alive
// connection to each agent address.
func serve(args []string) {
	n, _ := strconv.Atoi(args[0])
	raiseFileLimit(uint64(n + 1000))
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, "lo")
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	l, err := lc.Listen(context.Background(), "tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(status))
	}))
}

func raiseFileLimit(want uint64) {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil || l.Cur >= want {
		return
	}
	l.Cur = want
	if l.Max < want {
		l.Max = want // root may raise the hard limit too
	}
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

type usage struct {
	wall time.Time
	cpu  time.Duration
}

func now() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return usage{wall: time.Now(), cpu: cpu}
}

func rssMiB() (rss, peak float64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return rss, peak
}

// counting wraps the history store to count the records each Append writes.
type counting struct {
	*history.Store
	records atomic.Int64
}

func (c *counting) Append(b history.Batch) error {
	c.records.Add(int64(len(b.Observations) + len(b.Events) + len(b.Silences) + len(b.Agents)))
	return c.Store.Append(b)
}

func run(n int, interval time.Duration, burst, steady int) error {
	raiseFileLimit(uint64(2*n + 1000))
	server := exec.Command(os.Args[0], "serve", strconv.Itoa(n))
	server.Stderr = os.Stderr
	out, err := server.StdoutPipe()
	if err != nil {
		return err
	}
	if err := server.Start(); err != nil {
		return err
	}
	defer func() { _ = server.Process.Kill(); _ = server.Wait() }()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		return fmt.Errorf("server: %s", strings.TrimSpace(line))
	}

	dir, err := os.MkdirTemp("", "vigil-fleet-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := history.Open(dir, history.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	hist := &counting{Store: store}

	cfg := fleet.Config{PollInterval: interval, Defaults: fleet.DefaultPolicy()}
	for i := 0; i < n; i++ {
		cfg.Agents = append(cfg.Agents, fleet.Agent{
			Name: fmt.Sprintf("agent-%05d", i), URL: "http://" + address(i), Policy: cfg.Defaults,
			ReadToken: "bench-read-token-0123456789",
		})
	}
	e, err := engine.New(cfg, engine.Options{History: hist})
	if err != nil {
		return err
	}

	fmt.Printf("fleet-bench: %d agents at 127.1.x.y:%d, one server process; Go %s, GOMAXPROCS %d\n\n", n, port, runtime.Version(), runtime.GOMAXPROCS(0))
	fmt.Println("| cycle | time to finish | CPU seconds (engine process) | history records written | records/s |")
	fmt.Println("|---|---|---|---|---|")
	ctx := context.Background()
	for c := 0; c <= burst; c++ {
		before, recs := now(), hist.records.Load()
		if err := e.PollNow(ctx, ""); err != nil {
			return err
		}
		after := now()
		wall := after.wall.Sub(before.wall)
		written := hist.records.Load() - recs
		name := fmt.Sprintf("back-to-back %d", c)
		if c == 0 {
			name = "first (every agent UNKNOWN -> OK)"
		}
		fmt.Printf("| %s | %.2f s | %.2f | %d | %.0f |\n", name, wall.Seconds(), (after.cpu - before.cpu).Seconds(), written, float64(written)/wall.Seconds())
	}
	snap := e.Snapshot()
	ok := 0
	for _, a := range snap.Agents {
		if a.State.String() == "OK" {
			ok++
		}
	}
	if ok != n {
		return fmt.Errorf("%d of %d agents OK after the cycles", ok, n)
	}

	// Steady state: the engine's own schedule (with jitter), as in production.
	runCtx, cancel := context.WithTimeout(ctx, time.Duration(steady)*interval)
	before, recs := now(), hist.records.Load()
	_ = e.Run(runCtx)
	cancel()
	after := now()
	written := hist.records.Load() - recs
	cpu := (after.cpu - before.cpu).Seconds()
	wall := after.wall.Sub(before.wall).Seconds()
	fmt.Printf("\nsteady state, %d × %s: %.2f CPU seconds per interval (%.1f %% of one core), %d records written (%.0f/s)\n",
		steady, interval, cpu/float64(steady), 100*cpu/wall, written, float64(written)/wall)
	rss, peak := rssMiB()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("memory: RSS %.0f MiB (peak %.0f MiB), Go heap in use %.0f MiB\n", rss, peak, float64(ms.HeapInuse)/(1<<20))
	return nil
}
