package async

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of async calls (docs/async.md lists them).
type metrics struct {
	calls   *prometheus.CounterVec   // service, state: submitted (queued) and finished
	retries *prometheus.CounterVec   // service
	start   *prometheus.HistogramVec // service: enqueue (or retry due) to attempt start
}

func newMetrics(reg prometheus.Registerer, c *Calls) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_async_calls_total",
			Help: "Async calls by service and state: queued counts submissions; succeeded, failed and dead count calls that ended.",
		}, []string{"service", "state"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_async_retries_total",
			Help: "Attempts of async calls that failed and were scheduled again.",
		}, []string{"service"}),
		start: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wisp_async_start_seconds",
			Help:    "Time from a call's message being stored (or last retried) to its attempt starting.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"service"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, col := range []prometheus.Collector{m.calls, m.retries, m.start, depthCollector{c}} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) submitted(service string) { m.calls.WithLabelValues(service, "queued").Inc() }
func (m *metrics) finished(service, state string) {
	m.calls.WithLabelValues(service, state).Inc()
}
func (m *metrics) retried(service string) { m.retries.WithLabelValues(service).Inc() }
func (m *metrics) started(service string, wait time.Duration) {
	m.start.WithLabelValues(service).Observe(wait.Seconds())
}

var (
	depthDesc = prometheus.NewDesc("wisp_async_queue_depth", "Async calls of a service waiting or running.", []string{"service"}, nil)
	ageDesc   = prometheus.NewDesc("wisp_async_queue_oldest_seconds", "Age of the oldest async call of a service still waiting or running.", []string{"service"}, nil)
)

// depthCollector reads each service's queue at scrape time.
type depthCollector struct{ c *Calls }

func (d depthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- depthDesc; ch <- ageDesc }

func (d depthCollector) Collect(ch chan<- prometheus.Metric) {
	d.c.mu.Lock()
	names := make([]string, 0, len(d.c.services))
	for n := range d.c.services {
		names = append(names, n)
	}
	d.c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	now := d.c.cfg.Now()
	for _, n := range names {
		depth, oldest, err := d.c.cfg.Queue.Depth(ctx, n)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(depth), n)
		age := 0.0
		if !oldest.IsZero() {
			age = now.Sub(oldest).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, age, n)
	}
}
