package history

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The journal (history.wal.0 and history.wal.1 beside history.db) holds
// what an Append with events must not lose before the next commit: its
// events, its silences and its resume records. Append writes them to the
// journal (one write call) before it returns; the next commit (within a
// second) writes them to the store with everything else, notes the last
// journal record it holds, and empties the file the records were in, while
// new records go to the other file. Open writes the records a crash left
// in the journal and not in the store to the store.
//
// Without Options.SyncEvents the journal is not fsync'd: an acknowledged
// record is in the operating system's page cache, so it survives the
// process being killed (kill -9, an out-of-memory kill, a crash of the
// monitor), and a machine that loses power loses at most the last second
// of events, as of observations. Since the file is emptied before the
// kernel writes its pages out (it does so after 30 s), the journal costs
// almost no disk writes. With SyncEvents, Append returns once its record
// is fsync'd (the first append waits Options.GatherEvents for others to
// share the fsync).

// walName is the journal's file i (0 or 1) in dir.
func walName(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("%s.wal.%d", FileName, i))
}

// walHeader is the length of the payload (4 bytes), the CRC-32C of the
// sequence number and the payload (4), and the sequence number (8).
const walHeader = 16

// walMax bounds one journal record (a batch's events and resume records are
// bounded well below it by the engine).
const walMax = 64 << 20

var kWalSeq = []byte("walSeq") // in meta: the last journal record in the store

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type wal struct {
	dir   string
	files [2]*os.File
	cur   int    // the file new records go to
	seq   uint64 // the last record's sequence number (the store's mu)
	// done is the last record written (read without the store's mu).
	done atomic.Uint64
	sync bool
	// gather: how long the first append waiting for an fsync waits for others.
	gather time.Duration

	smu    sync.Mutex // one fsync at a time; what follows
	synced uint64     // the last record known fsync'd
}

// walRecord is what one Append left in the journal.
type walRecord struct {
	seq      uint64
	events   [][]byte // JSON
	silences [][]byte // JSON
	agents   map[string][]byte
}

func openWAL(dir string, sync bool, gather time.Duration) (*wal, error) {
	w := &wal{dir: dir, sync: sync, gather: gather}
	for i := range w.files {
		f, err := os.OpenFile(walName(dir, i), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("open the history's journal: %w", err)
		}
		w.files[i] = f
	}
	return w, nil
}

func (w *wal) close() error {
	var errs []error
	for i, f := range w.files {
		if f != nil {
			errs = append(errs, f.Close())
			w.files[i] = nil
		}
	}
	return errors.Join(errs...)
}

// encodeWAL is one record: header, then the events, the silences and the
// resume records, each length-prefixed.
func encodeWAL(r *walRecord) []byte {
	b := make([]byte, walHeader, walHeader+256*len(r.events)+4096*len(r.agents))
	b = binary.AppendUvarint(b, uint64(len(r.events)))
	for _, e := range r.events {
		b = appendString(b, string(e))
	}
	b = binary.AppendUvarint(b, uint64(len(r.silences)))
	for _, s := range r.silences {
		b = appendString(b, string(s))
	}
	b = binary.AppendUvarint(b, uint64(len(r.agents)))
	names := make([]string, 0, len(r.agents))
	for name := range r.agents {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		b = appendString(appendString(b, name), string(r.agents[name]))
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-walHeader))
	binary.BigEndian.PutUint64(b[8:], r.seq)
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], crcTable))
	return b
}

// decodeWAL reads the records of one journal file, up to the first that is
// cut short or damaged (the end of what was written before a crash).
func decodeWAL(data []byte) []walRecord {
	var out []walRecord
	for len(data) >= walHeader {
		n := binary.BigEndian.Uint32(data)
		if n > walMax || uint64(n) > uint64(len(data)-walHeader) {
			break
		}
		rec := data[:walHeader+int(n)]
		if crc32.Checksum(rec[8:], crcTable) != binary.BigEndian.Uint32(rec[4:]) {
			break
		}
		r := walRecord{seq: binary.BigEndian.Uint64(rec[8:])}
		rd := reader{b: rec[walHeader:]}
		list := func() [][]byte {
			k := rd.uvarint()
			if k > uint64(len(rd.b)) {
				rd.fail()
				return nil
			}
			l := make([][]byte, 0, k)
			for range k {
				l = append(l, []byte(rd.string()))
			}
			return l
		}
		r.events, r.silences = list(), list()
		k := rd.uvarint()
		if k > uint64(len(rd.b)) {
			rd.fail()
		}
		for range k {
			name, raw := rd.string(), rd.string()
			if r.agents == nil {
				r.agents = map[string][]byte{}
			}
			r.agents[name] = []byte(raw)
		}
		if rd.err != nil || len(rd.b) != 0 {
			break
		}
		out = append(out, r)
		data = data[len(rec):]
	}
	return out
}

