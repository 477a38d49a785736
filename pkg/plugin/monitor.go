package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/clock"
	"github.com/vigil-cdp/vigil/pkg/cluster"
	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/history"
)

// The SDK creates a datasource instance lazily, creates a new one when the
// settings change (disposing the old one a few seconds later) and disposes
// idle ones. The monitor engine must outlive all that: one engine per
// datasource identity (org, ID and UID: a UID alone is shared by datasources
// of different orgs) runs in the plugin process, owned by the newest
// instance, and its history store is opened once.
//
//   - Nothing polls before the first request that needs the engine
//     (QueryData or a resource other than GET agents and GET monitor).
//     Grafana's alert rules query every evaluation interval, which starts it
//     and keeps it running.
//   - Grafana never tells a plugin that a datasource was deleted: an engine
//     no request has used for jsonData.idleStop stops (and says so in its
//     history); the next request starts it again.
//   - A new instance takes the engine over and reconfigures it; agents that
//     stay keep their state (and their GRACE clocks).
//   - Dispose stops the engine only when the disposed instance is still the
//     newest one for its identity.

// monitors is the process-wide registry of engines by datasource identity.
type monitors struct {
	mu    sync.Mutex
	byKey map[string]*monitor

	// options gives the engine's collaborators (tests use a fake clock).
	options func() engine.Options
	// clock times requests and idle stops when options gives no clock.
	clock clock.Clock
	// getenv reads the environment Grafana started the plugin with.
	getenv func(string) string
	// executable is where the plugin's executable lies.
	executable func() (string, error)
	// packagedData is /var/lib/grafana (tests point it elsewhere).
	packagedData string
	// tempDir is the temporary folder, which a reboot may empty.
	tempDir func() string
}

// running is the registry the plugin process uses.
var running = newMonitors()

func newMonitors() *monitors {
	return &monitors{
		byKey:        map[string]*monitor{},
		options:      func() engine.Options { return engine.Options{} },
		clock:        clock.Real{},
		getenv:       os.Getenv,
		executable:   os.Executable,
		packagedData: packagedDataPath,
		tempDir:      os.TempDir,
	}
}

// use says what a request wants from the engine; alert evaluations are
// told apart because they are what keeps a monitor running.
type use int

const (
	useRequest use = iota
	useAlert
)

// monitor is one datasource identity's engine and store.
type monitor struct {
	ident identity
	// owner is the newest instance; its settings are the ones in force.
	owner   *Datasource
	updated time.Time

	eng   *engine.Engine
	store history.Backend
	place historyPlace
	// members divides the fleet among replicas (nil: not divided).
	members *cluster.Cluster
	// shared: the shared history and cluster settings it runs with.
	shared    string
	clk       clock.Clock
	startedAt time.Time
	cancel    context.CancelFunc
	done      chan struct{}
	// gen counts starts, so that an idle check of an earlier run does not
	// stop a later one.
	gen int

	// lastUse is the last request that used the engine (idleStop counts
	// from it); lastAlert the last alert evaluation that queried it.
	lastUse, lastAlert time.Time
	// stoppedAt and stopReason say why the engine last stopped.
	stoppedAt  time.Time
	stopReason string
}

// attach makes ds the newest instance of its identity. A running engine is
// reconfigured to ds's settings (or stopped when they are invalid or move
// the history).
func (ms *monitors) attach(ds *Datasource) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	key := ds.ident.key()
	m := ms.byKey[key]
	if m == nil {
		m = &monitor{ident: ds.ident}
		ms.byKey[key] = m
	}
	if m.owner != nil && ds.updated.Before(m.updated) {
		// An instance built from older settings than the running ones.
		return
	}
	m.owner, m.updated = ds, ds.updated
	if m.eng == nil {
		return
	}
	if ds.settingsErr != nil {
		m.stop("the new settings are invalid")
		return
	}
	if ms.placeHistory(ds).Dir != m.place.Dir || sharedKey(ds.settings.Fleet) != m.shared {
		m.stop("the settings moved the history")
		return
	}
	if err := m.eng.Reconfigure(ds.settings.Fleet); err != nil {
		log.DefaultLogger.Warn("Vigil monitor could not take the new settings; it stops until the next request", "datasource", ds.ident.String(), "error", err)
		m.stop("the new settings could not be applied: " + err.Error())
	}
}

