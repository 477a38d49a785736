package history

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Scope is whose rows these are in a shared database: a datasource's
// identity (org, ID, UID), or a vigil watch fleet (org and ID 0, UID its
// name).
type Scope struct {
	Org int64
	ID  int64
	UID string
}

func (s Scope) String() string {
	return fmt.Sprintf("org %d, id %d, uid %q", s.Org, s.ID, s.UID)
}

// PGOptions tune a history in PostgreSQL.
type PGOptions struct {
	Scope Scope
	// Password, when set, replaces the connection string's (the
	// datasource keeps it in secureJsonData).
	Password string
	// Retention: what is older is deleted by Prune (0: 30 days, negative:
	// kept forever).
	Retention time.Duration
	// FlushEvery: how often what is pending is written (0: a second).
	FlushEvery time.Duration
	// SpoolDir is the local buffer's folder (required).
	SpoolDir string
	// SpoolLimit bounds the local buffer (0: 512 MiB).
	SpoolLimit int64
	// Timeout bounds one write or read (0: 10 s).
	Timeout time.Duration
	// Logger: discarded by default.
	Logger *slog.Logger
	// ReadOnly opens an existing scope for reading (vigil history): no
	// local buffer, no writes, no schema change.
	ReadOnly bool
}

// DefaultSpoolLimit bounds the local buffer of a history in PostgreSQL.
const DefaultSpoolLimit = 512 << 20

const (
	// pgSpan is the span of one vigil_chunk row (one agent, one hour).
	pgSpan = time.Hour
	// pgRecentKeep: observations move from vigil_recent to vigil_chunk once
	// their hour ended this long ago (observations may come a little late).
	pgRecentKeep = 5 * time.Minute
	// pgCompactEvery: how often a writer moves ended hours to chunks.
	pgCompactEvery = time.Minute
	// maxRetryEvery bounds the back-off between tries of an unreachable
	// PostgreSQL.
	maxRetryEvery = 30 * time.Second
)

// PGStatus says whether the history can be written now.
type PGStatus struct {
	// Writable: the last write reached PostgreSQL.
	Writable bool `json:"writable"`
	// Since: when Writable last changed.
	Since     time.Time `json:"since"`
	LastError string    `json:"lastError,omitempty"`
	// SpoolBytes and SpoolRecords: what waits in the local buffer.
	SpoolBytes   int64 `json:"spoolBytes"`
	SpoolRecords int   `json:"spoolRecords"`
	// Dropped: observations the full local buffer could not take.
	Dropped int64 `json:"dropped"`
}

// PGStore is a history in PostgreSQL, shared by every monitor of one scope.
type PGStore struct {
	pool    *pgxpool.Pool
	scopeID int32
	opts    PGOptions
	where   string
	writer  string // this store's name in event keys
	log     *slog.Logger
	// readOnly: opened with PGOptions.ReadOnly.
	readOnly bool

	mu sync.Mutex // what follows, until wmu
	// open is each agent's latest run, which may still grow; ver counts
	// its changes and flushed is the version last written.
	open     map[string]*Observation
	ver      map[string]uint64
	flushed  map[string]uint64
	ended    []Observation // runs that ended since the last write
	silences []Silence
	agents   map[string][]byte
	lazy     map[string][]byte
	lazyAt   time.Time
	newest   time.Time
	evSeq    uint64
	sp       *spool
	status   PGStatus
	dropped  int64 // not yet reported in an event
	closed   bool

	wmu         sync.Mutex // one write at a time
	compactedAt time.Time
	// retryAt and backoff: after a failed write, when to try PostgreSQL
	// again (s.mu guards them).
	retryAt time.Time
	backoff time.Duration

	stop chan struct{}
	wg   sync.WaitGroup
}

