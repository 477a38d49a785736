// Command fleet-bench measures the monitor engine on a large simulated fleet:
// N agents, each at its own loopback address (127.1.x.y), all answered by one
// server in a separate process, polled by the same engine and history store
// that `vigil watch` and the Grafana datasource run.
//
// Every answer is computed when it is asked, the size and shape of a real
// agent's GET /v1/status (three processes, one a replicator with its
// protection block), with counters and timestamps that change at every poll.
// A share of the agents changes state, restarts or goes silent once per
// incident period; which ones and when follows from -seed.
//
// Phases, each measured on its own:
//   - floor poller (-floor, on by default): a separate process polls the
//     same fleet on the same jittered fixed-rate schedule with nothing but
//     net/http's default transport (one kept-alive connection per agent) and
//     encoding/json into response.Status: the least any monitor must spend.
//   - engine: the first cycle and -cycles back-to-back cycles (PollNow,
//     without incidents), then -steady intervals of the engine's own
//     schedule (Run) with the incidents.
//
// With -load the machine is loaded during each steady part (build: `go
// build -a ./...` in a loop; cpu:N: N spinning processes). The server
// records when each agent was asked, so the schedule is measured as the
// agents see it. CPU, memory and disk figures are those of the polling
// process only (not the server's, nor the load's).
//
//	go run ./test/bench/fleet -agents 10000 -interval 10s -steady 3
//	go run ./test/bench/fleet -agents 1000 -interval 2s -steady 3     # quick
//
// Test tooling, not part of the product.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
	"github.com/vigil-cdp/vigil/test/bench/internal/procmem"
)

type options struct {
	sim        simOptions
	cycles     int
	floor      bool
	load       string
	dir        string
	cpuprofile string
	memprofile string
	gather     time.Duration
	syncEvents bool
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve":
			serve(os.Args[2:])
			return
		case "floor":
			floor(os.Args[2:])
			return
		case "burn":
			burn()
			return
		}
	}
	var o options
	o.sim.flags(flag.CommandLine)
	flag.IntVar(&o.cycles, "cycles", 3, "back-to-back cycles after the first")
	flag.IntVar(&o.sim.steady, "steady", 3, "poll intervals of steady state to measure (per phase)")
	flag.BoolVar(&o.floor, "floor", true, "measure the floor poller on the same fleet before the engine")
	flag.StringVar(&o.load, "load", "", "CPU load during each steady part: build (go build -a ./... in a loop) or cpu:N (N spinning processes)")
	flag.StringVar(&o.dir, "dir", "", "folder in which the history's temporary folder is made (default: $TMPDIR); write_bytes needs a real disk, not tmpfs")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the engine's steady part to this file")
	flag.BoolVar(&o.syncEvents, "sync-events", false, "fsync the history's journal before an append with events returns")
	flag.DurationVar(&o.gather, "gather", 0, "with -sync-events, how long an append with events waits for others to share its fsync (0: the store's default)")
	flag.StringVar(&o.memprofile, "memprofile", "", "write a heap profile of the engine at the end of its steady part to this file")
	flag.Parse()
	if err := checkLoad(o.load); err != nil {
		fmt.Fprintln(os.Stderr, "fleet-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet-bench:", err)
		os.Exit(1)
	}
}

