package plugin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/vigil-cdp/vigil/pkg/cluster"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
)

// A datasource whose jsonData sets history.postgres keeps its history in
// PostgreSQL, its rows keyed by the datasource's identity (org, ID, UID),
// so that every Grafana replica answers from the same rows; the local
// history folder then holds only the buffer of writes PostgreSQL could
// not take. With jsonData.cluster too, the replicas divide the agents
// among themselves (docs/ha.md). Each replica's own addresses come from the
// environment Grafana starts the plugin with, which holds only what
// grafana.ini's [plugins] forward_host_env_vars lists:
//
//	VIGIL_CLUSTER_ADVERTISE  host or host:port the other replicas reach this one at
//	VIGIL_CLUSTER_BIND       host or host:port to listen on (default 0.0.0.0 and jsonData's port, 7946)
//	VIGIL_CLUSTER_NAME       this replica's name (default: host name and port)
//
// or, without forwarding the host's environment, grafana.ini's
// [plugin.vigil-cdp-datasource] cluster_advertise, cluster_bind and
// cluster_name, which Grafana passes as GF_PLUGIN_CLUSTER_ADVERTISE, ...

// Environment variables a Grafana replica gives the plugin for the cluster.
const (
	EnvClusterAdvertise = "VIGIL_CLUSTER_ADVERTISE"
	EnvClusterBind      = "VIGIL_CLUSTER_BIND"
	EnvClusterName      = "VIGIL_CLUSTER_NAME"
)

// pgBufferDir is the local buffer's folder under the history folder.
const pgBufferDir = "postgres-buffer"

// openHistory opens the datasource's history: in PostgreSQL when the
// settings say so, else the embedded store in place.Dir.
func (ms *monitors) openHistory(m *monitor, place historyPlace) (history.Backend, error) {
	fl := m.owner.settings.Fleet
	if fl.History.Postgres == "" {
		store, err := history.Open(place.Dir, history.Options{})
		if err != nil {
			if errors.Is(err, history.ErrInUse) {
				return nil, fmt.Errorf("jsonData.historyPath: %w: another Grafana (or vigil watch) uses this folder; give each its own", err)
			}
			return nil, fmt.Errorf("jsonData.historyPath: %w", err)
		}
		return store, nil
	}
	store, err := history.OpenPostgres(context.Background(), fl.History.Postgres, history.PGOptions{
		Scope:    history.Scope{Org: m.ident.org, ID: m.ident.id, UID: m.ident.uid},
		Password: fl.History.Password.Reveal(),
		SpoolDir: filepath.Join(place.Dir, pgBufferDir),
		Logger:   slogFromGrafana(m.ident),
	})
	if err != nil {
		return nil, fmt.Errorf("jsonData.history.postgres: %w", err)
	}
	return store, nil
}

// joinCluster starts this replica's membership when the settings divide
// the fleet.
func (ms *monitors) joinCluster(m *monitor, fl fleet.Config) (*cluster.Cluster, error) {
	if fl.Cluster == nil {
		return nil, nil
	}
	cfg, err := cluster.FromFleet(fl.Cluster, m.ident.String(), map[string]string{
		"bind":      ms.envOr(EnvClusterBind, "GF_PLUGIN_CLUSTER_BIND"),
		"advertise": ms.envOr(EnvClusterAdvertise, "GF_PLUGIN_CLUSTER_ADVERTISE"),
		"name":      ms.envOr(EnvClusterName, "GF_PLUGIN_CLUSTER_NAME")})
	if err != nil {
		return nil, err
	}
	cfg.Logger = slogFromGrafana(m.ident)
	c, err := cluster.Start(cfg)
	if err != nil {
		return nil, fmt.Errorf("jsonData.cluster: %w", err)
	}
	log.DefaultLogger.Info("Vigil joined its cluster of replicas", "datasource", m.ident.String(), "member", c.Self(), "address", c.Addr(), "join", strings.Join(cfg.Join, ","))
	return c, nil
}

// envOr reads the first of the variables that is set: VIGIL_CLUSTER_*
// (the host's, with forward_host_env_vars), else GF_PLUGIN_CLUSTER_* (from
// grafana.ini's [plugin.vigil-cdp-datasource] cluster_bind, ...).
func (ms *monitors) envOr(names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(ms.getenv(n)); v != "" {
			return v
		}
	}
	return ""
}

// sharedKey says which shared history and cluster settings an engine runs
// with: a change of them restarts it.
func sharedKey(fl fleet.Config) string {
	k := fl.History.Postgres + "\x00" + fl.History.Password.Reveal()
	if c := fl.Cluster; c != nil {
		k += fmt.Sprintf("\x00%q %s %s %s %s %s", c.Join, c.Bind, c.Advertise, c.Name, c.Profile, c.SecretKey.Reveal())
	}
	return k
}
