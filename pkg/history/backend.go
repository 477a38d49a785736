package history

import "time"

// Backend is a history: *Store (bbolt, the embedded default) or *PGStore
// (PostgreSQL, shared by replicas). The engine writes through it and the
// datasource's and the CLI's readers read through it.
type Backend interface {
	// Append records one poll's batch (see Store.Append for when it is
	// durable).
	Append(b Batch) error
	// Agents returns the engine's resume records, by agent.
	Agents() (map[string][]byte, error)
	// Silences returns every known past silence.
	Silences() ([]Silence, error)
	// LastAnswers returns, by agent, the time of the latest answered poll.
	LastAnswers() (map[string]time.Time, error)
	// Prune deletes what is older than the retention.
	Prune(now time.Time) error
	// Events and Observations read what was recorded (see Query).
	Events(q Query) ([]Event, error)
	Observations(q Query) ([]Observation, error)
	// Flush writes what is pending.
	Flush() error
	// Close writes what is pending and releases the history.
	Close() error
	// Path says where the history is, for logs and the health check (a
	// file, or a PostgreSQL server and database without credentials).
	Path() string
}

// Shared is what a history shared by several monitors offers besides
// Backend: what the others wrote, for the agents this monitor does not
// poll itself.
type Shared interface {
	Backend
	// AgentRecords returns the resume records of the named agents (all
	// when names is nil) written since since (all when zero).
	AgentRecords(names []string, since time.Time) (map[string][]byte, error)
	// LastTimes returns, by agent, the end of the latest recorded poll
	// (answered or not) and the time of the latest answered one.
	LastTimes() (polls, answers map[string]time.Time, err error)
	// LastAnswer returns the time of one agent's latest answered poll.
	LastAnswer(agent string) (time.Time, error)
}

var (
	_ Backend = (*Store)(nil)
	_ Shared  = (*PGStore)(nil)
)
