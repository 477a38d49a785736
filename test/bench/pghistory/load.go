package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-cdp/vigil/pkg/history"
)

// partitionName is the daily partition of table for day (days since the
// Unix epoch), named as pkg/history/pgschema.go names them.
func partitionName(table string, day int64) string {
	return fmt.Sprintf("%s_%s", table, time.Unix(day*86400, 0).UTC().Format("20060102"))
}

// createPartitions creates the daily partitions of vigil_chunk and
// vigil_event from day `from` to day `to`, with the statement the store
// itself uses (its ensurePartitions is not exported).
func createPartitions(ctx context.Context, pool *pgxpool.Pool, from, to int64) error {
	for d := from; d <= to; d++ {
		day := time.Unix(d*86400, 0).UTC()
		for _, table := range []string{"vigil_chunk", "vigil_event"} {
			sql := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
				pgx.Identifier{partitionName(table, d)}.Sanitize(), table, day.Format(time.RFC3339), day.Add(24*time.Hour).Format(time.RFC3339))
			if _, err := pool.Exec(ctx, sql); err != nil {
				return fmt.Errorf("create partition %s: %w", partitionName(table, d), err)
			}
		}
	}
	return nil
}

// loadStats are what the bulk load wrote.
type loadStats struct {
	chunkRows, rawBytes, runs, polls, slowMinutes atomic.Int64
	events, silences                              atomic.Int64
	copyTime, vacuumTime                          time.Duration
}

// bulkLoad writes the history of [tb, tr) as the store would have left it:
// one vigil_chunk row per agent and hour (the last hour ends at tr, where
// the polls given to Append take over), the events and silences of those
// polls. workers goroutines each write a range of the agents, hour after
// hour (the order in which the store's hourly compaction writes them),
// one COPY per day into that day's partition; each day's partition is
// vacuumed and analyzed once every worker is done with it. lastAnswer
// receives each agent's latest answered poll.
func bulkLoad(ctx context.Context, pool *pgxpool.Pool, m *model, scope int32, tb, tr int64, workers int, lastAnswer []int64, st *loadStats, progress func(string)) error {
	n := len(m.agents)
	firstDay, lastDay := tb/dayNs, (tr-1)/dayNs
	days := int(lastDay - firstDay + 1)
	doneCount := make([]int, days)
	var mu sync.Mutex
	vacuum := make(chan int64, days)
	start := time.Now()
	var vacErr error
	var vacTime time.Duration
	var vwg sync.WaitGroup
	vwg.Go(func() {
		for d := range vacuum {
			if ctx.Err() != nil {
				continue
			}
			t := time.Now()
			if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+pgx.Identifier{partitionName("vigil_chunk", d)}.Sanitize()); err != nil && vacErr == nil {
				vacErr = fmt.Errorf("vacuum %s: %w", partitionName("vigil_chunk", d), err)
			}
			vacTime += time.Since(t)
		}
	})
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() {
			errs[w] = loadWorker(ctx, pool, m, scope, w, lo, hi, tb, tr, lastAnswer, st, func(d int64) {
				mu.Lock()
				doneCount[d-firstDay]++
				all := doneCount[d-firstDay] == workers
				mu.Unlock()
				if all {
					vacuum <- d
					el := time.Since(start)
					left := time.Duration(float64(el) / float64(d-firstDay+1) * float64(lastDay-d))
					progress(fmt.Sprintf("  day %s loaded: %d chunk rows (%.1f GB before compression), %d events so far; %s elapsed, about %s left",
						time.Unix(d*86400, 0).UTC().Format("2006-01-02"), st.chunkRows.Load(), float64(st.rawBytes.Load())/1e9, st.events.Load(),
						el.Round(time.Second), left.Round(time.Second)))
				}
			})
		})
	}
	wg.Wait()
	st.copyTime = time.Since(start)
	close(vacuum)
	vwg.Wait()
	st.vacuumTime = vacTime
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return vacErr
}

