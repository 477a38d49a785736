package history

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
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
			var prev []Observation
			if json.Unmarshal(old, &prev) == nil {
				runs = append(prev, runs...)
			}
		}
		sortByTime(runs)
		raw, err := json.Marshal(thin(runs))
		if err != nil {
			return err
		}
		if err := b.Put(key, raw); err != nil {
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

// compactSegment moves one closed segment of the log into chunks.
func (s *Store) compactSegment(id uint64) error {
	cs := chunkSet{}
	err := s.db.View(func(tx *bolt.Tx) error {
		seg := tx.Bucket(bLog).Bucket(u64(id))
		if seg == nil {
			return nil
		}
		return seg.ForEach(func(_, v []byte) error {
			h, ok := parseLogValue(v)
			if !ok {
				return nil
			}
			var o Observation
			if json.Unmarshal(h.json, &o) == nil {
				cs.add(o)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := cs.write(tx); err != nil {
			return err
		}
		if tx.Bucket(bLog).Bucket(u64(id)) == nil {
			return nil
		}
		return tx.Bucket(bLog).DeleteBucket(u64(id))
	})
	if err != nil {
		return err
	}
	for agent, refs := range s.index {
		kept := refs[:0]
		for _, r := range refs {
			if r.seg != id {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			delete(s.index, agent)
		} else {
			s.index[agent] = kept
		}
	}
	return nil
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
	if string(version) == "2" && !old {
		return nil
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
		return tx.Bucket(bMeta).Put(kVersion, []byte("2"))
	})
}
