package history

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The spool is a PostgreSQL history's local buffer: files spool-N.log in
// the spool folder, each a sequence of records framed as length (4 bytes),
// CRC-32C (4) and a JSON payload. A batch with events is written to the
// spool before Append returns (so an acknowledged event survives the
// process being killed, as with the embedded history's journal); while
// PostgreSQL cannot be written, each flush's observations go there too.
// Every flush seals the current file and writes the sealed files to
// PostgreSQL, oldest first and in one transaction with what is in memory,
// then deletes them. Writing a record twice (a crash after the commit and
// before the delete) changes nothing: every row has a key.
//
// The spool is bounded (PGOptions.SpoolLimit): past it, observations are
// dropped (and counted, and recorded as a history_limit event once
// PostgreSQL is back); events, silences and resume records are kept.

// spoolRecord is one record of the spool.
type spoolRecord struct {
	// Obs: observations (encodeObsList).
	Obs      []byte            `json:"obs,omitempty"`
	Events   []spoolEvent      `json:"events,omitempty"`
	Silences []Silence         `json:"silences,omitempty"`
	Agents   map[string][]byte `json:"agents,omitempty"`
}

// spoolEvent is an event with the key that makes writing it twice harmless.
type spoolEvent struct {
	Key  string          `json:"key"`
	JSON json.RawMessage `json:"json"`
}

type spool struct {
	dir   string
	cur   *os.File
	curN  uint64
	size  int64 // bytes in every file
	count int   // records in every file
}

func openSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the local buffer folder: %w", err)
	}
	sp := &spool{dir: dir}
	files, err := sp.files()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		fi, err := os.Stat(f.path)
		if err != nil {
			return nil, err
		}
		sp.size += fi.Size()
		sp.curN = max(sp.curN, f.n)
	}
	if _, recs, err := sp.read(); err == nil {
		sp.count = len(recs)
	}
	return sp, nil
}

type spoolFile struct {
	n    uint64
	path string
}

// files lists the spool's files, oldest first.
func (sp *spool) files() ([]spoolFile, error) {
	entries, err := os.ReadDir(sp.dir)
	if err != nil {
		return nil, err
	}
	var out []spoolFile
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "spool-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "spool-"), ".log"), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, spoolFile{n, filepath.Join(sp.dir, name)})
	}
	slices.SortFunc(out, func(a, b spoolFile) int { return int(a.n - b.n) })
	return out, nil
}

// write appends one record to the current file.
func (sp *spool) write(r *spoolRecord) error {
	payload, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if sp.cur == nil {
		sp.curN++
		f, err := os.OpenFile(filepath.Join(sp.dir, fmt.Sprintf("spool-%016d.log", sp.curN)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		sp.cur = f
	}
	frame := make([]byte, 8, 8+len(payload))
	binary.LittleEndian.PutUint32(frame, uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(payload, crcTable))
	frame = append(frame, payload...)
	if _, err := sp.cur.Write(frame); err != nil {
		return err
	}
	sp.size += int64(len(frame))
	sp.count++
	return nil
}

// seal closes the current file: what read returns next is complete.
func (sp *spool) seal() error {
	if sp.cur == nil {
		return nil
	}
	err := sp.cur.Close()
	sp.cur = nil
	return err
}

// sealed lists the files no more records go to, oldest first.
func (sp *spool) sealed() ([]spoolFile, error) {
	files, err := sp.files()
	if err != nil {
		return nil, err
	}
	if sp.cur != nil && len(files) > 0 {
		files = files[:len(files)-1]
	}
	return files, nil
}

// read returns the sealed files and their records, oldest first.
func (sp *spool) read() ([]spoolFile, []spoolRecord, error) {
	files, err := sp.sealed()
	if err != nil {
		return nil, nil, err
	}
	var recs []spoolRecord
	for _, f := range files {
		r, err := readSpoolFile(f.path)
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, r...)
	}
	return files, recs, nil
}

// readSpoolFile reads one sealed file's records. A record cut short or
// damaged (a crash in the middle of a write) ends the file.
func readSpoolFile(path string) ([]spoolRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var recs []spoolRecord
	for len(data) >= 8 {
		n := binary.LittleEndian.Uint32(data)
		if uint64(n) > uint64(len(data)-8) {
			break
		}
		payload := data[8 : 8+n]
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(data[4:]) {
			break
		}
		var r spoolRecord
		if json.Unmarshal(payload, &r) != nil {
			break
		}
		recs = append(recs, r)
		data = data[8+n:]
	}
	return recs, nil
}

// remove deletes files once their records are in PostgreSQL.
func (sp *spool) remove(files []spoolFile, records int) error {
	var errs []error
	for _, f := range files {
		fi, err := os.Stat(f.path)
		if err == nil {
			sp.size -= fi.Size()
		}
		if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	sp.count = max(0, sp.count-records)
	return errors.Join(errs...)
}

func (sp *spool) close() error {
	return sp.seal()
}

// encodeObsList encodes observations of any agents: per observation,
// agent, time, answered and the record format of appendObservation.
func encodeObsList(obs []Observation) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(obs)))
	for i := range obs {
		o := &obs[i]
		b = appendString(b, o.Agent)
		b = binary.AppendVarint(b, o.Time.UnixNano())
		a := byte(0)
		if o.Answered {
			a = 1
		}
		b = append(b, a)
		b = appendObservation(b, o)
	}
	return b
}

func decodeObsList(v []byte) ([]Observation, error) {
	r := reader{b: v}
	n := r.uvarint()
	if n > uint64(len(v)) {
		return nil, errShort
	}
	out := make([]Observation, n)
	for i := range out {
		o := &out[i]
		o.Agent = r.string()
		o.Time = time.Unix(0, r.varint()).UTC()
		o.Answered = r.byte() == 1
		readObservation(&r, o)
	}
	return out, r.err
}
