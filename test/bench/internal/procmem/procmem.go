// Package procmem samples this process's memory for the benchmarks.
package procmem

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// PeakAnon is the largest anonymous RSS of this process seen by WatchAnon,
// in kB. The peak RSS (VmHWM) counts the history's mapped file pages too,
// which a compaction reads by the hundred megabytes and the kernel may drop
// at any time; this is the memory the process cannot give back.
var PeakAnon atomic.Int64

// WatchAnon samples RssAnon of /proc/self/status every interval, for ever
// (start it on a goroutine of its own).
func WatchAnon(every time.Duration) {
	for {
		sample()
		time.Sleep(every)
	}
}

// PeakAnonKB samples once more and returns PeakAnon: a run shorter than
// one interval of WatchAnon is counted too.
func PeakAnonKB() int64 {
	sample()
	return PeakAnon.Load()
}

func sample() {
	kb, ok := statusKB("RssAnon:")
	for ok {
		peak := PeakAnon.Load()
		if kb <= peak || PeakAnon.CompareAndSwap(peak, kb) {
			return
		}
	}
}

// statusKB reads one "Key: N kB" line of /proc/self/status.
func statusKB(key string) (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == key {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb, err == nil
		}
	}
	return 0, false
}
