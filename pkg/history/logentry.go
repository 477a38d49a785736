package history

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"sync"
	"time"

	"github.com/vigil-cdp/vigil/pkg/state"
)

// Kinds of log entries (format version 3).
const (
	// entryObs is one poll's observation (binary, see appendObservation).
	entryObs = 'o'
	// entryEvent is the eventsByAgent entry of an event written in the same
	// commit: the event's key in the events bucket.
	entryEvent = 'e'
	// entryAgent is a resume record.
	entryAgent = 'a'
	// entryBlock holds one commit's event entries and resume records, in
	// two flate streams: uvarint(len zindex) zindex zrecords. The index
	// names every entry (events with their key, resume records with an
	// empty body), so that opening the store need not decompress the
	// records; zrecords holds the records, compressed together (the records
	// of different agents are mostly the same JSON). Each stream is a
	// sequence of kind(1) uvarint(len agent) agent uvarint(len body) body.
	entryBlock = 'b'
)

// Flags of a log entry.
const (
	flagAnswered = 1 << iota
)

// logHeader is one log entry as read: what a reader needs without decoding
// the body.
type logHeader struct {
	kind     byte
	t        int64
	answered bool
	agent    string
	body     []byte
	// v2: the body is an Observation in JSON (format version 2).
	v2 bool
}

// logEntry encodes one log entry:
// kind(1) time(8) flags(1) uvarint(len agent) agent body.
func logEntry(kind byte, t int64, flags byte, agent string, body []byte) []byte {
	v := make([]byte, 0, 12+len(agent)+len(body))
	v = append(v, kind)
	v = binary.BigEndian.AppendUint64(v, uint64(t))
	v = append(v, flags)
	v = binary.AppendUvarint(v, uint64(len(agent)))
	v = append(v, agent...)
	return append(v, body...)
}

func parseLogEntry(v []byte) (logHeader, bool) {
	if len(v) < 11 {
		return logHeader{}, false
	}
	h := logHeader{kind: v[0], t: int64(binary.BigEndian.Uint64(v[1:])), answered: v[9]&flagAnswered != 0}
	n, w := binary.Uvarint(v[10:])
	if w <= 0 || uint64(len(v)-10-w) < n {
		return logHeader{}, false
	}
	h.agent = string(v[10+w : 10+w+int(n)])
	h.body = v[10+w+int(n):]
	return h, true
}

// parseLogValueV2 reads a log entry of format version 2:
// time(8) answered(1) agent 0x00 Observation (JSON).
func parseLogValueV2(v []byte) (logHeader, bool) {
	if len(v) < 10 {
		return logHeader{}, false
	}
	i := bytes.IndexByte(v[9:], 0)
	if i < 0 {
		return logHeader{}, false
	}
	return logHeader{kind: entryObs, t: int64(binary.BigEndian.Uint64(v)), answered: v[8] == 1, agent: string(v[9 : 9+i]), body: v[10+i:], v2: true}, true
}

func obsEntry(o *Observation) []byte {
	flags := byte(0)
	if o.Answered {
		flags = flagAnswered
	}
	return logEntry(entryObs, o.Time.UnixNano(), flags, o.Agent, appendObservation(nil, o))
}

// observation decodes an observation entry.
func (h logHeader) observation() (Observation, bool) {
	var o Observation
	if h.v2 {
		return o, json.Unmarshal(h.body, &o) == nil
	}
	r := reader{b: h.body}
	o.Time, o.Answered, o.Agent = time.Unix(0, h.t).UTC(), h.answered, h.agent
	readObservation(&r, &o)
	return o, r.err == nil
}

// appendObservation encodes what an Observation holds besides its time,
// answered and agent (which the entry's header or the chunk's key hold).
func appendObservation(b []byte, o *Observation) []byte {
	b = binary.AppendUvarint(b, uint64(o.State))
	b = appendString(b, o.Reason)
	b = binary.AppendVarint(b, int64(o.RTT))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o.BudgetSeconds))
	b = appendString(b, o.Role)
	b = appendString(b, o.Cluster)
	until := int64(0)
	if !o.Until.IsZero() {
		until = o.Until.UnixNano() - o.Time.UnixNano()
	}
	b = binary.AppendVarint(b, until)
	b = binary.AppendUvarint(b, uint64(o.Polls))
	b = binary.AppendVarint(b, int64(o.RTTMin))
	b = binary.AppendVarint(b, int64(o.RTTMax))
	b = binary.AppendUvarint(b, uint64(len(o.Processes)))
	for i := range o.Processes {
		p := &o.Processes[i]
		b = appendString(b, p.Name)
		b = binary.AppendUvarint(b, uint64(p.State))
		b = appendString(b, p.Reason)
		b = binary.AppendVarint(b, p.Generation)
		f := byte(0)
		for bit, v := range []bool{p.LagSeconds != nil, p.LagMin != nil, p.LagMax != nil, p.AutoRestartSuspended} {
			if v {
				f |= 1 << bit
			}
		}
		b = append(b, f)
		for _, v := range []*float64{p.LagSeconds, p.LagMin, p.LagMax} {
			if v != nil {
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(*v))
			}
		}
	}
	return b
}

