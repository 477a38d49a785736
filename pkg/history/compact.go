package history

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// chunkID names one chunk: an agent's runs of one span.
type chunkID struct {
	span  uint64
	agent string
}

// chunkSet gathers runs by chunk.
type chunkSet map[chunkID][]Observation

func (cs chunkSet) add(o Observation) {
	id := chunkID{spanOf(o.Time), o.Agent}
	runs := cs[id]
	if n := len(runs); n > 0 && o.Time.After(runs[n-1].End()) && sameShape(&runs[n-1], &o) {
		absorb(&runs[n-1], o)
		return
	}
	o.Processes = slices.Clone(o.Processes)
	cs[id] = append(runs, o)
}

// write merges the set into the chunks bucket, in key order.
func (cs chunkSet) write(tx *bolt.Tx) error {
	b := tx.Bucket(bChunks)
	ids := make([]chunkID, 0, len(cs))
	for id := range cs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b chunkID) int {
		if a.span != b.span {
			return cmpU64(a.span, b.span)
		}
		return bytes.Compare([]byte(a.agent), []byte(b.agent))
	})
	for _, id := range ids {
		runs := cs[id]
		key := chunkKey(id.span, id.agent)
		if old := b.Get(key); old != nil {
			if prev, err := decodeChunk(id.agent, old); err == nil {
				runs = append(prev, runs...)
			}
		}
		sortByTime(runs)
		if err := b.Put(key, encodeChunk(thin(runs))); err != nil {
			return err
		}
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compact turns the log's segments that are due into chunks: the closed
// ones at least logKeep behind the newest observation (all closed ones
// with force).
func (s *Store) compact(force bool) error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.mu.Lock()
	newest := s.newest
	s.mu.Unlock()
	current := spanOf(newest)
	var due []uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bLog).ForEachBucket(func(seg []byte) error {
			id := binary.BigEndian.Uint64(seg)
			end := time.Unix(0, int64(id)).Add(chunkSpan)
			if id < current && (force || !end.Add(logKeep).After(newest)) {
				due = append(due, id)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, id := range due {
		if err := s.compactSegment(id); err != nil {
			return err
		}
	}
	return nil
}

// segmentMove is what one log segment holds, on its way to the
// agent-keyed buckets.
type segmentMove struct {
	cs      chunkSet
	events  [][]byte             // eventsByAgent keys
	records map[string]logHeader // the newest resume record of each agent
}

// compactGroup bounds the observations one pass of a segment's compaction
// holds in memory: a segment of 10,000 agents whose every poll changed
// state holds 600,000, each its own run.
var compactGroup = 100_000

// readSegment reads log segment id (entries parsed by parse): the
// observations of the agents in only (every agent when nil) and, with
// rest, the event index entries and resume records.
func readSegment(db *bolt.DB, id uint64, parse func([]byte) (logHeader, bool), only map[string]bool, rest bool) (*segmentMove, error) {
	m := &segmentMove{cs: chunkSet{}, records: map[string]logHeader{}}
	blocks := skipBlocks
	if rest {
		blocks = blockAll
	}
	err := db.View(func(tx *bolt.Tx) error {
		seg := tx.Bucket(bLog).Bucket(u64(id))
		if seg == nil {
			return nil
		}
		forEachInSegment(seg, parse, blocks, func(h logHeader, _ uint64) {
			switch {
			case h.kind == entryObs && (only == nil || only[h.agent]):
				if o, ok := h.observation(); ok {
					m.cs.add(o)
				}
			case h.kind == entryEvent && rest:
				if len(h.body) == 16 {
					m.events = append(m.events, append(append([]byte(h.agent), 0), h.body...))
				}
			case h.kind == entryAgent && rest:
				h.body = bytes.Clone(h.body)
				m.records[h.agent] = h
			}
		})
		return nil
	})
	return m, err
}

// segmentGroups divides the agents with observations in segment id into
// groups of at most compactGroup observations (one agent's may exceed
// it), in name order; nil when one pass holds them all.
func segmentGroups(db *bolt.DB, id uint64, parse func([]byte) (logHeader, bool)) ([]map[string]bool, error) {
	counts := map[string]int{}
	total := 0
	err := db.View(func(tx *bolt.Tx) error {
		if seg := tx.Bucket(bLog).Bucket(u64(id)); seg != nil {
			forEachInSegment(seg, parse, skipBlocks, func(h logHeader, _ uint64) {
				if h.kind == entryObs {
					counts[h.agent]++
					total++
				}
			})
		}
		return nil
	})
	if err != nil || total <= compactGroup {
		return nil, err
	}
	names := make([]string, 0, len(counts))
	for name := range counts {
		names = append(names, name)
	}
	slices.Sort(names)
	var groups []map[string]bool
	n := 0
	for _, name := range names {
		if len(groups) == 0 || n+counts[name] > compactGroup {
			groups, n = append(groups, map[string]bool{}), 0
		}
		groups[len(groups)-1][name] = true
		n += counts[name]
	}
	return groups, nil
}

// moveSegment compacts segment id in passes of at most compactGroup
// observations: each pass but the last writes its agents' chunks in a
// transaction of its own; the last writes the rest, its event index
// entries and resume records and deletes the segment, in a transaction
// that last calls (around it: the writer holds its index's lock and drops
// the segment from it). Until then a poll may be both in a chunk and in
// the log: readers keep the chunk's (see Observations). A crash between passes
// leaves the segment to compact again: the chunks written already take no
// run twice (see thin).
func moveSegment(db *bolt.DB, id uint64, parse func([]byte) (logHeader, bool), last func(apply func() error) error) error {
	groups, err := segmentGroups(db, id, parse)
	if err != nil {
		return err
	}
	for _, g := range groups[:max(len(groups)-1, 0)] {
		m, err := readSegment(db, id, parse, g, false)
		if err != nil {
			return err
		}
		if err := db.Update(m.cs.write); err != nil {
			return err
		}
	}
	var only map[string]bool
	if len(groups) > 0 {
		only = groups[len(groups)-1]
	}
	m, err := readSegment(db, id, parse, only, true)
	if err != nil {
		return err
	}
	return last(func() error { return db.Update(func(tx *bolt.Tx) error { return m.apply(tx, id) }) })
}

// apply writes the segment's contents to their buckets, in key order, and
// deletes the segment.
func (m *segmentMove) apply(tx *bolt.Tx, id uint64) error {
	if err := m.cs.write(tx); err != nil {
		return err
	}
	ev, idx := tx.Bucket(bEvents), tx.Bucket(bEventsAgent)
	slices.SortFunc(m.events, bytes.Compare)
	for _, k := range m.events {
		// An event pruned meanwhile (an agent's own event can be old) has no entry.
		if ev.Get(k[len(k)-16:]) == nil {
			continue
		}
		if err := idx.Put(k, nil); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(m.records))
	for name := range m.records {
		names = append(names, name)
	}
	slices.Sort(names)
	ab := tx.Bucket(bAgents)
	for _, name := range names {
		if err := ab.Put([]byte(name), m.records[name].body); err != nil {
			return err
		}
	}
	if tx.Bucket(bLog).Bucket(u64(id)) == nil {
		return nil
	}
	return tx.Bucket(bLog).DeleteBucket(u64(id))
}

// compactSegment moves one closed segment of the log into the agent-keyed
// buckets.
func (s *Store) compactSegment(id uint64) error {
	return moveSegment(s.db, id, parseLogEntry, func(apply func() error) error {
		s.idxMu.Lock()
		defer s.idxMu.Unlock()
		if err := apply(); err != nil {
			return err
		}
		dropSegment(s.index, id, func(r logRef) uint64 { return r.seg })
		dropSegment(s.evIndex, id, func(r evRef) uint64 { return r.seg })
		for agent, r := range s.agentRefs {
			if r.seg == id {
				delete(s.agentRefs, agent)
			}
		}
		return nil
	})
}

// migrate converts a store of format version 1 in place: its observations
// become chunks, in batches (a crash in the middle starts again; records
// already converted are recognised by their time), then the old bucket goes.
func migrate(db *bolt.DB) error {
	var version []byte
	var old bool
	_ = db.View(func(tx *bolt.Tx) error {
		version = bytes.Clone(tx.Bucket(bMeta).Get(kVersion))
		old = tx.Bucket(bObservationsV) != nil
		return nil
	})
	if string(version) == fmt.Sprint(FormatVersion) && !old {
		return nil
	}
	if string(version) == "2" {
		if err := convertLogV2(db); err != nil {
			return err
		}
	}
	const batch = 100_000
	var after []byte
	for old {
		cs := chunkSet{}
		n := 0
		err := db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bObservationsV).Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && n < batch; k, v = c.Next() {
				var o Observation
				if json.Unmarshal(v, &o) == nil {
					cs.add(o)
				}
				n++
				after = bytes.Clone(k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if err := db.Update(cs.write); err != nil {
			return err
		}
	}
	return db.Update(func(tx *bolt.Tx) error {
		if old {
			if err := tx.DeleteBucket(bObservationsV); err != nil {
				return err
			}
		}
		return tx.Bucket(bMeta).Put(kVersion, []byte(fmt.Sprint(FormatVersion)))
	})
}

// convertLogV2 compacts every segment of a format 2 log (JSON
// observations) into chunks, one segment per transaction: a crash in the
// middle leaves the version at 2 and the segments not yet converted.
func convertLogV2(db *bolt.DB) error {
	var segs []uint64
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bLog).ForEachBucket(func(seg []byte) error {
			segs = append(segs, binary.BigEndian.Uint64(seg))
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, id := range segs {
		if err := moveSegment(db, id, parseLogValueV2, func(apply func() error) error { return apply() }); err != nil {
			return err
		}
	}
	return nil
}

// dropSegment removes from an in-memory index every reference into log
// segment id, and the agents left with none.
func dropSegment[R any](idx map[string][]R, id uint64, segOf func(R) uint64) {
	for agent, refs := range idx {
		kept := refs[:0]
		for _, r := range refs {
			if segOf(r) != id {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			delete(idx, agent)
		} else {
			idx[agent] = kept
		}
	}
}
