// Command pghistory-bench measures a history in PostgreSQL (pkg/history's
// PGStore) at the size of a large fleet: by default 10,000 agents polled
// every 10 s, with 30 days of history, on a private PostgreSQL server that
// it starts for the run (initdb and pg_ctl, as the postgres user when run as
// root, listening on a free loopback port, its folder under -dir removed at
// the end unless -keep).
//
//  1. Load. The 30 days (up to an hour before the start) are written as the
//     store leaves them: one vigil_chunk row per agent and hour whose body is
//     the store's own chunk encoding (history.EncodeChunk) of the runs of
//     polls the store would have formed, in the daily partitions the store
//     names; the events and silences of those polls; a resume record per
//     agent. The fleet is simulated (model.go): every poll's answer, with
//     RTT and lag changing at every poll, outages, crashes, lags past the RPO
//     and error answers. The last hour and the time the load took are then
//     given to the real store's Append, poll by poll in time order, flushed
//     at every second of the fleet's time, so that vigil_recent, the hourly
//     compaction and the resume records are exactly what the store writes.
//     A sample of the hours the store compacted itself is compared byte for
//     byte with what the bulk load would have written. Then VACUUM ANALYZE.
//  2. Reads, through a second PGStore of the same scope (another monitor
//     reading the shared history), each after a warm-up: the status of every
//     agent (AgentRecords, LastTimes), 24 h timelines
//     (Observations) of one agent, of an agent with outages and of 10 agents,
//     24 h of one agent's events.
//  3. Writes in real time for -minutes: Append of every agent's polls on its
//     own slot of the 10 s grid, a share of the agents changing state at
//     every cycle (-change) and a share silent (-failing), the store flushed
//     every second by this program (timed). The second half also runs the
//     reads of 2 back to back (100 ms apart), on the replica.
//
// It prints the server's settings, the load's figures (rows, sizes, time),
// the reads against their targets (200 ms for the status of all agents,
// 500 ms for a 24 h timeline), the write figures (polls/s, flush durations,
// rows, CPU of this process and of the server's processes, WAL bytes, the
// local buffer) and the plans of the store's read queries.
//
//	go build -o /tmp/pgbench ./test/bench/pghistory && /tmp/pgbench
//	/tmp/pgbench -agents 500 -days 2 -minutes 1     # quick
//
// Test tooling, not part of the product.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-cdp/vigil/pkg/history"
)

type options struct {
	agents   int
	days     int
	minutes  float64
	keep     bool
	dir      string
	interval time.Duration
	seed     uint64
	workers  int
	reps     int
	warmup   int
	change   float64
	failing  float64
	explain  bool
}

func main() {
	var o options
	flag.IntVar(&o.agents, "agents", 10000, "agents")
	flag.IntVar(&o.days, "days", 30, "days of history to load")
	flag.Float64Var(&o.minutes, "minutes", 3, "minutes of real-time writes (the second half with reads)")
	flag.BoolVar(&o.keep, "keep", false, "keep the server's folder (DIR/vigil-pghistory-keep) and reuse its history at the next run")
	flag.StringVar(&o.dir, "dir", "/var/tmp", "folder for the server's folder (on a real disk)")
	flag.DurationVar(&o.interval, "interval", 10*time.Second, "poll interval of every agent")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the simulated fleet")
	flag.IntVar(&o.workers, "workers", 3, "connections loading the history in parallel")
	flag.IntVar(&o.reps, "reps", 20, "measured repetitions of each read")
	flag.IntVar(&o.warmup, "warmup", 3, "repetitions of each read before the measure")
	flag.Float64Var(&o.change, "change", 0.03, "share of the agents whose state changes at every cycle during the write test")
	flag.Float64Var(&o.failing, "failing", 0.01, "share of the agents silent (GRACE, then FAILED) during the write test")
	flag.BoolVar(&o.explain, "explain", true, "print EXPLAIN ANALYZE of the store's read queries")
	flag.Parse()
	if o.agents < 20 || o.days < 1 || o.minutes <= 0 || o.workers < 1 || o.reps < 1 {
		fmt.Fprintln(os.Stderr, "pghistory-bench: -agents must be at least 20, -days and -workers at least 1, -minutes positive, -reps at least 1")
		os.Exit(2)
	}
	// The bulk load allocates much and keeps little: fewer collections.
	debug.SetGCPercent(400)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "pghistory-bench: interrupted; the server was stopped")
		} else {
			fmt.Fprintln(os.Stderr, "pghistory-bench:", err)
		}
		os.Exit(1)
	}
}

