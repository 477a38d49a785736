package fleet

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strings"
	"time"
)

// The one duration grammar of every Vigil setting and command line
// (docs/engine.md#durations): a number with a unit, several of them summed
// ("1m30s", "1d12h"), or a bare number of seconds ("0", "90", "0.5", "1e3"),
// with an optional sign; space around it is ignored. The units are ns, us
// (or µs), ms, s, m, h and d (24 h). The frontend (src/shared/duration.ts)
// and the agent (agent/src/duration.ts) read the same grammar, all three
// checked against testdata/durations.json.
const decimal = `(?:\d+(?:\.\d*)?|\.\d+)`

var (
	bareSeconds   = regexp.MustCompile(`^[-+]?` + decimal + `(?:[eE][-+]?\d{1,3})?$`)
	durationParts = regexp.MustCompile(`^[-+]?(?:` + decimal + `(?:ns|us|µs|μs|ms|s|m|h|d))+$`)
	durationPart  = regexp.MustCompile(`(` + decimal + `)(ns|us|µs|μs|ms|s|m|h|d)`)
	unitNanos     = map[string]int64{
		"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6,
		"s": 1e9, "m": 60e9, "h": 3600e9, "d": 86400e9,
	}
)

const durationExamples = "examples: 10s, 1m30s, 0"

// ParseDuration reads a duration in the one grammar above. A duration beyond
// what time.Duration holds (about 292 years) is no duration; the sign is
// read, so a caller can say that a negative one is out of place.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, ok := parseDuration(s); ok {
		return d, nil
	}
	return 0, fmt.Errorf("%q is not a duration (%s)", s, durationExamples)
}

func parseDuration(s string) (time.Duration, bool) {
	total := new(big.Rat)
	switch {
	case bareSeconds.MatchString(s):
		if _, ok := total.SetString(strings.TrimPrefix(s, "+")); !ok {
			return 0, false
		}
		total.Mul(total, big.NewRat(int64(time.Second), 1))
	case durationParts.MatchString(s):
		for _, m := range durationPart.FindAllStringSubmatch(s, -1) {
			n, ok := new(big.Rat).SetString(m[1])
			if !ok {
				return 0, false
			}
			total.Add(total, n.Mul(n, big.NewRat(unitNanos[m[2]], 1)))
		}
		if strings.HasPrefix(s, "-") {
			total.Neg(total)
		}
	default:
		return 0, false
	}
	// Whole nanoseconds, the fraction cut off as time.ParseDuration does.
	ns := new(big.Int).Quo(total.Num(), total.Denom())
	if !ns.IsInt64() || ns.Int64() == math.MinInt64 {
		return 0, false
	}
	return time.Duration(ns.Int64()), true
}