// detach is Dispose: the engine stops only if ds is still the newest
// instance of its identity.
func (ms *monitors) detach(ds *Datasource) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	key := ds.ident.key()
	m := ms.byKey[key]
	if m == nil || m.owner != ds {
		return
	}
	m.stop("Grafana disposed of the datasource instance")
	delete(ms.byKey, key)
}

// live is a running engine with its store, as one request uses it: a copy,
// so a settings change during the request does not race with it.
type live struct {
	eng       *engine.Engine
	store     history.Backend
	startedAt time.Time
}

// engineFor returns the identity's engine, starting it (and opening its
// history) on first use, and records the use.
func (ms *monitors) engineFor(ds *Datasource, u use) (live, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	m := ms.byKey[ds.ident.key()]
	if m == nil || m.owner == nil {
		return live{}, errors.New("the datasource instance was disposed")
	}
	if m.eng == nil {
		if err := ms.start(m); err != nil {
			return live{}, err
		}
	}
	now := m.clk.Now()
	m.lastUse = now
	if u == useAlert {
		m.lastAlert = now
	}
	return live{m.eng, m.store, m.startedAt}, nil
}

// start opens m's history and starts its engine; ms.mu is held.
func (ms *monitors) start(m *monitor) error {
	owner := m.owner
	if owner.settingsErr != nil {
		return owner.settingsErr
	}
	place := ms.placeHistory(owner)
	for _, other := range ms.byKey {
		if other != m && other.eng != nil && other.place.Dir == place.Dir {
			return fmt.Errorf("jsonData.historyPath: %s is already the history of datasource %s: give each datasource its own folder", place.Dir, other.ident)
		}
	}
	if place.legacy != "" {
		ms.adoptLegacy(m, place)
	}
	if err := claimHistory(place.Dir, m.ident); err != nil {
		return fmt.Errorf("jsonData.historyPath: %w", err)
	}
	store, err := ms.openHistory(m, place)
	if err != nil {
		return err
	}
	opts := ms.options()
	opts.History = store
	members, err := ms.joinCluster(m, owner.settings.Fleet)
	if err != nil {
		_ = store.Close()
		return err
	}
	if members != nil {
		opts.Membership = members
		if opts.Client == nil {
			opts.Client = agentclient.New(nil).WithUserAgent(fmt.Sprintf("vigil-monitor (member %s)", members.Self()))
		}
	}
	// HTTP handlers only, to the URLs the Grafana server's admin allows.
	prefixes, _ := handlerURLPrefixes(ms.getenv)
	opts.Handlers.NoCommands, opts.Handlers.AllowURL = true, allowURL(prefixes)
	if opts.Logger == nil {
		opts.Logger = slogFromGrafana(m.ident)
	}
	if opts.Clock == nil {
		opts.Clock = ms.clock
	}
	eng, err := engine.New(owner.settings.Fleet, opts)
	if err != nil {
		if members != nil {
			_ = members.Leave(time.Second)
		}
		_ = store.Close()
		return err
	}
	m.members, m.shared = members, sharedKey(owner.settings.Fleet)
	ctx, cancel := context.WithCancel(context.Background())
	m.eng, m.store, m.place, m.clk, m.cancel, m.done = eng, store, place, opts.Clock, cancel, make(chan struct{})
	m.startedAt = eng.Snapshot().Time
	m.lastUse = m.clk.Now()
	m.gen++
	done := m.done
	go func() {
		defer close(done)
		_ = eng.Run(ctx)
	}()
	go ms.stopWhenIdle(ctx, m, m.gen)
	m.note(fmt.Sprintf("monitor started: %d agents, history in %s", len(owner.settings.Fleet.Agents), place.Dir))
	if place.Durable {
		log.DefaultLogger.Info("Vigil monitor started", "datasource", m.ident.String(), "agents", len(owner.settings.Fleet.Agents), "history", store.Path(), "historyFrom", place.Source)
	} else {
		log.DefaultLogger.Warn("Vigil monitor started; its history may not survive a reboot", "datasource", m.ident.String(), "history", store.Path(), "why", place.Note)
	}
	return nil
}

