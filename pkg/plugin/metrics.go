package plugin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-cdp/vigil/pkg/history"
)

// Grafana scrapes a plugin's Prometheus metrics (GET
// /api/plugins/vigil-cdp-datasource/metrics, and its own /metrics with
// plugin metrics enabled): these say, per running monitor, whether its
// shared history can be written and how its cluster fares (docs/ha.md).
var (
	labels         = []string{"org", "datasource_id", "datasource_uid"}
	descWritable   = prometheus.NewDesc("vigil_history_postgres_writable", "1 when the last write of the shared history reached PostgreSQL, 0 while writes wait in the local buffer.", labels, nil)
	descSpoolBytes = prometheus.NewDesc("vigil_history_buffer_bytes", "Bytes of writes waiting in the local buffer for PostgreSQL.", labels, nil)
	descDropped    = prometheus.NewDesc("vigil_history_buffer_dropped_observations_total", "Observations dropped because the local buffer was full.", labels, nil)
	descMembers    = prometheus.NewDesc("vigil_cluster_members", "Live members of the cluster this replica sees, itself included.", labels, nil)
	descOwned      = prometheus.NewDesc("vigil_cluster_owned_agents", "Agents this replica polls.", labels, nil)
	descUnpolled   = prometheus.NewDesc("vigil_unpolled_agents", "Agents no monitor sharing the history has polled for two poll intervals.", labels, nil)
)

// sharedCollector reports the monitors of a registry.
type sharedCollector struct{ ms *monitors }

func (c sharedCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWritable, descSpoolBytes, descDropped, descMembers, descOwned, descUnpolled} {
		ch <- d
	}
}

func (c sharedCollector) Collect(ch chan<- prometheus.Metric) {
	c.ms.mu.Lock()
	defer c.ms.mu.Unlock()
	for _, m := range c.ms.byKey {
		if m.eng == nil {
			continue
		}
		lv := []string{strconv.FormatInt(m.ident.org, 10), strconv.FormatInt(m.ident.id, 10), m.ident.uid}
		pg, ok := m.store.(*history.PGStore)
		if !ok {
			continue
		}
		st := pg.Status()
		writable := 0.0
		if st.Writable {
			writable = 1
		}
		ch <- prometheus.MustNewConstMetric(descWritable, prometheus.GaugeValue, writable, lv...)
		ch <- prometheus.MustNewConstMetric(descSpoolBytes, prometheus.GaugeValue, float64(st.SpoolBytes), lv...)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.Dropped), lv...)
		v := m.eng.Shared()
		if !v.CheckedAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descUnpolled, prometheus.GaugeValue, float64(len(v.Unpolled)), lv...)
		}
		if m.members != nil {
			ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(len(m.members.Members())), lv...)
			ch <- prometheus.MustNewConstMetric(descOwned, prometheus.GaugeValue, float64(v.Owned), lv...)
		}
	}
}

func init() {
	prometheus.MustRegister(sharedCollector{running})
}
