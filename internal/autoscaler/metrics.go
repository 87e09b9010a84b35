package autoscaler

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/core"
)

// Metrics is an Observer that exports decisions to Prometheus.
type Metrics struct {
	desired   *prometheus.GaugeVec
	actual    *prometheus.GaugeVec
	panic     *prometheus.GaugeVec
	decisions *prometheus.CounterVec
	actions   *prometheus.CounterVec
}

var _ Observer = (*Metrics)(nil)

// NewMetrics registers the autoscaler's series with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"service", "version"}
	m := &Metrics{
		desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wisp_autoscaler_desired_instances",
			Help: "Instances the autoscaler wants for a version."}, labels),
		actual: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wisp_autoscaler_actual_instances",
			Help: "Instances a version has, starting ones included."}, labels),
		panic: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wisp_autoscaler_panic",
			Help: "1 while the autoscaler is in panic mode for a version."}, labels),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wisp_autoscaler_decisions_total",
			Help: "Decisions that changed a version's instance count, by direction (up, down) and mode (panic, stable)."},
			[]string{"service", "version", "direction", "mode"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wisp_autoscaler_actions_total",
			Help: "What decisions did: starts queued, queued starts dropped, idle instances stopped, busy ones drained, and decisions held back by a start backoff."},
			[]string{"service", "version", "action"}),
	}
	for _, c := range []prometheus.Collector{m.desired, m.actual, m.panic, m.decisions, m.actions} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Decided counts a decision and what it did.
func (m *Metrics) Decided(l core.VersionLoad, d Decision, res core.ScaleResult) {
	dir, mode := "up", "stable"
	if d.Desired < l.Instances {
		dir = "down"
	}
	if d.Panic {
		mode = "panic"
	}
	v := strconv.Itoa(l.Version)
	m.decisions.WithLabelValues(l.Service, v, dir, mode).Inc()
	held := 0
	if res.HeldBack {
		held = 1
	}
	for action, n := range map[string]int{"queued": res.Queued, "dropped": res.Dropped, "stopped": res.Stopped,
		"draining": res.Draining, "held_back": held} {
		if n > 0 {
			m.actions.WithLabelValues(l.Service, v, action).Add(float64(n))
		}
	}
}

// Counts records desired and actual instances, and panic mode, each tick.
func (m *Metrics) Counts(l core.VersionLoad, d Decision) {
	v := strconv.Itoa(l.Version)
	m.desired.WithLabelValues(l.Service, v).Set(float64(d.Desired))
	m.actual.WithLabelValues(l.Service, v).Set(float64(l.Instances))
	p := 0.0
	if d.Panic {
		p = 1
	}
	m.panic.WithLabelValues(l.Service, v).Set(p)
}

// Forget drops the series of a version that is gone.
func (m *Metrics) Forget(l core.VersionLoad) {
	v := strconv.Itoa(l.Version)
	m.desired.DeleteLabelValues(l.Service, v)
	m.actual.DeleteLabelValues(l.Service, v)
	m.panic.DeleteLabelValues(l.Service, v)
	m.decisions.DeletePartialMatch(prometheus.Labels{"service": l.Service, "version": v})
	m.actions.DeletePartialMatch(prometheus.Labels{"service": l.Service, "version": v})
}