// adoptLegacy moves the history an earlier version kept under the UID
// alone to exactly one identity: the one with the lowest datasource ID
// among those of that UID this process knows. Others start a history of
// their own and the log says where the old one went.
func (ms *monitors) adoptLegacy(m *monitor, place historyPlace) {
	if _, err := os.Stat(place.Dir); err == nil {
		return
	}
	fi, err := os.Stat(place.legacy)
	if err != nil || !fi.IsDir() {
		return
	}
	lowest := m.ident
	for _, other := range ms.byKey {
		if other.owner != nil && other.ident.uid == m.ident.uid && other.ident.id < lowest.id {
			lowest = other.ident
		}
	}
	if lowest != m.ident {
		log.DefaultLogger.Info("Vigil leaves the history kept under this UID by an earlier version to the datasource with the lowest ID",
			"datasource", m.ident.String(), "history", place.legacy, "for", lowest.String())
		return
	}
	if err := os.Rename(place.legacy, place.Dir); err != nil {
		log.DefaultLogger.Warn("Vigil could not move the history kept under this UID by an earlier version; this datasource starts a new one",
			"datasource", m.ident.String(), "from", place.legacy, "to", place.Dir, "error", err)
		return
	}
	log.DefaultLogger.Info("Vigil moved the history kept under this UID by an earlier version to this datasource (the lowest datasource ID with this UID)",
		"datasource", m.ident.String(), "from", place.legacy, "to", place.Dir)
}

// stopWhenIdle stops run gen of m once no request has used it for the
// owner's idleStop.
func (ms *monitors) stopWhenIdle(ctx context.Context, m *monitor, gen int) {
	for {
		ms.mu.Lock()
		if m.gen != gen || m.eng == nil || m.owner == nil || m.owner.settings == nil {
			ms.mu.Unlock()
			return
		}
		idle := m.owner.settings.IdleStop
		wait := m.lastUse.Add(idle).Sub(m.clk.Now())
		if wait <= 0 {
			m.stop(fmt.Sprintf("no request for %s (jsonData.idleStop); the datasource may have been deleted; the next query starts it again", idle))
			ms.mu.Unlock()
			return
		}
		timer := m.clk.NewTimer(wait)
		ms.mu.Unlock()
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
	}
}

// note records a line about the monitor itself in its history.
func (m *monitor) note(text string) {
	if m.store == nil {
		return
	}
	ev := history.Event{Type: history.TypeNote, Time: m.clk.Now(), Reason: text}
	if err := m.store.Append(history.Batch{Events: []history.Event{ev}}); err != nil {
		log.DefaultLogger.Warn("Vigil could not record a note in the history", "datasource", m.ident.String(), "error", err)
	}
}

// stop ends the engine, records why and closes its store; ms.mu is held.
func (m *monitor) stop(why string) {
	if m.eng == nil {
		return
	}
	m.cancel()
	<-m.done
	m.stoppedAt, m.stopReason = m.clk.Now(), why
	m.note("monitor stopped: " + why)
	if m.members != nil {
		// Others take its agents over at once.
		if err := m.members.Leave(2 * time.Second); err != nil {
			log.DefaultLogger.Warn("Vigil could not leave the cluster gracefully", "datasource", m.ident.String(), "error", err)
		}
		m.members = nil
	}
	if err := m.store.Close(); err != nil {
		log.DefaultLogger.Warn("Vigil history close failed", "datasource", m.ident.String(), "error", err)
	}
	log.DefaultLogger.Info("Vigil monitor stopped", "datasource", m.ident.String(), "why", why)
	m.eng, m.store, m.cancel, m.done = nil, nil, nil, nil
}

// stopAll stops every engine (tests, and the plugin's end).
func (ms *monitors) stopAll() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for key, m := range ms.byKey {
		m.stop("the plugin stopped")
		delete(ms.byKey, key)
	}
}

// StopMonitors stops every engine and closes its history; the plugin's main
// calls it when Grafana stops the plugin.
func StopMonitors() { running.stopAll() }
