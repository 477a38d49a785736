package engine_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/internal/agentproc"
	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// An agent (here a front for a real one) that answers the auto-restart with a
// 307 to another agent's stop: the request is not re-sent there, the other
// agent's CDP process keeps running, and the restart is recorded as failed,
// naming the location. Both agents share their tokens, as agents of one fleet
// often do.
func TestARestartRedirectedToAnotherAgentsStopIsNotFollowed(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	t.Parallel()
	dir := t.TempDir()
	a := agentproc.StartConfig(t, dir+"/a", agentConfig(t, marker(t)+"-a"), marker(t)+"-a")
	b := agentproc.StartConfig(t, dir+"/b", agentConfig(t, marker(t)+"-b"), marker(t)+"-b")
	stopAtB := b.URL() + "/v1/processes/cdp/stop"

	target, _ := url.Parse(a.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var redirected int
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/restart") {
			redirected++
			http.Redirect(w, r, stopAtB, http.StatusTemporaryRedirect)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	p := fastPolicy()
	e, rec := run(t, fleetFor(p,
		fleet.Agent{Name: "front", URL: front.URL},
		fleet.Agent{Name: "other", URL: b.URL()},
	), engine.Options{})
	rec.wait(t, "front OK", 10*time.Second, isState("front", "", state.OK))
	rec.wait(t, "other OK", 10*time.Second, isState("other", "", state.OK))
	other, _ := e.Snapshot().Agent("other")
	otherPID, otherGen := *other.Processes[0].PID, other.Processes[0].Generation
	snap, _ := e.Snapshot().Agent("front")
	if err := syscall.Kill(int(*snap.Processes[0].PID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	failed := rec.wait(t, "a failed restart", 10*time.Second, isAction("front", "restart", "failed"))
	if !strings.Contains(failed.Error, "redirect to "+stopAtB) {
		t.Errorf("the failed restart does not name the location: %q", failed.Error)
	}
	for _, ev := range rec.all() {
		if ev.Type == history.TypeAction && ev.Result == "ok" {
			t.Errorf("an action was recorded as done: %+v", ev)
		}
		if ev.Agent == "other" && ev.Type == history.TypeState && ev.To != state.OK {
			t.Errorf("the other agent left OK: %+v", ev)
		}
	}
	// The other agent's CDP process was never stopped: same process, same generation.
	if err := syscall.Kill(int(otherPID), 0); err != nil {
		t.Errorf("the other agent's CDP process (pid %d) is gone: %v", otherPID, err)
	}
	if err := e.PollNow(t.Context(), "other"); err != nil {
		t.Fatal(err)
	}
	now, _ := e.Snapshot().Agent("other")
	if g := now.Processes[0].Generation; g != otherGen || now.Processes[0].State != state.OK {
		t.Errorf("the other agent's CDP: generation %d (was %d), state %v", g, otherGen, now.Processes[0].State)
	}
	if redirected == 0 {
		t.Error("the front never saw a restart")
	}
}
