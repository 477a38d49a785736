// Package history keeps the monitor's observations, state changes, actions,
// the agents' own events and past silences in an embedded store, so that
// they can be queried by agent and time and so that the engine resumes where
// it stopped.
//
// The store is a bbolt file (history.db in the folder given to Open): pure
// Go, one file. Only one process can open a store at a time.
//
// # What a crash loses
//
// An Append that carries events writes them, with its silences and resume
// records, to a journal before it returns (see wal.go), so a kill -9 loses
// no acknowledged event and the resume records match the events; Open
// writes what the journal holds and the store does not. The journal is not
// fsync'd unless Options.SyncEvents: a power loss loses at most the last
// second of events. Everything appended (observations, silences, resume
// records, events) is kept in memory and committed together at most a
// second later (Options.FlushEvery), so a crash loses at most the last
// second of observations. After a crash, the resume records are those of
// the last commit or the journal. A resume record given with
// Batch.AgentsCanWait (the engine's once-a-minute refresh of a quiet agent)
// may be written up to 10 minutes late: after a crash the engine reads the
// time of the agent's last answer from the observations.
//
// # Layout (format version 3)
//
//	meta            "version"                 → "3"
//	events          time(8) seq(8)            → Event (JSON)
//	eventsByAgent   agent 0x00 time(8) seq(8) → (empty)
//	log             segment(8) → bucket: seq(8) → kind(1) time(8) flags(1) len(agent) agent body
//	chunks          span(8) agent             → the agent's runs of that span (binary, see logentry.go)
//	silences        agent 0x00 time(8) seq(8) → Silence (JSON)
//	agents          agent                     → the engine's resume record
//
// A commit writes the rightmost pages of the time-ordered buckets only
// (events and the log), not a page per agent: every observation (binary)
// and one block (see entryBlock) of the commit's resume records and the
// eventsByAgent entries of its events, compressed together, are appended to
// the log, in the segment of the 10-minute span of the newest observation
// at commit. Once a segment is more than 2 minutes
// behind the newest observation it is compacted: its observations are
// turned into runs (see runs.go: one record per agent per minute while
// only RTT, lag and budget change, keeping min/max/last of RTT and lag, and
// one record at every other change), written as one chunk per agent and
// span (span-major keys, so the chunks of a span are written together), its
// event entries go to eventsByAgent and its resume records to agents (in
// key order), and the segment is deleted. Readers merge the agent-keyed
// buckets with the log: the writer keeps an index of the log by agent in
// memory, read-only readers scan it.
//
// Version 2 (December 2026) kept observations in the log as JSON, and
// wrote event index entries and resume records to their buckets at once;
// version 1 (before) kept every observation under
// observations/agent 0x00 time(8) seq(8). Open converts either in place,
// OpenReadOnly reads them as they are.
package history

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// DefaultRetention is how long records are kept when Options.Retention is 0.
const DefaultRetention = 30 * 24 * time.Hour

// FileName is the store's file inside its folder.
const FileName = "history.db"

// FormatVersion is the layout this package writes.
const FormatVersion = 3

const (
	// chunkSpan is the time one chunk record covers, and one log segment.
	chunkSpan = 10 * time.Minute
	// logKeep is how long a closed segment stays in the log before it is
	// compacted (observations may come a little late).
	logKeep = 2 * time.Minute
	// lazyAgentsEvery bounds how late a resume record given with
	// AgentsCanWait is written.
	lazyAgentsEvery = 10 * time.Minute
	// gatherEvents is how long, with Options.SyncEvents, the first append
	// with events waits for others to share its fsync.
	gatherEvents = 2 * time.Millisecond
)

var (
	bMeta          = []byte("meta")
	bEvents        = []byte("events")
	bEventsAgent   = []byte("eventsByAgent")
	bLog           = []byte("log")
	bChunks        = []byte("chunks")
	bSilences      = []byte("silences")
	bAgents        = []byte("agents")
	bObservationsV = []byte("observations") // format version 1
	kVersion       = []byte("version")
)

// ErrInUse is returned by Open when another process holds the store.
var ErrInUse = errors.New("the history is in use by another process")

