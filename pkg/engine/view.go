package engine

import (
	"time"

	"github.com/vigil-cdp/vigil/pkg/remediation"
)

// The views below are the snapshot as answers show it, in seconds: what a
// front end needs without knowing the packages the engine is made of.

// LastAction is the most recent action on a process (ProcessSnapshot).
type LastAction = remediation.LastAction

// LastRestartAt is when the process was last restarted successfully, by
// the engine or a person; nil when its last action was something else.
func (p ProcessSnapshot) LastRestartAt() *time.Time {
	if la := p.LastAction; la != nil && la.Kind == remediation.Restart && la.OK {
		at := la.At
		return &at
	}
	return nil
}

// BudgetView is an agent's timeout budget in seconds, with its parts.
type BudgetView struct {
	TotalSeconds        float64         `json:"totalSeconds"`
	ResponseTimeSeconds float64         `json:"responseTimeSeconds"`
	RTTp99Seconds       float64         `json:"rttP99Seconds"`
	ProcessingSeconds   float64         `json:"processingSeconds"`
	Combine             string          `json:"combine"`
	Mode                string          `json:"mode"`
	Allowances          []AllowanceView `json:"allowances"`
}

// AllowanceView is one allowance of a budget; Source is "configured" or
// "measured" (learned from Samples past silences).
type AllowanceView struct {
	Name              string  `json:"name"`
	Seconds           float64 `json:"seconds"`
	ConfiguredSeconds float64 `json:"configuredSeconds"`
	Source            string  `json:"source"`
	Samples           int     `json:"samples"`
}

// BudgetView is the agent's budget in force, in seconds.
func (a AgentSnapshot) BudgetView() BudgetView {
	b := a.Budget
	v := BudgetView{
		TotalSeconds: b.Total.Seconds(), ResponseTimeSeconds: b.ResponseTime.Seconds(), RTTp99Seconds: b.RTTp99.Seconds(),
		ProcessingSeconds: b.Processing.Seconds(), Combine: string(b.Combine), Mode: string(b.Mode),
		Allowances: []AllowanceView{},
	}
	for _, al := range b.Allowances {
		source := "configured"
		if al.Measured {
			source = "measured"
		}
		v.Allowances = append(v.Allowances, AllowanceView{
			Name: string(al.Kind), Seconds: al.Value.Seconds(), ConfiguredSeconds: al.Configured.Seconds(), Source: source, Samples: al.Samples,
		})
	}
	return v
}
