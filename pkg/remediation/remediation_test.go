package remediation

import (
	"errors"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/response"
	"github.com/vigil-cdp/vigil/pkg/state"
)

var t0 = time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)

func policy(edit func(p *fleet.AutoRestart)) fleet.AutoRestart {
	p := fleet.DefaultPolicy().AutoRestart
	if edit != nil {
		edit(&p)
	}
	return p
}

func verdict(v response.Verdict, gen int64) response.ProcessVerdict {
	return response.ProcessVerdict{Name: "cdp", Verdict: v, Reason: v.String(), Process: response.Process{Name: "cdp", Generation: gen}}
}

var errRefused = errors.New("agent answer: HTTP 500: could not start")

// step is one poll (a verdict at an offset) and, when an action is decided,
// its result.
type step struct {
	at        time.Duration
	v         response.ProcessVerdict
	peer      Peer
	wantAct   Kind
	result    error
	resultGen int64
	stale     bool
	// want is the state after the step (after recording the action's result).
	want       state.State
	wantReason string
	wantTrip   bool
	wantNote   string
}

func TestTransitions(t *testing.T) {
	confirmed := Peer{Confirmed: true, Node: "node-b"}
	tests := []struct {
		name   string
		policy fleet.AutoRestart
		steps  []step
	}{
		{name: "running where expected is OK", policy: policy(nil), steps: []step{
			{v: verdict(response.Running, 4), want: state.OK, wantReason: "running"},
		}},
		{name: "down: restarted at the first poll, confirmed at the next", policy: policy(nil), steps: []step{
			{v: verdict(response.Down, 4), wantAct: Restart, resultGen: 5, want: state.Restarting, wantReason: "restarted (generation 5); awaiting confirmation"},
			{at: 10 * time.Second, v: verdict(response.Running, 5), want: state.OK, wantReason: "running"},
		}},
		{name: "starting is awaited, not restarted", policy: policy(nil), steps: []step{
			{v: verdict(response.Starting, 5), want: state.Restarting, wantReason: "starting"},
		}},
		{name: "failed restarts back off and end in FAILED, then recover", policy: policy(func(p *fleet.AutoRestart) {
			p.BackoffInitial, p.BackoffMax = 5*time.Second, 15*time.Second
		}), steps: []step{
			{v: verdict(response.Down, 4), wantAct: Restart, result: errRefused, want: state.Restarting,
				wantReason: "down where expected; restart failed (agent answer: HTTP 500: could not start), next attempt in 5 s"},
			{at: 2 * time.Second, v: verdict(response.Down, 4), want: state.Restarting,
				wantReason: "down; restart failed (agent answer: HTTP 500: could not start), next attempt in 3 s"},
			{at: 5 * time.Second, v: verdict(response.Down, 4), wantAct: Restart, result: errRefused, want: state.Restarting,
				wantReason: "down where expected; restart failed (agent answer: HTTP 500: could not start), next attempt in 10 s"},
			{at: 15 * time.Second, v: verdict(response.Down, 4), wantAct: Restart, result: errRefused, want: state.Failed,
				wantReason: "restart failing: 3 attempts failed (last: agent answer: HTTP 500: could not start); next attempt in 15 s"},
			{at: 20 * time.Second, v: verdict(response.Down, 4), want: state.Failed,
				wantReason: "restart failing: 3 attempts failed (last: agent answer: HTTP 500: could not start); next attempt in 10 s"},
			{at: 30 * time.Second, v: verdict(response.Down, 4), wantAct: Restart, resultGen: 5, want: state.Restarting, wantReason: "restarted (generation 5); awaiting confirmation"},
			{at: 40 * time.Second, v: verdict(response.Running, 5), want: state.OK, wantReason: "running"},
		}},
		{name: "a stale generation is no failure", policy: policy(nil), steps: []step{
			{v: verdict(response.Down, 4), wantAct: Restart, stale: true, resultGen: 5, want: state.Restarting,
				wantReason: "already restarted by someone else (generation now 5); awaiting confirmation"},
			{at: time.Second, v: verdict(response.Running, 5), want: state.OK, wantReason: "running"},
		}},
		{name: "flap guard: one restart more than maxRestarts within the window suspends", policy: policy(func(p *fleet.AutoRestart) {
			p.MaxRestarts, p.Window = 2, time.Minute
		}), steps: []step{
			{v: verdict(response.Down, 1), wantAct: Restart, resultGen: 2, want: state.Restarting, wantReason: "restarted (generation 2); awaiting confirmation"},
			{at: 10 * time.Second, v: verdict(response.Down, 2), wantAct: Restart, resultGen: 3, want: state.Restarting, wantReason: "restarted (generation 3); awaiting confirmation"},
			{at: 20 * time.Second, v: verdict(response.Down, 3), wantAct: Restart, resultGen: 4, want: state.Degraded, wantTrip: true,
				wantReason: "auto-restart suspended: 3 restarts within 1m0s; a person must act or the window pass"},
			{at: 30 * time.Second, v: verdict(response.Down, 4), want: state.Degraded,
				wantReason: "auto-restart suspended: 3 restarts within 1m0s (down); a person must act or the window pass"},
			{at: 40 * time.Second, v: verdict(response.Running, 4), want: state.Degraded,
				wantReason: "auto-restart suspended: 3 restarts within 1m0s (running); a person must act or the window pass"},
			// At 61 s the first restart has left the window: 2 remain, not more than maxRestarts.
			{at: 61 * time.Second, v: verdict(response.Down, 4), wantAct: Restart, resultGen: 5, want: state.Degraded, wantTrip: true,
				wantNote:   "auto-restart resumed: fewer than 3 restarts within 1m0s",
				wantReason: "auto-restart suspended: 3 restarts within 1m0s; a person must act or the window pass"},
		}},
		{name: "restarts spread wider than the window never trip", policy: policy(func(p *fleet.AutoRestart) {
			p.MaxRestarts, p.Window = 1, 10*time.Second
		}), steps: []step{
			{v: verdict(response.Down, 1), wantAct: Restart, resultGen: 2, want: state.Restarting, wantReason: "restarted (generation 2); awaiting confirmation"},
			{at: 11 * time.Second, v: verdict(response.Down, 2), wantAct: Restart, resultGen: 3, want: state.Restarting, wantReason: "restarted (generation 3); awaiting confirmation"},
			{at: 22 * time.Second, v: verdict(response.Down, 3), wantAct: Restart, resultGen: 4, want: state.Restarting, wantReason: "restarted (generation 4); awaiting confirmation"},
		}},
		{name: "auto-restart off: down is FAILED, nothing done", policy: policy(func(p *fleet.AutoRestart) { p.Enabled = false }), steps: []step{
			{v: verdict(response.Down, 4), want: state.Failed, wantReason: "down; auto-restart is off"},
		}},
		{name: "passive node, not running: STANDBY", policy: policy(nil), steps: []step{
			{v: verdict(response.NotExpected, 4), want: state.Standby, wantReason: "not expected"},
		}},
		{name: "role unknown: UNKNOWN, nothing done", policy: policy(nil), steps: []step{
			{v: verdict(response.RoleUnknown, 4), want: state.Unknown, wantReason: "role unknown"},
		}},
		{name: "still running on the old active node: left alone until confirmed on the new one", policy: policy(nil), steps: []step{
			{v: verdict(response.RunningNotExpected, 4), want: state.Standby,
				wantReason: "running where not expected; stopped once CDP is confirmed on the active node"},
			{at: time.Second, v: verdict(response.RunningNotExpected, 4), peer: confirmed, wantAct: Stop, resultGen: 4, want: state.Standby,
				wantReason: "stopped: not expected on this node"},
			{at: 2 * time.Second, v: verdict(response.NotExpected, 4), want: state.Standby, wantReason: "not expected"},
		}},
		{name: "stop refused: backs off, stays STANDBY", policy: policy(nil), steps: []step{
			{v: verdict(response.RunningNotExpected, 4), peer: confirmed, wantAct: Stop, result: errRefused, want: state.Standby,
				wantReason: "stop failed (agent answer: HTTP 500: could not start), next attempt in 5 s"},
			{at: time.Second, v: verdict(response.RunningNotExpected, 4), peer: confirmed, want: state.Standby,
				wantReason: "running where not expected; stop failed (agent answer: HTTP 500: could not start), next attempt in 4 s"},
		}},
		{name: "stopWhenNotExpected off: left running", policy: policy(func(p *fleet.AutoRestart) { p.StopWhenNotExpected = false }), steps: []step{
			{v: verdict(response.RunningNotExpected, 4), peer: confirmed, want: state.Standby,
				wantReason: "running where not expected; left running (automatic stop is off)"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr Tracker
			for i, st := range tt.steps {
				now := t0.Add(st.at)
				d := tr.Decide(tt.policy, now, st.v, st.peer)
				if d.Action != st.wantAct {
					t.Fatalf("step %d: action %q, want %q (%+v)", i, d.Action, st.wantAct, d)
				}
				if d.Note != st.wantNote {
					t.Errorf("step %d: note %q, want %q", i, d.Note, st.wantNote)
				}
				gotState, gotReason, tripped := d.State, d.Reason, false
				switch d.Action {
				case Restart:
					if d.IfGeneration != st.v.Generation {
						t.Errorf("step %d: ifGeneration %d, want %d", i, d.IfGeneration, st.v.Generation)
					}
					o := tr.RecordRestart(tt.policy, now, Automatic, st.resultGen, st.stale, st.result)
					gotState, gotReason, tripped = o.State, o.Reason, o.Tripped
				case Stop:
					o := tr.RecordStop(tt.policy, now, Automatic, st.resultGen, st.stale, st.result)
					gotState, gotReason = o.State, o.Reason
				}
				if gotState != st.want || gotReason != st.wantReason || tripped != st.wantTrip {
					t.Errorf("step %d: %s %q tripped=%v\n want %s %q tripped=%v", i, gotState, gotReason, tripped, st.want, st.wantReason, st.wantTrip)
				}
			}
		})
	}
}

func TestPersonLiftsTheFlapGuard(t *testing.T) {
	// A person whose login is "auto" is a person, not the engine.
	for _, login := range []string{"alice", Auto} {
		t.Run(login, func(t *testing.T) {
			p := policy(func(p *fleet.AutoRestart) { p.MaxRestarts = 0 })
			var tr Tracker
			tr.Decide(p, t0, verdict(response.Down, 1), Peer{})
			if o := tr.RecordRestart(p, t0, Automatic, 2, false, nil); !o.Tripped {
				t.Fatal("maxRestarts 0: the first restart should trip the guard")
			}
			if tr.LastAction == nil || tr.LastAction.By != Auto || tr.LastAction.Manual {
				t.Errorf("the engine's last action = %+v", tr.LastAction)
			}
			if d := tr.Decide(p, t0.Add(time.Second), verdict(response.Down, 2), Peer{}); d.Action != None || d.State != state.Degraded {
				t.Fatalf("suspended, yet %+v", d)
			}
			o := tr.RecordRestart(p, t0.Add(2*time.Second), ByPerson(login), 3, false, nil)
			if o.State != state.Restarting || o.Reason != "restarted by "+login+" (generation 3); awaiting confirmation" || tr.Suspended {
				t.Fatalf("after a person's restart: %+v, suspended=%v", o, tr.Suspended)
			}
			if tr.LastAction == nil || tr.LastAction.By != login || !tr.LastAction.Manual || tr.LastAction.Generation != 3 {
				t.Errorf("last action = %+v", tr.LastAction)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	p := fleet.AutoRestart{BackoffInitial: time.Second, BackoffMax: 10 * time.Second}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := backoff(p, i+1); got != w {
			t.Errorf("after %d failures: %s, want %s", i+1, got, w)
		}
	}
	if got := backoff(fleet.AutoRestart{}, 3); got != 0 {
		t.Errorf("zero back-off: %s", got)
	}
}