// marker describes a kept history (-keep), for the next run.
type marker struct {
	Agents   int    `json:"agents"`
	Days     int    `json:"days"`
	Seed     uint64 `json:"seed"`
	Interval int64  `json:"interval"`
	FirstDay int64  `json:"firstDay"`
	// End: the latest poll given to the store.
	End int64 `json:"end"`
}

var scope = history.Scope{Org: 1, ID: 7, UID: "pghistory-bench"}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func run(ctx context.Context, o options) error {
	started := time.Now()
	// The folder: new, or kept from an earlier run.
	var base string
	var kept *marker
	if o.keep {
		base = filepath.Join(o.dir, "vigil-pghistory-keep")
		if raw, err := os.ReadFile(filepath.Join(base, "bench.json")); err == nil {
			kept = &marker{}
			if err := json.Unmarshal(raw, kept); err != nil {
				return fmt.Errorf("%s: %w", filepath.Join(base, "bench.json"), err)
			}
			if kept.Agents != o.agents || kept.Days != o.days || kept.Seed != o.seed || kept.Interval != int64(o.interval) {
				return fmt.Errorf("%s holds a history of %d agents, %d days, seed %d, interval %s: run with those flags, or remove the folder",
					base, kept.Agents, kept.Days, kept.Seed, time.Duration(kept.Interval))
			}
		} else if _, err := os.Stat(base); err == nil {
			return fmt.Errorf("%s exists but holds no complete history (an interrupted load?): remove it", base)
		} else if err := os.MkdirAll(base, 0o755); err != nil {
			return err
		}
	} else {
		var err error
		if base, err = os.MkdirTemp(o.dir, "vigil-pghistory-"); err != nil {
			return err
		}
		if err := os.Chmod(base, 0o755); err != nil {
			return err
		}
		defer os.RemoveAll(base)
	}

	srv, err := newServer(base)
	if err != nil {
		return err
	}
	if err := srv.start(); err != nil {
		return err
	}
	defer func() {
		if err := srv.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pghistory-bench:", err)
		}
	}()
	say("# History in PostgreSQL: %d agents every %s, %d days", o.agents, o.interval, o.days)
	say("folder %s, server on 127.0.0.1:%d (%s), %d CPUs, Go %s", base, srv.port, filepath.Dir(srv.bin), runtime.NumCPU(), runtime.Version())

	pool, err := pgxpool.New(ctx, srv.DSN())
	if err != nil {
		return err
	}
	defer pool.Close()
	var version string
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		return err
	}
	say("PostgreSQL %s, settings (postgresql.conf):", version)
	var set []string
	for _, kv := range serverSettings {
		var v string
		if err := pool.QueryRow(ctx, "SHOW "+kv[0]).Scan(&v); err != nil {
			return err
		}
		set = append(set, kv[0]+"="+v)
	}
	say("  %s", strings.Join(set, ", "))

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	writer, err := history.OpenPostgres(ctx, srv.DSN(), history.PGOptions{Scope: scope, SpoolDir: filepath.Join(base, "spool-writer"),
		FlushEvery: 24 * time.Hour, Logger: logger.With("store", "writer")})
	if err != nil {
		return err
	}
	writerOpen := true
	defer func() {
		if writerOpen {
			_ = writer.Close()
		}
	}()
	var scopeID int32
	if err := pool.QueryRow(ctx, `SELECT id FROM vigil_scope WHERE org_id = $1 AND ds_id = $2 AND ds_uid = $3`, scope.Org, scope.ID, scope.UID).Scan(&scopeID); err != nil {
		return fmt.Errorf("the store's scope: %w", err)
	}

	m := newModel(o.agents, o.interval, o.seed)
	now := time.Now().UnixNano()
	var drv *driver
	var mk marker
	if kept == nil {
		tb := (now - int64(o.days)*dayNs) / hourNs * hourNs
		tr := (now - hourNs) / minuteNs * minuteNs
		mk = marker{Agents: o.agents, Days: o.days, Seed: o.seed, Interval: int64(o.interval), FirstDay: tb / dayNs}
		m.generate(mk.FirstDay-1, now/dayNs+2)
		if drv, err = load(ctx, o, srv, pool, writer, m, scopeID, tb, tr); err != nil {
			return err
		}
	} else {
		mk = *kept
		m.generate(mk.FirstDay-1, now/dayNs+2)
		from := mk.End + 1
		if now-from > 3*hourNs {
			say("the kept history ends %s ago: the store takes the polls of the last hour only (a gap, as after a monitor was down)",
				time.Duration(now-from).Round(time.Minute))
			from = now - hourNs
		}
		say("reusing the kept history; catching up from %s", time.Unix(0, from).UTC().Format(time.RFC3339))
		drv = newDriver(m, writer, from)
		if _, err := catchUp(ctx, drv); err != nil {
			return err
		}
	}
	if err := stats(ctx, pool); err != nil {
		return err
	}

	// From here on, the write test's incidents.
	ts := drv.counters().last + 1
	m.applyStorm(ts, o.change, o.failing)
	quiet, outage := pickAgents(m, ts-24*hourNs, ts)
	if outage == "" || len(quiet) == 0 {
		return errors.New("the fleet has no agent with outages, or none without, in the last 24 h: use more agents")
	}
	replica, err := history.OpenPostgres(ctx, srv.DSN(), history.PGOptions{Scope: scope, SpoolDir: filepath.Join(base, "spool-replica"),
		FlushEvery: 24 * time.Hour, Logger: logger.With("store", "replica")})
	if err != nil {
		return err
	}
	defer replica.Close()
	idle := &reader{s: replica, m: m, stable: quiet, outage: outage, rnd: rand.New(rand.NewPCG(o.seed, 7)),
		now: func() time.Time { return time.Unix(0, ts) }, warmup: o.warmup, reps: o.reps}
	say("\n## Reads, no writes running (%d warm-up rounds, then %d); the history ends at %s", o.warmup, o.reps, time.Unix(0, ts).UTC().Format(time.RFC3339))
	if err := idle.measure(ctx, 0); err != nil {
		return err
	}
	fmt.Print(idle.table())
	prop, err := proposals(ctx, pool, scopeID, o.warmup, o.reps)
	if err != nil {
		return err
	}
	say("\nThe same status, read otherwise (queries the store does not send; timed from this program, rows fetched):")
	fmt.Print(prop)
	if o.explain {
		say("\nPlans (EXPLAIN ANALYZE, BUFFERS), no writes running, agent %s:", outage)
		fmt.Print(explain(ctx, pool, scopeID, outage, time.Unix(0, ts)))
	}

	// Write test.
	say("\n## Writes in real time: %d agents every %s, %.1f minutes (change %.3f, failing %.3f)", o.agents, o.interval, o.minutes, o.change, o.failing)
	if _, err := catchUp(ctx, drv); err != nil {
		return err
	}
	wres, err := writeTest(ctx, o, srv, pool, writer, drv, replica, m)
	if err != nil {
		return err
	}
	mk.End = drv.counters().last
	writerOpen = false
	if err := writer.Close(); err != nil {
		return fmt.Errorf("closing the writer: %w", err)
	}
	// Its backends ended: their statistics are in.
	time.Sleep(1500 * time.Millisecond)
	ins, upd, del, err := tupleCounts(ctx, pool)
	if err != nil {
		return err
	}
	wres.report(ins-wres.ins0, upd-wres.upd0, del-wres.del0)
	if o.explain {
		say("\nPlans after the write test, agent %s:", outage)
		fmt.Print(explain(ctx, pool, scopeID, outage, time.Now()))
	}
	if err := stats(ctx, pool); err != nil {
		return err
	}
	if o.keep {
		raw, _ := json.Marshal(mk)
		if err := os.WriteFile(filepath.Join(base, "bench.json"), raw, 0o644); err != nil {
			return err
		}
		say("\nthe history is kept in %s", base)
	}
	say("\ntotal run time %s", time.Since(started).Round(time.Second))
	return nil
}

