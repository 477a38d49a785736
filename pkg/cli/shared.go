package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/vigil-cdp/vigil/pkg/cluster"
	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
)

// defaultScope names a vigil watch fleet's rows in a shared history.
const defaultScope = "vigil-watch"

// applyShared lets the flags set or override the fleet's history and
// cluster keys.
func (o *watchOptions) applyShared(cfg *fleet.Config) error {
	if o.historyPostgres != "" {
		cfg.History.Postgres = o.historyPostgres
	}
	if o.historyScope != "" {
		cfg.History.Scope = o.historyScope
	}
	if cfg.History.Scope == "" {
		cfg.History.Scope = defaultScope
	}
	if o.clusterJoin != "" || o.clusterBind != "" || o.clusterAdvertise != "" || o.clusterName != "" {
		if cfg.Cluster == nil {
			cfg.Cluster = &fleet.Cluster{}
		}
		if o.clusterJoin != "" {
			cfg.Cluster.Join = nil
			for _, j := range strings.Split(o.clusterJoin, ",") {
				if j = strings.TrimSpace(j); j != "" {
					cfg.Cluster.Join = append(cfg.Cluster.Join, j)
				}
			}
		}
	}
	if cfg.Cluster != nil && cfg.History.Postgres == "" {
		return errors.New("dividing the agents among members needs a shared history: give --history-postgres (or history.postgres in the fleet file)")
	}
	if cfg.Cluster != nil && o.once {
		return errors.New("--once polls every agent itself: it does not go with a cluster")
	}
	return nil
}

// openWatchHistory opens the shared history in PostgreSQL, or the local one.
func openWatchHistory(ctx context.Context, o watchOptions, cfg fleet.Config) (history.Backend, error) {
	if cfg.History.Postgres == "" {
		store, err := history.Open(o.historyDir, history.Options{Retention: o.retention})
		if err != nil {
			if errors.Is(err, history.ErrInUse) {
				return nil, fmt.Errorf("%s is in use by another vigil watch of the same fleet; give this one its own --history", o.historyDir)
			}
			return nil, fmt.Errorf("history %s: %w", o.historyDir, err)
		}
		return store, nil
	}
	var logger *slog.Logger
	if o.engineOptions.Logger != nil {
		logger = o.engineOptions.Logger
	}
	store, err := history.OpenPostgres(ctx, cfg.History.Postgres, history.PGOptions{
		Scope:     history.Scope{UID: cfg.History.Scope},
		Password:  cfg.History.Password.Reveal(),
		Retention: o.retention,
		SpoolDir:  filepath.Join(o.historyDir, "postgres-buffer"),
		Logger:    logger,
	})
	if err != nil {
		return nil, fmt.Errorf("--history-postgres: %w", err)
	}
	return store, nil
}

// joinWatchCluster starts this member's part in a divided fleet.
func joinWatchCluster(o watchOptions, cfg fleet.Config, stderr io.Writer) (*cluster.Cluster, error) {
	if cfg.Cluster == nil {
		return nil, nil
	}
	cc, err := cluster.FromFleet(cfg.Cluster, "watch:"+cfg.History.Scope, map[string]string{
		"bind": o.clusterBind, "advertise": o.clusterAdvertise, "name": o.clusterName})
	if err != nil {
		return nil, err
	}
	cc.Logger = o.engineOptions.Logger
	c, err := cluster.Start(cc)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	fmt.Fprintf(stderr, "vigil watch: member %s of the cluster at %s; joining through %s\n", c.Self(), c.Addr(), strings.Join(cc.Join, ", "))
	return c, nil
}

// clusterLine is the table's line about a divided fleet: the members, what
// this one polls, and the agents nobody polls.
func clusterLine(c *cluster.Cluster, v engine.SharedView, agents int) string {
	var names []string
	for _, m := range c.Members() {
		names = append(names, m.Name)
	}
	unpolled := "none"
	if len(v.Unpolled) > 0 {
		unpolled = strings.Join(v.Unpolled, ", ")
	}
	who := fmt.Sprintf("one of %d members (%s)", len(names), strings.Join(names, ", "))
	if len(names) == 1 {
		who = "the only member"
	}
	line := fmt.Sprintf("cluster: %s, %s; polls %d of %d agents; not polled by any member for two intervals: %s",
		c.Self(), who, v.Owned, agents, unpolled)
	if v.Error != "" {
		line += "; the shared history could not be read: " + v.Error
	}
	return line
}