// OpenPostgres connects to the history at dsn, creating or migrating its
// schema. PostgreSQL must be reachable now; later, writes it cannot take
// wait in the local buffer.
func OpenPostgres(ctx context.Context, dsn string, opts PGOptions) (*PGStore, error) {
	if opts.SpoolDir == "" && !opts.ReadOnly {
		return nil, errors.New("a history in PostgreSQL needs a folder for its local buffer")
	}
	if opts.Retention == 0 {
		opts.Retention = 30 * 24 * time.Hour
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = time.Second
	}
	if opts.SpoolLimit <= 0 {
		opts.SpoolLimit = DefaultSpoolLimit
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("the PostgreSQL connection string cannot be read: %s", redact(err.Error(), dsn, opts.Password))
	}
	if opts.Password != "" {
		cfg.ConnConfig.Password = opts.Password
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	cfg.MaxConns = 4
	where := fmt.Sprintf("postgresql://%s/%s", net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))), cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL at %s: %s", where, redact(err.Error(), dsn, opts.Password))
	}
	fail := func(what string, err error) (*PGStore, error) {
		pool.Close()
		return nil, fmt.Errorf("PostgreSQL at %s: %s: %s", where, what, redact(err.Error(), dsn, opts.Password))
	}
	cctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if err := pool.Ping(cctx); err != nil {
		return fail("cannot connect", err)
	}
	s := &PGStore{pool: pool, opts: opts, where: where, log: opts.Logger,
		open: map[string]*Observation{}, ver: map[string]uint64{}, flushed: map[string]uint64{},
		stop: make(chan struct{})}
	if opts.ReadOnly {
		err := pool.QueryRow(cctx, `SELECT id FROM vigil_scope WHERE org_id = $1 AND ds_id = $2 AND ds_uid = $3`,
			opts.Scope.Org, opts.Scope.ID, opts.Scope.UID).Scan(&s.scopeID)
		if errors.Is(err, pgx.ErrNoRows) {
			pool.Close()
			return nil, fmt.Errorf("PostgreSQL at %s holds no history of %s", where, opts.Scope)
		}
		if err != nil {
			return fail("read the scopes (is this a Vigil history?)", err)
		}
		s.readOnly = true
		return s, nil
	}
	if err := migratePG(cctx, pool); err != nil {
		return fail("schema", err)
	}
	if err := pool.QueryRow(cctx, `INSERT INTO vigil_scope (org_id, ds_id, ds_uid) VALUES ($1, $2, $3)
		ON CONFLICT (org_id, ds_id, ds_uid) DO UPDATE SET seen_at = now() RETURNING id`,
		opts.Scope.Org, opts.Scope.ID, opts.Scope.UID).Scan(&s.scopeID); err != nil {
		return fail("scope", err)
	}
	now := time.Now()
	if err := ensurePartitions(cctx, pool, now, now); err != nil {
		return fail("partitions", err)
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	s.writer = hex.EncodeToString(id[:])
	if s.sp, err = openSpool(opts.SpoolDir); err != nil {
		pool.Close()
		return nil, err
	}
	s.status = PGStatus{Writable: true, Since: now, SpoolBytes: s.sp.size, SpoolRecords: s.sp.count}
	// What a previous run left in the local buffer goes first.
	if s.sp.count > 0 {
		if err := s.Flush(); err != nil {
			s.log.Warn("the local buffer of the history could not be written to PostgreSQL yet", "error", err)
		}
	}
	s.wg.Go(s.flushLoop)
	return s, nil
}

// redact removes the connection string and the password from a message.
func redact(msg, dsn, password string) string {
	if dsn != "" {
		msg = strings.ReplaceAll(msg, dsn, "(connection string)")
	}
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "xxxxx")
	}
	if cfg, err := pgx.ParseConfig(dsn); err == nil && cfg.Password != "" {
		msg = strings.ReplaceAll(msg, cfg.Password, "xxxxx")
	}
	return msg
}

// Path says where the history is, without credentials.
func (s *PGStore) Path() string {
	return fmt.Sprintf("%s (%s)", s.where, s.opts.Scope)
}

// Status says whether writes reach PostgreSQL, and what waits locally.
func (s *PGStore) Status() PGStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	if s.sp == nil {
		return st
	}
	st.SpoolBytes, st.SpoolRecords = s.sp.size, s.sp.count
	return st
}

func (s *PGStore) flushLoop() {
	t := time.NewTicker(s.opts.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		_ = s.Flush()
	}
}

