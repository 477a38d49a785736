package history

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The schema of a history in PostgreSQL. Vigil creates and migrates it
// itself: vigil_schema lists the migrations applied, and a monitor applies
// the missing ones at start, one monitor at a time (an advisory lock), each
// in its own transaction. A database whose schema is newer than this Vigil
// knows is refused rather than written.
//
// Every row carries the scope it belongs to (vigil_scope: a datasource's
// org, ID and UID, or a vigil watch fleet's name with org and ID 0), so
// that datasources, orgs and CLI fleets can share one database.
//
//   - vigil_recent: the last hour or so of observations, one row per run of
//     polls (see runs.go), rewritten while the run grows.
//   - vigil_chunk: older observations, one row per agent and hour, in the
//     record format of the embedded history's chunks (encodeChunk),
//     partitioned by day so that retention drops whole tables.
//   - vigil_event: events (their JSON form), partitioned by day.
//   - vigil_silence: past silences, which measured mode learns from.
//   - vigil_agent: the engine's resume records (GRACE clocks, back-off and
//     flap trackers) and the latest answer before the recent rows.
//   - vigil_report: reports of push agents that reached a monitor which
//     does not own them, until their owner takes them.
type migration struct {
	version     int
	description string
	sql         string
}

var migrations = []migration{
	{1, "scopes, observations, chunks, events, silences, resume records", `
CREATE TABLE vigil_scope (
	id         serial PRIMARY KEY,
	org_id     bigint NOT NULL,
	ds_id      bigint NOT NULL,
	ds_uid     text   NOT NULL,
	retention  interval,
	seen_at    timestamptz NOT NULL DEFAULT now(),
	UNIQUE (org_id, ds_id, ds_uid)
);
CREATE TABLE vigil_recent (
	scope_id integer     NOT NULL,
	agent    text        NOT NULL,
	t        timestamptz NOT NULL,
	until    timestamptz NOT NULL,
	answered boolean     NOT NULL,
	body     bytea       NOT NULL,
	PRIMARY KEY (scope_id, agent, t)
);
CREATE TABLE vigil_chunk (
	scope_id    integer     NOT NULL,
	agent       text        NOT NULL,
	span        timestamptz NOT NULL,
	until       timestamptz NOT NULL,
	last_answer timestamptz,
	runs        integer     NOT NULL,
	body        bytea       NOT NULL,
	PRIMARY KEY (scope_id, agent, span)
) PARTITION BY RANGE (span);
CREATE TABLE vigil_chunk_default PARTITION OF vigil_chunk DEFAULT;
CREATE TABLE vigil_event (
	scope_id integer     NOT NULL,
	t        timestamptz NOT NULL,
	key      text        NOT NULL,
	agent    text        NOT NULL,
	body     jsonb       NOT NULL,
	PRIMARY KEY (scope_id, t, key)
) PARTITION BY RANGE (t);
CREATE INDEX vigil_event_agent ON vigil_event (scope_id, agent, t);
CREATE TABLE vigil_event_default PARTITION OF vigil_event DEFAULT;
CREATE TABLE vigil_silence (
	scope_id    integer     NOT NULL,
	agent       text        NOT NULL,
	kind        text        NOT NULL,
	start       timestamptz NOT NULL,
	cluster     text        NOT NULL,
	duration_ns bigint      NOT NULL,
	PRIMARY KEY (scope_id, agent, kind, start)
);
CREATE TABLE vigil_agent (
	scope_id    integer NOT NULL,
	agent       text    NOT NULL,
	record      bytea,
	updated_at  timestamptz NOT NULL DEFAULT now(),
	last_answer timestamptz,
	PRIMARY KEY (scope_id, agent)
);
CREATE INDEX vigil_agent_updated ON vigil_agent (scope_id, updated_at);
`},
	{2, "reports a monitor received for an agent another owns", `
CREATE TABLE vigil_report (
	scope_id    integer     NOT NULL,
	agent       text        NOT NULL,
	seq         bigint      NOT NULL,
	received_at timestamptz NOT NULL DEFAULT now(),
	body        bytea       NOT NULL,
	PRIMARY KEY (scope_id, agent, seq)
);
`},
}

// schemaLock is the advisory lock key migrations run under.
const schemaLock = 0x76696769 // "vigi"

// SchemaVersion is the newest schema this Vigil writes.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// migratePG applies the migrations the database lacks.
func migratePG(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, schemaLock); err != nil {
		return err
	}
	defer func() { _, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, schemaLock) }()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS vigil_schema (
		version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create vigil_schema: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM vigil_schema`).Scan(&have); err != nil {
		return err
	}
	if have > SchemaVersion() {
		return fmt.Errorf("the history's schema is version %d, newer than this Vigil knows (%d): upgrade Vigil on every monitor that shares it", have, SchemaVersion())
	}
	for _, m := range migrations {
		if m.version <= have {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO vigil_schema (version, description) VALUES ($1, $2)`, m.version, m.description)
			return err
		})
		if err != nil {
			return fmt.Errorf("schema migration %d (%s): %w", m.version, m.description, err)
		}
	}
	return nil
}

// partitionDay is the span of one partition of vigil_chunk and vigil_event.
const partitionDay = 24 * time.Hour

// partitionName is the partition of table for the day starting at day.
func partitionName(table string, day time.Time) string {
	return fmt.Sprintf("%s_%s", table, day.UTC().Format("20060102"))
}

// ensurePartitions creates the daily partitions from the day before from
// to the day after to (rows outside them land in the default partitions).
func ensurePartitions(ctx context.Context, pool *pgxpool.Pool, from, to time.Time) error {
	for day := from.UTC().Truncate(partitionDay).Add(-partitionDay); !day.After(to.UTC().Add(partitionDay)); day = day.Add(partitionDay) {
		for _, table := range []string{"vigil_chunk", "vigil_event"} {
			name := partitionName(table, day)
			var exists bool
			if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
				return err
			}
			if exists {
				continue
			}
			sql := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
				pgx.Identifier{name}.Sanitize(), table, day.Format(time.RFC3339), day.Add(partitionDay).Format(time.RFC3339))
			if _, err := pool.Exec(ctx, sql); err != nil {
				// Rows of that day in the default partition (written while
				// the partition was missing) stop it; they stay there and
				// are read and pruned like the others.
				continue
			}
		}
	}
	return nil
}
