package response

import "time"

// The types below mirror agent/openapi.json (schemas Status and Process).
// Tags: json names the key; vigil:"required" marks a key the schema
// requires, and vigil min=N and max=N its minimum and maximum (a number out
// of range makes the answer not understood, naming the field); enum lists the
// values the parser accepts ("-": not checked, the value is informational
// only). A pointer is a key that may be null or absent.
// TestTypesMatchOpenAPI keeps all of this equal to the contract.

// Status is the answer to GET /v1/status.
type Status struct {
	APIVersion string    `json:"apiVersion" vigil:"required" enum:"v1"`
	Time       time.Time `json:"time" vigil:"required"`
	Agent      AgentInfo `json:"agent" vigil:"required"`
	// Cluster is nil on a standalone agent.
	Cluster   *Cluster  `json:"cluster" vigil:"required"`
	Processes []Process `json:"processes" vigil:"required"`
	// Warnings are what the operator should fix on the agent's machine (token
	// files others can read). Older agents do not send it.
	Warnings []string `json:"warnings,omitempty"`
}

// AgentInfo identifies the agent process; StartedAt changes when the agent
// (or its machine) restarts.
type AgentInfo struct {
	ID        string    `json:"id" vigil:"required"`
	Version   string    `json:"version" vigil:"required"`
	Hostname  string    `json:"hostname" vigil:"required"`
	StartedAt time.Time `json:"startedAt" vigil:"required"`
	PID       *int64    `json:"pid" vigil:"min=1,max=2147483647"`
}

// Cluster is the node's cluster membership and role as the agent read it.
type Cluster struct {
	Name       string     `json:"name" vigil:"required"`
	Node       string     `json:"node" vigil:"required"`
	Role       string     `json:"role" vigil:"required" enum:"active,passive,unknown"`
	RoleReadAt *time.Time `json:"roleReadAt"`
	RoleError  *string    `json:"roleError"`
}

// Process is one supervised CDP process.
type Process struct {
	Name                 string      `json:"name" vigil:"required"`
	Kind                 string      `json:"kind" vigil:"required" enum:"-"`
	State                string      `json:"state" vigil:"required" enum:"running,starting,stopping,stopped,crashed"`
	Expected             bool        `json:"expected" vigil:"required"`
	PID                  *int64      `json:"pid" vigil:"required,min=1,max=2147483647"`
	Generation           int64       `json:"generation" vigil:"required,min=0"`
	StartedAt            *time.Time  `json:"startedAt" vigil:"required"`
	Restarts             int64       `json:"restarts" vigil:"required,min=0"`
	LastExit             *Exit       `json:"lastExit" vigil:"required"`
	Protection           *Protection `json:"protection" vigil:"required"`
	AutoRestart          *bool       `json:"autoRestart"`
	AutoRestartSuspended *bool       `json:"autoRestartSuspended"`
	// RecentCrashes and AutoRestartAt describe the agent's flap guard (older
	// agents do not send them): unexpected exits within its 5-minute window,
	// and when the scheduled automatic restart is due.
	RecentCrashes *int64     `json:"recentCrashes" vigil:"min=0"`
	AutoRestartAt *time.Time `json:"autoRestartAt"`
}

// Exit is how a process last ended.
type Exit struct {
	Code   *int64    `json:"code" vigil:"required"`
	Signal *string   `json:"signal" vigil:"required"`
	At     time.Time `json:"at" vigil:"required"`
}

// Protection is replication progress, for kinds that know it.
type Protection struct {
	LastChangeAt     *time.Time `json:"lastChangeAt" vigil:"required"`
	LastReplicatedAt *time.Time `json:"lastReplicatedAt" vigil:"required"`
	LagSeconds       *float64   `json:"lagSeconds" vigil:"required,min=0"`
	PendingChanges   *int64     `json:"pendingChanges" vigil:"required,min=0"`
	PendingBytes     *int64     `json:"pendingBytes" vigil:"required,min=0"`
	// State and Message come from the replicator only: what it is doing, and
	// why it is not simply watching. State is informational (not checked),
	// so a newer replicator's states do not make an answer unreadable.
	State   *string `json:"state" enum:"-"`
	Message *string `json:"message"`
	// NotCovered counts the paths the replicator cannot cover right now
	// (unreadable, changing too fast, written through a memory mapping).
	NotCovered *int64 `json:"notCovered" vigil:"min=0"`
	// Verify is the last scheduled verify of the store (verifyEvery), from the
	// replicator only; nil before the first, when off, and from older agents.
	Verify *Verify `json:"verify"`
}

// Verify is the result of a scheduled `vigil-agent verify` run by the replicator.
type Verify struct {
	At              time.Time `json:"at" vigil:"required"`
	Ok              bool      `json:"ok" vigil:"required"`
	Problems        int64     `json:"problems" vigil:"required,min=0"`
	FirstProblem    *string   `json:"firstProblem" vigil:"required"`
	DurationSeconds float64   `json:"durationSeconds" vigil:"required,min=0"`
}
