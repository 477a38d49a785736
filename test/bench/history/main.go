// Command history-bench measures the history store as the engine uses it on
// a large fleet: N agents polled every interval (by default 10,000 agents
// every 10 s, so 1,000 polls a second), each poll appending one Batch like
// the engine's (an observation of the agent and its 3 processes with RTT and
// protection lag that change at every poll, the resume record when the state
// changed or once a minute, the state events), from 64 goroutines at once.
// The resume record is an engine record of such an agent (about 3.9 KB of
// JSON, its 100 RTTs different at every write).
// Time is simulated: a fake clock advances one interval/N per poll, and the
// store is flushed at every simulated second when it has a Flush method, so
// minutes of production run in seconds while the writes reach a real disk.
//
// It prints, for the steady phase (after -warmup simulated minutes): bytes
// written to disk (write_bytes less cancelled_write_bytes of /proc/self/io) and records per poll, then
// the latency of a 24 h timeline of one agent and of a status of all (every
// agent's last 5 minutes). Run it under strace to count fdatasync calls:
//
//	strace -f -c -e trace=fdatasync -o /tmp/sys.txt go run ./test/bench/history -minutes 15
//
// -change is the share of polls whose answer changes state (1: every one).
// Use a folder on a real disk (-dir; the default is under /var/tmp, removed
// at the end). Test tooling, not part of the product.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
	"github.com/vigil-cdp/vigil/test/bench/internal/procmem"
)

func main() {
	agents := flag.Int("agents", 10000, "agents")
	interval := flag.Duration("interval", 10*time.Second, "poll interval of every agent")
	minutes := flag.Float64("minutes", 15, "simulated minutes")
	warmup := flag.Float64("warmup", 1, "simulated minutes before the measure starts")
	change := flag.Float64("change", 0, "share of polls whose answer changes state (1: every one)")
	dir := flag.String("dir", "", "folder for the store (default: a new one under /var/tmp, removed at the end)")
	flag.Parse()
	go procmem.WatchAnon(50 * time.Millisecond)

	d := *dir
	if d == "" {
		var err error
		d, err = os.MkdirTemp("/var/tmp", "vigil-history-bench-")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(d)
	}
	s, err := history.Open(d, history.Options{Retention: -1})
	if err != nil {
		fail(err)
	}
	flusher, _ := any(s).(interface{ Flush() error })

	t0 := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	step := *interval / time.Duration(*agents)
	total := int(time.Duration(*minutes*float64(time.Minute)) / step)
	warm := int(time.Duration(*warmup*float64(time.Minute)) / step)
	perSecond := int(time.Second / step)
	sim := newFleet(*agents, *change)

	jobs := make(chan int, 256)
	var wg sync.WaitGroup
	var mu sync.Mutex
	records := 0
	for range 64 {
		go func() {
			for i := range jobs {
				b := sim.poll(i%*agents, t0.Add(time.Duration(i)*step))
				n := len(b.Observations) + len(b.Events) + len(b.Agents)
				if err := s.Append(b); err != nil {
					fail(err)
				}
				mu.Lock()
				records += n
				mu.Unlock()
				wg.Done()
			}
		}()
	}
	var bytes0 int64
	var start time.Time
	for i := 0; i < total; i += perSecond {
		if i >= warm && start.IsZero() {
			mu.Lock()
			records = 0
			mu.Unlock()
			bytes0, start = writeBytes(), time.Now()
		}
		n := min(perSecond, total-i)
		wg.Add(n)
		for j := range n {
			jobs <- i + j
		}
		wg.Wait()
		if flusher != nil {
			if err := flusher.Flush(); err != nil {
				fail(err)
			}
		}
	}
	close(jobs)
	polls := total - warm
	written := writeBytes() - bytes0
	elapsed := time.Since(start)
	end := t0.Add(time.Duration(total) * step)

	// Queries, as the datasource asks them.
	t := time.Now()
	obs, err := s.Observations(history.Query{Agent: sim.names[7], From: end.Add(-24 * time.Hour), To: end})
	if err != nil {
		fail(err)
	}
	one := time.Since(t)
	t = time.Now()
	all := 0
	for _, name := range sim.names {
		o, err := s.Observations(history.Query{Agent: name, From: end.Add(-5 * time.Minute), To: end})
		if err != nil {
			fail(err)
		}
		all += len(o)
	}
	every := time.Since(t)
	mem := memory()
	if err := s.Close(); err != nil {
		fail(err)
	}
	size := fileSize(filepath.Join(d, history.FileName))
	fmt.Printf("agents %d, interval %s, %.0f simulated minutes (%.0f measured), change %.3f\n", *agents, *interval, *minutes, *minutes-*warmup, *change)
	fmt.Printf("  polls measured        %d in %.1f s real (%.0f polls/s)\n", polls, elapsed.Seconds(), float64(polls)/elapsed.Seconds())
	fmt.Printf("  write_bytes per poll  %.0f B (less cancelled_write_bytes)\n", float64(written)/float64(polls))
	fmt.Printf("  memory                %s (peak RSS includes the store's mapped pages)\n", mem)
	fmt.Printf("  records per poll      %.2f (observations, events, resume records given to Append)\n", float64(records)/float64(polls))
	fmt.Printf("  store size            %.1f MB\n", float64(size)/1e6)
	fmt.Printf("  24 h timeline, 1 agent  %d records in %s\n", len(obs), one.Round(time.Microsecond))
	fmt.Printf("  status of all (5 min)   %d records in %s\n", all, every.Round(time.Millisecond))
}

