package logs

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	entries  *prometheus.CounterVec
	app      prometheus.Counter // entries{kind="app"}, looked up once
	dropped  prometheus.Counter
	platform *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_log_entries_total",
			Help: "Log entries stored, by kind (app, platform, request).",
		}, []string{"kind"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wisp_log_dropped_total",
			Help: "Log entries dropped because the log writer was behind (its queue was full).",
		}),
		platform: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_platform_events_total",
			Help: "Platform events (instance starting, ready, removed, …), by service and event.",
		}, []string{"service", "event"}),
	}
	m.app = m.entries.WithLabelValues("app")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.entries, m.dropped, m.platform} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