// load writes the history of [tb, tr) in bulk, then gives the store the
// polls from tr to now; it returns the driver that continues from there.
func load(ctx context.Context, o options, srv *server, pool *pgxpool.Pool, writer *history.PGStore, m *model, scopeID int32, tb, tr int64) (*driver, error) {
	started := time.Now()
	say("\n## Load: %s to %s in bulk, then the store's Append up to now", time.Unix(0, tb).UTC().Format(time.RFC3339), time.Unix(0, tr).UTC().Format(time.RFC3339))
	if err := createPartitions(ctx, pool, tb/dayNs-1, time.Now().UnixNano()/dayNs+1); err != nil {
		return nil, err
	}
	lpool, err := newLoadPool(ctx, pool, o.workers+2)
	if err != nil {
		return nil, err
	}
	defer lpool.Close()
	lastAnswer := make([]int64, len(m.agents))
	var st loadStats
	g0, s0, lsn0 := goCPU(), srv.cpuSeconds(), ""
	if lsn0, err = walLSN(ctx, pool); err != nil {
		return nil, err
	}
	if err := bulkLoad(ctx, lpool, m, scopeID, tb, tr, o.workers, lastAnswer, &st, func(s string) { say("%s", s) }); err != nil {
		return nil, err
	}
	say("bulk: %d chunk rows (%d runs standing for %d polls, %.1f runs an hour; %d minutes with incidents built poll by poll), %.2f GB of chunk bodies before PostgreSQL compresses them, %d events, %d silences",
		st.chunkRows.Load(), st.runs.Load(), st.polls.Load(), float64(st.runs.Load())/float64(st.chunkRows.Load()), st.slowMinutes.Load(),
		float64(st.rawBytes.Load())/1e9, st.events.Load(), st.silences.Load())
	lsn1, err := walLSN(ctx, pool)
	if err != nil {
		return nil, err
	}
	say("bulk: COPY in %s (%d connections; %.0f chunk rows/s, %.0f MB/s of bodies before compression), VACUUM ANALYZE of each day's partition %s of it (overlapping); CPU: this process %.0f s, PostgreSQL %.0f s; WAL %s",
		st.copyTime.Round(time.Second), o.workers, float64(st.chunkRows.Load())/st.copyTime.Seconds(), float64(st.rawBytes.Load())/1e6/st.copyTime.Seconds(),
		st.vacuumTime.Round(time.Second), goCPU()-g0, srv.cpuSeconds()-s0, size(walDiff(ctx, pool, lsn0, lsn1)))

	// Resume records as of tr.
	t := time.Now()
	b := newBuilder(m)
	rnd := rand.New(rand.NewPCG(m.seed, 5))
	rows := make([][]any, 0, len(m.agents))
	recBytes := 0
	for i := range m.agents {
		ob := b.obs(i, m.firstPoll(i, tr)-1)
		rec := resumeRecord(&ob, rnd)
		recBytes += len(rec)
		var last any
		if lastAnswer[i] > 0 {
			last = time.Unix(0, lastAnswer[i]).UTC()
		}
		rows = append(rows, []any{scopeID, m.agents[i].name, rec, ob.Time, last})
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"vigil_agent"}, []string{"scope_id", "agent", "record", "updated_at", "last_answer"}, pgx.CopyFromRows(rows)); err != nil {
		return nil, fmt.Errorf("COPY into vigil_agent: %w", err)
	}
	say("resume records: %d, %.0f bytes of JSON each, in %s", len(rows), float64(recBytes)/float64(len(rows)), time.Since(t).Round(time.Millisecond))

	drv := newDriver(m, writer, tr)
	flushes, err := catchUp(ctx, drv)
	if err != nil {
		return nil, err
	}
	sort.Slice(flushes, func(a, b int) bool { return flushes[a] > flushes[b] })
	var top []string
	for _, f := range flushes[:min(5, len(flushes))] {
		top = append(top, f.Round(time.Millisecond).String())
	}
	say("the slowest flushes of the catch-up (an hourly compaction among them when an hour ended): %s", strings.Join(top, ", "))
	if err := checkChunks(ctx, pool, m, scopeID, tr, drv.counters().last); err != nil {
		return nil, err
	}
	t = time.Now()
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return nil, fmt.Errorf("VACUUM ANALYZE: %w", err)
	}
	say("VACUUM ANALYZE of the database: %s", time.Since(t).Round(time.Second))
	say("load in all: %s", time.Since(started).Round(time.Second))
	return drv, nil
}

