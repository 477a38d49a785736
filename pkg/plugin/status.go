package plugin

import (
	"fmt"
	"time"

	"github.com/vigil-cdp/vigil/pkg/history"
)

// monitorStatus is what the health check and the app's Configuration page
// (GET monitor) say about a datasource's monitor. Asking does not start the
// monitor and does not keep it running.
type monitorStatus struct {
	Running bool `json:"running"`
	// StartedAt is when the running monitor started.
	StartedAt *time.Time `json:"startedAt"`
	// LastRequestAt is the last request that used the monitor (idleStop
	// counts from it); LastAlertQueryAt the last alert evaluation.
	LastRequestAt    *time.Time `json:"lastRequestAt"`
	LastAlertQueryAt *time.Time `json:"lastAlertQueryAt"`
	IdleStopSeconds  float64    `json:"idleStopSeconds"`
	// KeptAliveByAlerts: an alert rule queried within idleStop, so the
	// monitor runs (and restarts CDP) with no dashboard open.
	KeptAliveByAlerts bool `json:"keptAliveByAlerts"`
	// StoppedAt and StopReason say why the monitor last stopped.
	StoppedAt  *time.Time   `json:"stoppedAt,omitempty"`
	StopReason string       `json:"stopReason,omitempty"`
	History    historyPlace `json:"history"`
	// Summary is one sentence for people: the health check's and the
	// Configuration page's line.
	Summary string `json:"summary"`
	// Warning is set when nothing keeps the monitor running, or its
	// history would not survive a reboot.
	Warning string    `json:"warning,omitempty"`
	Now     time.Time `json:"now"`
	// Postgres: the shared history's state (absent with the embedded one).
	Postgres *history.PGStatus `json:"postgres,omitempty"`
	// Cluster: this replica's part in a fleet divided among replicas.
	Cluster *clusterStatus `json:"cluster,omitempty"`
}

// clusterStatus is this replica's view of the replicas dividing the fleet.
type clusterStatus struct {
	Self    string   `json:"self"`
	Addr    string   `json:"addr"`
	Members []string `json:"members"`
	// Owned of Agents are polled by this replica.
	Owned  int `json:"owned"`
	Agents int `json:"agents"`
	// Unpolled: agents no replica recorded a poll of for two intervals.
	Unpolled  []string   `json:"unpolled"`
	CheckedAt *time.Time `json:"checkedAt"`
	Error     string     `json:"error,omitempty"`
}

// status reports on ds's monitor without starting it.
func (ms *monitors) status(ds *Datasource) monitorStatus {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var st monitorStatus
	m := ms.byKey[ds.ident.key()]
	clk := ms.clock
	if m != nil && m.clk != nil {
		clk = m.clk
	}
	st.Now = clk.Now()
	if m != nil && m.eng != nil {
		st.History = m.place
	} else {
		st.History = ms.placeHistory(ds)
	}
	if ds.settings == nil {
		st.Summary = "the monitor cannot run until the settings are fixed"
		return st
	}
	idle := ds.settings.IdleStop
	st.IdleStopSeconds = idle.Seconds()
	if m != nil {
		st.Running = m.eng != nil
		if st.Running {
			st.StartedAt = timeOrNil(m.startedAt)
		}
		st.LastRequestAt = timeOrNil(m.lastUse)
		st.LastAlertQueryAt = timeOrNil(m.lastAlert)
		st.StoppedAt = timeOrNil(m.stoppedAt)
		st.StopReason = m.stopReason
		st.KeptAliveByAlerts = !m.lastAlert.IsZero() && st.Now.Sub(m.lastAlert) < idle
		if pg, ok := m.store.(*history.PGStore); ok && st.Running {
			ps := pg.Status()
			st.Postgres = &ps
		}
		if st.Running && (m.members != nil || st.Postgres != nil) {
			v := m.eng.Shared()
			cs := &clusterStatus{Owned: v.Owned, Agents: len(m.eng.Config().Agents), Unpolled: v.Unpolled, CheckedAt: timeOrNil(v.CheckedAt), Error: v.Error}
			if m.members != nil {
				cs.Self, cs.Addr = m.members.Self(), m.members.Addr()
				for _, mem := range m.members.Members() {
					cs.Members = append(cs.Members, mem.Name)
				}
			}
			st.Cluster = cs
		}
	}
	st.Summary, st.Warning = describeMonitor(st, idle)
	if !st.History.Durable {
		w := "the history is in " + st.History.Dir + " and may not survive a reboot: " + st.History.Note
		if st.Warning != "" {
			st.Warning += "; " + w
		} else {
			st.Warning = w
		}
	}
	return st
}

func describeMonitor(st monitorStatus, idle time.Duration) (summary, warning string) {
	switch {
	case st.Running:
		summary = fmt.Sprintf("the monitor is running (since %s ago)", ago(st.Now, *st.StartedAt))
	case st.StoppedAt != nil:
		summary = fmt.Sprintf("the monitor is not running: it stopped %s ago (%s)", ago(st.Now, *st.StoppedAt), st.StopReason)
	default:
		summary = "the monitor is not running: no query has used this datasource since the plugin started"
	}
	if st.KeptAliveByAlerts {
		return summary + fmt.Sprintf("; kept alive by alert rules: last evaluation %s ago", ago(st.Now, *st.LastAlertQueryAt)), ""
	}
	if st.LastAlertQueryAt != nil {
		warning = fmt.Sprintf("nothing keeps the monitor running: the last alert evaluation was %s ago, longer than idleStop (%s)", ago(st.Now, *st.LastAlertQueryAt), idle)
	} else {
		warning = "nothing keeps the monitor running: no alert rule has queried this datasource since the plugin started"
	}
	return summary, warning + "; without alert rules nothing polls the agents or restarts CDP after Grafana restarts until someone opens a dashboard: provision the Vigil alert rules (docs/install.md, step 4)"
}

// ago is a duration for people: whole seconds below ten minutes, else minutes.
func ago(now, t time.Time) time.Duration {
	d := max(now.Sub(t), 0)
	if d < 10*time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}
