package activator

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/core"
)

type metrics struct {
	coldStarts *prometheus.CounterVec
	coldTime   *prometheus.HistogramVec
	queueWait  *prometheus.HistogramVec
	lostTotal  *prometheus.CounterVec
	liveness   *prometheus.CounterVec
}

var (
	descInFlight  = prometheus.NewDesc("wisp_requests_in_flight", "Requests being served by instances now.", []string{"service", "version"}, nil)
	descWaiting   = prometheus.NewDesc("wisp_requests_waiting", "Requests waiting for an instance now.", []string{"service", "version"}, nil)
	descInstances = prometheus.NewDesc("wisp_instances", "Instances by state.", []string{"service", "version", "state"}, nil)
	descBackoff   = prometheus.NewDesc("wisp_start_backoff_seconds",
		"Seconds until a version whose starts keep failing may start again (absent when it is not backing off).", []string{"service", "version"}, nil)
	descFailures = prometheus.NewDesc("wisp_start_failures_in_a_row",
		"Failed starts of a version since its last successful one (absent when 0).", []string{"service", "version"}, nil)
)

func newMetrics(reg prometheus.Registerer, a *Activator) (*metrics, error) {
	sv := []string{"service", "version"}
	m := &metrics{
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_cold_starts_total",
			Help: "Instance starts, by service, version and result (ready or failed).",
		}, []string{"service", "version", "result"}),
		coldTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wisp_cold_start_duration_seconds",
			Help:    "Time from asking the runtime to start an instance until it was ready.",
			Buckets: []float64{.05, .1, .15, .2, .3, .4, .5, .75, 1, 2, 5, 10, 30},
		}, sv),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wisp_queue_wait_seconds",
			Help:    "Time requests waited for an instance (to start, to wake, or to have a free slot).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, sv),
		lostTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_instances_lost_total",
			Help: "Instances that exited or were removed outside Wisp, by cause (exit or oom).",
		}, []string{"service", "version", "cause"}),
		liveness: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_liveness_failures_total",
			Help: "Instances replaced because their liveness probe failed.",
		}, sv),
	}
	for _, c := range []prometheus.Collector{m.coldStarts, m.coldTime, m.queueWait, m.lostTotal, m.liveness, loadCollector{a}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// loadCollector reads the live numbers at scrape time, so requests pay
// nothing for them. Versions with nothing running or waiting have no series.
type loadCollector struct{ a *Activator }

func (loadCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInFlight, descWaiting, descInstances, descBackoff, descFailures} {
		ch <- d
	}
}

func (c loadCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.a.now()
	for _, vs := range c.a.allVersions() {
		vs.mu.Lock()
		service, v := vs.ver.Service, strconv.Itoa(vs.ver.Number)
		var inflight int64
		states := map[State]int{}
		for _, in := range vs.instances {
			inflight += in.inflight.Load()
			if in.state.visible() && !in.ahead {
				states[in.state]++
			}
		}
		waiting, b := vs.waiters, vs.backoff
		vs.mu.Unlock()
		if len(states) > 0 || waiting > 0 {
			ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(inflight), service, v)
			ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(waiting), service, v)
		}
		for s, n := range states {
			ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(n), service, v, string(s))
		}
		if b.failures > 0 {
			ch <- prometheus.MustNewConstMetric(descFailures, prometheus.GaugeValue, float64(b.failures), service, v)
		}
		if b.active(now) {
			ch <- prometheus.MustNewConstMetric(descBackoff, prometheus.GaugeValue, b.until.Sub(now).Seconds(), service, v)
		}
	}
}

func (m *metrics) started(v *core.Version, ok bool, seconds float64) {
	result := "ready"
	if !ok {
		result = "failed"
	}
	n := strconv.Itoa(v.Number)
	m.coldStarts.WithLabelValues(v.Service, n, result).Inc()
	if ok {
		m.coldTime.WithLabelValues(v.Service, n).Observe(seconds)
	}
}

func (m *metrics) lost(v *core.Version, oom bool) {
	cause := "exit"
	if oom {
		cause = "oom"
	}
	m.lostTotal.WithLabelValues(v.Service, strconv.Itoa(v.Number), cause).Inc()
}

func (m *metrics) livenessFailed(v *core.Version) {
	m.liveness.WithLabelValues(v.Service, strconv.Itoa(v.Number)).Inc()
}

// forget deletes the series of a deleted version, so they do not outlive
// it on every scrape.
func (m *metrics) forget(v *core.Version) {
	l := prometheus.Labels{"service": v.Service, "version": strconv.Itoa(v.Number)}
	for _, c := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.coldStarts, m.coldTime, m.queueWait, m.lostTotal, m.liveness} {
		c.DeletePartialMatch(l)
	}
}
