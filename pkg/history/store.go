// Package history keeps the monitor's observations, state changes, actions,
// the agents' own events and past silences in an embedded store, so that
// they can be queried by agent and time and so that the engine resumes where
// it stopped.
//
// The store is a bbolt file (history.db in the folder given to Open): pure
// Go, one file, and every Append is a transaction that is fsync'd before it
// returns, so a kill -9 loses nothing already acknowledged. Concurrent
// Appends are coalesced into one transaction (one fsync) by bbolt's Batch.
// Only one process can open a store at a time.
//
// Layout (all keys sort by time within their prefix):
//
//	events          time(8) seq(8)            → Event (JSON)
//	eventsByAgent   agent 0x00 time(8) seq(8) → (empty)
//	observations    agent 0x00 time(8) seq(8) → Observation (JSON)
//	silences        agent 0x00 time(8) seq(8) → Silence (JSON)
//	agents          agent                     → the engine's resume record
package history

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// DefaultRetention is how long records are kept when Options.Retention is 0.
const DefaultRetention = 30 * 24 * time.Hour

// FileName is the store's file inside its folder.
const FileName = "history.db"

var (
	bEvents       = []byte("events")
	bEventsAgent  = []byte("eventsByAgent")
	bObservations = []byte("observations")
	bSilences     = []byte("silences")
	bAgents       = []byte("agents")
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
}

// Store is an open history.
type Store struct {
	db        *bolt.DB
	retention time.Duration
}

// Open opens (or creates) the history in dir.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create history folder: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: opts.NoSync})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%s: %w", path, ErrInUse)
		}
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	// Appends wait this long for others to share their transaction; polls
	// of a large fleet arrive together, a single one should not wait long.
	db.MaxBatchDelay = 2 * time.Millisecond
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bEvents, bEventsAgent, bObservations, bSilences, bAgents} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("prepare history %s: %w", path, err)
	}
	r := opts.Retention
	if r == 0 {
		r = DefaultRetention
	}
	return &Store{db: db, retention: r}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

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

// Append writes one batch in one durable transaction.
func (s *Store) Append(b Batch) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		ev, idx := tx.Bucket(bEvents), tx.Bucket(bEventsAgent)
		for _, e := range b.Events {
			seq, _ := ev.NextSequence()
			raw, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := ev.Put(timeKey(e.Time, seq), raw); err != nil {
				return err
			}
			if err := idx.Put(agentKey(e.Agent, e.Time, seq), nil); err != nil {
				return err
			}
		}
		ob := tx.Bucket(bObservations)
		for _, o := range b.Observations {
			seq, _ := ob.NextSequence()
			raw, err := json.Marshal(o)
			if err != nil {
				return err
			}
			if err := ob.Put(agentKey(o.Agent, o.Time, seq), raw); err != nil {
				return err
			}
		}
		sb := tx.Bucket(bSilences)
		for _, si := range b.Silences {
			seq, _ := sb.NextSequence()
			raw, err := json.Marshal(si)
			if err != nil {
				return err
			}
			if err := sb.Put(agentKey(si.Agent, si.Start, seq), raw); err != nil {
				return err
			}
		}
		ab := tx.Bucket(bAgents)
		for name, raw := range b.Agents {
			if err := ab.Put([]byte(name), raw); err != nil {
				return err
			}
		}
		return nil
	})
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

// Events returns events matching q.
func (s *Store) Events(q Query) ([]Event, error) {
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		ev := tx.Bucket(bEvents)
		add := func(raw []byte) bool {
			var e Event
			if json.Unmarshal(raw, &e) == nil {
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
		prefix := append([]byte(q.Agent), 0)
		c := tx.Bucket(bEventsAgent).Cursor()
		start := prefix
		if !q.From.IsZero() {
			start = agentKey(q.Agent, q.From, 0)
		}
		for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if _, after := q.inRange(keyTime(k)); after {
				break
			}
			if add(ev.Get(k[len(prefix):])) {
				break
			}
		}
		return nil
	})
	return out, err
}

// Observations returns observations matching q.
func (s *Store) Observations(q Query) ([]Observation, error) {
	var out []Observation
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bObservations).Cursor()
		var prefix, start []byte
		if q.Agent != "" {
			prefix = append([]byte(q.Agent), 0)
			start = prefix
			if !q.From.IsZero() {
				start = agentKey(q.Agent, q.From, 0)
			}
		}
		k, v := c.First()
		if start != nil {
			k, v = c.Seek(start)
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			before, after := q.inRange(keyTime(k))
			if before {
				continue
			}
			if after {
				if q.Agent != "" {
					break
				}
				continue
			}
			var o Observation
			if json.Unmarshal(v, &o) == nil {
				out = append(out, o)
			}
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// Agents returns the engine's resume records.
func (s *Store) Agents() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bAgents).ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	return out, err
}

// LastAnswers returns, for every agent with a resume record, the time of
// its latest answered poll.
func (s *Store) LastAnswers() (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bObservations).Cursor()
		return tx.Bucket(bAgents).ForEach(func(name, _ []byte) error {
			prefix := append(bytes.Clone(name), 0)
			k, _ := c.Seek(append(append([]byte(nil), name...), 1))
			var v []byte
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
			for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
				var o Observation
				if json.Unmarshal(v, &o) == nil && o.Answered {
					out[string(name)] = o.Time
					break
				}
			}
			return nil
		})
	})
	return out, err
}

// Silences returns every known past silence.
func (s *Store) Silences() ([]Silence, error) {
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
// back from now. Silences are kept: measured mode needs them.
func (s *Store) Prune(now time.Time) error {
	if s.retention < 0 {
		return nil
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
		oc := tx.Bucket(bObservations).Cursor()
		for k, _ := oc.First(); k != nil; {
			if keyTime(k).Before(cutoff) {
				if err := oc.Delete(); err != nil {
					return err
				}
				k, _ = oc.Seek(k)
				continue
			}
			k, _ = oc.Next()
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
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Store{db: db, retention: DefaultRetention}, nil
}
