package response

import (
	"fmt"
	"strings"
)

// Verdict is what one answer says about one process.
type Verdict int

const (
	// Running: running where it is expected.
	Running Verdict = iota
	// Starting: expected and starting; nothing to do yet.
	Starting
	// Down: expected, but stopped, stopping or crashed: remediation restarts it.
	Down
	// NotExpected: not expected here (a passive node) and not running.
	NotExpected
	// RunningNotExpected: still running where it is no longer expected
	// (the node stopped being active): a candidate for stop, once CDP is
	// confirmed on the active node.
	RunningNotExpected
	// RoleUnknown: not expected only because the node's role could not be read.
	RoleUnknown
)

var verdictNames = [...]string{"running", "starting", "down", "not expected", "running where not expected", "role unknown"}

func (v Verdict) String() string {
	if v >= 0 && int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Roles an agent can be in, as Observation.Role gives them.
const (
	RoleStandalone = "standalone"
	RoleActive     = "active"
	RolePassive    = "passive"
	RoleUnknownStr = "unknown"
)

// ProcessVerdict is one process judged.
type ProcessVerdict struct {
	Name    string
	Verdict Verdict
	// Reason is a sentence for a person: "crashed (signal SIGKILL) where expected".
	Reason string
	Process
}

// LagSeconds is the protection lag when the process reports one.
func (p ProcessVerdict) LagSeconds() (float64, bool) {
	if p.Protection == nil || p.Protection.LagSeconds == nil {
		return 0, false
	}
	return *p.Protection.LagSeconds, true
}

// Observation is one status answer judged.
type Observation struct {
	Status Status
	// Role is standalone, active, passive or unknown.
	Role string
	// Cluster and Node are empty on a standalone agent.
	Cluster, Node string
	Processes     []ProcessVerdict
}

// Process returns the verdict for one process by name.
func (o Observation) Process(name string) (ProcessVerdict, bool) {
	for _, p := range o.Processes {
		if p.Name == name {
			return p, true
		}
	}
	return ProcessVerdict{}, false
}

// Classify judges every process of a parsed status answer.
func Classify(st Status) Observation {
	o := Observation{Status: st, Role: RoleStandalone}
	where := "here"
	if c := st.Cluster; c != nil {
		o.Role, o.Cluster, o.Node = c.Role, c.Name, c.Node
		where = fmt.Sprintf("on %s node %s of %s", c.Role, c.Node, c.Name)
	}
	for _, p := range st.Processes {
		pv := ProcessVerdict{Name: p.Name, Process: p}
		running := p.State == "running"
		switch {
		case p.Expected && running:
			pv.Verdict, pv.Reason = Running, fmt.Sprintf("running (pid %s, generation %d)", num(p.PID), p.Generation)
		case p.Expected && p.State == "starting":
			pv.Verdict, pv.Reason = Starting, fmt.Sprintf("starting (generation %d)", p.Generation)
		case p.Expected:
			pv.Verdict, pv.Reason = Down, fmt.Sprintf("%s where expected%s", p.State, exitDetail(p.LastExit))
		case o.Role == RoleUnknownStr:
			pv.Verdict = RoleUnknown
			pv.Reason = "cluster role unknown"
			if c := st.Cluster; c != nil && c.RoleError != nil && *c.RoleError != "" {
				pv.Reason += ": " + *c.RoleError
			}
			if running || p.State == "starting" {
				pv.Reason += fmt.Sprintf(" (still %s)", p.State)
			}
		case running || p.State == "starting":
			pv.Verdict, pv.Reason = RunningNotExpected, fmt.Sprintf("%s %s, where it is not expected", p.State, where)
		default:
			pv.Verdict, pv.Reason = NotExpected, fmt.Sprintf("not expected %s (%s)", where, p.State)
		}
		o.Processes = append(o.Processes, pv)
	}
	return o
}

func num(p *int64) string {
	if p == nil {
		return "unknown"
	}
	return fmt.Sprint(*p)
}

func exitDetail(e *Exit) string {
	if e == nil {
		return ""
	}
	var parts []string
	if e.Code != nil {
		parts = append(parts, fmt.Sprintf("exit code %d", *e.Code))
	}
	if e.Signal != nil && *e.Signal != "" {
		parts = append(parts, "signal "+*e.Signal)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
