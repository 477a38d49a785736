package response

import (
	"math"
	"time"
)

// Duration converts seconds an agent reported (a protection lag, a verify's
// duration) to a time.Duration. It saturates instead of overflowing: beyond
// about 292 years a time.Duration wraps around to a negative value, and a lag
// of 1e308 s must read as very large, not as negative. NaN cannot come from
// JSON; should it come anyway, it is 0.
func Duration(seconds float64) time.Duration {
	ns := seconds * float64(time.Second)
	switch {
	case math.IsNaN(ns):
		return 0
	case ns >= math.MaxInt64:
		return math.MaxInt64
	case ns <= math.MinInt64:
		return math.MinInt64
	}
	return time.Duration(ns)
}
