package router

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-run/wisp/internal/core"
)

// metrics are the router's Prometheus series. The children for each
// version are looked up once (per snapshot), not per request.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	timeout  *prometheus.GaugeVec

	mu       sync.Mutex
	versions map[int64]*versionMetrics
}

// metricsSlot holds a version's children once its first request has
// looked them up; a request after that pays one atomic load.
type metricsSlot struct {
	p atomic.Pointer[versionMetrics]
}

// get returns the children of v, looking them up the first time. A nil slot
// (no such version in the route) has none.
func (s *metricsSlot) get(m *metrics, v *core.Version, service string) *versionMetrics {
	if s == nil {
		return nil
	}
	if vm := s.p.Load(); vm != nil {
		return vm
	}
	vm := m.forVersion(v.ID, service, v.Number, v.Timeout.Std())
	s.p.Store(vm)
	return vm
}

type versionMetrics struct {
	byClass  [6]prometheus.Counter // index: status / 100
	duration prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_requests_total",
			Help: "Requests the router answered, by service, version and status class (2xx, 4xx, …).",
		}, []string{"service", "version", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wisp_request_duration_seconds",
			Help:    "Time from a request's arrival at the router to the end of its response, cold starts included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service", "version"}),
		timeout: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wisp_version_timeout_seconds",
			Help: "A version's request timeout (from its first request on), for alerts on latency as a share of it.",
		}, []string{"service", "version"}),
		versions: map[int64]*versionMetrics{},
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.timeout} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// forVersion returns the children of one version (service "" and version 0
// stand for requests that matched no version), and records its timeout.
func (m *metrics) forVersion(id int64, service string, version int, timeout time.Duration) *versionMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if vm := m.versions[id]; vm != nil {
		return vm
	}
	v := strconv.Itoa(version)
	if version == 0 {
		v = ""
	}
	vm := &versionMetrics{duration: m.duration.WithLabelValues(service, v)}
	if version != 0 {
		if timeout <= 0 {
			timeout = core.DefaultTimeout.Std()
		}
		m.timeout.WithLabelValues(service, v).Set(timeout.Seconds())
	}
	for class := 1; class <= 5; class++ {
		vm.byClass[class] = m.requests.WithLabelValues(service, v, strconv.Itoa(class)+"xx")
	}
	m.versions[id] = vm
	return vm
}

// forget deletes the series of a deleted version.
func (m *metrics) forget(id int64, service string, version int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.versions, id)
	v := strconv.Itoa(version)
	for class := 1; class <= 5; class++ {
		m.requests.DeleteLabelValues(service, v, strconv.Itoa(class)+"xx")
	}
	m.duration.DeleteLabelValues(service, v)
	m.timeout.DeleteLabelValues(service, v)
}

func (vm *versionMetrics) observe(status int, start time.Time) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 5
	}
	vm.byClass[class].Inc()
	vm.duration.Observe(time.Since(start).Seconds())
}

// statusWriter records the status a handler wrote, and closes the
// connection after a response that goes out before the request's body was
// read to its end.
type statusWriter struct {
	http.ResponseWriter
	status int
	body   *limitedBody // nil for a request without a body
	tap    *tap         // nil unless the request is mirrored
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		w.closeIfBodyUnread()
		if w.tap != nil {
			w.tap.wroteHeader(w.Header())
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
		w.closeIfBodyUnread()
		if w.tap != nil {
			w.tap.wroteHeader(w.Header())
		}
	}
	if w.tap != nil {
		_, _ = w.tap.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// closeIfBodyUnread says Connection: close when the body is not read to
// its end: otherwise the server would read (drain) up to 256 KiB of it
// before it sends the response, at whatever pace the client sends.
func (w *statusWriter) closeIfBodyUnread() {
	if w.body.unread() {
		w.Header().Set("Connection", "close")
	}
}

// Unwrap lets http.ResponseController reach Flush and friends.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush keeps streaming working for code that asserts http.Flusher.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
			w.closeIfBodyUnread()
		}
		f.Flush()
	}
}
