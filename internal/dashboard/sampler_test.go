package dashboard

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSampler(t *testing.T) {
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRequests}, []string{"service", "version", "code"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricDuration, Buckets: []float64{.01, .1, 1}}, []string{"service", "version"})
	inst := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricInstances}, []string{"service", "version", "state"})
	reg.MustRegister(reqs, dur, inst)
	s, err := NewSampler(SamplerConfig{Gatherer: reg, Interval: 5 * time.Second, Window: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	reqs.WithLabelValues("hello", "1", "2xx").Add(10)
	s.Sample(t0)
	if _, ok := s.Latest("hello"); ok {
		t.Fatal("a point after the first sample: it only records the counters")
	}
	// 5 s later: 50 more requests, 10 of them 5xx; 40 fast, 10 slow.
	reqs.WithLabelValues("hello", "1", "2xx").Add(40)
	reqs.WithLabelValues("hello", "1", "5xx").Add(10)
	reqs.WithLabelValues("hello", "2", "2xx").Add(25)
	for range 40 {
		dur.WithLabelValues("hello", "1").Observe(.005)
	}
	for range 10 {
		dur.WithLabelValues("hello", "1").Observe(.5)
	}
	inst.WithLabelValues("hello", "1", "ready").Set(2)
	inst.WithLabelValues("hello", "1", "paused").Set(1)
	s.Sample(t0.Add(5 * time.Second))
	p, ok := s.LatestVersion(Key{"hello", 1})
	if !ok {
		t.Fatal("no point for v1")
	}
	if p.RPS != 10 || p.ErrorsPS != 2 || p.Instances != 3 || p.States["ready"] != 2 {
		t.Errorf("v1: %+v, want 10 rps, 2 errors/s, 3 instances (2 ready)", p)
	}
	// p50 is within the first bucket (0–10 ms), p99 within 0.1–1 s.
	if p.P50 <= 0 || p.P50 > .01 || p.P99 <= .1 || p.P99 > 1 {
		t.Errorf("v1 p50 %v, p99 %v: want ≤ 10 ms and in (0.1, 1] s", p.P50, p.P99)
	}
	svc, _ := s.Latest("hello")
	if svc.RPS != 15 || svc.Instances != 3 {
		t.Errorf("service: %+v, want 15 rps (v1 10 + v2 5), 3 instances", svc)
	}
	// No requests in the next interval: zero, not the old numbers.
	s.Sample(t0.Add(10 * time.Second))
	p, _ = s.LatestVersion(Key{"hello", 1})
	if p.RPS != 0 || p.P99 != 0 {
		t.Errorf("an idle interval: %+v, want 0 rps and p99 0", p)
	}
	// The ring keeps Window/Interval points.
	for i := 3; i < 10; i++ {
		s.Sample(t0.Add(time.Duration(i) * 5 * time.Second))
	}
	if n := len(s.Series(Key{"hello", 1})); n != 4 {
		t.Errorf("the ring has %d points, want 4 (20 s / 5 s)", n)
	}
}

func TestQuantile(t *testing.T) {
	bs := []bucket{{.1, 50}, {1, 100}, {math.Inf(1), 100}}
	for _, tc := range []struct{ q, want float64 }{{.5, .1}, {.75, .55}, {1, 1}} {
		if got := quantile(tc.q, bs, 100); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := quantile(.5, nil, 0); got != 0 {
		t.Errorf("no observations: %v, want 0", got)
	}
}

func TestRenderChartHasNoStyleAttributes(t *testing.T) {
	now := time.Unix(10000, 0)
	pts := []Point{{Time: now.Add(-time.Minute), RPS: 3}, {Time: now, RPS: 7}}
	svg := string(renderChart(charts[0], pts, now, time.Hour))
	for _, bad := range []string{"style=", "<script"} {
		if contains(svg, bad) {
			t.Errorf("chart has %q: %s", bad, svg)
		}
	}
	if !contains(svg, "<path") || !contains(svg, "now 7.00") || !contains(svg, "max 10") {
		t.Errorf("chart lacks the line, the current value or the scale: %s", svg)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
