package poller

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/clock"
)

type slowClient struct {
	agentclient.API
	inFlight, peak atomic.Int32
	delay          map[string]time.Duration
}

func (c *slowClient) Status(ctx context.Context, a agentclient.Agent) (agentclient.Answer, error) {
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	select {
	case <-time.After(c.delay[a.Name]):
		return agentclient.Answer{StatusCode: 200, Body: []byte("{}")}, nil
	case <-ctx.Done():
		return agentclient.Answer{}, &agentclient.Error{Fault: agentclient.FaultNetwork, Agent: a.Name, Detail: "no answer before the timeout", Err: ctx.Err()}
	}
}

func TestPoll(t *testing.T) {
	c := &slowClient{delay: map[string]time.Duration{"fast": 0, "dead": time.Hour}}
	p := New(c, clock.Real{}, 2)
	tests := []struct {
		name       string
		agent      string
		wantSilent bool
	}{
		{"answers", "fast", false},
		{"times out", "dead", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			r := p.Poll(context.Background(), Target{Agent: agentclient.Agent{Name: tt.agent}, Timeout: 150 * time.Millisecond})
			if r.Silent() != tt.wantSilent || r.Agent != tt.agent {
				t.Errorf("result %+v", r)
			}
			if time.Since(start) > time.Second {
				t.Errorf("the timeout did not hold: %s", time.Since(start))
			}
		})
	}
}

// A dead agent holds one slot, never the others.
func TestConcurrencyLimitAndSlowAgent(t *testing.T) {
	c := &slowClient{delay: map[string]time.Duration{"dead": time.Hour, "ok": 0}}
	p := New(c, clock.Real{}, 3)
	var wg sync.WaitGroup
	wg.Go(func() {
		p.Poll(context.Background(), Target{Agent: agentclient.Agent{Name: "dead"}, Timeout: 500 * time.Millisecond})
	})
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	for range 20 {
		wg.Go(func() {
			p.Poll(context.Background(), Target{Agent: agentclient.Agent{Name: "ok"}, Timeout: time.Second})
		})
		time.Sleep(time.Millisecond)
	}
	// wait for the fast ones only
	for c.inFlight.Load() > 1 {
		time.Sleep(time.Millisecond)
	}
	if time.Since(start) > 300*time.Millisecond {
		t.Errorf("fast agents waited for the dead one: %s", time.Since(start))
	}
	if c.peak.Load() > 3 {
		t.Errorf("%d polls in flight, limit 3", c.peak.Load())
	}
	wg.Wait()
}

func TestLoop(t *testing.T) {
	fake := clock.NewFake(time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC))
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan time.Time, 10)
	done := make(chan struct{})
	s := oneLoop(fake, 10*time.Second, 0, func(context.Context) { calls <- fake.Now() })
	go func() {
		_ = s.Run(ctx)
		close(done)
	}()
	<-calls // jitter 0: the first poll is immediate
	for i := range 3 {
		settle(t, s)
		fake.Advance(10 * time.Second)
		at := <-calls
		if want := time.Date(2026, 11, 26, 4, 0, 10*(i+1), 0, time.UTC); !at.Equal(want) {
			t.Errorf("poll %d at %s, want %s", i+1, at, want)
		}
	}
	cancel()
	<-done
}

// A poll that takes time does not push the next one back: the schedule is a fixed rate.
func TestLoopFixedRate(t *testing.T) {
	start := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	fake := clock.NewFake(start)
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan time.Time, 10)
	done := make(chan struct{})
	n := 0
	s := oneLoop(fake, 10*time.Second, 0, func(context.Context) {
		calls <- fake.Now()
		n++
		switch n {
		case 1, 2:
			fake.Advance(3 * time.Second) // a slow poll
		case 3:
			fake.Advance(25 * time.Second) // a poll that hung for more than two intervals
		}
	})
	go func() {
		_ = s.Run(ctx)
		close(done)
	}()
	want := []time.Time{start, start.Add(10 * time.Second), start.Add(20 * time.Second), start.Add(45 * time.Second), start.Add(55 * time.Second)}
	for i, w := range want {
		if i > 0 {
			settle(t, s)
			fake.Advance(w.Sub(fake.Now()))
		}
		select {
		case at := <-calls:
			if !at.Equal(w) {
				t.Errorf("poll %d at +%s, want +%s", i+1, at.Sub(start), w.Sub(start))
			}
		case <-time.After(5 * time.Second):
			cancel()
			t.Fatalf("no poll %d at +%s: the slow poll before it pushed the schedule back", i+1, w.Sub(start))
		}
	}
	cancel()
	<-done
}

