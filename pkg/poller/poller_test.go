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