// Close writes what is pending (to the local buffer when PostgreSQL cannot
// take it) and closes the store.
func (s *PGStore) Close() error {
	if s.readOnly {
		s.pool.Close()
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	err := s.flush(true)
	s.mu.Lock()
	cerr := s.sp.close()
	s.mu.Unlock()
	s.pool.Close()
	if err != nil && s.Status().SpoolRecords > 0 {
		// Kept in the local buffer for the next start.
		err = nil
	}
	return errors.Join(err, cerr)
}

// Append records one batch. Observations join their agent's run; a batch
// with events is written to the local buffer before Append returns.
// Everything reaches PostgreSQL within PGOptions.FlushEvery while it can
// be written.
func (s *PGStore) Append(b Batch) error {
	if s.readOnly {
		return errors.New("the history is open read-only")
	}
	var events []spoolEvent
	for i := range b.Events {
		raw, err := json.Marshal(b.Events[i])
		if err != nil {
			return err
		}
		events = append(events, spoolEvent{JSON: raw})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("the history is closed")
	}
	for _, o := range b.Observations {
		s.addObservation(o)
	}
	if len(events) == 0 {
		s.silences = append(s.silences, b.Silences...)
		for name, raw := range b.Agents {
			if b.AgentsCanWait {
				if s.lazy == nil {
					s.lazy = map[string][]byte{}
				}
				if s.lazyAt.IsZero() {
					s.lazyAt = s.newest
				}
				s.lazy[name] = raw
				continue
			}
			if s.agents == nil {
				s.agents = map[string][]byte{}
			}
			s.agents[name] = raw
			delete(s.lazy, name)
		}
		return nil
	}
	for i := range events {
		s.evSeq++
		events[i].Key = fmt.Sprintf("%s-%016x", s.writer, s.evSeq)
	}
	rec := &spoolRecord{Events: events, Silences: b.Silences, Agents: b.Agents}
	for name := range b.Agents {
		delete(s.agents, name)
		delete(s.lazy, name)
	}
	return s.sp.write(rec)
}

// addObservation joins o to its agent's run or starts a new one; s.mu is
// held.
func (s *PGStore) addObservation(o Observation) {
	if o.Time.After(s.newest) {
		s.newest = o.Time
	}
	cur := s.open[o.Agent]
	switch {
	case cur != nil && o.Time.After(cur.End()) && sameShape(cur, &o):
		absorb(cur, o)
	case cur != nil && !o.Time.After(cur.End()):
		// Late or repeated: a row of its own.
		o.Processes = slices.Clone(o.Processes)
		s.ended = append(s.ended, o)
		return
	default:
		if cur != nil && s.ver[o.Agent] != s.flushed[o.Agent] {
			s.ended = append(s.ended, *cur)
		}
		o.Processes = slices.Clone(o.Processes)
		s.open[o.Agent] = &o
	}
	s.ver[o.Agent]++
}

// pgBatch is one write: local buffer records, or what is in memory.
type pgBatch struct {
	records []spoolRecord
	runs    []Observation // ended runs, then the open ones that changed
	ended   int           // how many of runs ended
	vers    map[string]uint64
	sil     []Silence
	agents  map[string][]byte
	lazy    bool
	dropped int64
}

// Flush writes what is pending to PostgreSQL, after what waits in the local
// buffer; when PostgreSQL cannot take it, it goes to the local buffer.
func (s *PGStore) Flush() error {
	if s.readOnly {
		return nil
	}
	return s.flush(false)
}

func (s *PGStore) flush(closing bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b, err := s.take(closing)
	if err != nil {
		return err
	}
	s.mu.Lock()
	try := closing || s.status.Writable || !time.Now().Before(s.retryAt)
	files, ferr := s.sp.sealed()
	idle := s.status.Writable && ferr == nil && len(files) == 0 && b.empty()
	s.mu.Unlock()
	if idle {
		// Nothing to write (a read's flush between two appends): no
		// transaction. A store that cannot write goes on probing.
		return nil
	}
	if !try {
		// PostgreSQL failed a moment ago: the buffer takes this, and the
		// next try comes after a back-off (a long outage must not re-read
		// a large buffer every second).
		s.mu.Lock()
		s.keep(b, closing)
		s.mu.Unlock()
		return fmt.Errorf("history in PostgreSQL: not written since %s: %s", s.Status().Since.UTC().Format(time.RFC3339), s.Status().LastError)
	}
	werr := ferr
	drained := 0
	// The local buffer first, oldest first, a file per transaction (a long
	// outage leaves many), each deleted once it is in.
	for _, f := range files {
		if werr != nil {
			break
		}
		recs, err := readSpoolFile(f.path)
		if err != nil {
			werr = err
			break
		}
		if werr = s.writeTx(pgBatch{records: recs}); werr == nil {
			s.mu.Lock()
			werr = s.sp.remove([]spoolFile{f}, len(recs))
			s.mu.Unlock()
			drained += len(recs)
		}
	}
	if werr == nil {
		werr = s.writeTx(b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if werr != nil {
		s.keep(b, closing)
		if s.status.Writable || s.status.LastError == "" {
			s.log.Warn("the history cannot be written to PostgreSQL; writes wait in the local buffer", "history", s.where, "error", werr, "buffer", s.opts.SpoolDir)
			s.status.Since = time.Now()
		}
		s.status.Writable, s.status.LastError = false, redact(werr.Error(), "", s.opts.Password)
		s.backoff = min(max(2*s.backoff, time.Second), maxRetryEvery)
		s.retryAt = time.Now().Add(s.backoff)
		return fmt.Errorf("history in PostgreSQL: %w", werr)
	}
	if !s.status.Writable {
		s.log.Info("the history is written to PostgreSQL again; the local buffer was emptied", "history", s.where, "records", drained)
		s.status.Since = time.Now()
	}
	s.status.Writable, s.status.LastError, s.backoff = true, "", 0
	for name, v := range b.vers {
		s.flushed[name] = max(s.flushed[name], v)
	}
	if b.lazy {
		s.lazyAt = s.newest
	}
	s.dropped -= b.dropped
	if !closing && s.newest.Sub(s.compactedAt) >= pgCompactEvery {
		s.compactedAt = s.newest
		cutoff := s.newest.Add(-pgRecentKeep).Truncate(pgSpan)
		s.mu.Unlock()
		cerr := s.compact(cutoff)
		s.mu.Lock()
		if cerr != nil {
			s.log.Warn("moving observations to hourly rows failed; they stay where they are", "error", cerr)
		}
	}
	return err
}

// empty: the batch holds nothing to write.
func (b *pgBatch) empty() bool {
	return len(b.records) == 0 && len(b.runs) == 0 && len(b.sil) == 0 && len(b.agents) == 0 && b.dropped == 0
}

// take collects what is pending; s.wmu is held.
func (s *PGStore) take(closing bool) (pgBatch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sp.seal(); err != nil {
		return pgBatch{}, err
	}
	b := pgBatch{vers: map[string]uint64{}, sil: s.silences, agents: s.agents}
	b.runs = append(b.runs, s.ended...)
	b.ended = len(b.runs)
	for name, o := range s.open {
		if v := s.ver[name]; v != s.flushed[name] {
			c := *o
			c.Processes = slices.Clone(o.Processes)
			b.runs = append(b.runs, c)
			b.vers[name] = v
		}
	}
	s.ended, s.silences, s.agents = nil, nil, nil
	if len(s.lazy) > 0 && (closing || s.newest.Sub(s.lazyAt) >= lazyAgentsEvery) {
		if b.agents == nil {
			b.agents = map[string][]byte{}
		}
		for name, raw := range s.lazy {
			if _, ok := b.agents[name]; !ok {
				b.agents[name] = raw
			}
		}
		s.lazy, b.lazy = nil, true
	}
	if s.dropped > 0 {
		b.dropped = s.dropped
	}
	return b, nil
}

// keep puts what could not be written into the local buffer: the runs that
// ended, silences and resume records; the open runs stay in memory (they
// are written once they end, or once PostgreSQL is back). s.mu is held.
func (s *PGStore) keep(b pgBatch, closing bool) {
	runs := b.runs[:b.ended]
	if closing {
		runs = b.runs
	}
	rec := &spoolRecord{Silences: b.sil, Agents: b.agents}
	if len(runs) > 0 {
		obs := encodeObsList(runs)
		if s.sp.size+int64(len(obs)) > s.opts.SpoolLimit {
			s.dropped += int64(len(runs))
			s.status.Dropped += int64(len(runs))
		} else {
			rec.Obs = obs
		}
	}
	if b.lazy && len(b.agents) > 0 {
		// Written with the others, and not again with the next lazy round.
		s.lazyAt = s.newest
	}
	if rec.Obs == nil && len(rec.Silences) == 0 && len(rec.Agents) == 0 {
		return
	}
	if err := s.sp.write(rec); err != nil {
		s.log.Error("the local buffer of the history cannot be written: these records are lost", "error", err, "buffer", s.opts.SpoolDir,
			"observations", len(runs), "silences", len(b.sil), "agents", len(b.agents))
	}
}

// writeTx writes one batch in a transaction of its own.
func (s *PGStore) writeTx(b pgBatch) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout*3)
	defer cancel()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.write(ctx, tx, b) })
}