// With jitter, each poll lands within ±jitter/2 of its slot on a fixed grid: two polls are at most
// (1+jitter)×interval apart, and the jitter does not accumulate over many polls.
func TestLoopJitterStaysOnTheGrid(t *testing.T) {
	start := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	fake := clock.NewFake(start)
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan time.Time, 1)
	done := make(chan struct{})
	const iv, jitter, step = 10 * time.Second, 0.1, 50 * time.Millisecond
	s := oneLoop(fake, iv, jitter, func(context.Context) { calls <- fake.Now() })
	go func() {
		_ = s.Run(ctx)
		close(done)
	}()
	var got []time.Time
	for len(got) < 300 {
		settle(t, s) // the loop waits again: a call it made is in calls
		select {
		case at := <-calls:
			got = append(got, at)
		default:
		}
		fake.Advance(step)
	}
	cancel()
	<-done
	half := time.Duration(jitter / 2 * float64(iv))
	if gap := got[1].Sub(got[0]); gap > iv+step {
		t.Errorf("the second poll came %s after the first, more than an interval", gap)
	}
	for k, at := range got[1:] {
		// From the second poll on (which sets the loop's phase), each poll is within ±jitter/2
		// of its slot on the grid: the second poll's slot plus k intervals.
		off := at.Sub(got[1]) - time.Duration(k)*iv
		if off < -2*half-step || off > 2*half+step {
			t.Fatalf("poll %d is %s off slot %d of the grid: the jitter accumulates", k+1, off, k)
		}
		if k > 0 {
			if gap := at.Sub(got[k]); gap > time.Duration((1+jitter)*float64(iv))+step {
				t.Errorf("polls %d and %d are %s apart, more than (1+jitter)×interval", k, k+1, gap)
			}
		}
	}
}

// Loops started together spread over the interval: the second poll sets each loop's phase.
func TestLoopsStartedTogetherSpreadOverTheInterval(t *testing.T) {
	start := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	fake := clock.NewFake(start)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const loops, iv, step = 200, 10 * time.Second, 100 * time.Millisecond
	var mu sync.Mutex
	second := map[int]time.Time{}
	s := NewScheduler(fake, iv, 0.1)
	for i := range loops {
		n := 0
		s.Add(fmt.Sprint(i), func(context.Context) {
			n++
			if n == 2 {
				mu.Lock()
				second[i] = fake.Now()
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() {
		_ = s.Run(ctx)
		close(done)
	}()
	for fake.Now().Sub(start) < 2*iv {
		settle(t, s)
		fake.Advance(step)
	}
	settle(t, s)
	cancel()
	<-done
	// Where in the interval each loop's second poll fell, in tenths: every tenth but the first holds some.
	var tenths [10]int
	for _, at := range second {
		tenths[int(at.Sub(start)%iv)*10/int(iv)]++
	}
	for i, n := range tenths[1:] {
		if n == 0 {
			t.Errorf("no loop polls in tenth %d of the interval: %v", i+1, tenths)
		}
	}
}

// oneLoop is a scheduler with one loop.
func oneLoop(clk clock.Clock, iv time.Duration, jitter float64, fn func(context.Context)) *Scheduler {
	s := NewScheduler(clk, iv, jitter)
	s.Add("a", fn)
	return s
}

// settle waits until no call is in flight or due and the scheduler waits
// for the fake clock.
func settle(t *testing.T, s *Scheduler) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !s.settled() {
		if time.Now().After(deadline) {
			t.Fatal("the scheduler did not settle in 5 s")
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// An idle loop holds no goroutine; a removed loop's call in flight is
// cancelled and it is not called again; a loop added while running starts;
// Run waits for the calls in flight.
func TestSchedulerLoops(t *testing.T) {
	start := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	fake := clock.NewFake(start)
	const loops, iv = 1000, 10 * time.Second
	s := NewScheduler(fake, iv, 0)
	var calls atomic.Int64
	for i := range loops {
		s.Add(fmt.Sprint(i), func(context.Context) { calls.Add(1) })
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	settle(t, s)
	if n := calls.Load(); n != loops {
		t.Fatalf("%d calls at the start, want %d", n, loops)
	}
	// The calls' goroutines end just after their loops are queued again.
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine()-before > 5; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle loops hold %d goroutines", loops, runtime.NumGoroutine()-before)
		}
	}

	// A slow call is cancelled when its loop is removed, and not called again.
	entered, ended := make(chan struct{}), make(chan error, 1)
	slow := 0
	s.Add("slow", func(ctx context.Context) {
		slow++
		close(entered)
		<-ctx.Done()
		ended <- ctx.Err()
	})
	<-entered
	s.Remove("slow")
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("the removed loop's call ended with %v", err)
	}
	settle(t, s)
	fake.Advance(iv)
	settle(t, s)
	if n := calls.Load(); n != 2*loops {
		t.Errorf("%d calls after one interval, want %d", n, 2*loops)
	}
	if slow != 1 {
		t.Errorf("the removed loop was called %d times", slow)
	}

	// A new interval applies from each loop's next call on.
	s.SetInterval(2 * iv)
	fake.Advance(iv)
	settle(t, s)
	fake.Advance(iv)
	settle(t, s)
	if n := calls.Load(); n != 3*loops {
		t.Errorf("%d calls after two more intervals at a doubled interval, want %d", n, 3*loops)
	}

	// Run cancels the calls in flight and waits for them.
	blocked, released := make(chan struct{}), atomic.Bool{}
	s.Add("blocked", func(ctx context.Context) {
		close(blocked)
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond)
		released.Store(true)
	})
	<-blocked
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
	if !released.Load() {
		t.Error("Run returned before the call in flight ended")
	}
}
