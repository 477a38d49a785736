package history

// EncodeChunk encodes runs as one hourly row's body (vigil_chunk.body), in
// the format the history writes and reads back, so that tools outside the
// package (test/bench/pghistory) can load a large history without
// replaying every poll.
func EncodeChunk(runs []Observation) []byte { return encodeChunk(runs) }