// write writes one batch in tx.
func (s *PGStore) write(ctx context.Context, tx pgx.Tx, b pgBatch) error {
	// Observations: the last copy of a run (agent, start) wins.
	type key struct {
		agent string
		t     int64
	}
	runs := map[key]Observation{}
	var order []key
	addRun := func(o Observation) {
		k := key{o.Agent, o.Time.UnixNano()}
		if _, ok := runs[k]; !ok {
			order = append(order, k)
		}
		runs[k] = o
	}
	var events []spoolEvent
	var silences []Silence
	agents := map[string][]byte{}
	for _, r := range b.records {
		if len(r.Obs) > 0 {
			obs, err := decodeObsList(r.Obs)
			if err != nil {
				s.log.Warn("a damaged record in the local buffer is skipped", "error", err)
			}
			for _, o := range obs {
				addRun(o)
			}
		}
		events = append(events, r.Events...)
		silences = append(silences, r.Silences...)
		maps.Copy(agents, r.Agents)
	}
	for _, o := range b.runs {
		addRun(o)
	}
	silences = append(silences, b.sil...)
	maps.Copy(agents, b.agents)
	if b.dropped > 0 {
		raw, _ := json.Marshal(Event{Type: TypeLimit, Time: time.Now(), Reason: fmt.Sprintf(
			"%d observations were dropped: PostgreSQL could not be written and the local buffer was full (%d bytes)", b.dropped, s.opts.SpoolLimit)})
		events = append(events, spoolEvent{Key: fmt.Sprintf("%s-dropped-%d", s.writer, time.Now().UnixNano()), JSON: raw})
	}

	if len(order) > 0 {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS vigil_stage_recent
			(agent text, t timestamptz, until timestamptz, answered boolean, body bytea) ON COMMIT DELETE ROWS`); err != nil {
			return err
		}
		rows := make([][]any, 0, len(order))
		for _, k := range order {
			o := runs[k]
			rows = append(rows, []any{o.Agent, o.Time, o.End(), o.Answered, appendObservation(nil, &o)})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"vigil_stage_recent"}, []string{"agent", "t", "until", "answered", "body"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO vigil_recent (scope_id, agent, t, until, answered, body)
			SELECT $1, agent, t, until, answered, body FROM vigil_stage_recent
			ON CONFLICT (scope_id, agent, t) DO UPDATE SET until = EXCLUDED.until, answered = EXCLUDED.answered, body = EXCLUDED.body`, s.scopeID); err != nil {
			return err
		}
	}
	if len(events) > 0 {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS vigil_stage_event
			(t timestamptz, key text, agent text, body jsonb) ON COMMIT DELETE ROWS`); err != nil {
			return err
		}
		rows := make([][]any, 0, len(events))
		for _, e := range events {
			var ev Event
			if err := json.Unmarshal(e.JSON, &ev); err != nil {
				continue
			}
			rows = append(rows, []any{ev.Time, e.Key, ev.Agent, string(e.JSON)})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"vigil_stage_event"}, []string{"t", "key", "agent", "body"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO vigil_event (scope_id, t, key, agent, body)
			SELECT $1, t, key, agent, body FROM vigil_stage_event ON CONFLICT DO NOTHING`, s.scopeID); err != nil {
			return err
		}
	}
	if len(silences) > 0 {
		batch := &pgx.Batch{}
		for _, si := range silences {
			batch.Queue(`INSERT INTO vigil_silence (scope_id, agent, kind, start, cluster, duration_ns) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT DO NOTHING`, s.scopeID, si.Agent, si.Kind, si.Start, si.Cluster, int64(si.Duration))
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return err
		}
	}
	if len(agents) > 0 {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS vigil_stage_agent
			(agent text, record bytea) ON COMMIT DELETE ROWS`); err != nil {
			return err
		}
		rows := make([][]any, 0, len(agents))
		for _, name := range slices.Sorted(maps.Keys(agents)) {
			rows = append(rows, []any{name, agents[name]})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"vigil_stage_agent"}, []string{"agent", "record"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO vigil_agent (scope_id, agent, record, updated_at)
			SELECT $1, agent, record, clock_timestamp() FROM vigil_stage_agent
			ON CONFLICT (scope_id, agent) DO UPDATE SET record = EXCLUDED.record, updated_at = EXCLUDED.updated_at`, s.scopeID); err != nil {
			return err
		}
	}
	return nil
}