// fleet is the simulated agents' current answers.
type fleet struct {
	mu     sync.Mutex
	names  []string
	states []state.State
	lastAt []time.Time
	change float64
	rnd    *rand.Rand
}

func newFleet(n int, change float64) *fleet {
	f := &fleet{names: make([]string, n), states: make([]state.State, n), lastAt: make([]time.Time, n), change: change, rnd: rand.New(rand.NewPCG(1, 2))}
	for i := range n {
		f.names[i] = fmt.Sprintf("cdp-node-%05d.example.net", i)
	}
	return f
}

// recordTemplate is an engine resume record (pkg/engine's agentRecord) of
// an agent with 3 processes, one of them a replicator with its protection
// block: %[1]s the agent's name, %[2]s its last 100 RTTs, %[3]s the time.
const recordTemplate = `{"firstPollAt":"2026-11-26T04:00:00Z","lastAnswerAt":"%[3]s","silentSince":"0001-01-01T00:00:00Z",` +
	`"lastStatus":{"apiVersion":"v1","time":"%[3]s","agent":{"id":"id-%[1]s","version":"0.1.0","hostname":"%[1]s","startedAt":"2026-11-26T03:00:00Z","pid":811},` +
	`"cluster":{"name":"cluster-a","node":"%[1]s","role":"active","roleReadAt":"%[3]s","roleError":null},"processes":[` +
	`{"name":"cdp","kind":"command","state":"running","expected":true,"pid":1001,"generation":3,"startedAt":"2026-11-26T03:00:01Z","restarts":2,"lastExit":{"code":1,"signal":null,"at":"2026-11-26T02:59:58Z"},"protection":null,"autoRestart":true,"autoRestartSuspended":false,"recentCrashes":0,"autoRestartAt":null},` +
	`{"name":"cdp-replicator","kind":"replicator","state":"running","expected":true,"pid":1002,"generation":3,"startedAt":"2026-11-26T03:00:01Z","restarts":0,"lastExit":null,"protection":{"lastChangeAt":"%[3]s","lastReplicatedAt":"%[3]s","lagSeconds":1.734,"pendingChanges":12,"pendingBytes":48211,"state":"watching","message":null,"notCovered":0,"verify":null},"autoRestart":true,"autoRestartSuspended":false,"recentCrashes":0,"autoRestartAt":null},` +
	`{"name":"cdp-exporter","kind":"command","state":"running","expected":true,"pid":1003,"generation":3,"startedAt":"2026-11-26T03:00:01Z","restarts":0,"lastExit":null,"protection":null,"autoRestart":true,"autoRestartSuspended":false,"recentCrashes":0,"autoRestartAt":null}]},` +
	`"rtts":[%[2]s],"eventsSince":412,"eventsAgent":"id-%[1]s",` +
	`"snapshot":{"name":"%[1]s","url":"http://%[1]s:7070","cluster":"cluster-a","node":"%[1]s","role":"active","state":0,"reason":"every process runs","rtt":2318211,"lastPollAt":"%[3]s","lastAnswerAt":"%[3]s","silentSince":"0001-01-01T00:00:00Z",` +
	`"budget":{"total":32000000000,"responseTime":1000000000,"rttP99":4618211,"processing":1000000000,"allowances":[{"kind":"restart","value":30000000000,"configured":30000000000,"measured":false,"samples":0},{"kind":"network interruption","value":10000000000,"configured":10000000000,"measured":false,"samples":0},{"kind":"app error recovery","value":20000000000,"configured":20000000000,"measured":false,"samples":0}],"combine":"max","mode":"configured"},` +
	`"agentId":"id-%[1]s","version":"0.1.0","hostname":"%[1]s","agentStartedAt":"2026-11-26T03:00:00Z","processes":[` +
	`{"name":"cdp","state":0,"reason":"running (pid 1001, generation 3)","verdict":"running","agentState":"running","expected":true,"generation":3,"pid":1001,"autoRestartSuspended":false},` +
	`{"name":"cdp-replicator","state":0,"reason":"running (pid 1002, generation 3)","verdict":"running","agentState":"running","expected":true,"generation":3,"pid":1002,"lagSeconds":1.734,"autoRestartSuspended":false},` +
	`{"name":"cdp-exporter","state":0,"reason":"running (pid 1003, generation 3)","verdict":"running","agentState":"running","expected":true,"generation":3,"pid":1003,"autoRestartSuspended":false}]},` +
	`"trackers":{"cdp":{"failedAttempts":0,"nextAttemptAt":"0001-01-01T00:00:00Z","suspended":false,"awaiting":0},"cdp-exporter":{"failedAttempts":0,"nextAttemptAt":"0001-01-01T00:00:00Z","suspended":false,"awaiting":0},"cdp-replicator":{"failedAttempts":0,"nextAttemptAt":"0001-01-01T00:00:00Z","suspended":false,"awaiting":0}},` +
	`"eventBudget":{"used":3,"at":"%[3]s"}}`

