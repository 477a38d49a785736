package history

import (
	"testing"
	"time"
)

func TestWriteCallsCountsAppends(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := s.WriteCalls()
	if err := s.Append(Batch{Observations: []Observation{{Time: time.Now(), Agent: "a"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil { // observations are written behind
		t.Fatal(err)
	}
	// At least one page and the meta page.
	if got := s.WriteCalls() - before; got < 2 {
		t.Fatalf("WriteCalls grew by %d for one append, want at least 2", got)
	}
}
