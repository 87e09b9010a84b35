package daemon_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/daemon"
)

// TestMetrics: /metrics parses with Prometheus's text parser and carries the
// series of requests, instances, cold starts, queue waits and the autoscaler.
func TestMetrics(t *testing.T) {
	d, _ := runDaemon(t, t.TempDir(), nil, daemon.Options{Runtime: newFake()})
	c := apiclient.New(d.AdminAddr().String(), d.Token())
	if _, err := c.CreateService(t.Context(), "hello", core.PolicyPatch{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateVersion(t.Context(), "hello", core.VersionSpec{Image: "hello:1"}); err != nil {
		t.Fatal(err)
	}
	get := func(host string) int {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+d.RouterAddr().String()+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for range 5 {
		if s := get("hello.localhost"); s != 200 {
			t.Fatalf("status %d", s)
		}
	}
	if s := get("nope.localhost"); s != 404 {
		t.Fatalf("status %d", s)
	}
	time.Sleep(1100 * time.Millisecond) // one autoscaler tick

	body, err := c.Raw(t.Context(), "GET", "/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		f := families[name]
		if f == nil {
			return 0, false
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return metricValue(f.GetType(), m), true
		}
		return 0, false
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   func(float64) bool
	}{
		{"wisp_requests_total", map[string]string{"service": "hello", "version": "1", "code": "2xx"}, func(v float64) bool { return v == 5 }},
		{"wisp_requests_total", map[string]string{"service": "", "code": "4xx"}, func(v float64) bool { return v == 1 }},
		{"wisp_request_duration_seconds", map[string]string{"service": "hello", "version": "1"}, func(v float64) bool { return v == 5 }},
		{"wisp_requests_in_flight", map[string]string{"service": "hello", "version": "1"}, func(v float64) bool { return v == 0 }},
		{"wisp_requests_waiting", map[string]string{"service": "hello", "version": "1"}, func(v float64) bool { return v == 0 }},
		{"wisp_instances", map[string]string{"service": "hello", "version": "1", "state": "ready"}, func(v float64) bool { return v == 1 }},
		{"wisp_cold_starts_total", map[string]string{"service": "hello", "version": "1", "result": "ready"}, func(v float64) bool { return v == 1 }},
		{"wisp_cold_start_duration_seconds", map[string]string{"service": "hello"}, func(v float64) bool { return v == 1 }},
		{"wisp_queue_wait_seconds", map[string]string{"service": "hello"}, func(v float64) bool { return v == 1 }},
		{"wisp_autoscaler_desired_instances", map[string]string{"service": "hello", "version": "1"}, func(v float64) bool { return v == 1 }},
		{"wisp_autoscaler_actual_instances", map[string]string{"service": "hello", "version": "1"}, func(v float64) bool { return v == 1 }},
		{"wisp_autoscaler_panic", map[string]string{"service": "hello", "version": "1"}, func(v float64) bool { return v == 0 }},
		{"wisp_version_timeout_seconds", map[string]string{"service": "hello", "version": "1"}, func(v float64) bool { return v == 60 }},
		{"wisp_store_up", nil, func(v float64) bool { return v == 1 }},
		{"go_goroutines", nil, func(v float64) bool { return v > 0 }},
	}
	for _, ck := range checks {
		v, ok := value(ck.name, ck.labels)
		if !ok {
			t.Errorf("no series %s%v", ck.name, ck.labels)
			continue
		}
		if !ck.want(v) {
			t.Errorf("%s%v = %v", ck.name, ck.labels, v)
		}
	}
	// The metrics need the token like every admin route.
	resp, err := http.Get("http://" + d.AdminAddr().String() + "/metrics") //nolint:noctx // test
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("/metrics without a token: %d", resp.StatusCode)
	}
}

// metricValue is a counter's or gauge's value, or a histogram's count.
func metricValue(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}