// write appends one record to the current file (the store's mu held, so
// that records are in the order of the batches).
func (w *wal) write(r *walRecord) error {
	w.seq++
	r.seq = w.seq
	if _, err := w.files[w.cur].Write(encodeWAL(r)); err != nil {
		return err
	}
	w.done.Store(r.seq)
	return nil
}

// swap sends new records to the other file and returns the one that held
// the records until now (the store's mu held, with the pending batch taken).
func (w *wal) swap() int {
	old := w.cur
	w.cur = 1 - w.cur
	return old
}

// empty empties file i once the store holds its records.
func (w *wal) empty(i int) error {
	f := w.files[i]
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// fsync returns once record seq is fsync'd; concurrent callers share one
// fsync.
func (w *wal) fsync(seq uint64) error {
	w.smu.Lock()
	defer w.smu.Unlock()
	if w.synced >= seq {
		return nil
	}
	if w.gather > 0 {
		time.Sleep(w.gather)
	}
	// Every record written before the fsync below is covered by it; a
	// record's file may have been swapped out in the meantime, so both are.
	upto := w.done.Load()
	for _, f := range w.files {
		if err := fdatasync(f); err != nil {
			return err
		}
	}
	w.synced = upto
	return nil
}

// read returns the records of both files, in sequence order.
func (w *wal) read() ([]walRecord, error) {
	var data [2][]byte
	for i, f := range w.files {
		var err error
		if data[i], err = io.ReadAll(io.NewSectionReader(f, 0, 1<<62)); err != nil {
			return nil, fmt.Errorf("read the history's journal: %w", err)
		}
	}
	return journalRecords(data[:]...), nil
}

// journalRecords decodes journal files into their records, in sequence order.
func journalRecords(files ...[]byte) []walRecord {
	var all []walRecord
	for _, data := range files {
		all = append(all, decodeWAL(data)...)
	}
	slices.SortFunc(all, func(a, b walRecord) int { return cmpU64(a.seq, b.seq) })
	return all
}

// replayWAL writes to the store the journal records a crash left out of it,
// then empties the journal (at Open, before anything else is written).
func (s *Store) replayWAL() error {
	recs, err := s.wal.read()
	if err != nil {
		return err
	}
	committed := committedSeq(s.db)
	p := journalBatch(recs, committed)
	s.wal.seq = committed
	for _, r := range recs {
		s.wal.seq = max(s.wal.seq, r.seq)
	}
	if p.walSeq > 0 {
		newest := s.newest
		for _, e := range p.events {
			if e.Time.After(newest) {
				newest = e.Time
			}
		}
		if err := s.write(p, nil, newest); err != nil {
			return fmt.Errorf("write the history's journal to the store: %w", err)
		}
	}
	return errors.Join(s.wal.empty(0), s.wal.empty(1))
}

// committedSeq is the last journal record the store holds.
func committedSeq(db *bolt.DB) uint64 {
	var seq uint64
	_ = db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bMeta); m != nil {
			if v := m.Get(kWalSeq); len(v) == 8 {
				seq = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return seq
}

// journalBatch is what the journal's records after committed hold (records
// in sequence order; an event or silence that does not decode is left out).
func journalBatch(recs []walRecord, committed uint64) pendingBatch {
	var p pendingBatch
	for _, r := range recs {
		if r.seq <= committed {
			continue
		}
		for _, raw := range r.events {
			var e Event
			if json.Unmarshal(raw, &e) == nil {
				p.events = append(p.events, e)
				p.eventJSON = append(p.eventJSON, raw)
			}
		}
		for _, raw := range r.silences {
			var si Silence
			if json.Unmarshal(raw, &si) == nil {
				p.silences = append(p.silences, si)
			}
		}
		for name, raw := range r.agents {
			if p.agents == nil {
				p.agents = map[string][]byte{}
			}
			p.agents[name] = raw
		}
		p.walSeq = r.seq
	}
	return p
}

// journalEvents reads, for a read-only store, the events of journal records
// not in the store, by time (nothing when there is no journal).
func journalEvents(dir string, db *bolt.DB) []Event {
	var files [][]byte
	for i := range 2 {
		if data, err := os.ReadFile(walName(dir, i)); err == nil {
			files = append(files, data)
		}
	}
	out := journalBatch(journalRecords(files...), committedSeq(db)).events
	slices.SortStableFunc(out, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return out
}