// Options tune a store.
type Options struct {
	// Retention: records older than this are deleted by Prune (0: 30 days,
	// negative: kept forever). Resume records and silences are kept.
	Retention time.Duration
	// NoSync skips fsync (benchmarks only: a crash can lose acknowledged writes).
	NoSync bool
	// FlushEvery is how often appends without events are committed (0: a
	// second; negative: only by Flush, Close and appends with events).
	FlushEvery time.Duration
	// SyncEvents makes an Append with events return only once they are
	// fsync'd (in the journal), so that a machine that loses power keeps
	// them too; without it, they survive the process being killed, and a
	// power loss loses at most the last second of them (see wal.go).
	SyncEvents bool
	// GatherEvents is how long, with SyncEvents, the first append with
	// events waits for others to share its fsync (0: 2 ms; negative: no
	// wait).
	GatherEvents time.Duration
}

// Store is an open history.
type Store struct {
	db        *bolt.DB
	retention time.Duration
	readOnly  bool
	// logVersion is the format of the log's entries (2 in a store of
	// format 2 opened read-only).
	logVersion int
	wal        *wal // the journal of appends with events (writer only)
	// journalEvents are the events in the journal and not in the store
	// (read-only: a writer that was killed), by time.
	journalEvents []Event

	mu      sync.Mutex // what follows, until wmu
	pending pendingBatch
	lazy    map[string][]byte // resume records that can wait
	gen     uint64            // the generation pending collects
	newest  time.Time         // the newest observation appended
	bgErr   error             // a failed commit nobody waited for
	closed  bool

	wmu       sync.Mutex // one commit at a time; what follows
	done      uint64     // the last generation committed
	failedGen uint64
	failedErr error
	seq       uint64    // the log's last sequence number
	evSeq     uint64    // the events bucket's sequence
	lazyAt    time.Time // when lazy records were last written (newest then)

	cmu sync.Mutex // one compaction at a time

	idxMu sync.RWMutex
	// The log by agent (writer only): observations, event keys, the
	// newest resume record.
	index     map[string][]logRef
	evIndex   map[string][]evRef
	agentRefs map[string]logRef

	stop chan struct{}
	wg   sync.WaitGroup
}

type logRef struct {
	seg, seq uint64
	t        int64
}

// evRef is an event whose eventsByAgent entry is still in the log.
type evRef struct {
	seg uint64
	key [16]byte
}

type pendingBatch struct {
	obs    []Observation
	events []Event
	// eventJSON is each event's JSON, when it was encoded for the journal.
	eventJSON [][]byte
	silences  []Silence
	agents    map[string][]byte
	// walSeq is the last journal record whose content is here (0: none).
	walSeq uint64
}

func (p *pendingBatch) empty() bool {
	return len(p.obs) == 0 && len(p.events) == 0 && len(p.silences) == 0 && len(p.agents) == 0
}

// Open opens (or creates) the history in dir, converting a store of an
// earlier format in place.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create history folder: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: opts.NoSync,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%s: %w", path, ErrInUse)
		}
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bMeta, bEvents, bEventsAgent, bLog, bChunks, bSilences, bAgents} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = migrate(db)
	}
	r := opts.Retention
	if r == 0 {
		r = DefaultRetention
	}
	gather := opts.GatherEvents
	if gather == 0 {
		gather = gatherEvents
	}
	s := &Store{db: db, retention: r, gen: 1, logVersion: FormatVersion, stop: make(chan struct{}),
		index: map[string][]logRef{}, evIndex: map[string][]evRef{}, agentRefs: map[string]logRef{}}
	if err == nil {
		err = s.loadLog()
	}
	if err == nil {
		s.wal, err = openWAL(dir, opts.SyncEvents, gather)
	}
	if err == nil {
		err = s.replayWAL()
	}
	if err != nil {
		if s.wal != nil {
			_ = s.wal.close()
		}
		_ = db.Close()
		return nil, fmt.Errorf("prepare history %s: %w", path, err)
	}
	every := opts.FlushEvery
	if every == 0 {
		every = time.Second
	}
	if every > 0 {
		s.wg.Go(func() { s.flushLoop(every) })
	}
	return s, nil
}

// loadLog reads the log's index, its last sequence number and its newest
// observation, and the events' sequence.
func (s *Store) loadLog() error {
	return s.db.View(func(tx *bolt.Tx) error {
		s.evSeq = tx.Bucket(bEvents).Sequence()
		s.forEachLog(tx, blockIndex, func(h logHeader, seg, seq uint64) {
			s.indexEntry(h, seg, seq)
			if t := time.Unix(0, h.t); h.kind == entryObs && t.After(s.newest) {
				s.newest = t
			}
		})
		// The last sequence number, from the keys (an unreadable entry counts).
		return tx.Bucket(bLog).ForEachBucket(func(seg []byte) error {
			if k, _ := tx.Bucket(bLog).Bucket(seg).Cursor().Last(); k != nil {
				s.seq = max(s.seq, binary.BigEndian.Uint64(k))
			}
			return nil
		})
	})
}