// compact moves the observations of hours that ended before cutoff from
// vigil_recent to hourly vigil_chunk rows, an hour per transaction. One
// monitor of the scope does it at a time (an advisory lock); another finds
// the lock taken and leaves it.
func (s *PGStore) compact(cutoff time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout*6)
	defer cancel()
	for range 48 {
		var oldest *time.Time
		if err := s.pool.QueryRow(ctx, `SELECT min(t) FROM vigil_recent WHERE scope_id = $1 AND t < $2`, s.scopeID, cutoff).Scan(&oldest); err != nil {
			return err
		}
		if oldest == nil {
			return nil
		}
		span := oldest.UTC().Truncate(pgSpan)
		locked := true
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, $2)`, schemaLock, s.scopeID).Scan(&locked); err != nil || !locked {
				return err
			}
			return s.compactSpan(ctx, tx, span)
		})
		if err != nil || !locked {
			return err
		}
	}
	return nil
}

func (s *PGStore) compactSpan(ctx context.Context, tx pgx.Tx, span time.Time) error {
	rows, err := tx.Query(ctx, `DELETE FROM vigil_recent WHERE scope_id = $1 AND t >= $2 AND t < $3
		RETURNING agent, t, answered, body`, s.scopeID, span, span.Add(pgSpan))
	if err != nil {
		return err
	}
	byAgent := map[string][]Observation{}
	for rows.Next() {
		var o Observation
		var body []byte
		if err := rows.Scan(&o.Agent, &o.Time, &o.Answered, &body); err != nil {
			rows.Close()
			return err
		}
		r := reader{b: body}
		o.Time = o.Time.UTC()
		readObservation(&r, &o)
		if r.err == nil {
			byAgent[o.Agent] = append(byAgent[o.Agent], o)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(byAgent) == 0 {
		return nil
	}
	// Chunks already written for this hour (observations that came late).
	old, err := tx.Query(ctx, `SELECT agent, body FROM vigil_chunk WHERE scope_id = $1 AND span = $2`, s.scopeID, span)
	if err != nil {
		return err
	}
	for old.Next() {
		var agent string
		var body []byte
		if err := old.Scan(&agent, &body); err != nil {
			old.Close()
			return err
		}
		if _, ok := byAgent[agent]; !ok {
			continue
		}
		if runs, err := decodeChunk(agent, body); err == nil {
			byAgent[agent] = append(runs, byAgent[agent]...)
		}
	}
	old.Close()
	if err := old.Err(); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS vigil_stage_chunk
		(agent text, until timestamptz, last_answer timestamptz, runs integer, body bytea) ON COMMIT DELETE ROWS`); err != nil {
		return err
	}
	var out [][]any
	for agent, obs := range byAgent {
		sortByTime(obs)
		runs := thin(obs)
		var until time.Time
		var lastAnswer *time.Time
		for _, o := range runs {
			until = maxTime(until, o.End())
			if o.Answered {
				e := o.End()
				lastAnswer = &e
			}
		}
		out = append(out, []any{agent, until, lastAnswer, len(runs), encodeChunk(runs)})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"vigil_stage_chunk"}, []string{"agent", "until", "last_answer", "runs", "body"}, pgx.CopyFromRows(out)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO vigil_chunk (scope_id, agent, span, until, last_answer, runs, body)
		SELECT $1, agent, $2, until, last_answer, runs, body FROM vigil_stage_chunk
		ON CONFLICT (scope_id, agent, span) DO UPDATE SET until = EXCLUDED.until, last_answer = EXCLUDED.last_answer,
			runs = EXCLUDED.runs, body = EXCLUDED.body`, s.scopeID, span); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO vigil_agent (scope_id, agent, last_answer)
		SELECT $1, agent, last_answer FROM vigil_stage_chunk WHERE last_answer IS NOT NULL
		ON CONFLICT (scope_id, agent) DO UPDATE SET last_answer = GREATEST(vigil_agent.last_answer, EXCLUDED.last_answer)`, s.scopeID)
	return err
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// readCtx bounds one read.
func (s *PGStore) readCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.Timeout)
}

