package history

// WriteCalls is the number of write calls the store has made to its file
// since it was opened, as bbolt counts them (one per run of dirty pages and
// one for the meta page of every transaction, each transaction also syncing
// twice). For benchmarks: /proc's syscw counts socket writes as well.
func (s *Store) WriteCalls() int64 {
	st := s.db.Stats()
	return st.TxStats.GetWrite()
}
