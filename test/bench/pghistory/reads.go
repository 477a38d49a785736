package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-cdp/vigil/pkg/history"
)

type durations []time.Duration

func (ds durations) sorted() durations {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s
}

// pct is the p-th percentile (nearest rank).
func (ds durations) pct(p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := ds.sorted()
	r := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(r, 0), len(s)-1)]
}

func (ds durations) max() time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Max(ds)
}

// timing is one kind of read, measured reps times after a warm-up.
type timing struct {
	name   string
	target time.Duration
	ds     durations
	items  int // what the last repetition returned
}

func (t *timing) row() string {
	tgt, verdict := "", ""
	if t.target > 0 {
		tgt = ms(t.target)
		verdict = "met"
		if t.ds.pct(95) > t.target {
			verdict = "**missed** (p95)"
		}
	}
	return fmt.Sprintf("| %s | %d | %s | %s | %s | %d | %s | %s |", t.name, len(t.ds), ms(t.ds.pct(50)), ms(t.ds.pct(95)), ms(t.ds.max()), t.items, tgt, verdict)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// reader measures the reads a replica makes of the shared history, each
// through the real *history.PGStore methods.
type reader struct {
	s       *history.PGStore
	m       *model
	stable  []string // agents without incident in the window
	outage  string   // an agent with incidents in the last 24 h
	rnd     *rand.Rand
	now     func() time.Time
	warmup  int
	reps    int
	timings []*timing
	// incremental: also read the resume records written in the last 10 s,
	// as a replica that keeps them would (only while writes run: the
	// catch-up's flushes are not spread in time as the records' times say).
	incremental bool
}

func (r *reader) add(name string, target time.Duration) *timing {
	t := &timing{name: name, target: target}
	r.timings = append(r.timings, t)
	return t
}

// once measures f into t, unless it is a warm-up round.
func once(t *timing, warm bool, f func() (int, error)) error {
	start := time.Now()
	n, err := f()
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	if !warm {
		t.ds = append(t.ds, time.Since(start))
		t.items = n
	}
	return nil
}

// round measures every kind of read once.
func (r *reader) round(warm bool, pause time.Duration) error {
	get := func(name string, target time.Duration) *timing {
		for _, t := range r.timings {
			if t.name == name {
				return t
			}
		}
		return r.add(name, target)
	}
	sleep := func() {
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	// What a replica reads every poll interval to show the agents others
	// poll (engine refreshShared): the records written since its last read
	// and the last poll and answer of every agent (LastTimes).
	status, recs, times := get("status of all agents, as a replica refreshes it (AgentRecords since 10 s + LastTimes)", 200*time.Millisecond),
		get("  of which AgentRecords(nil, now - 10 s)", 0), get("  of which LastTimes()", 0)
	start := time.Now()
	var nrec, ntimes int
	if err := once(recs, warm, func() (int, error) {
		a, err := r.s.AgentRecords(nil, time.Now().Add(-10*time.Second))
		nrec = len(a)
		return len(a), err
	}); err != nil {
		return err
	}
	if err := once(times, warm, func() (int, error) { p, _, err := r.s.LastTimes(); ntimes = len(p); return len(p), err }); err != nil {
		return err
	}
	if !warm {
		status.ds = append(status.ds, time.Since(start))
		status.items = max(nrec, ntimes)
	}
	sleep()
	// A replica's first read, once at start: every record.
	if err := once(get("every resume record, as a replica reads them at start (AgentRecords(nil, zero))", 0), warm, func() (int, error) {
		a, err := r.s.AgentRecords(nil, time.Time{})
		return len(a), err
	}); err != nil {
		return err
	}
	sleep()
	timeline := func(agent string) (int, error) {
		now := r.now()
		obs, err := r.s.Observations(history.Query{Agent: agent, From: now.Add(-24 * time.Hour), To: now})
		return len(obs), err
	}
	events := func(agent string) (int, error) {
		evs, err := r.s.Events(history.Query{Agent: agent, From: r.now().Add(-24 * time.Hour)})
		return len(evs), err
	}
	pick := func() string { return r.stable[r.rnd.IntN(len(r.stable))] }
	if err := once(get("24 h timeline of one agent (random, quiet)", 500*time.Millisecond), warm, func() (int, error) { return timeline(pick()) }); err != nil {
		return err
	}
	sleep()
	if err := once(get("24 h timeline of one agent with outages ("+r.outage+")", 500*time.Millisecond), warm, func() (int, error) { return timeline(r.outage) }); err != nil {
		return err
	}
	sleep()
	ten := []string{r.outage}
	for len(ten) < 10 {
		ten = append(ten, pick())
	}
	if err := once(get("24 h timelines of 10 agents, one after the other", 0), warm, func() (int, error) {
		total := 0
		for _, a := range ten {
			n, err := timeline(a)
			if err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	}); err != nil {
		return err
	}
	sleep()
	if err := once(get("24 h timelines of 10 agents, 10 at once", 0), warm, func() (int, error) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		total := 0
		for _, a := range ten {
			wg.Go(func() {
				n, err := timeline(a)
				mu.Lock()
				defer mu.Unlock()
				total += n
				if err != nil && firstErr == nil {
					firstErr = err
				}
			})
		}
		wg.Wait()
		return total, firstErr
	}); err != nil {
		return err
	}
	sleep()
	if err := once(get("24 h of events of one agent (random, quiet)", 0), warm, func() (int, error) { return events(pick()) }); err != nil {
		return err
	}
	sleep()
	if err := once(get("24 h of events of the agent with outages", 0), warm, func() (int, error) { return events(r.outage) }); err != nil {
		return err
	}
	sleep()
	return nil
}

// measure runs the warm-up rounds, then reps rounds.
func (r *reader) measure(ctx context.Context, pause time.Duration) error {
	for i := range r.warmup + r.reps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.round(i < r.warmup, pause); err != nil {
			return err
		}
	}
	return nil
}

// until runs rounds until stop is closed (after the warm-up), at least
// reps of them when the time allows.
func (r *reader) until(ctx context.Context, stop <-chan struct{}, pause time.Duration) (int, error) {
	rounds := 0
	for i := 0; ; i++ {
		select {
		case <-stop:
			return rounds, nil
		case <-ctx.Done():
			return rounds, ctx.Err()
		default:
		}
		if err := r.round(i < r.warmup, pause); err != nil {
			return rounds, err
		}
		if i >= r.warmup {
			rounds++
		}
	}
}

func (r *reader) table() string {
	var b strings.Builder
	b.WriteString("| read | n | p50 | p95 | max | items | target | |\n|---|---|---|---|---|---|---|---|\n")
	for _, t := range r.timings {
		b.WriteString(t.row() + "\n")
	}
	return b.String()
}

// pickAgents chooses the agents the reads ask for: quiet ones (no
// incident in [from, to)) and the one with the most incident time there
// (among those that are not silent throughout).
func pickAgents(m *model, from, to int64) (quiet []string, outage string) {
	best := int64(-1)
	for i := range m.agents {
		a := &m.agents[i]
		if a.permError {
			continue
		}
		if m.quiet(i, from, to) {
			quiet = append(quiet, a.name)
			continue
		}
		var in int64
		var n int64
		for _, inc := range a.incs {
			if inc.end > from && inc.start < to {
				in += min(inc.end, to) - max(inc.start, from)
				n++
			}
		}
		// Many short incidents rather than one long silence: the richest
		// timeline, not the largest.
		if in < 12*hourNs && n*hourNs+in/10 > best {
			best, outage = n*hourNs+in/10, a.name
		}
	}
	return quiet, outage
}

// Queries the store does not send: ways to answer the status of every
// agent without reading the whole of vigil_recent twice.
const (
	proposedOneScan = `SELECT agent, max(until), max(until) FILTER (WHERE answered) FROM vigil_recent
		WHERE scope_id = $1 GROUP BY agent`
	proposedByKey = `SELECT a.agent, p.until, q.until, a.last_answer FROM vigil_agent a
		LEFT JOIN LATERAL (SELECT until FROM vigil_recent r WHERE r.scope_id = a.scope_id AND r.agent = a.agent
			ORDER BY t DESC LIMIT 1) p ON true
		LEFT JOIN LATERAL (SELECT until FROM vigil_recent r WHERE r.scope_id = a.scope_id AND r.agent = a.agent AND r.answered
			ORDER BY t DESC LIMIT 1) q ON true
		WHERE a.scope_id = $1`
)

// proposals times those queries.
func proposals(ctx context.Context, pool *pgxpool.Pool, scope int32, warmup, reps int) (string, error) {
	query := func(sql string) func() (int, error) {
		return func() (int, error) {
			rows, err := pool.Query(ctx, sql, scope)
			if err != nil {
				return 0, err
			}
			n := 0
			for rows.Next() {
				n++
			}
			rows.Close()
			return n, rows.Err()
		}
	}
	cases := []struct {
		t *timing
		f func() (int, error)
	}{
		{&timing{name: "last poll and last answer of every agent in one pass over vigil_recent (GROUP BY with FILTER)"}, query(proposedOneScan)},
		{&timing{name: "last poll and last answer of every agent through vigil_recent's primary key (LATERAL ... ORDER BY t DESC LIMIT 1 per agent of vigil_agent)"}, query(proposedByKey)},
	}
	var b strings.Builder
	b.WriteString("| read (not what the store does today) | n | p50 | p95 | max | items | target | |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range cases {
		for i := range warmup + reps {
			if err := once(c.t, i < warmup, c.f); err != nil {
				return "", err
			}
		}
		b.WriteString(c.t.row() + "\n")
	}
	return b.String(), nil
}

// explain prints the plans of the queries behind the reads, as
// pkg/history/pg.go sends them (its SQL, copied here).
func explain(ctx context.Context, pool *pgxpool.Pool, scope int32, agent string, now time.Time) string {
	from, to := now.Add(-24*time.Hour), now
	queries := []struct {
		name string
		sql  string
		args []any
	}{
		{"AgentRecords", `SELECT agent, record FROM vigil_agent
		WHERE scope_id = $1 AND record IS NOT NULL AND updated_at >= $2 AND ($3::text[] IS NULL OR agent = ANY($3))`,
			[]any{scope, time.Unix(0, 0).UTC(), []string(nil)}},
		{"LastPolls", `SELECT agent, max(until) FROM vigil_recent WHERE scope_id = $1 AND (answered OR NOT $2) GROUP BY agent`,
			[]any{scope, false}},
		{"LastAnswers", `SELECT agent, max(until) FROM vigil_recent WHERE scope_id = $1 AND (answered OR NOT $2) GROUP BY agent UNION ALL SELECT agent, last_answer FROM vigil_agent WHERE scope_id = $1 AND last_answer IS NOT NULL AND $2`,
			[]any{scope, true}},
		{"Observations (chunks) of " + agent, `SELECT agent, body FROM vigil_chunk
		WHERE scope_id = $1 AND ($2 = '' OR agent = $2) AND span >= $3 AND span < $4 AND until >= $5`,
			[]any{scope, agent, from.Truncate(time.Hour), to, from}},
		{"Observations (recent) of " + agent, `SELECT agent, t, answered, body FROM vigil_recent
		WHERE scope_id = $1 AND ($2 = '' OR agent = $2) AND t >= $3 AND t < $4 AND until >= $5`,
			[]any{scope, agent, from.Add(-time.Minute), to, from}},
		{"proposed: both in one pass", proposedOneScan, []any{scope}},
		{"proposed: both through the primary key", proposedByKey, []any{scope}},
		{"Events of " + agent, `SELECT body::text FROM vigil_event
		WHERE scope_id = $1 AND ($2 = '' OR agent = $2) AND t >= $3 AND t < $4
		ORDER BY t, key LIMIT CASE WHEN $5::bigint < 0 THEN NULL ELSE $5::bigint END`,
			[]any{scope, agent, from, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), int64(-1)}},
	}
	var b strings.Builder
	for _, q := range queries {
		fmt.Fprintf(&b, "-- %s\n", q.name)
		rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+q.sql, q.args...)
		if err != nil {
			fmt.Fprintf(&b, "   (EXPLAIN failed: %v)\n", err)
			continue
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err == nil {
				b.WriteString("   " + line + "\n")
			}
		}
		rows.Close()
	}
	return b.String()
}