// indexEntry adds one log entry to the writer's index (idxMu held or not
// shared yet).
func (s *Store) indexEntry(h logHeader, seg, seq uint64) {
	switch h.kind {
	case entryObs:
		s.index[h.agent] = append(s.index[h.agent], logRef{seg: seg, seq: seq, t: h.t})
	case entryEvent:
		if len(h.body) == 16 {
			s.evIndex[h.agent] = append(s.evIndex[h.agent], evRef{seg: seg, key: [16]byte(h.body)})
		}
	case entryAgent:
		s.agentRefs[h.agent] = logRef{seg: seg, seq: seq}
	}
}

func (s *Store) flushLoop(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if err := s.Flush(); err != nil {
			s.mu.Lock()
			s.bgErr = err
			s.mu.Unlock()
		}
	}
}

// Close writes what is pending and closes the store.
func (s *Store) Close() error {
	if s.readOnly {
		return s.db.Close()
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
	err := s.commit(true)
	return errors.Join(err, s.wal.close(), s.db.Close())
}

// Path is the store's file.
func (s *Store) Path() string { return s.db.Path() }

func timeKey(t time.Time, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano()))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

func agentKey(agent string, t time.Time, seq uint64) []byte {
	return append(append([]byte(agent), 0), timeKey(t, seq)...)
}

func keyTime(k []byte) time.Time {
	if len(k) < 16 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[len(k)-16:])))
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// spanOf is the start of t's chunk span, in Unix nanoseconds (0 before 1970).
func spanOf(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.Truncate(chunkSpan).UnixNano())
}

func chunkKey(span uint64, agent string) []byte { return append(u64(span), agent...) }

