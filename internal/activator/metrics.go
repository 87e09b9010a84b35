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
}

var (
	descInFlight  = prometheus.NewDesc("wisp_requests_in_flight", "Requests being served by instances now.", []string{"service", "version"}, nil)
	descWaiting   = prometheus.NewDesc("wisp_requests_waiting", "Requests waiting for an instance now.", []string{"service", "version"}, nil)
	descInstances = prometheus.NewDesc("wisp_instances", "Instances by state.", []string{"service", "version", "state"}, nil)
)

func newMetrics(reg prometheus.Registerer, a *Activator) (*metrics, error) {
	m := &metrics{
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_cold_starts_total",
			Help: "Instance starts, by service, version and result (ready or failed).",
		}, []string{"service", "version", "result"}),
		coldTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wisp_cold_start_duration_seconds",
			Help:    "Time from asking the runtime to start an instance until it was ready.",
			Buckets: []float64{.05, .1, .15, .2, .3, .4, .5, .75, 1, 2, 5, 10, 30},
		}, []string{"service", "version"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wisp_queue_wait_seconds",
			Help:    "Time requests waited for an instance (to start, to wake, or to have a free slot).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service", "version"}),
	}
	for _, c := range []prometheus.Collector{m.coldStarts, m.coldTime, m.queueWait, loadCollector{a}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// loadCollector reads the live numbers at scrape time, so requests pay
// nothing for them.
type loadCollector struct{ a *Activator }

func (loadCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descInFlight
	ch <- descWaiting
	ch <- descInstances
}

func (c loadCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		service, version, state string
	}
	states := map[key]int{}
	for _, in := range c.a.Instances("") {
		states[key{in.Service, strconv.Itoa(in.Version), in.State}]++
	}
	for k, n := range states {
		ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(n), k.service, k.version, k.state)
	}
	c.a.mu.Lock()
	pools := make([]*pool, 0, len(c.a.pools))
	for _, p := range c.a.pools {
		pools = append(pools, p)
	}
	c.a.mu.Unlock()
	for _, p := range pools {
		p.mu.Lock()
		v := strconv.Itoa(p.version.Number)
		var inflight int64
		for _, in := range p.instances {
			inflight += in.inflight.Load()
		}
		waiting := p.waiters
		service := p.version.Service
		p.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(inflight), service, v)
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(waiting), service, v)
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
