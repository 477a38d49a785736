package poller

import (
	"context"
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
	go func() {
		Loop(ctx, fake, func() time.Duration { return 10 * time.Second }, 0, func(context.Context) { calls <- fake.Now() })
		close(done)
	}()
	<-calls // jitter 0: the first poll is immediate
	for i := range 3 {
		fake.BlockUntil(1)
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
	go func() {
		Loop(ctx, fake, func() time.Duration { return 10 * time.Second }, 0, func(context.Context) {
			calls <- fake.Now()
			n++
			switch n {
			case 1, 2:
				fake.Advance(3 * time.Second) // a slow poll
			case 3:
				fake.Advance(25 * time.Second) // a poll that hung for more than two intervals
			}
		})
		close(done)
	}()
	want := []time.Time{start, start.Add(10 * time.Second), start.Add(20 * time.Second), start.Add(45 * time.Second), start.Add(55 * time.Second)}
	for i, w := range want {
		if i > 0 {
			fake.BlockUntil(1)
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
	go func() {
		Loop(ctx, fake, func() time.Duration { return iv }, jitter, func(context.Context) { calls <- fake.Now() })
		close(done)
	}()
	var got []time.Time
	for len(got) < 300 {
		fake.BlockUntil(1) // the loop waits again: a call it made is in calls
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
	var wg sync.WaitGroup
	for i := range loops {
		n := 0
		wg.Go(func() {
			Loop(ctx, fake, func() time.Duration { return iv }, 0.1, func(context.Context) {
				n++
				if n == 2 {
					mu.Lock()
					second[i] = fake.Now()
					mu.Unlock()
				}
			})
		})
	}
	for fake.Now().Sub(start) < 2*iv {
		fake.BlockUntil(loops)
		fake.Advance(step)
	}
	fake.BlockUntil(loops)
	cancel()
	wg.Wait()
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
