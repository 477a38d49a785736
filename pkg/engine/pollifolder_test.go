package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient/agentclienttest"
	"github.com/vigil-cdp/vigil/pkg/fleet"
)

func TestPollIfOlder(t *testing.T) {
	h := newHarness(t, fleetOf(policy(nil), fleet.Agent{Name: "a"}, fleet.Agent{Name: "b"}), nil)
	h.client.Add("a", agentclienttest.Script{})
	h.client.Add("b", agentclienttest.Script{})
	ctx := context.Background()
	polls := func() (int, int) {
		return h.client.Polls("a"), h.client.Polls("b")
	}
	const maxAge = 10 * time.Second
	steps := []struct {
		name         string
		advance      time.Duration
		do           func() error
		wantA, wantB int
	}{
		{"never polled: polled", 0, func() error { return h.eng.PollIfOlder(ctx, "", maxAge) }, 1, 1},
		{"polled 9 s ago: the latest state stands", 9 * time.Second, func() error { return h.eng.PollIfOlder(ctx, "", maxAge) }, 1, 1},
		{"polled maxAge ago: polled", time.Second, func() error { return h.eng.PollIfOlder(ctx, "", maxAge) }, 2, 2},
		{"PollNow polls whatever the age", 0, func() error { return h.eng.PollNow(ctx, "") }, 3, 3},
		{"one agent by name", 6 * time.Second, func() error { return h.eng.PollNow(ctx, "b") }, 3, 4},
		{"each agent by its own age", 4 * time.Second, func() error { return h.eng.PollIfOlder(ctx, "", maxAge) }, 4, 4},
		{"many callers at once: one poll", maxAge, func() error {
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for range 20 {
				wg.Go(func() { errs <- h.eng.PollIfOlder(ctx, "a", maxAge) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					return err
				}
			}
			return nil
		}, 5, 4},
	}
	for _, st := range steps {
		h.clk.Advance(st.advance)
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if gotA, gotB := polls(); gotA != st.wantA || gotB != st.wantB {
			t.Fatalf("%s: polls a=%d b=%d, want a=%d b=%d", st.name, gotA, gotB, st.wantA, st.wantB)
		}
	}
	if s, _ := h.eng.Snapshot().Agent("a"); !s.LastPollAt.Equal(h.clk.Now()) {
		t.Errorf("lastPollAt = %s, want %s", s.LastPollAt, h.clk.Now())
	}
	if err := h.eng.PollIfOlder(ctx, "nope", maxAge); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("unknown agent: %v", err)
	}
}
