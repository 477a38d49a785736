package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/history"
)

// The SDK creates a datasource instance lazily, creates a new one when the
// settings change (disposing the old one a few seconds later) and disposes
// idle ones. The monitor engine must outlive all that: one engine per
// datasource UID runs for the whole plugin process, owned by the newest
// instance, and its history store is opened once.
//
//   - Nothing polls before the first request that needs the engine
//     (QueryData or a resource other than GET agents). Grafana's alert rules
//     query every evaluation interval, which starts it and keeps it running.
//   - A new instance takes the engine over and reconfigures it; agents that
//     stay keep their state (and their GRACE clocks).
//   - Dispose stops the engine only when the disposed instance is still the
//     newest one for its UID.

// monitors is the process-wide registry of engines by datasource UID.
type monitors struct {
	mu    sync.Mutex
	byUID map[string]*monitor

	// options gives the engine's collaborators (tests use a fake clock).
	options func() engine.Options
	// getenv reads the environment Grafana started the plugin with.
	getenv func(string) string
}

// running is the registry the plugin process uses.
var running = newMonitors()

func newMonitors() *monitors {
	return &monitors{
		byUID:   map[string]*monitor{},
		options: func() engine.Options { return engine.Options{} },
		getenv:  os.Getenv,
	}
}

// monitor is one datasource UID's engine and store.
type monitor struct {
	uid string
	// owner is the newest instance; its settings are the ones in force.
	owner   *Datasource
	updated time.Time

	eng       *engine.Engine
	store     *history.Store
	dir       string
	startedAt time.Time
	cancel    context.CancelFunc
	done      chan struct{}
}

// attach makes ds the newest instance of its UID. A running engine is
// reconfigured to ds's settings (or stopped when they are invalid or move
// the history).
func (ms *monitors) attach(ds *Datasource) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	m := ms.byUID[ds.uid]
	if m == nil {
		m = &monitor{uid: ds.uid}
		ms.byUID[ds.uid] = m
	}
	if m.owner != nil && ds.updated.Before(m.updated) {
		// An instance built from older settings than the running ones.
		return
	}
	m.owner, m.updated = ds, ds.updated
	if m.eng == nil {
		return
	}
	if ds.settingsErr != nil || ms.historyDir(ds) != m.dir {
		m.stop()
		return
	}
	if err := m.eng.Reconfigure(ds.settings.Fleet); err != nil {
		log.DefaultLogger.Warn("Vigil monitor could not take the new settings; it stops until the next request", "uid", ds.uid, "error", err)
		m.stop()
	}
}

// detach is Dispose: the engine stops only if ds is still the newest
// instance of its UID.
func (ms *monitors) detach(ds *Datasource) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	m := ms.byUID[ds.uid]
	if m == nil || m.owner != ds {
		return
	}
	m.stop()
	delete(ms.byUID, ds.uid)
}

// live is a running engine with its store, as one request uses it: a copy,
// so a settings change during the request does not race with it.
type live struct {
	eng       *engine.Engine
	store     *history.Store
	startedAt time.Time
}

// engineFor returns the UID's engine, starting it (and opening its history)
// on first use.
func (ms *monitors) engineFor(ds *Datasource) (live, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	m := ms.byUID[ds.uid]
	if m == nil || m.owner == nil {
		return live{}, errors.New("the datasource instance was disposed")
	}
	if m.eng != nil {
		return live{m.eng, m.store, m.startedAt}, nil
	}
	owner := m.owner
	if owner.settingsErr != nil {
		return live{}, owner.settingsErr
	}
	dir := ms.historyDir(owner)
	for uid, other := range ms.byUID {
		if uid != m.uid && other.eng != nil && other.dir == dir {
			return live{}, fmt.Errorf("jsonData.historyPath: %s is already the history of datasource %q: give each datasource its own folder", dir, uid)
		}
	}
	store, err := history.Open(dir, history.Options{})
	if err != nil {
		if errors.Is(err, history.ErrInUse) {
			return live{}, fmt.Errorf("jsonData.historyPath: %w: another Grafana (or vigil watch) uses this folder; give each its own", err)
		}
		return live{}, fmt.Errorf("jsonData.historyPath: %w", err)
	}
	opts := ms.options()
	opts.History = store
	if opts.Logger == nil {
		opts.Logger = slogFromGrafana(m.uid)
	}
	eng, err := engine.New(owner.settings.Fleet, opts)
	if err != nil {
		_ = store.Close()
		return live{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.eng, m.store, m.dir, m.cancel, m.done = eng, store, dir, cancel, make(chan struct{})
	m.startedAt = eng.Snapshot().Time
	done := m.done
	go func() {
		defer close(done)
		_ = eng.Run(ctx)
	}()
	log.DefaultLogger.Info("Vigil monitor started", "uid", m.uid, "agents", len(owner.settings.Fleet.Agents), "history", store.Path())
	return live{m.eng, m.store, m.startedAt}, nil
}

// stop ends the engine and closes its store; ms.mu is held.
func (m *monitor) stop() {
	if m.eng == nil {
		return
	}
	m.cancel()
	<-m.done
	if err := m.store.Close(); err != nil {
		log.DefaultLogger.Warn("Vigil history close failed", "uid", m.uid, "error", err)
	}
	log.DefaultLogger.Info("Vigil monitor stopped", "uid", m.uid)
	m.eng, m.store, m.cancel, m.done = nil, nil, nil, nil
}

// stopAll stops every engine (tests).
func (ms *monitors) stopAll() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for uid, m := range ms.byUID {
		m.stop()
		delete(ms.byUID, uid)
	}
}

// Environment variable through which Grafana's data folder may reach the
// plugin: Grafana reads it as paths.data, its Docker image sets it, and a
// backend plugin inherits Grafana's environment.
const envDataPath = "GF_PATHS_DATA"

// packagedDataPath is the data folder of Grafana's deb and rpm packages,
// whose service passes it on the command line rather than in the environment.
const packagedDataPath = "/var/lib/grafana"

// historyDir is where a datasource keeps its history: jsonData.historyPath,
// else <Grafana data>/vigil-cdp/<uid> (GF_PATHS_DATA, else /var/lib/grafana
// when it exists), else <temporary folder>/vigil-cdp/<uid>.
func (ms *monitors) historyDir(ds *Datasource) string {
	if ds.settings != nil && ds.settings.HistoryPath != "" {
		return filepath.Clean(ds.settings.HistoryPath)
	}
	base := ms.getenv(envDataPath)
	if base == "" {
		if fi, err := os.Stat(packagedDataPath); err == nil && fi.IsDir() {
			base = packagedDataPath
		}
	}
	if base == "" {
		base = os.TempDir()
		log.DefaultLogger.Warn("Vigil cannot find Grafana's data folder; the history is kept in the temporary folder and may not survive a reboot: set jsonData.historyPath", "uid", ds.uid)
	}
	return filepath.Join(base, "vigil-cdp", safeName(ds.uid))
}

// safeName keeps a UID usable as one folder name.
func safeName(uid string) string {
	if uid == "" {
		return "default"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, uid)
}

// StopMonitors stops every engine and closes its history; the plugin's main
// calls it when Grafana stops the plugin.
func StopMonitors() { running.stopAll() }
