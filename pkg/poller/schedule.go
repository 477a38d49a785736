package poller

import (
	"container/heap"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-cdp/vigil/pkg/clock"
)

// Scheduler calls many loops' functions, each every interval at a fixed
// rate: each call is due one interval after the previous call was due, not
// after it finished, so the time a call takes (waiting for a slot, the
// answer, the history write) does not stretch the interval.
//
// With jitter, a loop's first call comes after a random part of
// jitter×interval (so a fleet does not start polling in lockstep) and its
// second after a random 10 % to 100 % of the interval, never later: that
// sets the loop's phase, so the loops of a fleet started together spread
// over the whole interval instead of all calling in the same second of it
// (a fixed rate keeps whatever spread they start with). Each later due time
// is varied by up to ±jitter/2×interval around the grid, without
// accumulating, so two calls are never more than (1+jitter)×interval apart
// unless a call itself takes that long. A loop that falls more than a whole
// interval behind (a call that hung) starts a new grid at once rather than
// calling in a burst to catch up. A loop's calls never overlap.
//
// One goroutine and one timer serve every loop; each call runs on a
// goroutine of its own that ends with the call. An idle loop holds no
// goroutine and no timer, so a fleet of 10,000 agents holds goroutine stacks
// only for the polls in flight.
type Scheduler struct {
	clk      clock.Clock
	jitter   float64
	interval atomic.Int64 // nanoseconds

	mu      sync.Mutex // what follows
	queue   dueQueue
	loops   map[string]*loop
	running context.Context
	idle    bool // Run waits for the queue's first due time (tests)
	wake    chan struct{}
	calls   sync.WaitGroup
}

type loop struct {
	key   string
	fn    func(ctx context.Context)
	grid  grid
	index int // in the queue; -1 while its call runs
	// cancel ends the call in flight.
	cancel  context.CancelFunc
	removed bool
}

// NewScheduler returns a scheduler calling every interval (see SetInterval)
// with jitter (a fraction of the interval, 0 for none).
func NewScheduler(clk clock.Clock, interval time.Duration, jitter float64) *Scheduler {
	s := &Scheduler{clk: clk, jitter: jitter, loops: map[string]*loop{}, wake: make(chan struct{}, 1)}
	s.interval.Store(int64(interval))
	return s
}

// SetInterval changes the interval: each loop's next call after the one
// now due is placed with it.
func (s *Scheduler) SetInterval(d time.Duration) { s.interval.Store(int64(d)) }

func (s *Scheduler) iv() time.Duration { return time.Duration(s.interval.Load()) }

// Add starts a loop calling fn (its first call as described above, counted
// from now, or from when Run starts). A loop of the same key is replaced.
func (s *Scheduler) Add(key string, fn func(ctx context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remove(key)
	l := &loop{key: key, fn: fn, index: -1}
	s.loops[key] = l
	if s.running != nil {
		l.grid = startGrid(s.clk.Now(), s.iv(), s.jitter)
		s.push(l)
	}
}

// Remove stops a loop, cancelling its call in flight.
func (s *Scheduler) Remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remove(key)
}

func (s *Scheduler) remove(key string) {
	l, ok := s.loops[key]
	if !ok {
		return
	}
	delete(s.loops, key)
	l.removed = true
	if l.index >= 0 {
		heap.Remove(&s.queue, l.index)
	}
	if l.cancel != nil {
		l.cancel()
	}
}

// Run calls the loops until ctx ends, then cancels the calls in flight and
// waits for them. It returns ctx's error.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running != nil {
		s.mu.Unlock()
		return errors.New("the scheduler is already running")
	}
	s.running = ctx
	now, iv := s.clk.Now(), s.iv()
	for _, l := range s.loops {
		l.grid = startGrid(now, iv, s.jitter)
		s.push(l)
	}
	s.mu.Unlock()
	for {
		s.mu.Lock()
		s.idle = false
		now := s.clk.Now()
		for len(s.queue) > 0 && !s.queue[0].grid.due.After(now) {
			s.start(ctx, heap.Pop(&s.queue).(*loop))
		}
		var timer clock.Timer
		var fired <-chan time.Time
		if len(s.queue) > 0 {
			timer = s.clk.NewTimer(s.queue[0].grid.due.Sub(now))
			fired = timer.C()
		}
		s.idle = true
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			s.mu.Lock()
			s.running, s.idle = nil, false
			for _, l := range s.loops {
				if l.cancel != nil {
					l.cancel()
				}
				if l.index >= 0 {
					heap.Remove(&s.queue, l.index)
				}
			}
			s.mu.Unlock()
			s.calls.Wait()
			return ctx.Err()
		case <-fired:
		case <-s.wake:
			if timer != nil {
				timer.Stop()
			}
		}
	}
}

// start runs one loop's call on a goroutine of its own (mu held).
func (s *Scheduler) start(ctx context.Context, l *loop) {
	cctx, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	s.calls.Go(func() {
		l.fn(cctx)
		iv := s.iv()
		s.mu.Lock()
		defer s.mu.Unlock()
		cancel()
		l.cancel = nil
		if l.removed || s.running != ctx {
			return
		}
		l.grid.next(s.clk.Now(), iv, s.jitter)
		s.push(l)
	})
}

// push queues a loop (mu held), waking Run when it is now the first due.
func (s *Scheduler) push(l *loop) {
	heap.Push(&s.queue, l)
	if l.index == 0 {
		s.idle = false
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// settled reports whether no call is in flight and Run waits for the next
// due time (tests: after a fake clock's Advance).
func (s *Scheduler) settled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	due := len(s.queue) > 0 && !s.queue[0].grid.due.After(s.clk.Now())
	return s.idle && !due && len(s.queue) == len(s.loops) && len(s.wake) == 0
}

// grid is one loop's schedule: the fixed-rate grid and the next due time.
type grid struct {
	at, due time.Time
	first   bool
}

func startGrid(now time.Time, iv time.Duration, jitter float64) grid {
	at := now.Add(time.Duration(rand.Float64() * jitter * float64(iv)))
	return grid{at: at, due: at, first: true}
}

// next places the call after the one just made (now is when it ended).
func (g *grid) next(now time.Time, iv time.Duration, jitter float64) {
	if g.first && jitter > 0 {
		g.at = g.at.Add(time.Duration((0.1 + 0.9*rand.Float64()) * float64(iv)))
	} else {
		g.at = g.at.Add(iv)
	}
	g.first = false
	if now.Sub(g.at) > iv {
		g.at = now
	}
	g.due = g.at.Add(time.Duration((rand.Float64() - 0.5) * jitter * float64(iv)))
}

// dueQueue is a min-heap of loops by due time.
type dueQueue []*loop

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].grid.due.Before(q[j].grid.due) }
func (q dueQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *dueQueue) Push(x any) {
	l := x.(*loop)
	l.index = len(*q)
	*q = append(*q, l)
}
func (q *dueQueue) Pop() any {
	old := *q
	l := old[len(old)-1]
	old[len(old)-1] = nil
	l.index = -1
	*q = old[:len(old)-1]
	return l
}
