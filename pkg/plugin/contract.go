package plugin

import (
	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/history"
)

// agentList is the answer to GET agents.
type agentList struct {
	Agents []agentView `json:"agents"`
}

// Shape is one JSON body the resource routes answer with, and the name the
// frontend knows it by.
type Shape struct {
	Name  string
	Value any
}

// ResourceShapes are the bodies of the resource answers and every struct
// they hold, for pkg/contract, which generates their TypeScript schemas into
// src/shared/contract.gen.ts. A struct an answer holds must be named here.
func ResourceShapes() []Shape {
	return []Shape{
		{"ErrorBody", errorBody{}},
		{"ErrorDetail", errorDetail{}},
		{"AgentList", agentList{}},
		{"AgentListItem", agentView{}},
		{"AgentDetail", agentDetailView{}},
		{"BudgetBreakdown", engine.BudgetView{}},
		{"BudgetAllowance", engine.AllowanceView{}},
		{"AgentProcess", processView{}},
		{"LastAction", engine.LastAction{}},
		{"AgentEvent", eventView{}},
		{"RestartAnswer", restartAnswer{}},
		{"PollAnswer", pollAnswer{}},
		{"PollAgent", pollAgent{}},
		{"MonitorStatus", monitorStatus{}},
		{"HistoryPlace", historyPlace{}},
		{"SharedHistoryStatus", history.PGStatus{}},
		{"ClusterStatus", clusterStatus{}},
	}
}