// record is agent name's resume record at t, with 100 RTTs (nanoseconds,
// as the engine keeps them) that differ at every write.
func (f *fleet) resumeRecord(name string, t time.Time, rnd *rand.Rand) []byte {
	rtts := make([]byte, 0, 900)
	for i := range 100 {
		if i > 0 {
			rtts = append(rtts, ',')
		}
		rtts = strconv.AppendInt(rtts, int64(800_000+rnd.IntN(4_000_000)), 10)
	}
	return fmt.Appendf(nil, recordTemplate, name, rtts, t.UTC().Format(time.RFC3339Nano))
}

// poll is what the engine appends for one poll of agent i at time at.
func (f *fleet) poll(i int, at time.Time) history.Batch {
	f.mu.Lock()
	prev := f.states[i]
	next := prev
	if f.change > 0 && f.rnd.Float64() < f.change {
		if prev == state.OK {
			next = state.Degraded
		} else {
			next = state.OK
		}
	}
	f.states[i] = next
	rtt := time.Duration(800+f.rnd.IntN(4000)) * time.Microsecond
	lag := f.rnd.Float64() * 3
	saved := f.lastAt[i]
	write := next != prev || at.Sub(saved) >= time.Minute
	if write {
		f.lastAt[i] = at
	}
	seed := f.rnd.Uint64()
	f.mu.Unlock()

	name := f.names[i]
	reason := "every process runs"
	if next == state.Degraded {
		reason = "protection of cdp lags 12.5 s (allowed 10 s)"
	}
	procs := make([]history.ProcessObservation, 3)
	for j, p := range []string{"cdp", "cdp-replicator", "cdp-exporter"} {
		l := lag + float64(j)
		ps := state.OK
		pr := "running"
		if j == 0 {
			ps, pr = next, reason
		}
		procs[j] = history.ProcessObservation{Name: p, State: ps, Reason: pr, Generation: 3, LagSeconds: &l}
	}
	b := history.Batch{Observations: []history.Observation{{Time: at, Answered: true, Agent: name, State: next, Reason: reason,
		RTT: rtt, BudgetSeconds: 32, Role: "primary", Cluster: "cluster-" + strconv.Itoa(i/2), Processes: procs}}}
	if next != prev {
		b.Events = []history.Event{
			{Type: history.TypeState, Time: at, Agent: name, From: prev, To: next, Reason: reason, BudgetSeconds: 32},
			{Type: history.TypeState, Time: at, Agent: name, Process: "cdp", From: prev, To: next, Reason: reason, BudgetSeconds: 32},
		}
	}
	if write {
		b.Agents = map[string][]byte{name: f.resumeRecord(name, at, rand.New(rand.NewPCG(seed, uint64(i))))}
		// As the engine: a record written only because a minute passed can wait.
		b.AgentsCanWait = next == prev
	}
	return b
}

// writeBytes is what this process sent to the storage layer: write_bytes
// less cancelled_write_bytes (pages of the history's journal emptied
// before the kernel wrote them out never reach the disk).
func writeBytes() int64 {
	fh, err := os.Open("/proc/self/io")
	if err != nil {
		fail(err)
	}
	defer fh.Close()
	var written, cancelled int64
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			written, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "cancelled_write_bytes: "); ok {
			cancelled, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return written - cancelled
}

// memory is this process's peak RSS (VmHWM) and its RSS now, with the
// anonymous memory and the file pages (the store's map) of it.
func memory() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	var parts []string
	for line := range strings.SplitSeq(string(b), "\n") {
		for _, k := range []string{"VmHWM:", "VmRSS:", "RssAnon:", "RssFile:"} {
			if strings.HasPrefix(line, k) {
				parts = append(parts, strings.Join(strings.Fields(line), " "))
			}
		}
	}
	parts = append(parts, fmt.Sprintf("peak RssAnon: %d kB", procmem.PeakAnonKB()))
	return strings.Join(parts, ", ")
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "history-bench:", err)
	os.Exit(1)
}