func loadWorker(ctx context.Context, pool *pgxpool.Pool, m *model, scope int32, w, lo, hi int, tb, tr int64, lastAnswer []int64, st *loadStats, dayDone func(int64)) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	b := newBuilder(m)
	writer := fmt.Sprintf("%012x", mix(m.seed+uint64(w)+1)>>16)
	var seq uint64
	for d := tb / dayNs; d <= (tr-1)/dayNs; d++ {
		var hours []int64
		for h := max(d*dayNs, tb/hourNs*hourNs); h < min((d+1)*dayNs, tr); h += hourNs {
			hours = append(hours, h)
		}
		src := &chunkSource{b: b, m: m, scope: scope, lo: lo, hi: hi, ai: lo, hours: hours, tb: tb, tr: tr, lastAnswer: lastAnswer, st: st}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{partitionName("vigil_chunk", d)},
			[]string{"scope_id", "agent", "span", "until", "last_answer", "runs", "body"}, src); err != nil {
			return fmt.Errorf("COPY into %s: %w", partitionName("vigil_chunk", d), err)
		}
		if len(src.evs) > 0 {
			rows := make([][]any, 0, len(src.evs))
			for _, ev := range src.evs {
				raw, err := json.Marshal(ev)
				if err != nil {
					return err
				}
				seq++
				rows = append(rows, []any{scope, ev.Time, fmt.Sprintf("%s-%016x", writer, seq), ev.Agent, string(raw)})
			}
			if _, err := conn.CopyFrom(ctx, pgx.Identifier{"vigil_event"}, []string{"scope_id", "t", "key", "agent", "body"}, pgx.CopyFromRows(rows)); err != nil {
				return fmt.Errorf("COPY into vigil_event: %w", err)
			}
			st.events.Add(int64(len(rows)))
		}
		if len(src.sils) > 0 {
			rows := make([][]any, 0, len(src.sils))
			for _, si := range src.sils {
				rows = append(rows, []any{scope, si.Agent, si.Kind, si.Start, si.Cluster, int64(si.Duration)})
			}
			if _, err := conn.CopyFrom(ctx, pgx.Identifier{"vigil_silence"}, []string{"scope_id", "agent", "kind", "start", "cluster", "duration_ns"}, pgx.CopyFromRows(rows)); err != nil {
				return fmt.Errorf("COPY into vigil_silence: %w", err)
			}
			st.silences.Add(int64(len(rows)))
		}
		dayDone(d)
	}
	return nil
}

// chunkSource builds the rows of one COPY as PostgreSQL takes them: hour
// after hour, each hour every agent of the worker's range.
type chunkSource struct {
	b          *builder
	m          *model
	scope      int32
	lo, hi, ai int
	hours      []int64
	hi0        int
	tb, tr     int64
	lastAnswer []int64
	st         *loadStats
	runs       []history.Observation
	row        []any
	evs        []history.Event
	sils       []history.Silence
	hs         hourStats
}

func (c *chunkSource) Next() bool {
	for {
		if c.hi0 >= len(c.hours) {
			c.st.polls.Add(c.hs.polls)
			c.st.slowMinutes.Add(c.hs.slowMinutes)
			c.hs = hourStats{}
			return false
		}
		if c.ai >= c.hi {
			c.hi0++
			c.ai = c.lo
			continue
		}
		i := c.ai
		c.ai++
		h := c.hours[c.hi0]
		from, to := max(h, c.tb), min(h+hourNs, c.tr)
		c.runs = c.b.chunk(c.runs[:0], i, from, to, &c.evs, &c.sils, &c.hs)
		if len(c.runs) == 0 {
			continue
		}
		var until time.Time
		var last *time.Time
		for k := range c.runs {
			e := c.runs[k].End()
			if e.After(until) {
				until = e
			}
			if c.runs[k].Answered {
				last = &e
			}
		}
		if last != nil {
			c.lastAnswer[i] = max(c.lastAnswer[i], last.UnixNano())
		}
		body := history.EncodeChunk(c.runs)
		c.st.chunkRows.Add(1)
		c.st.rawBytes.Add(int64(len(body)))
		c.st.runs.Add(int64(len(c.runs)))
		c.row = append(c.row[:0], c.scope, c.m.agents[i].name, time.Unix(0, h).UTC(), until, last, int32(len(c.runs)), body)
		return true
	}
}

func (c *chunkSource) Values() ([]any, error) { return c.row, nil }
func (c *chunkSource) Err() error             { return nil }