// flushForRead writes what is pending, so that a read sees this monitor's
// latest polls; when PostgreSQL cannot be written the read fails anyway.
func (s *PGStore) flushForRead() {
	_ = s.Flush()
}

var (
	farPast   = time.Unix(0, 0).UTC()
	farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
)

func (q Query) bounds() (from, to time.Time) {
	from, to = q.From, q.To
	if from.IsZero() {
		from = farPast
	}
	if to.IsZero() {
		to = farFuture
	}
	return from, to
}

// Observations returns observations matching q (see Store.Observations).
func (s *PGStore) Observations(q Query) ([]Observation, error) {
	s.flushForRead()
	ctx, cancel := s.readCtx()
	defer cancel()
	from, to := q.bounds()
	var out []Observation
	add := func(o Observation) {
		if q.covers(o) {
			out = append(out, o)
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT agent, body FROM vigil_chunk
		WHERE scope_id = $1 AND ($2 = '' OR agent = $2) AND span >= $3 AND span < $4 AND until >= $5`,
		s.scopeID, q.Agent, from.Truncate(pgSpan), to, from)
	if err != nil {
		return nil, fmt.Errorf("history in PostgreSQL: %w", err)
	}
	for rows.Next() {
		var agent string
		var body []byte
		if err := rows.Scan(&agent, &body); err != nil {
			rows.Close()
			return nil, err
		}
		runs, err := decodeChunk(agent, body)
		if err != nil {
			s.log.Warn("an unreadable row of the history is skipped", "agent", agent, "error", err)
			continue
		}
		for _, o := range runs {
			add(o)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history in PostgreSQL: %w", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT agent, t, answered, body FROM vigil_recent
		WHERE scope_id = $1 AND ($2 = '' OR agent = $2) AND t >= $3 AND t < $4 AND until >= $5`,
		s.scopeID, q.Agent, from.Add(-runStep), to, from)
	if err != nil {
		return nil, fmt.Errorf("history in PostgreSQL: %w", err)
	}
	for rows.Next() {
		var o Observation
		var body []byte
		if err := rows.Scan(&o.Agent, &o.Time, &o.Answered, &body); err != nil {
			rows.Close()
			return nil, err
		}
		o.Time = o.Time.UTC()
		r := reader{b: body}
		readObservation(&r, &o)
		if r.err == nil {
			add(o)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history in PostgreSQL: %w", err)
	}
	slices.SortStableFunc(out, func(a, b Observation) int {
		if c := strings.Compare(a.Agent, b.Agent); c != 0 {
			return c
		}
		return a.Time.Compare(b.Time)
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// Events returns events matching q, oldest first.
func (s *PGStore) Events(q Query) ([]Event, error) {
	s.flushForRead()
	ctx, cancel := s.readCtx()
	defer cancel()
	from, to := q.bounds()
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.pool.Query(ctx, `SELECT body::text FROM vigil_event
		WHERE scope_id = $1 AND ($2 = '' OR agent = $2) AND t >= $3 AND t < $4
		ORDER BY t, key LIMIT CASE WHEN $5::bigint < 0 THEN NULL ELSE $5::bigint END`,
		s.scopeID, q.Agent, from, to, limit)
	if err != nil {
		return nil, fmt.Errorf("history in PostgreSQL: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var e Event
		if json.Unmarshal([]byte(raw), &e) == nil {
			out = append(out, e)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history in PostgreSQL: %w", err)
	}
	return out, nil
}

// Agents returns the resume records.
func (s *PGStore) Agents() (map[string][]byte, error) {
	return s.AgentRecords(nil, time.Time{})
}

// AgentRecords returns the resume records of names (all when nil) written
// since since (all when zero), including this store's not yet written.
func (s *PGStore) AgentRecords(names []string, since time.Time) (map[string][]byte, error) {
	s.flushForRead()
	ctx, cancel := s.readCtx()
	defer cancel()
	if since.IsZero() {
		since = farPast
	}
	rows, err := s.pool.Query(ctx, `SELECT agent, record FROM vigil_agent
		WHERE scope_id = $1 AND record IS NOT NULL AND updated_at >= $2 AND ($3::text[] IS NULL OR agent = ANY($3))`,
		s.scopeID, since, names)
	if err != nil {
		return nil, fmt.Errorf("history in PostgreSQL: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var name string
		var rec []byte
		if err := rows.Scan(&name, &rec); err != nil {
			return nil, err
		}
		out[name] = rec
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history in PostgreSQL: %w", err)
	}
	return out, nil
}

// LastAnswers returns, by agent, the time of the latest answered poll.
func (s *PGStore) LastAnswers() (map[string]time.Time, error) {
	_, answers, err := s.LastTimes()
	return answers, err
}

// LastTimes returns the last polls and the last answers in one read: per agent with a resume record, its
// latest run and its latest answered run, each found through the primary
// key (an index scan backwards per agent, not a scan of vigil_recent), and
// the latest answer before the recent rows.
func (s *PGStore) LastTimes() (polls, answers map[string]time.Time, err error) {
	s.flushForRead()
	ctx, cancel := s.readCtx()
	defer cancel()
	// The latest run of each agent (one backward index scan each); only
	// the agents whose latest run was not answered (silent ones, few) need
	// a second look for their latest answered run.
	rows, err := s.pool.Query(ctx, `SELECT a.agent, p.until, p.answered, a.last_answer FROM vigil_agent a
		LEFT JOIN LATERAL (SELECT until, answered FROM vigil_recent r WHERE r.scope_id = a.scope_id AND r.agent = a.agent ORDER BY t DESC LIMIT 1) p ON true
		WHERE a.scope_id = $1`, s.scopeID)
	if err != nil {
		return nil, nil, fmt.Errorf("history in PostgreSQL: %w", err)
	}
	polls, answers = map[string]time.Time{}, map[string]time.Time{}
	var silent []string
	for rows.Next() {
		var name string
		var poll, older *time.Time
		var answered *bool
		if err := rows.Scan(&name, &poll, &answered, &older); err != nil {
			rows.Close()
			return nil, nil, err
		}
		if poll != nil {
			polls[name] = poll.UTC()
			if answered != nil && *answered {
				answers[name] = poll.UTC()
			} else {
				silent = append(silent, name)
			}
		}
		if older != nil {
			answers[name] = maxTime(answers[name], older.UTC())
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if len(silent) == 0 {
		return polls, answers, nil
	}
	rows, err = s.pool.Query(ctx, `SELECT a, q.until FROM unnest($2::text[]) a
		JOIN LATERAL (SELECT until FROM vigil_recent r WHERE r.scope_id = $1 AND r.agent = a AND answered ORDER BY t DESC LIMIT 1) q ON true`,
		s.scopeID, silent)
	if err != nil {
		return nil, nil, fmt.Errorf("history in PostgreSQL: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var t time.Time
		if err := rows.Scan(&name, &t); err != nil {
			return nil, nil, err
		}
		answers[name] = maxTime(answers[name], t.UTC())
	}
	return polls, answers, rows.Err()
}

// LastAnswer returns the time of one agent's latest answered poll (zero
// when none is recorded).
func (s *PGStore) LastAnswer(agent string) (time.Time, error) {
	s.flushForRead()
	ctx, cancel := s.readCtx()
	defer cancel()
	var recent, older *time.Time
	err := s.pool.QueryRow(ctx, `SELECT (SELECT max(until) FROM vigil_recent WHERE scope_id = $1 AND agent = $2 AND answered),
		(SELECT last_answer FROM vigil_agent WHERE scope_id = $1 AND agent = $2)`, s.scopeID, agent).Scan(&recent, &older)
	if err != nil {
		return time.Time{}, fmt.Errorf("history in PostgreSQL: %w", err)
	}
	var t time.Time
	for _, v := range []*time.Time{recent, older} {
		if v != nil {
			t = maxTime(t, v.UTC())
		}
	}
	return t, nil
}

// maxRelayed bounds the reports kept for one agent's owner; older ones go.
const maxRelayed = 100

// PutReport keeps a push agent's report (its raw body) for the monitor
// that owns the agent. It is written at once: the agent is told only once
// it is kept, and resends otherwise.
func (s *PGStore) PutReport(agent string, seq int64, raw []byte) error {
	ctx, cancel := s.readCtx()
	defer cancel()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO vigil_report (scope_id, agent, seq, body) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			s.scopeID, agent, seq, raw); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM vigil_report WHERE scope_id = $1 AND agent = $2 AND seq <= (
			SELECT seq FROM vigil_report WHERE scope_id = $1 AND agent = $2 ORDER BY seq DESC OFFSET $3 LIMIT 1)`, s.scopeID, agent, maxRelayed)
		return err
	})
}

// TakeReports returns and forgets the reports kept for agent, oldest first.
func (s *PGStore) TakeReports(agent string) ([][]byte, error) {
	ctx, cancel := s.readCtx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `DELETE FROM vigil_report WHERE scope_id = $1 AND agent = $2 RETURNING seq, body`, s.scopeID, agent)
	if err != nil {
		return nil, err
	}
	type kept struct {
		seq  int64
		body []byte
	}
	var all []kept
	for rows.Next() {
		var k kept
		if err := rows.Scan(&k.seq, &k.body); err != nil {
			rows.Close()
			return nil, err
		}
		all = append(all, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b kept) int { return int(a.seq - b.seq) })
	out := make([][]byte, len(all))
	for i, k := range all {
		out[i] = k.body
	}
	return out, nil
}

// Silences returns every known past silence.
func (s *PGStore) Silences() ([]Silence, error) {
	s.flushForRead()
	ctx, cancel := s.readCtx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT agent, cluster, kind, start, duration_ns FROM vigil_silence
		WHERE scope_id = $1 ORDER BY start`, s.scopeID)
	if err != nil {
		return nil, fmt.Errorf("history in PostgreSQL: %w", err)
	}
	defer rows.Close()
	var out []Silence
	for rows.Next() {
		var si Silence
		var d int64
		if err := rows.Scan(&si.Agent, &si.Cluster, &si.Kind, &si.Start, &d); err != nil {
			return nil, err
		}
		si.Start, si.Duration = si.Start.UTC(), time.Duration(d)
		out = append(out, si)
	}
	return out, rows.Err()
}

// Prune deletes this scope's observations and events older than the
// retention, and drops the daily partitions older than every scope's
// retention (a scope that keeps everything keeps them all).
func (s *PGStore) Prune(now time.Time) error {
	if s.readOnly {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout*6)
	defer cancel()
	var keep any
	if s.opts.Retention > 0 {
		keep = s.opts.Retention
	}
	if _, err := s.pool.Exec(ctx, `UPDATE vigil_scope SET retention = $2, seen_at = now() WHERE id = $1`, s.scopeID, keep); err != nil {
		return err
	}
	if err := ensurePartitions(ctx, s.pool, now, now); err != nil {
		return err
	}
	if s.opts.Retention < 0 {
		return nil
	}
	cutoff := now.Add(-s.opts.Retention)
	for _, q := range []string{
		`DELETE FROM vigil_chunk WHERE scope_id = $1 AND span < $2`,
		`DELETE FROM vigil_event WHERE scope_id = $1 AND t < $2`,
		`DELETE FROM vigil_recent WHERE scope_id = $1 AND until < $2`,
	} {
		if _, err := s.pool.Exec(ctx, q, s.scopeID, cutoff.Add(-pgSpan)); err != nil {
			return err
		}
	}
	// Partitions every scope seen in the last 30 days has done with.
	var longest *time.Duration
	var forever bool
	if err := s.pool.QueryRow(ctx, `SELECT max(retention), bool_or(retention IS NULL) FROM vigil_scope
		WHERE seen_at > now() - interval '30 days'`).Scan(&longest, &forever); err != nil {
		return err
	}
	if forever || longest == nil {
		return nil
	}
	dropBefore := now.Add(-*longest).Truncate(partitionDay)
	for _, table := range []string{"vigil_chunk", "vigil_event"} {
		rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1`, table)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, name := range names {
			day, err := time.Parse("20060102", strings.TrimPrefix(name, table+"_"))
			if err != nil || day.Add(partitionDay).After(dropBefore) {
				continue
			}
			if _, err := s.pool.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{name}.Sanitize()); err != nil {
				return err
			}
		}
	}
	return nil
}
