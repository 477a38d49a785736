// Package remediation decides what to do about one process from what its
// latest answer says, and keeps the memory that needs: failed attempts and
// their back-off, recent successful restarts (the flap guard), a restart
// awaiting confirmation.
//
// The rules:
//   - Expected and down: restart at the first poll that shows it, with
//     ifGeneration. Back-off (backoffInitial, doubling up to backoffMax)
//     applies only between failed attempts. FailingAfter failed attempts in a
//     row make the process FAILED ("restart failing"); attempts go on.
//   - More than maxRestarts successful automatic restarts within window trip
//     the flap guard: DEGRADED, auto-restart suspended for that process
//     until a person restarts it or the window passes. Both are events.
//   - Running where no longer expected (the node stopped being active): stop
//     it (stopWhenNotExpected) only once CDP is confirmed running on the
//     cluster's active node, so there is never a moment without it.
//   - autoRestart.enabled false: nothing automatic; a process down where
//     expected is FAILED.
//
// Decide and the Record* methods take the time as an argument and do no I/O.
package remediation

import (
	"fmt"
	"time"

	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/response"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// FailingAfter failed restarts in a row make the process FAILED.
const FailingAfter = 3

// Kind is an action on a process.
type Kind string

// The actions.
const (
	None    Kind = ""
	Restart Kind = "restart"
	Stop    Kind = "stop"
)

// Auto is the "by" of actions the engine takes by itself.
const Auto = "auto"

// Actor is who takes an action: the engine by itself, or a person by login.
// A login may be anything, "auto" included, so the two are told apart by
// Person, never by the login alone.
type Actor struct {
	// Login is Auto for the engine, else the person's login.
	Login  string
	Person bool
}

// Automatic is the engine acting by itself.
var Automatic = Actor{Login: Auto}

// ByPerson is a person acting, named by their login.
func ByPerson(login string) Actor { return Actor{Login: login, Person: true} }

// Decision is what to do now and the resulting state.
type Decision struct {
	Action Kind
	// IfGeneration goes with the action, so two monitors never act twice.
	IfGeneration int64
	State        state.State
	Reason       string
	// Note is an event to record besides any state change (the flap guard
	// lifting), empty when there is none.
	Note string
}

// LastAction is the most recent action on a process, for the snapshot.
type LastAction struct {
	Kind Kind      `json:"kind"`
	At   time.Time `json:"at"`
	By   string    `json:"by"`
	// Manual: a person acted and By is their login, even when it is "auto".
	// Records written before it existed read false; their "auto" is the engine.
	Manual     bool   `json:"manual,omitempty"`
	Generation int64  `json:"generation"`
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
}

// Tracker is the remediation memory of one process. Its zero value is ready;
// it is plain data so the engine can persist it.
type Tracker struct {
	FailedAttempts int       `json:"failedAttempts"`
	LastError      string    `json:"lastError,omitempty"`
	NextAttemptAt  time.Time `json:"nextAttemptAt"`
	// Restarts are the successful automatic restarts within the window.
	Restarts  []time.Time `json:"restarts,omitempty"`
	Suspended bool        `json:"suspended"`
	// Awaiting is the generation a restart produced, until a poll shows it.
	Awaiting   int64       `json:"awaiting"`
	LastAction *LastAction `json:"lastAction,omitempty"`
}

// Peer says whether CDP is confirmed on the cluster's active node.
type Peer struct {
	// Confirmed: the latest answer of the active node shows the process running there.
	Confirmed bool
	// Node names the active node, for reasons.
	Node string
}

func (t *Tracker) prune(now time.Time, window time.Duration) {
	keep := t.Restarts[:0]
	for _, r := range t.Restarts {
		if now.Sub(r) < window {
			keep = append(keep, r)
		}
	}
	t.Restarts = keep
}

func backoff(p fleet.AutoRestart, failures int) time.Duration {
	d := p.BackoffInitial
	for i := 1; i < failures && d < p.BackoffMax; i++ {
		d *= 2
	}
	return min(d, p.BackoffMax)
}

// Decide judges one process of a fresh answer.
func (t *Tracker) Decide(p fleet.AutoRestart, now time.Time, v response.ProcessVerdict, peer Peer) Decision {
	note := ""
	if t.Suspended {
		t.prune(now, p.Window)
		if len(t.Restarts) <= p.MaxRestarts {
			t.Suspended = false
			note = fmt.Sprintf("auto-restart resumed: fewer than %d restarts within %s", p.MaxRestarts+1, p.Window)
		}
	}
	d := t.decide(p, now, v, peer)
	d.Note = note
	return d
}

func (t *Tracker) decide(p fleet.AutoRestart, now time.Time, v response.ProcessVerdict, peer Peer) Decision {
	switch v.Verdict {
	case response.Running:
		t.FailedAttempts, t.LastError, t.NextAttemptAt = 0, "", time.Time{}
		if v.Generation >= t.Awaiting {
			t.Awaiting = 0
		}
		if t.Suspended {
			return Decision{State: state.Degraded, Reason: t.suspendedReason(p, v.Reason)}
		}
		return Decision{State: state.OK, Reason: v.Reason}
	case response.Starting:
		return Decision{State: state.Restarting, Reason: v.Reason}
	case response.NotExpected:
		t.FailedAttempts, t.LastError, t.NextAttemptAt = 0, "", time.Time{}
		return Decision{State: state.Standby, Reason: v.Reason}
	case response.RoleUnknown:
		return Decision{State: state.Unknown, Reason: v.Reason}
	case response.RunningNotExpected:
		switch {
		case !p.Enabled || !p.StopWhenNotExpected:
			return Decision{State: state.Standby, Reason: v.Reason + "; left running (automatic stop is off)"}
		case !peer.Confirmed:
			return Decision{State: state.Standby, Reason: v.Reason + "; stopped once CDP is confirmed on the active node"}
		case t.FailedAttempts > 0 && now.Before(t.NextAttemptAt):
			return Decision{State: state.Standby, Reason: fmt.Sprintf("%s; stop failed (%s), next attempt in %s", v.Reason, t.LastError, seconds(t.NextAttemptAt.Sub(now)))}
		}
		return Decision{Action: Stop, IfGeneration: v.Generation, State: state.Standby,
			Reason: fmt.Sprintf("%s; stopping it, CDP confirmed running on %s", v.Reason, peer.Node)}
	}

	// Down where expected.
	switch {
	case !p.Enabled:
		return Decision{State: state.Failed, Reason: v.Reason + "; auto-restart is off"}
	case t.Suspended:
		return Decision{State: state.Degraded, Reason: t.suspendedReason(p, v.Reason)}
	case t.FailedAttempts > 0 && now.Before(t.NextAttemptAt):
		return t.failingDecision(now, v.Reason)
	}
	return Decision{Action: Restart, IfGeneration: v.Generation, State: state.Restarting, Reason: v.Reason + "; restart requested"}
}

func (t *Tracker) failingDecision(now time.Time, why string) Decision {
	next := seconds(t.NextAttemptAt.Sub(now))
	if t.FailedAttempts >= FailingAfter {
		return Decision{State: state.Failed, Reason: fmt.Sprintf("restart failing: %d attempts failed (last: %s); next attempt in %s", t.FailedAttempts, t.LastError, next)}
	}
	return Decision{State: state.Restarting, Reason: fmt.Sprintf("%s; restart failed (%s), next attempt in %s", why, t.LastError, next)}
}

func (t *Tracker) suspendedReason(p fleet.AutoRestart, why string) string {
	return fmt.Sprintf("auto-restart suspended: %d restarts within %s (%s); a person must act or the window pass", len(t.Restarts), p.Window, why)
}

// Outcome is the recorded result of an action.
type Outcome struct {
	State  state.State
	Reason string
	// Tripped: this restart tripped the flap guard (record it as an event).
	Tripped bool
	// Note explains an outcome that is neither success nor failure.
	Note string
}

// RecordRestart records the result of a restart. generation is the new one
// on success; stale reports another monitor's (or a person's) restart that
// happened first, which is no failure. by is the engine (Automatic) or a person.
func (t *Tracker) RecordRestart(p fleet.AutoRestart, now time.Time, by Actor, generation int64, stale bool, err error) Outcome {
	la := &LastAction{Kind: Restart, At: now, By: by.Login, Manual: by.Person, Generation: generation, OK: err == nil}
	if err != nil {
		la.Error = err.Error()
	}
	t.LastAction = la
	switch {
	case stale:
		t.Awaiting = generation
		return Outcome{State: state.Restarting, Reason: fmt.Sprintf("already restarted by someone else (generation now %d); awaiting confirmation", generation)}
	case err != nil:
		t.FailedAttempts++
		t.LastError = err.Error()
		t.NextAttemptAt = now.Add(backoff(p, t.FailedAttempts))
		return Outcome{State: t.failingDecision(now, "down where expected").State, Reason: t.failingDecision(now, "down where expected").Reason}
	}
	t.FailedAttempts, t.LastError, t.NextAttemptAt = 0, "", time.Time{}
	t.Awaiting = generation
	if by.Person {
		// A person acted: the flap guard starts over.
		t.Restarts, t.Suspended = nil, false
		return Outcome{State: state.Restarting, Reason: fmt.Sprintf("restarted by %s (generation %d); awaiting confirmation", by.Login, generation)}
	}
	t.prune(now, p.Window)
	t.Restarts = append(t.Restarts, now)
	if len(t.Restarts) > p.MaxRestarts {
		t.Suspended = true
		return Outcome{State: state.Degraded, Tripped: true,
			Reason: fmt.Sprintf("auto-restart suspended: %d restarts within %s; a person must act or the window pass", len(t.Restarts), p.Window)}
	}
	return Outcome{State: state.Restarting, Reason: fmt.Sprintf("restarted (generation %d); awaiting confirmation", generation)}
}

// RecordStop records the result of a stop on a node no longer active.
func (t *Tracker) RecordStop(p fleet.AutoRestart, now time.Time, by Actor, generation int64, stale bool, err error) Outcome {
	la := &LastAction{Kind: Stop, At: now, By: by.Login, Manual: by.Person, Generation: generation, OK: err == nil}
	if err != nil {
		la.Error = err.Error()
	}
	t.LastAction = la
	switch {
	case stale:
		return Outcome{State: state.Standby, Reason: fmt.Sprintf("not stopped: generation changed (now %d); judged again at the next poll", generation)}
	case err != nil:
		t.FailedAttempts++
		t.LastError = err.Error()
		t.NextAttemptAt = now.Add(backoff(p, t.FailedAttempts))
		return Outcome{State: state.Standby, Reason: fmt.Sprintf("stop failed (%s), next attempt in %s", t.LastError, seconds(t.NextAttemptAt.Sub(now)))}
	}
	t.FailedAttempts, t.LastError, t.NextAttemptAt = 0, "", time.Time{}
	return Outcome{State: state.Standby, Reason: "stopped: not expected on this node"}
}

func seconds(d time.Duration) string {
	if d < 10*time.Second && d != d.Truncate(time.Second) {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%d s", int64(d.Round(time.Second)/time.Second))
}