// newLoadPool is a pool with room for the loading connections.
func newLoadPool(ctx context.Context, pool *pgxpool.Pool, conns int) (*pgxpool.Pool, error) {
	cfg := pool.Config().Copy()
	cfg.MaxConns = int32(conns)
	return pgxpool.NewWithConfig(ctx, cfg)
}

// catchUp gives the store every poll up to now, faster than real time,
// until it has caught up with the clock.
func catchUp(ctx context.Context, drv *driver) ([]time.Duration, error) {
	var all []time.Duration
	for {
		from := drv.counters()
		t := time.Now()
		until := t.UnixNano()
		flushes, err := drv.simulate(ctx, until)
		all = append(all, flushes...)
		if err != nil {
			return all, err
		}
		c := drv.counters()
		if c.polls > from.polls {
			say("catch-up: %d polls up to %s given to Append in %s (%d events, %d resume records, %d flushes)",
				c.polls-from.polls, time.Unix(0, c.last).UTC().Format(time.TimeOnly), time.Since(t).Round(time.Millisecond),
				c.events-from.events, c.records-from.records, len(flushes))
		}
		if time.Now().UnixNano()-until < 2*secondNs {
			return all, nil
		}
	}
}

// checkChunks compares the rows the store's compaction wrote with what the
// bulk load writes for the same hours: the hour where the bulk load ends
// (merged by the store with its own polls) and the next, when the store
// compacted it.
func checkChunks(ctx context.Context, pool *pgxpool.Pool, m *model, scopeID int32, tr, last int64) error {
	b := newBuilder(m)
	rnd := rand.New(rand.NewPCG(m.seed, 3))
	for _, h := range []int64{tr / hourNs * hourNs, tr/hourNs*hourNs + hourNs} {
		if h+hourNs+6*minuteNs > last {
			say("check: the hour from %s is not compacted yet", time.Unix(0, h).UTC().Format(time.TimeOnly))
			continue
		}
		// Agents with an incident in the hour, and others at random.
		var names []string
		idx := map[string]int{}
		for i := range m.agents {
			if !m.quiet(i, h-minuteNs, h+hourNs) || rnd.Float64() < 300/float64(len(m.agents)) {
				names = append(names, m.agents[i].name)
				idx[m.agents[i].name] = i
			}
		}
		rows, err := pool.Query(ctx, `SELECT agent, body FROM vigil_chunk WHERE scope_id = $1 AND span = $2 AND agent = ANY($3)`, scopeID, time.Unix(0, h).UTC(), names)
		if err != nil {
			return err
		}
		same, differ, found := 0, 0, 0
		var first string
		for rows.Next() {
			var agent string
			var body []byte
			if err := rows.Scan(&agent, &body); err != nil {
				rows.Close()
				return err
			}
			found++
			var evs []history.Event
			var sils []history.Silence
			var hs hourStats
			want := history.EncodeChunk(b.chunk(nil, idx[agent], h, h+hourNs, &evs, &sils, &hs))
			if string(want) == string(body) {
				same++
			} else {
				differ++
				if first == "" {
					first = agent
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		say("check: hour from %s, compacted by the store: %d of %d sampled agents' rows are byte for byte what the bulk load writes (%d differ%s; %d rows missing)",
			time.Unix(0, h).UTC().Format(time.TimeOnly), same, found, differ, map[bool]string{true: ", first " + first, false: ""}[differ > 0], len(names)-found)
	}
	return nil
}

// stats prints the rows and sizes of the store's tables.
func stats(ctx context.Context, pool *pgxpool.Pool) error {
	say("\n| table | rows | total size | of which TOAST | of which indexes |\n|---|---|---|---|---|")
	for _, table := range []string{"vigil_chunk", "vigil_recent", "vigil_event", "vigil_agent", "vigil_silence"} {
		var rows, total, toast, index int64
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&rows); err != nil {
			return err
		}
		if err := pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint,
			coalesce(sum(CASE WHEN c.reltoastrelid <> 0 THEN pg_total_relation_size(c.reltoastrelid) END), 0)::bigint,
			coalesce(sum(pg_indexes_size(c.oid)), 0)::bigint
			FROM pg_class c WHERE c.oid = $1::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass)`, table).Scan(&total, &toast, &index); err != nil {
			return err
		}
		say("| %s | %d | %s | %s | %s |", table, rows, size(total), size(toast), size(index))
	}
	var live, dead, upd, hot, vacs int64
	if err := pool.QueryRow(ctx, `SELECT n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd, vacuum_count + autovacuum_count
		FROM pg_stat_user_tables WHERE relname = 'vigil_recent'`).Scan(&live, &dead, &upd, &hot, &vacs); err != nil {
		return err
	}
	say("vigil_recent: %d live and %d dead rows, %.0f %% of its updates HOT, vacuumed %d times so far", live, dead, 100*float64(hot)/float64(max(upd, 1)), vacs)
	var db, wal int64
	if err := pool.QueryRow(ctx, `SELECT pg_database_size(current_database()), (SELECT coalesce(sum(size), 0) FROM pg_ls_waldir())`).Scan(&db, &wal); err != nil {
		return err
	}
	say("database %s, pg_wal %s", size(db), size(wal))
	return nil
}

func size(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.0f KiB", float64(b)/(1<<10))
}

func tupleCounts(ctx context.Context, pool *pgxpool.Pool) (ins, upd, del int64, err error) {
	err = pool.QueryRow(ctx, `SELECT coalesce(sum(n_tup_ins), 0)::bigint, coalesce(sum(n_tup_upd), 0)::bigint, coalesce(sum(n_tup_del), 0)::bigint
		FROM pg_stat_user_tables WHERE relname LIKE 'vigil\_%' AND relname NOT LIKE 'vigil\_stage%'`).Scan(&ins, &upd, &del)
	return
}

func walLSN(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var lsn string
	err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn)
	return lsn, err
}

func walDiff(ctx context.Context, pool *pgxpool.Pool, a, b string) int64 {
	var d int64
	_ = pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)::bigint`, b, a).Scan(&d)
	return d
}

func goCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// flushRec is one timed Flush of the write test.
type flushRec struct {
	at          time.Duration // since the start of the test
	took        time.Duration
	spoolBefore int
	spoolAfter  int
	phase       int
}

// phaseRes are the figures of one half of the write test.
type phaseRes struct {
	name                  string
	elapsed               time.Duration
	counts                driveCounts
	goCPU, pgCPU          float64
	wal                   int64
	lateP99, lateMax      time.Duration
	readRounds            int
	writableLost, dropped bool
}

type writeRes struct {
	o                options
	phases           []phaseRes
	flushes          []flushRec
	reads            *reader
	ins0, upd0, del0 int64
	finalStatus      history.PGStatus
	agents           int
	recentRows       int64
}

// writeTest runs the real-time writes, the second half with reads.
func writeTest(ctx context.Context, o options, srv *server, pool *pgxpool.Pool, writer *history.PGStore, drv *driver, replica *history.PGStore, m *model) (*writeRes, error) {
	res := &writeRes{o: o, agents: len(m.agents)}
	var err error
	if res.ins0, res.upd0, res.del0, err = tupleCounts(ctx, pool); err != nil {
		return nil, err
	}
	half := time.Duration(o.minutes * float64(time.Minute) / 2)
	quiet, outage := pickAgents(m, time.Now().Add(-24*time.Hour).UnixNano(), time.Now().Add(2*half).UnixNano())
	res.reads = &reader{s: replica, m: m, stable: quiet, outage: outage, rnd: rand.New(rand.NewPCG(o.seed, 8)),
		now: time.Now, warmup: o.warmup, reps: o.reps, incremental: true}
	// Up to now, so that no poll starts the test late.
	if _, err := drv.simulate(ctx, time.Now().UnixNano()); err != nil {
		return nil, err
	}
	start := time.Now()
	var mu sync.Mutex
	phase := 0
	stopFlush := make(chan struct{})
	var fwg sync.WaitGroup
	var flushErr error
	fwg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopFlush:
				return
			case <-tick.C:
			}
			before := writer.Status()
			t := time.Now()
			err := writer.Flush()
			took := time.Since(t)
			after := writer.Status()
			mu.Lock()
			res.flushes = append(res.flushes, flushRec{at: t.Sub(start), took: took, spoolBefore: before.SpoolRecords, spoolAfter: after.SpoolRecords, phase: phase})
			if err != nil && flushErr == nil {
				flushErr = err
			}
			mu.Unlock()
		}
	})
	for p, name := range []string{"writes only", "writes and reads (replica, 100 ms between reads)"} {
		mu.Lock()
		phase = p
		mu.Unlock()
		c0, g0, s0 := drv.counters(), goCPU(), srv.cpuSeconds()
		lsn0, err := walLSN(ctx, pool)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		var rwg sync.WaitGroup
		stopReads := make(chan struct{})
		var readErr error
		var rounds int
		if p == 1 {
			rwg.Go(func() { rounds, readErr = res.reads.until(ctx, stopReads, 100*time.Millisecond) })
		}
		p99, worst, err := drv.realtime(ctx, t0.Add(half))
		close(stopReads)
		rwg.Wait()
		if err != nil {
			close(stopFlush)
			fwg.Wait()
			return nil, err
		}
		if readErr != nil {
			close(stopFlush)
			fwg.Wait()
			return nil, readErr
		}
		lsn1, err := walLSN(ctx, pool)
		if err != nil {
			return nil, err
		}
		c1 := drv.counters()
		pr := phaseRes{name: name, elapsed: time.Since(t0), goCPU: goCPU() - g0, pgCPU: srv.cpuSeconds() - s0, wal: walDiff(ctx, pool, lsn0, lsn1),
			lateP99: p99, lateMax: worst, readRounds: rounds}
		pr.counts = driveCounts{polls: c1.polls - c0.polls, events: c1.events - c0.events, records: c1.records - c0.records,
			lazyRecords: c1.lazyRecords - c0.lazyRecords, silences: c1.silences - c0.silences, changed: c1.changed - c0.changed}
		st := writer.Status()
		pr.writableLost = !st.Writable
		pr.dropped = st.Dropped > 0
		res.phases = append(res.phases, pr)
	}
	close(stopFlush)
	fwg.Wait()
	if flushErr != nil {
		return nil, fmt.Errorf("a flush failed during the write test: %w", flushErr)
	}
	res.finalStatus = writer.Status()
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM vigil_recent`).Scan(&res.recentRows)
	return res, nil
}

func (r *writeRes) report(ins, upd, del int64) {
	cycles := func(p phaseRes) float64 { return p.elapsed.Seconds() / r.o.interval.Seconds() }
	say("\n| phase | time | polls/s | state changes per cycle | events/s | resume records/s (of which may wait) | flush p50 | flush p99 | flush max | flushes over 1 s | Append late p99 / max | CPU s of this process | CPU s of PostgreSQL | WAL |")
	say("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for p, ph := range r.phases {
		var fl durations
		over := 0
		for _, f := range r.flushes {
			if f.phase == p {
				fl = append(fl, f.took)
				if f.took > time.Second {
					over++
				}
			}
		}
		sec := ph.elapsed.Seconds()
		say("| %s | %.0f s | %.0f | %.2f %% of the agents | %.1f | %.1f (%.1f) | %s | %s | %s | %d of %d | %s / %s | %.1f (%.0f %% of a core) | %.1f (%.0f %% of a core) | %s (%s/s) |",
			ph.name, sec, float64(ph.counts.polls)/sec, 100*float64(ph.counts.changed)/cycles(ph)/float64(r.agents),
			float64(ph.counts.events)/sec, float64(ph.counts.records)/sec, float64(ph.counts.lazyRecords)/sec,
			ms(fl.pct(50)), ms(fl.pct(99)), ms(fl.max()), over, len(fl), ms(ph.lateP99), ms(ph.lateMax),
			ph.goCPU, 100*ph.goCPU/sec, ph.pgCPU, 100*ph.pgCPU/sec, size(ph.wal), size(int64(float64(ph.wal)/sec)))
	}
	maxBefore, maxAfter := 0, 0
	for _, f := range r.flushes {
		maxBefore, maxAfter = max(maxBefore, f.spoolBefore), max(maxAfter, f.spoolAfter)
	}
	say("rows written by the whole test (pg_stat_user_tables, staging tables excluded): %d inserted, %d updated, %d deleted; vigil_recent holds %d rows", ins, upd, del, r.recentRows)
	say("local buffer: at most %d records waiting before a flush (batches with events are written there first), at most %d left after a flush; writable throughout: %v; observations dropped: %d",
		maxBefore, maxAfter, !r.phases[0].writableLost && !r.phases[len(r.phases)-1].writableLost, r.finalStatus.Dropped)
	slow := slicesSortedFlushes(r.flushes)
	var top []string
	for _, f := range slow[:min(5, len(slow))] {
		top = append(top, fmt.Sprintf("%s at +%s", ms(f.took), f.at.Round(time.Second)))
	}
	say("slowest flushes: %s", strings.Join(top, ", "))
	say("\nReads during the second half (%d rounds after %d warm-up rounds):", r.phases[len(r.phases)-1].readRounds, r.o.warmup)
	fmt.Print(r.reads.table())
}

func slicesSortedFlushes(fs []flushRec) []flushRec {
	out := append([]flushRec(nil), fs...)
	sort.Slice(out, func(a, b int) bool { return out[a].took > out[b].took })
	return out
}
