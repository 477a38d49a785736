package main

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/vigil-cdp/vigil/pkg/history"
)

// driver gives the store the fleet's polls in time order, as the engine's
// scheduler does: one Batch per poll (its observation, events, silences and
// the resume record when the engine would write it).
type driver struct {
	m       *model
	s       *history.PGStore
	b       *builder
	h       pollHeap
	prev    []history.Observation
	havePrv []bool
	savedAt []int64
	rnd     *rand.Rand

	mu     sync.Mutex // the counters, read by the reporter
	counts driveCounts
}

type driveCounts struct {
	polls, events, records, lazyRecords, silences, changed int64
	last                                                   int64 // the latest poll given to Append
}

type pollItem struct {
	t int64
	i int32
	k int64
}

type pollHeap []pollItem

func (h pollHeap) Len() int           { return len(h) }
func (h pollHeap) Less(a, b int) bool { return h[a].t < h[b].t }
func (h pollHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *pollHeap) Push(x any)        { *h = append(*h, x.(pollItem)) }
func (h *pollHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// newDriver starts every agent at its first poll at or after from.
func newDriver(m *model, s *history.PGStore, from int64) *driver {
	n := len(m.agents)
	d := &driver{m: m, s: s, b: newBuilder(m), prev: make([]history.Observation, n), havePrv: make([]bool, n),
		savedAt: make([]int64, n), rnd: rand.New(rand.NewPCG(m.seed, 99))}
	for i := range n {
		k := m.firstPoll(i, from)
		d.h = append(d.h, pollItem{t: m.pollTime(i, k), i: int32(i), k: k})
		// As if the record was written within the last minute.
		d.savedAt[i] = from - int64(m.u01(i, 0, 40)*float64(minuteNs))
	}
	heap.Init(&d.h)
	return d
}

func (d *driver) counters() driveCounts {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counts
}

// poll appends the next poll and schedules the agent's following one.
func (d *driver) poll() error {
	it := d.h[0]
	i, k := int(it.i), it.k
	d.h[0] = pollItem{t: d.m.pollTime(i, k+1), i: it.i, k: k + 1}
	heap.Fix(&d.h, 0)

	o := d.b.obs(i, k)
	if !d.havePrv[i] {
		d.prev[i], d.havePrv[i] = d.b.obs(i, k-1), true
	}
	prev := &d.prev[i]
	b := history.Batch{Observations: []history.Observation{o}, Events: d.b.events(i, k, prev, &o), Silences: d.b.silences(i, prev, &o)}
	urgent := len(b.Events) > 0 || len(b.Silences) > 0 || significant(prev, &o)
	if urgent || it.t-d.savedAt[i] >= minuteNs {
		b.Agents = map[string][]byte{o.Agent: resumeRecord(&o, d.rnd)}
		b.AgentsCanWait = !urgent
		d.savedAt[i] = it.t
	}
	if err := d.s.Append(b); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	d.mu.Lock()
	c := &d.counts
	c.polls++
	c.events += int64(len(b.Events))
	c.silences += int64(len(b.Silences))
	if b.Agents != nil {
		c.records++
		if b.AgentsCanWait {
			c.lazyRecords++
		}
	}
	if prev.State != o.State {
		c.changed++
	}
	c.last = it.t
	d.mu.Unlock()
	d.prev[i] = o
	return nil
}

// simulate appends every poll before until as fast as it can, flushing
// at every second of the fleet's time (as the store's own loop does in
// real time); it returns how long each flush took.
func (d *driver) simulate(ctx context.Context, until int64) ([]time.Duration, error) {
	var flushes []time.Duration
	next := (d.h[0].t/secondNs + 1) * secondNs
	for d.h[0].t < until {
		if d.h[0].t >= next {
			if err := ctx.Err(); err != nil {
				return flushes, err
			}
			t := time.Now()
			if err := d.s.Flush(); err != nil {
				return flushes, fmt.Errorf("flush: %w", err)
			}
			flushes = append(flushes, time.Since(t))
			next = (d.h[0].t/secondNs + 1) * secondNs
		}
		if err := d.poll(); err != nil {
			return flushes, err
		}
	}
	t := time.Now()
	if err := d.s.Flush(); err != nil {
		return flushes, fmt.Errorf("flush: %w", err)
	}
	return append(flushes, time.Since(t)), nil
}

// realtime appends each poll when its time comes, until `until` (the
// store is flushed by the caller, every second). It returns how late
// polls were given to Append (the 99th percentile and the worst).
func (d *driver) realtime(ctx context.Context, until time.Time) (p99, worst time.Duration, err error) {
	var late []time.Duration
	for {
		now := time.Now()
		if !now.Before(until) || ctx.Err() != nil {
			break
		}
		for d.h[0].t <= now.UnixNano() {
			late = append(late, time.Duration(now.UnixNano()-d.h[0].t))
			if err := d.poll(); err != nil {
				return 0, 0, err
			}
		}
		wait := min(time.Duration(d.h[0].t-time.Now().UnixNano()), 5*time.Millisecond)
		if wait > 0 {
			time.Sleep(wait)
		}
	}
	ds := durations(late)
	return ds.pct(99), ds.max(), ctx.Err()
}

// recordTemplate is an engine resume record (pkg/engine's agentRecord) of
// an agent with the fleet's three processes: %[1]s the agent's name, %[2]s
// its last 100 RTTs (ns), %[3]s the time, %[4]d its state code, %[5]s its
// reason (JSON).
const recordTemplate = `{"firstPollAt":"2026-10-01T04:00:00Z","lastAnswerAt":"%[3]s","silentSince":"0001-01-01T00:00:00Z",` +
	`"lastStatus":{"apiVersion":"v1","time":"%[3]s","agent":{"id":"id-%[1]s","version":"0.1.0","hostname":"%[1]s","startedAt":"2026-11-26T03:00:00Z","pid":811},` +
	`"cluster":{"name":"cluster-a","node":"%[1]s","role":"active","roleReadAt":"%[3]s","roleError":null},"processes":[` +
	`{"name":"cdp","kind":"command","state":"running","expected":true,"pid":1001,"generation":3,"startedAt":"2026-11-26T03:00:01Z","restarts":2,"lastExit":{"code":1,"signal":null,"at":"2026-11-26T02:59:58Z"},"protection":null,"autoRestart":true,"autoRestartSuspended":false,"recentCrashes":0,"autoRestartAt":null},` +
	`{"name":"cdp-web","kind":"systemd","state":"running","expected":true,"pid":1003,"generation":3,"startedAt":"2026-11-26T03:00:01Z","restarts":0,"lastExit":null,"protection":null,"autoRestart":true,"autoRestartSuspended":false,"recentCrashes":0,"autoRestartAt":null},` +
	`{"name":"replicator","kind":"replicator","state":"running","expected":true,"pid":1002,"generation":3,"startedAt":"2026-11-26T03:00:01Z","restarts":0,"lastExit":null,"protection":{"lastChangeAt":"%[3]s","lastReplicatedAt":"%[3]s","lagSeconds":1.734,"pendingChanges":12,"pendingBytes":48211,"state":"watching","message":null,"notCovered":0,"verify":null},"autoRestart":true,"autoRestartSuspended":false,"recentCrashes":0,"autoRestartAt":null}]},` +
	`"rtts":[%[2]s],"eventsSince":412,"eventsAgent":"id-%[1]s",` +
	`"snapshot":{"name":"%[1]s","url":"http://%[1]s:7070","cluster":"cluster-a","node":"%[1]s","role":"active","state":%[4]d,"reason":%[5]s,"rtt":2318211,"lastPollAt":"%[3]s","lastAnswerAt":"%[3]s","silentSince":"0001-01-01T00:00:00Z",` +
	`"budget":{"total":182000000000,"responseTime":1000000000,"rttP99":4618211,"processing":1000000000,"allowances":[{"kind":"restart","value":180000000000,"configured":180000000000,"measured":false,"samples":0},{"kind":"network interruption","value":30000000000,"configured":30000000000,"measured":false,"samples":0},{"kind":"app error recovery","value":60000000000,"configured":60000000000,"measured":false,"samples":0}],"combine":"max","mode":"configured"},` +
	`"agentId":"id-%[1]s","version":"0.1.0","hostname":"%[1]s","agentStartedAt":"2026-11-26T03:00:00Z","processes":[` +
	`{"name":"cdp","state":0,"reason":"running (pid 1001, generation 3)","verdict":"running","agentState":"running","expected":true,"generation":3,"pid":1001,"autoRestartSuspended":false},` +
	`{"name":"cdp-web","state":0,"reason":"running (pid 1003, generation 3)","verdict":"running","agentState":"running","expected":true,"generation":3,"pid":1003,"autoRestartSuspended":false},` +
	`{"name":"replicator","state":0,"reason":"running (pid 1002, generation 3)","verdict":"running","agentState":"running","expected":true,"generation":3,"pid":1002,"lagSeconds":1.734,"autoRestartSuspended":false}]},` +
	`"trackers":{"cdp":{"failedAttempts":0,"nextAttemptAt":"0001-01-01T00:00:00Z","suspended":false,"awaiting":0},"cdp-web":{"failedAttempts":0,"nextAttemptAt":"0001-01-01T00:00:00Z","suspended":false,"awaiting":0},"replicator":{"failedAttempts":0,"nextAttemptAt":"0001-01-01T00:00:00Z","suspended":false,"awaiting":0}},` +
	`"eventBudget":{"used":3,"at":"%[3]s"}}`

// resumeRecord is the engine's resume record after poll o, with 100 RTTs
// (as the engine keeps them) that differ at every write.
func resumeRecord(o *history.Observation, rnd *rand.Rand) []byte {
	rtts := make([]byte, 0, 900)
	for i := range 100 {
		if i > 0 {
			rtts = append(rtts, ',')
		}
		rtts = strconv.AppendInt(rtts, int64(o.RTT)/2+rnd.Int64N(int64(o.RTT)+1), 10)
	}
	reason, _ := json.Marshal(o.Reason)
	return fmt.Appendf(nil, recordTemplate, o.Agent, rtts, o.Time.Format(time.RFC3339Nano), int64(o.State), reason)
}