// fleetServer is the server process and its control lines.
type fleetServer struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startServer(opt simOptions) (*fleetServer, error) {
	cmd := exec.Command(os.Args[0], append([]string{"serve"}, opt.args()...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &fleetServer{cmd: cmd, in: in, out: bufio.NewReader(out)}
	if line, _ := s.out.ReadString('\n'); strings.TrimSpace(line) != "ready" {
		s.close()
		return nil, fmt.Errorf("server: %s", strings.TrimSpace(line))
	}
	return s, nil
}

func (s *fleetServer) ask(command string) (string, error) {
	if _, err := fmt.Fprintln(s.in, command); err != nil {
		return "", err
	}
	line, err := s.out.ReadString('\n')
	line = strings.TrimSpace(line)
	if err == nil && strings.HasPrefix(line, "error") {
		err = errors.New(line)
	}
	return line, err
}

// start begins a measured phase at the agents, with their incidents.
func (s *fleetServer) start() error {
	if _, err := s.ask("incidents on"); err != nil {
		return err
	}
	_, err := s.ask("start")
	return err
}

func (s *fleetServer) report() (phaseReport, error) {
	var r phaseReport
	line, err := s.ask("stop")
	if err == nil {
		err = json.Unmarshal([]byte(line), &r)
	}
	return r, err
}

func (s *fleetServer) close() {
	_ = s.in.Close() // the server ends with its input
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// counting wraps the history store to count the polls and records each
// Append writes.
type counting struct {
	*history.Store
	records, states, actions, agentEvents atomic.Int64
	appends, appendNanos, appendMax       atomic.Int64
}

func (c *counting) Append(b history.Batch) error {
	start := time.Now()
	defer func() {
		d := int64(time.Since(start))
		c.appends.Add(1)
		c.appendNanos.Add(d)
		for m := c.appendMax.Load(); d > m && !c.appendMax.CompareAndSwap(m, d); m = c.appendMax.Load() {
		}
	}()
	c.records.Add(int64(len(b.Observations) + len(b.Events) + len(b.Silences) + len(b.Agents)))
	for _, e := range b.Events {
		switch e.Type {
		case history.TypeState:
			c.states.Add(1)
		case history.TypeAction:
			c.actions.Add(1)
		case history.TypeAgent:
			c.agentEvents.Add(1)
		}
	}
	return c.Store.Append(b)
}

// storeWrites is the store's own count of write calls to its file, when it
// offers one (history.Store.WriteCalls).
func storeWrites(s *history.Store) (int64, bool) {
	w, ok := any(s).(interface{ WriteCalls() int64 })
	if !ok {
		return 0, false
	}
	return w.WriteCalls(), true
}

// result is one measured steady part.
type result struct {
	name        string
	cpu         float64 // seconds
	wall        float64
	srv         phaseReport
	io          ioCounters
	storeWrites int64
	hasStore    bool
	rss, peak   float64
	heap        float64
	load        string
	builds      int
	errors      int64
	records     int64
}

func (r result) cpuPerPoll() float64 { return r.cpu / float64(max(r.srv.Polls, 1)) }

func run(ctx context.Context, o options) error {
	n := o.sim.agents
	raiseFileLimit(uint64(2*n + 1000))
	srv, err := startServer(o.sim)
	if err != nil {
		return err
	}
	defer srv.close()
	sample, err := srv.ask("sample")
	if err != nil {
		return err
	}
	info, err := srv.ask("info")
	if err != nil {
		return err
	}

	parent := o.dir
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "vigil-fleet-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	commit := "?"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	fmt.Printf("fleet-bench: %d agents at 127.1.x.y:%d, one server process, seed %d; commit %s, Go %s, GOMAXPROCS %d, %s\n",
		n, o.sim.port, o.sim.seed, commit, runtime.Version(), runtime.GOMAXPROCS(0), time.Now().Format("2006-01-02 15:04"))
	fmt.Printf("answers: %d bytes for one agent (3 processes, one a replicator with its protection block), counters and timestamps new at every poll\n", len(sample))
	fmt.Printf("incidents, once per %s per unstable agent, each lasting %.1f intervals: %s\n", o.sim.period(), o.sim.down, info)
	fs := fsType(dir)
	fmt.Printf("history: %s (%s)", dir, fs)
	if fs == "tmpfs" {
		fmt.Print(" — tmpfs: write_bytes counts nothing here, use -dir on a disk")
	}
	fmt.Printf("; load during steady parts: %s; load average before: %s\n\n", loadName(o.load), loadAvg())

	var results []result
	if o.floor {
		r, err := floorPhase(ctx, o, srv)
		if err != nil {
			return fmt.Errorf("floor poller: %w", err)
		}
		results = append(results, r)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r, err := enginePhase(ctx, o, srv, dir)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	results = append(results, r)

	fmt.Printf("\nload average after: %s\n\n", loadAvg())
	printTable(o, results)
	return nil
}

func floorPhase(ctx context.Context, o options, srv *fleetServer) (result, error) {
	s := o.sim
	cmd := exec.CommandContext(ctx, os.Args[0], "floor", "-agents", strconv.Itoa(s.agents), "-port", strconv.Itoa(s.port),
		"-interval", s.interval.String(), "-steady", strconv.Itoa(s.steady))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return result{}, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	done := false
	defer func() {
		_ = in.Close()
		if !done {
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
	}()
	out := bufio.NewReader(outPipe)
	if line, _ := out.ReadString('\n'); strings.TrimSpace(line) != "warm" {
		return result{}, fmt.Errorf("did not start: %q", line)
	}
	l := startLoad(o.load)
	if _, err := fmt.Fprintln(in, "go"); err != nil {
		l.stop()
		return result{}, err
	}
	if line, _ := out.ReadString('\n'); strings.TrimSpace(line) != "start" {
		l.stop()
		return result{}, fmt.Errorf("did not run: %q", line)
	}
	if err := srv.start(); err != nil {
		l.stop()
		return result{}, err
	}
	if line, _ := out.ReadString('\n'); strings.TrimSpace(line) != "end" {
		l.stop()
		return result{}, fmt.Errorf("did not run: %q", line)
	}
	rep, err := srv.report()
	if err != nil {
		l.stop()
		return result{}, err
	}
	line, err := out.ReadString('\n')
	builds := l.stop()
	if err != nil {
		return result{}, err
	}
	if _, err := srv.ask("incidents off"); err != nil {
		return result{}, err
	}
	var fr floorReport
	if err := json.Unmarshal([]byte(line), &fr); err != nil {
		return result{}, fmt.Errorf("%w: %q", err, line)
	}
	done = true
	r := result{name: "floor poller", cpu: fr.CPUSeconds, wall: fr.WallSeconds, srv: rep, io: fr.IO,
		rss: fr.RSSMiB, peak: fr.PeakMiB, heap: fr.HeapMiB, load: l.describe(), builds: builds, errors: fr.Errors}
	fmt.Printf("floor poller, %d × %s: %.2f CPU seconds, %d polls (%d failed: silent agents), %.3f ms CPU per poll; RSS %.0f MiB (peak %.0f), Go heap %.0f MiB\n",
		s.steady, s.interval, fr.CPUSeconds, rep.Polls, fr.Errors, 1000*r.cpuPerPoll(), fr.RSSMiB, fr.PeakMiB, fr.HeapMiB)
	printServer(o, rep, l, builds)
	return r, nil
}

func printServer(o options, rep phaseReport, l *load, builds int) {
	avg := 0.0
	if rep.Status > 0 {
		avg = float64(rep.StatusBytes) / float64(rep.Status)
	}
	fmt.Printf("  gaps between two polls of one agent, in %% of the interval: p50 %d, p90 %d, p99 %d, p99.9 %d\n",
		rep.GapPercentiles[0], rep.GapPercentiles[1], rep.GapPercentiles[2], rep.GapPercentiles[3])
	due := float64(o.sim.agents) * rep.Seconds / o.sim.interval.Seconds()
	fmt.Printf("  polls received: %d, %.1f %% of agents × measured time ÷ interval; by tenth of the measured part: %v\n",
		rep.Polls, 100*float64(rep.Polls)/max(due, 1), rep.Timeline)
	fmt.Printf("  at the agents over %.2f s: %d status requests (%.0f bytes on average), %d transport retries, %d events pages, %d restarts/stops, %d other; %d reset, %d left unanswered; %d agents never polled\n",
		rep.Seconds, rep.Status, avg, rep.Retries, rep.Events, rep.Control, rep.Other, rep.Refused, rep.Hung, rep.NeverPolled)
	if l.spec == "build" {
		fmt.Printf("  load: %d builds finished\n", builds)
	}
}

func enginePhase(ctx context.Context, o options, srv *fleetServer, dir string) (result, error) {
	go procmem.WatchAnon(100 * time.Millisecond)
	n, interval := o.sim.agents, o.sim.interval
	store, err := history.Open(dir, history.Options{GatherEvents: o.gather, SyncEvents: o.syncEvents})
	if err != nil {
		return result{}, err
	}
	defer store.Close()
	hist := &counting{Store: store}

	cfg := fleet.Config{PollInterval: interval, Defaults: fleet.DefaultPolicy()}
	for i := range n {
		cfg.Agents = append(cfg.Agents, fleet.Agent{
			Name: fmt.Sprintf("agent-%05d", i), URL: "http://" + address(i, o.sim.port), Policy: cfg.Defaults,
			ReadToken: "bench-read-token-0123456789", ControlToken: "bench-control-token-0123456789",
		})
	}
	e, err := engine.New(cfg, engine.Options{History: hist})
	if err != nil {
		return result{}, err
	}

	fmt.Println("\nengine, back-to-back cycles (PollNow, no incidents):")
	fmt.Println()
	fmt.Println("| cycle | time to finish | CPU seconds (engine process) | history records written | records/s |")
	fmt.Println("|---|---|---|---|---|")
	for c := 0; c <= o.cycles; c++ {
		before, recs := now(), hist.records.Load()
		if err := e.PollNow(ctx, ""); err != nil {
			return result{}, err
		}
		after := now()
		wall := after.wall.Sub(before.wall)
		written := hist.records.Load() - recs
		name := fmt.Sprintf("back-to-back %d", c)
		if c == 0 {
			name = "first (every agent UNKNOWN -> OK or STANDBY)"
		}
		fmt.Printf("| %s | %.2f s | %.2f | %d | %.0f |\n", name, wall.Seconds(), (after.cpu - before.cpu).Seconds(), written, float64(written)/wall.Seconds())
	}
	if ok := countState(e, state.OK) + countState(e, state.Standby); ok != n {
		return result{}, fmt.Errorf("not every agent is OK or STANDBY after the cycles: %s", stateCounts(e))
	}

	// Steady state: the engine's own schedule (with jitter), as in
	// production, measured once settled.
	l := startLoad(o.load)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan struct{})
	go func() { _ = e.Run(runCtx); close(ran) }()
	select {
	case <-time.After(settle(interval)):
	case <-ctx.Done():
	}
	if err := srv.start(); err != nil {
		l.stop()
		return result{}, err
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			l.stop()
			return result{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			l.stop()
			return result{}, err
		}
	}
	before, io0, recs := now(), readIO(), hist.records.Load()
	states0, actions0, agentEvents0 := hist.states.Load(), hist.actions.Load(), hist.agentEvents.Load()
	appends0, appendNanos0 := hist.appends.Load(), hist.appendNanos.Load()
	hist.appendMax.Store(0)
	w0, hasStore := storeWrites(store)
	select {
	case <-time.After(time.Duration(o.sim.steady) * interval):
	case <-ctx.Done():
	}
	after, io1 := now(), readIO()
	w1, _ := storeWrites(store)
	rss, peak, heap := memory()
	parts := memoryParts()
	if o.memprofile != "" {
		if err := writeHeapProfile(o.memprofile); err != nil {
			fmt.Fprintln(os.Stderr, "heap profile:", err)
		}
	}
	rep, err := srv.report()
	if o.cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	builds := l.stop()
	cancel()
	<-ran
	if err != nil {
		return result{}, err
	}
	if ctx.Err() != nil {
		return result{}, ctx.Err()
	}
	r := result{name: "engine", cpu: (after.cpu - before.cpu).Seconds(), wall: after.wall.Sub(before.wall).Seconds(), srv: rep,
		io: io1.sub(io0), storeWrites: w1 - w0, hasStore: hasStore, load: l.describe(), builds: builds, records: hist.records.Load() - recs}
	r.rss, r.peak, r.heap = rss, peak, heap
	fmt.Printf("\nengine, %d × %s (Run, incidents on): %.2f CPU seconds (%.1f %% of one core), %d polls, %.3f ms CPU per poll; %d history records; RSS %.0f MiB (peak %.0f), Go heap %.0f MiB\n",
		o.sim.steady, interval, r.cpu, 100*r.cpu/r.wall, rep.Polls, 1000*r.cpuPerPoll(), r.records, r.rss, r.peak, r.heap)
	fmt.Printf("  memory: %s\n", parts)
	printServer(o, rep, l, builds)
	fmt.Printf("  recorded: %d state changes, %d actions, %d agent events; states at the end: %s\n",
		hist.states.Load()-states0, hist.actions.Load()-actions0, hist.agentEvents.Load()-agentEvents0, stateCounts(e))
	if k := hist.appends.Load() - appends0; k > 0 {
		fmt.Printf("  history Append (a poll waits for it): %.1f ms on average, %.0f ms at most\n",
			float64(hist.appendNanos.Load()-appendNanos0)/float64(k)/1e6, float64(hist.appendMax.Load())/1e6)
	}
	fmt.Printf("  disk: %d bytes written (write_bytes %d less cancelled_write_bytes %d: pages of the journal emptied before they were written out), %d write system calls (files and sockets)",
		r.io.disk(), r.io.WriteBytes, r.io.CancelledBytes, r.io.Syscw)
	if hasStore {
		fmt.Printf(", %d by the history store", r.storeWrites)
	}
	fmt.Println()
	return r, nil
}

// settle is how long a poller runs before its steady part is measured: the
// first polls of every agent come within the first tenth of an interval
// (the start burst), the measured part begins half an interval after the
// second ones, so that its edges fall between polls, and it holds as many
// polls of each agent as intervals.
func settle(interval time.Duration) time.Duration { return interval * 3 / 2 }

func countState(e *engine.Engine, s state.State) int {
	n := 0
	for _, a := range e.Snapshot().Agents {
		if a.State == s {
			n++
		}
	}
	return n
}

func stateCounts(e *engine.Engine) string {
	var parts []string
	for _, s := range state.All() {
		if k := countState(e, s); k > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, k))
		}
	}
	return strings.Join(parts, ", ")
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func bytesPerPoll(b float64) string {
	if b >= 10*1024 {
		return fmt.Sprintf("%.0f KB", b/1024)
	}
	if b >= 1024 {
		return fmt.Sprintf("%.1f KB", b/1024)
	}
	return fmt.Sprintf("%.0f B", b)
}

// printTable prints one markdown row per phase, for docs/benchmarks.md.
func printTable(o options, results []result) {
	var floorCPU float64
	for _, r := range results {
		if r.name == "floor poller" {
			floorCPU = r.cpuPerPoll()
		}
	}
	fmt.Println("| phase | agents | steady part | load | CPU per poll | vs floor | polls done per interval | largest gap | late polls (gap > 1.15 × interval) | history bytes written per poll | store write calls per poll | write syscalls per poll | RSS (peak) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		polls := float64(max(r.srv.Polls, 1))
		done := 0.0
		if r.srv.GapSeconds > 0 {
			done = 100 * o.sim.interval.Seconds() * float64(r.srv.Gaps) / r.srv.GapSeconds
		}
		ratio, disk, store := "–", "–", "–"
		if floorCPU > 0 {
			ratio = fmt.Sprintf("%.2f", r.cpuPerPoll()/floorCPU)
		}
		if r.name == "engine" {
			disk = bytesPerPoll(float64(r.io.disk()) / polls)
			if r.hasStore {
				store = fmt.Sprintf("%.2f", float64(r.storeWrites)/polls)
			}
		}
		late := 0.0
		if r.srv.Gaps > 0 {
			late = 100 * float64(r.srv.Late) / float64(r.srv.Gaps)
		}
		fmt.Printf("| %s | %s | %d × %s | %s | %.3f ms | %s | %.1f %% | %.1f s | %.2f %% (%d) | %s | %s | %.2f | %.0f MiB (%.0f MiB) |\n",
			r.name, thousands(o.sim.agents), o.sim.steady, o.sim.interval, r.load, 1000*r.cpuPerPoll(), ratio,
			done, r.srv.MaxGapSeconds, late, r.srv.Late, disk, store,
			float64(r.io.Syscw)/polls, r.rss, r.peak)
	}
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	return errors.Join(pprof.WriteHeapProfile(f), f.Close())
}