// Append records one batch. It returns at once; the batch is committed
// within Options.FlushEvery (an error of that commit is returned by a later
// Append). A batch with events is first written to the journal (see
// wal.go), with its silences and resume records, so that it survives the
// process being killed once Append returned (with Options.SyncEvents, a
// power loss too).
func (s *Store) Append(b Batch) error {
	if s.readOnly {
		return errors.New("the history is open read-only")
	}
	var rec *walRecord
	var eventJSON [][]byte
	if len(b.Events) > 0 {
		eventJSON = make([][]byte, len(b.Events))
		for i := range b.Events {
			raw, err := json.Marshal(b.Events[i])
			if err != nil {
				return err
			}
			eventJSON[i] = raw
		}
		rec = &walRecord{events: eventJSON, agents: b.Agents}
		for _, si := range b.Silences {
			raw, err := json.Marshal(si)
			if err != nil {
				return err
			}
			rec.silences = append(rec.silences, raw)
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("the history is closed")
	}
	p := &s.pending
	p.obs = append(p.obs, b.Observations...)
	for _, o := range b.Observations {
		if o.Time.After(s.newest) {
			s.newest = o.Time
		}
	}
	if len(b.Events) > 0 {
		// Events before this batch's have their JSON too, or none has.
		for len(p.eventJSON) < len(p.events) {
			p.eventJSON = append(p.eventJSON, nil)
		}
		p.eventJSON = append(p.eventJSON, eventJSON...)
	}
	p.events = append(p.events, b.Events...)
	p.silences = append(p.silences, b.Silences...)
	for name, raw := range b.Agents {
		if b.AgentsCanWait && len(b.Events) == 0 {
			if s.lazy == nil {
				s.lazy = map[string][]byte{}
			}
			s.lazy[name] = raw
			continue
		}
		if p.agents == nil {
			p.agents = map[string][]byte{}
		}
		p.agents[name] = raw
		delete(s.lazy, name)
	}
	g := s.gen
	err := s.bgErr
	s.bgErr = nil
	if rec == nil {
		s.mu.Unlock()
		return err
	}
	werr := s.wal.write(rec)
	if werr == nil {
		p.walSeq = rec.seq
	}
	s.mu.Unlock()
	if werr != nil {
		// The journal cannot be written (a full disk): commit now instead.
		return errors.Join(err, s.commitGen(g, false))
	}
	if s.wal.sync {
		return errors.Join(err, s.wal.fsync(rec.seq))
	}
	return err
}

// Flush commits what is pending and compacts what is due.
func (s *Store) Flush() error {
	if s.readOnly {
		return nil
	}
	s.mu.Lock()
	lazy := len(s.lazy) > 0 && s.newest.Sub(s.lazyAt) >= lazyAgentsEvery
	s.mu.Unlock()
	if err := s.commit(lazy); err != nil {
		return err
	}
	return s.compact(false)
}

// commit commits what is pending now (and the resume records that can
// wait, with lazy).
func (s *Store) commit(lazy bool) error {
	s.mu.Lock()
	g := s.gen
	s.mu.Unlock()
	return s.commitGen(g, lazy)
}

// commitGen returns once generation g is committed.
func (s *Store) commitGen(g uint64, lazy bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.done >= g && !lazy {
		if s.failedGen == g {
			return s.failedErr
		}
		return nil
	}
	s.mu.Lock()
	p, cur, newest := s.pending, s.gen, s.newest
	s.pending = pendingBatch{}
	s.gen++
	// New journal records go to the other file; this one is emptied once
	// the store holds its records.
	journal := s.wal.swap()
	var agents map[string][]byte
	if lazy {
		agents, s.lazy = s.lazy, nil
	}
	s.mu.Unlock()
	if lazy {
		s.lazyAt = newest
	}
	err := s.write(p, agents, newest)
	if err == nil && p.walSeq > 0 {
		err = s.wal.empty(journal)
	}
	s.done = cur
	if err != nil {
		s.failedGen, s.failedErr = cur, err
	}
	return err
}

// write commits one pending batch (wmu held): events to their bucket, and
// everything else to the log: the observations, and in one compressed
// block the events' index entries and the resume records.
func (s *Store) write(p pendingBatch, lazy map[string][]byte, newest time.Time) error {
	if p.empty() && len(lazy) == 0 {
		return nil
	}
	seg := spanOf(newest)
	// Resume records: those that could wait, unless a newer one is here.
	records := p.agents
	if len(lazy) > 0 {
		records = make(map[string][]byte, len(lazy)+len(p.agents))
		for _, m := range []map[string][]byte{lazy, p.agents} {
			for name, raw := range m {
				records[name] = raw
			}
		}
	}
	names := make([]string, 0, len(records))
	for name := range records {
		names = append(names, name)
	}
	sort.Strings(names)
	evSeq := s.evSeq
	evKeys, evRaw := make([][]byte, len(p.events)), make([][]byte, len(p.events))
	var block, blockRecords []byte
	for i, e := range p.events {
		var raw []byte
		if i < len(p.eventJSON) {
			raw = p.eventJSON[i]
		}
		if raw == nil {
			var err error
			if raw, err = json.Marshal(e); err != nil {
				return err
			}
		}
		evSeq++
		evKeys[i], evRaw[i] = timeKey(e.Time, evSeq), raw
		block = appendSub(block, entryEvent, e.Agent, evKeys[i])
	}
	for _, name := range names {
		block = appendSub(block, entryAgent, name, nil)
		blockRecords = appendSub(blockRecords, entryAgent, name, records[name])
	}
	// The block first: the next commit appends to the leaf of the small
	// entries that follow it, instead of rewriting the block's pages.
	entries := make([][]byte, 0, len(p.obs)+1)
	if len(block) > 0 {
		entries = append(entries, blockEntry(block, blockRecords))
	}
	first := uint64(len(entries)) // the first observation's place
	for i := range p.obs {
		entries = append(entries, obsEntry(&p.obs[i]))
	}
	seq := s.seq
	err := s.db.Update(func(tx *bolt.Tx) error {
		if len(p.events) > 0 {
			ev := tx.Bucket(bEvents)
			ev.FillPercent = 0.9
			for i := range evKeys {
				if err := ev.Put(evKeys[i], evRaw[i]); err != nil {
					return err
				}
			}
			if err := ev.SetSequence(evSeq); err != nil {
				return err
			}
		}
		if p.walSeq > 0 {
			if err := tx.Bucket(bMeta).Put(kWalSeq, u64(p.walSeq)); err != nil {
				return err
			}
		}
		if len(entries) > 0 {
			lb, err := tx.Bucket(bLog).CreateBucketIfNotExists(u64(seg))
			if err != nil {
				return err
			}
			lb.FillPercent = 1
			for i, v := range entries {
				if err := lb.Put(u64(s.seq+uint64(i)+1), v); err != nil {
					return err
				}
			}
		}
		sb := tx.Bucket(bSilences)
		for _, si := range p.silences {
			n, _ := sb.NextSequence()
			raw, err := json.Marshal(si)
			if err != nil {
				return err
			}
			if err := sb.Put(agentKey(si.Agent, si.Start, n), raw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.seq, s.evSeq = seq+uint64(len(entries)), evSeq
	s.idxMu.Lock()
	for i := range p.obs {
		o := &p.obs[i]
		s.index[o.Agent] = append(s.index[o.Agent], logRef{seg: seg, seq: seq + first + uint64(i) + 1, t: o.Time.UnixNano()})
	}
	if len(block) > 0 {
		subs, _ := blockEntries(block)
		for _, h := range subs {
			s.indexEntry(h, seg, seq+1)
		}
	}
	s.idxMu.Unlock()
	return nil
}

// Query selects records by agent ("" for all) and time: From inclusive, To
// exclusive, zero for unbounded. Limit 0 means no limit; records come oldest
// first.
type Query struct {
	Agent    string
	From, To time.Time
	Limit    int
}

func (q Query) inRange(t time.Time) (before, after bool) {
	return !q.From.IsZero() && t.Before(q.From), !q.To.IsZero() && !t.Before(q.To)
}

// covers: an observation (a run of polls from Time to End) has a poll in q's range.
func (q Query) covers(o Observation) bool {
	return (q.To.IsZero() || o.Time.Before(q.To)) && (q.From.IsZero() || !o.End().Before(q.From))
}

// Events returns events matching q.
func (s *Store) Events(q Query) ([]Event, error) {
	if !s.readOnly {
		if err := s.commit(false); err != nil {
			return nil, err
		}
		s.idxMu.RLock()
		defer s.idxMu.RUnlock()
	}
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		ev := tx.Bucket(bEvents)
		add := func(raw []byte) bool {
			var e Event
			if raw != nil && json.Unmarshal(raw, &e) == nil {
				out = append(out, e)
			}
			return q.Limit > 0 && len(out) >= q.Limit
		}
		if q.Agent == "" {
			c := ev.Cursor()
			var k, v []byte
			if q.From.IsZero() {
				k, v = c.First()
			} else {
				k, v = c.Seek(timeKey(q.From, 0))
			}
			for ; k != nil; k, v = c.Next() {
				if _, after := q.inRange(keyTime(k)); after {
					break
				}
				if add(v) {
					break
				}
			}
			return nil
		}
		// The agent's keys: in eventsByAgent, and those still in the log.
		var pending [][]byte
		keep := func(k []byte) {
			if before, after := q.inRange(keyTime(k)); !before && !after {
				pending = append(pending, k)
			}
		}
		if s.readOnly {
			s.forEachLog(tx, blockIndex, func(h logHeader, _, _ uint64) {
				if h.kind == entryEvent && h.agent == q.Agent && len(h.body) == 16 {
					keep(bytes.Clone(h.body))
				}
			})
		} else {
			for _, r := range s.evIndex[q.Agent] {
				k := r.key
				keep(k[:])
			}
		}
		slices.SortFunc(pending, bytes.Compare)
		prefix := append([]byte(q.Agent), 0)
		c := tx.Bucket(bEventsAgent).Cursor()
		start := prefix
		if !q.From.IsZero() {
			start = agentKey(q.Agent, q.From, 0)
		}
		k, _ := c.Seek(start)
		next := func() []byte {
			if k == nil || !bytes.HasPrefix(k, prefix) {
				return nil
			}
			key := k[len(prefix):]
			k, _ = c.Next()
			return key
		}
		indexed, i := next(), 0
		for {
			var key []byte
			switch {
			case indexed == nil && i >= len(pending):
				return nil
			case indexed == nil || (i < len(pending) && bytes.Compare(pending[i], indexed) < 0):
				key = pending[i]
				i++
			case i < len(pending) && bytes.Equal(pending[i], indexed):
				key = indexed
				i++
				indexed = next()
			default:
				key = indexed
				indexed = next()
			}
			if _, after := q.inRange(keyTime(key)); after {
				return nil
			}
			if add(ev.Get(key)) {
				return nil
			}
		}
	})
	if err == nil && len(s.journalEvents) > 0 && (q.Limit == 0 || len(out) < q.Limit) {
		for _, e := range s.journalEvents {
			if before, after := q.inRange(e.Time); !before && !after && (q.Agent == "" || e.Agent == q.Agent) {
				out = append(out, e)
			}
		}
		sort.SliceStable(out, func(a, b int) bool { return out[a].Time.Before(out[b].Time) })
		if q.Limit > 0 && len(out) > q.Limit {
			out = out[:q.Limit]
		}
	}
	return out, err
}

// Observations returns observations matching q: for one agent oldest first,
// for every agent by agent and then time. Records older than a few minutes
// are runs of polls (see Observation.Until); a run is returned when one of
// its polls is in the range.
func (s *Store) Observations(q Query) ([]Observation, error) {
	if !s.readOnly {
		if err := s.commit(false); err != nil {
			return nil, err
		}
		s.idxMu.RLock()
		defer s.idxMu.RUnlock()
	}
	var out []Observation
	err := s.db.View(func(tx *bolt.Tx) error {
		add := func(o Observation) {
			if q.covers(o) && (q.Agent == "" || o.Agent == q.Agent) {
				out = append(out, o)
			}
		}
		if err := readV1(tx, q, add); err != nil {
			return err
		}
		// While a segment is compacted in passes (or after a crash
		// between them), a poll is in a chunk and still in the log: the
		// log's copy of a poll its agent's chunks cover is left out.
		chunked := map[string]time.Time{}
		readChunks(tx, q, func(o Observation) {
			if o.End().After(chunked[o.Agent]) {
				chunked[o.Agent] = o.End()
			}
			add(o)
		})
		fromLog := func(o Observation) {
			if end, ok := chunked[o.Agent]; !ok || o.Time.After(end) {
				add(o)
			}
		}
		if q.Agent != "" && !s.readOnly {
			s.readIndexed(tx, q, fromLog)
		} else {
			s.scanLog(tx, func(h logHeader) bool {
				return q.Agent == "" || h.agent == q.Agent
			}, fromLog)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if q.Agent == "" {
		sort.SliceStable(out, func(i, j int) bool {
			if out[i].Agent != out[j].Agent {
				return out[i].Agent < out[j].Agent
			}
			return out[i].Time.Before(out[j].Time)
		})
	} else {
		sortByTime(out)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// readV1 reads observations kept in format version 1 (a store opened
// read-only before any monitor converted it).
func readV1(tx *bolt.Tx, q Query, add func(Observation)) error {
	b := tx.Bucket(bObservationsV)
	if b == nil {
		return nil
	}
	c := b.Cursor()
	var prefix []byte
	k, v := c.First()
	if q.Agent != "" {
		prefix = append([]byte(q.Agent), 0)
		k, v = c.Seek(prefix)
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var o Observation
		if json.Unmarshal(v, &o) == nil {
			add(o)
		}
	}
	return nil
}

// readChunks reads the chunks of the spans q covers.
func readChunks(tx *bolt.Tx, q Query, add func(Observation)) {
	b := tx.Bucket(bChunks)
	if b == nil {
		return
	}
	decode := func(k, v []byte) {
		if runs, err := decodeChunk(string(k[8:]), v); err == nil {
			for _, o := range runs {
				add(o)
			}
		}
	}
	c := b.Cursor()
	from := uint64(0)
	if !q.From.IsZero() {
		from = spanOf(q.From)
	}
	if q.Agent == "" {
		for k, v := c.Seek(u64(from)); k != nil; k, v = c.Next() {
			if !q.To.IsZero() && binary.BigEndian.Uint64(k) > spanOf(q.To) {
				break
			}
			decode(k, v)
		}
		return
	}
	if q.From.IsZero() {
		k, _ := c.First()
		if k == nil {
			return
		}
		from = binary.BigEndian.Uint64(k)
	}
	to := spanOf(q.To)
	if q.To.IsZero() {
		k, _ := c.Last()
		if k == nil {
			return
		}
		to = binary.BigEndian.Uint64(k)
	}
	for span := from; span <= to; span += uint64(chunkSpan) {
		if k := chunkKey(span, q.Agent); b.Get(k) != nil {
			decode(k, b.Get(k))
		}
	}
}

// forEachLog calls fn with every entry of the log, in order, those of
// blocks one by one as blocks says.
func (s *Store) forEachLog(tx *bolt.Tx, blocks blockMode, fn func(h logHeader, seg, seq uint64)) {
	lb := tx.Bucket(bLog)
	if lb == nil {
		return
	}
	parse := parseLogEntry
	if s.logVersion == 2 {
		parse = parseLogValueV2
	}
	_ = lb.ForEachBucket(func(seg []byte) error {
		id := binary.BigEndian.Uint64(seg)
		forEachInSegment(lb.Bucket(seg), parse, blocks, func(h logHeader, seq uint64) { fn(h, id, seq) })
		return nil
	})
}

// forEachInSegment calls fn with every entry of one segment of the log,
// those of blocks one by one as blocks says; an unreadable entry is
// skipped.
func forEachInSegment(seg *bolt.Bucket, parse func([]byte) (logHeader, bool), blocks blockMode, fn func(h logHeader, seq uint64)) {
	_ = seg.ForEach(func(k, v []byte) error {
		h, ok := parse(v)
		if !ok {
			return nil
		}
		seq := binary.BigEndian.Uint64(k)
		_ = h.expand(blocks, func(sub logHeader) { fn(sub, seq) })
		return nil
	})
}

// scanLog reads the log's observations whose header passes keep.
func (s *Store) scanLog(tx *bolt.Tx, keep func(logHeader) bool, add func(Observation)) {
	s.forEachLog(tx, skipBlocks, func(h logHeader, _, _ uint64) {
		if h.kind != entryObs || !keep(h) {
			return
		}
		if o, ok := h.observation(); ok {
			add(o)
		}
	})
}

// logEntryAt reads one entry of the log (format 3).
func logEntryAt(tx *bolt.Tx, r logRef) (logHeader, bool) {
	seg := tx.Bucket(bLog).Bucket(u64(r.seg))
	if seg == nil {
		return logHeader{}, false
	}
	return parseLogEntry(seg.Get(u64(r.seq)))
}

// readIndexed reads one agent's observations in the log through the index
// (idxMu held).
func (s *Store) readIndexed(tx *bolt.Tx, q Query, add func(Observation)) {
	for _, r := range s.index[q.Agent] {
		t := time.Unix(0, r.t)
		if before, after := q.inRange(t); before || after {
			continue
		}
		h, ok := logEntryAt(tx, r)
		if !ok {
			continue
		}
		if o, ok := h.observation(); ok {
			add(o)
		}
	}
}

// Agents returns the engine's resume records.
func (s *Store) Agents() (map[string][]byte, error) {
	out := map[string][]byte{}
	if !s.readOnly {
		s.idxMu.RLock()
		defer s.idxMu.RUnlock()
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bAgents).ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
		if err != nil {
			return err
		}
		// The newer ones still in the log (their values are decompressed
		// copies).
		if s.readOnly {
			s.forEachLog(tx, blockAll, func(h logHeader, _, _ uint64) {
				if h.kind == entryAgent {
					out[h.agent] = h.body
				}
			})
			return nil
		}
		// Each block once, for the records it is the newest of.
		blocks := map[logRef]bool{}
		for _, r := range s.agentRefs {
			blocks[r] = true
		}
		for r := range blocks {
			h, ok := logEntryAt(tx, r)
			if !ok {
				continue
			}
			err := h.expand(blockAll, func(sub logHeader) {
				if sub.kind == entryAgent && s.agentRefs[sub.agent] == r {
					out[sub.agent] = sub.body
				}
			})
			if err != nil {
				return fmt.Errorf("resume records in the log: %w", err)
			}
		}
		return nil
	})
	s.mu.Lock()
	for _, m := range []map[string][]byte{s.lazy, s.pending.agents} {
		for name, raw := range m {
			out[name] = bytes.Clone(raw)
		}
	}
	s.mu.Unlock()
	return out, err
}

// LastAnswers returns, for every agent with a resume record, the time of
// its latest answered poll.
func (s *Store) LastAnswers() (map[string]time.Time, error) {
	if err := s.commit(false); err != nil && !s.readOnly {
		return nil, err
	}
	names, err := s.Agents()
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	if !s.readOnly {
		s.idxMu.RLock()
		defer s.idxMu.RUnlock()
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if s.readOnly {
			s.forEachLog(tx, skipBlocks, func(h logHeader, _, _ uint64) {
				if _, ok := names[h.agent]; ok && h.kind == entryObs && h.answered {
					if t := time.Unix(0, h.t); t.After(out[h.agent]) {
						out[h.agent] = t
					}
				}
			})
		} else {
			for name := range names {
				refs := s.index[name]
				for i := len(refs) - 1; i >= 0; i-- {
					if h, ok := logEntryAt(tx, refs[i]); ok && h.answered {
						if t := time.Unix(0, h.t); t.After(out[name]) {
							out[name] = t
						}
						break
					}
				}
			}
		}
		missing := 0
		for name := range names {
			if _, ok := out[name]; !ok {
				missing++
			}
		}
		// The chunks, newest span first, for the agents the log did not name.
		if tx.Bucket(bChunks) == nil {
			return readV1Last(tx, names, out)
		}
		c := tx.Bucket(bChunks).Cursor()
		for k, v := c.Last(); k != nil && missing > 0; k, v = c.Prev() {
			name := string(k[8:])
			if _, ok := names[name]; !ok {
				continue
			}
			if _, ok := out[name]; ok {
				continue
			}
			runs, err := decodeChunk(name, v)
			if err != nil {
				continue
			}
			for i := len(runs) - 1; i >= 0; i-- {
				if runs[i].Answered {
					out[name] = runs[i].End()
					missing--
					break
				}
			}
		}
		return readV1Last(tx, names, out)
	})
	return out, err
}

// readV1Last finds last answers in a format 1 bucket (read-only stores).
func readV1Last(tx *bolt.Tx, names map[string][]byte, out map[string]time.Time) error {
	b := tx.Bucket(bObservationsV)
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for name := range names {
		if _, ok := out[name]; ok {
			continue
		}
		prefix := append([]byte(name), 0)
		k, _ := c.Seek(append([]byte(name), 1))
		var v []byte
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			var o Observation
			if json.Unmarshal(v, &o) == nil && o.Answered {
				out[name] = o.Time
				break
			}
		}
	}
	return nil
}

// Silences returns every known past silence.
func (s *Store) Silences() ([]Silence, error) {
	if err := s.commit(false); err != nil && !s.readOnly {
		return nil, err
	}
	var out []Silence
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bSilences).ForEach(func(_, v []byte) error {
			var si Silence
			if json.Unmarshal(v, &si) == nil {
				out = append(out, si)
			}
			return nil
		})
	})
	return out, err
}

// Prune deletes events and observations older than the retention, counted
// back from now (observations by chunk: a chunk goes when its whole span is
// older). Silences are kept: measured mode needs them.
func (s *Store) Prune(now time.Time) error {
	if s.retention < 0 || s.readOnly {
		return nil
	}
	if err := s.commit(false); err != nil {
		return err
	}
	if err := s.compact(true); err != nil {
		return err
	}
	cutoff := now.Add(-s.retention)
	return s.db.Update(func(tx *bolt.Tx) error {
		ev, idx := tx.Bucket(bEvents), tx.Bucket(bEventsAgent)
		c := ev.Cursor()
		for k, v := c.First(); k != nil && keyTime(k).Before(cutoff); k, v = c.First() {
			var e Event
			if json.Unmarshal(v, &e) == nil {
				_ = idx.Delete(append(append([]byte(e.Agent), 0), k...))
			}
			if err := c.Delete(); err != nil {
				return err
			}
		}
		cc := tx.Bucket(bChunks).Cursor()
		for k, _ := cc.First(); k != nil && time.Unix(0, int64(binary.BigEndian.Uint64(k))).Add(chunkSpan).Compare(cutoff) <= 0; k, _ = cc.First() {
			if err := cc.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// OpenReadOnly opens an existing history for reading (vigil history): it
// creates nothing, and fails with ErrInUse while a monitor holds it.
func OpenReadOnly(dir string) (*Store, error) {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no history at %s: %w", dir, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%s: %w", path, ErrInUse)
		}
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bEvents, bEventsAgent} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%s is not a Vigil history (no %s)", path, b)
			}
		}
		if m := tx.Bucket(bMeta); m != nil {
			if v := m.Get(kVersion); v != nil && string(v) > fmt.Sprint(FormatVersion) {
				return fmt.Errorf("%s is a history of format %s, newer than this program's (%d)", path, v, FormatVersion)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	logVersion := FormatVersion
	_ = db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bMeta); m != nil && string(m.Get(kVersion)) == "2" {
			logVersion = 2
		}
		return nil
	})
	s := &Store{db: db, retention: DefaultRetention, readOnly: true, logVersion: logVersion}
	// Events a crash left in the journal are shown too (the next Open of
	// the writer puts them in the store).
	s.journalEvents = journalEvents(dir, db)
	return s, nil
}