func readObservation(r *reader, o *Observation) {
	o.State = state.State(r.uvarint())
	o.Reason = r.string()
	o.RTT = time.Duration(r.varint())
	o.BudgetSeconds = r.float()
	o.Role = r.string()
	o.Cluster = r.string()
	if until := r.varint(); until != 0 {
		o.Until = o.Time.Add(time.Duration(until))
	}
	o.Polls = int(r.uvarint())
	o.RTTMin = time.Duration(r.varint())
	o.RTTMax = time.Duration(r.varint())
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errShort
		return
	}
	if n > 0 {
		o.Processes = make([]ProcessObservation, n)
	}
	for i := range o.Processes {
		p := &o.Processes[i]
		p.Name = r.string()
		p.State = state.State(r.uvarint())
		p.Reason = r.string()
		p.Generation = r.varint()
		f := r.byte()
		p.AutoRestartSuspended = f&8 != 0
		for bit, dst := range []**float64{&p.LagSeconds, &p.LagMin, &p.LagMax} {
			if f&(1<<bit) != 0 {
				v := r.float()
				*dst = &v
			}
		}
	}
}

// Chunks of format version 3 start with chunkBinary, then: uvarint(count),
// and per run: time(varint, from the previous run's), answered(1), the
// observation (appendObservation). Chunks of format 2 are JSON arrays
// (they start with '['); both are read.
const chunkBinary = 0x01

func encodeChunk(runs []Observation) []byte {
	b := []byte{chunkBinary}
	b = binary.AppendUvarint(b, uint64(len(runs)))
	prev := int64(0)
	for i := range runs {
		o := &runs[i]
		t := o.Time.UnixNano()
		b = binary.AppendVarint(b, t-prev)
		prev = t
		a := byte(0)
		if o.Answered {
			a = 1
		}
		b = append(b, a)
		b = appendObservation(b, o)
	}
	return b
}

// decodeChunk reads one chunk (of format 2 or 3) of agent.
func decodeChunk(agent string, v []byte) ([]Observation, error) {
	if len(v) > 0 && v[0] == '[' {
		var runs []Observation
		err := json.Unmarshal(v, &runs)
		return runs, err
	}
	if len(v) == 0 || v[0] != chunkBinary {
		return nil, errors.New("unknown chunk encoding")
	}
	r := reader{b: v[1:]}
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return nil, errShort
	}
	runs := make([]Observation, n)
	prev := int64(0)
	for i := range runs {
		o := &runs[i]
		prev += r.varint()
		o.Time, o.Agent = time.Unix(0, prev).UTC(), agent
		o.Answered = r.byte() == 1
		readObservation(&r, o)
	}
	return runs, r.err
}

var errShort = errors.New("truncated record")

// reader decodes what appendObservation wrote; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() { r.err, r.b = errShort, nil }

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) float() float64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// Resume records are compressed in the log (they are mostly the same
// JSON keys and the agent's last status).
var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

func deflate(raw []byte) []byte {
	var buf bytes.Buffer
	w := deflaters.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write(raw)
	_ = w.Close()
	deflaters.Put(w)
	return buf.Bytes()
}

func inflate(b []byte) ([]byte, error) {
	return io.ReadAll(flate.NewReader(bytes.NewReader(b)))
}

// appendSub adds one entry to a block.
func appendSub(b []byte, kind byte, agent string, body []byte) []byte {
	b = append(b, kind)
	b = appendString(b, agent)
	b = binary.AppendUvarint(b, uint64(len(body)))
	return append(b, body...)
}

// blockEntries reads a block's entries (raw: not compressed); an event's
// time is its key's.
func blockEntries(raw []byte) ([]logHeader, error) {
	var out []logHeader
	r := reader{b: raw}
	for len(r.b) > 0 && r.err == nil {
		h := logHeader{kind: r.byte(), agent: r.string()}
		n := r.uvarint()
		if n > uint64(len(r.b)) {
			return out, errShort
		}
		h.body, r.b = r.b[:n:n], r.b[n:]
		if h.kind == entryEvent && len(h.body) == 16 {
			h.t = int64(binary.BigEndian.Uint64(h.body))
		}
		out = append(out, h)
	}
	return out, r.err
}

// blockEntry encodes a block from its index and its records.
func blockEntry(index, records []byte) []byte {
	zi := deflate(index)
	body := binary.AppendUvarint(nil, uint64(len(zi)))
	body = append(body, zi...)
	if len(records) > 0 {
		body = append(body, deflate(records)...)
	}
	return logEntry(entryBlock, 0, 0, "", body)
}

// blockMode is what a reader of the log takes of its blocks.
type blockMode int

const (
	skipBlocks blockMode = iota // nothing
	blockIndex                  // their entries, resume records without their value
	blockAll                    // their entries, resume records with their value
)

// expand calls fn with the entry, or with each entry of a block (see
// blockMode).
func (h logHeader) expand(mode blockMode, fn func(logHeader)) error {
	if h.kind != entryBlock {
		fn(h)
		return nil
	}
	if mode == skipBlocks {
		return nil
	}
	n, w := binary.Uvarint(h.body)
	if w <= 0 || n > uint64(len(h.body)-w) {
		return errShort
	}
	index, err := inflate(h.body[w : w+int(n)])
	if err != nil {
		return err
	}
	subs, err := blockEntries(index)
	if err != nil {
		return err
	}
	var records []logHeader
	if rest := h.body[w+int(n):]; mode == blockAll && len(rest) > 0 {
		raw, err := inflate(rest)
		if err != nil {
			return err
		}
		if records, err = blockEntries(raw); err != nil {
			return err
		}
	}
	for _, sub := range subs {
		if mode != blockAll || sub.kind != entryAgent {
			fn(sub)
		}
	}
	for _, sub := range records {
		fn(sub)
	}
	return nil
}
