package dashboard

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Series names the sampler reads (internal/router/metrics.go and
// internal/activator/metrics.go).
const (
	metricRequests   = "wisp_requests_total"
	metricDuration   = "wisp_request_duration_seconds"
	metricInstances  = "wisp_instances"
	metricColdStarts = "wisp_cold_starts_total"
)

// Point is one sample of a version (or of a whole service).
type Point struct {
	Time time.Time `json:"t"`
	// RPS and ErrorsPS are requests and 5xx answers per second since the
	// previous sample.
	RPS      float64 `json:"rps"`
	ErrorsPS float64 `json:"errors_ps"`
	// P50 and P99 are latency quantiles in seconds of the requests since the
	// previous sample, from the histogram's bucket deltas; NaN-free: 0 when
	// there were none.
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	// Instances is the number of instances in any state; States counts them
	// by state.
	Instances int            `json:"instances"`
	States    map[string]int `json:"states,omitempty"`
	// ColdStarts counts instance starts (ready or failed) since the daemon
	// started.
	ColdStarts int `json:"cold_starts"`
}

// Key names a version of a service in the sampler.
type Key struct {
	Service string
	Version int
}

// counters are the cumulative values of one version at one gather.
type counters struct {
	requests, errors float64
	buckets          []bucket // cumulative, by upper bound
	count            float64
	states           map[string]int
	coldStarts       float64
}

type bucket struct {
	upper float64
	count float64
}

// SamplerConfig configures a Sampler.
type SamplerConfig struct {
	// Gatherer is the registry the router's and activator's series are in.
	Gatherer prometheus.Gatherer
	// Interval between samples; default 5 s.
	Interval time.Duration
	// Window is how much history is kept; default 1 h.
	Window time.Duration
	Logger *slog.Logger
}

// Validate checks c.
func (c SamplerConfig) Validate() error {
	if c.Gatherer == nil {
		return fmt.Errorf("dashboard sampler: a Gatherer is required")
	}
	if c.Interval < 0 || c.Window < 0 {
		return fmt.Errorf("dashboard sampler: interval and window must not be negative")
	}
	return nil
}

func (c SamplerConfig) withDefaults() SamplerConfig {
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	if c.Window == 0 {
		c.Window = time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Sampler keeps, per version, a ring of the last Window of points.
type Sampler struct {
	cfg SamplerConfig
	max int

	mu      sync.Mutex
	prev    map[Key]counters
	prevAt  time.Time
	rings   map[Key][]Point
	svcLast map[string]Point
}

// NewSampler returns a Sampler; Run samples.
func NewSampler(cfg SamplerConfig) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := int(cfg.Window / cfg.Interval)
	if n < 2 {
		n = 2
	}
	return &Sampler{cfg: cfg, max: n, rings: map[Key][]Point{}, svcLast: map[string]Point{}}, nil
}

// Interval is the time between samples.
func (s *Sampler) Interval() time.Duration { return s.cfg.Interval }

// Run samples every Interval until ctx ends.
func (s *Sampler) Run(ctx context.Context) error {
	s.Sample(time.Now())
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			s.Sample(now)
		}
	}
}

// Sample gathers the registry once and appends a point per version
// (the first call only records the counters).
func (s *Sampler) Sample(now time.Time) {
	fams, err := s.cfg.Gatherer.Gather()
	if err != nil && len(fams) == 0 {
		s.cfg.Logger.Warn("dashboard: gather metrics", "err", err)
		return
	}
	cur := collect(fams)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prev != nil {
		dt := now.Sub(s.prevAt).Seconds()
		if dt <= 0 {
			return
		}
		bySvc := map[string]*svcAgg{}
		for k, c := range cur {
			p, had := s.prev[k]
			pt := point(now, c, p, had, dt)
			ring := append(s.rings[k], pt)
			if len(ring) > s.max {
				ring = ring[len(ring)-s.max:]
			}
			s.rings[k] = ring
			a := bySvc[k.Service]
			if a == nil {
				a = &svcAgg{}
				bySvc[k.Service] = a
			}
			a.add(c, p, had, pt)
		}
		for k := range s.rings {
			if _, ok := cur[k]; !ok {
				delete(s.rings, k) // the version is gone
			}
		}
		s.svcLast = map[string]Point{}
		for svc, a := range bySvc {
			s.svcLast[svc] = a.point(now, dt)
		}
	}
	s.prev, s.prevAt = cur, now
}

// svcAgg sums a service's versions for one sample.
type svcAgg struct {
	dReq, dErr, dCount float64
	dBuckets           map[float64]float64
	instances, cold    int
	states             map[string]int
}

func (a *svcAgg) add(c, p counters, had bool, pt Point) {
	if a.dBuckets == nil {
		a.dBuckets, a.states = map[float64]float64{}, map[string]int{}
	}
	if !had {
		p = counters{}
	}
	a.dReq += nonNeg(c.requests - p.requests)
	a.dErr += nonNeg(c.errors - p.errors)
	a.dCount += nonNeg(c.count - p.count)
	for i, b := range c.buckets {
		prev := 0.0
		if i < len(p.buckets) && p.buckets[i].upper == b.upper {
			prev = p.buckets[i].count
		}
		a.dBuckets[b.upper] += nonNeg(b.count - prev)
	}
	a.instances += pt.Instances
	a.cold += pt.ColdStarts
	for st, n := range pt.States {
		a.states[st] += n
	}
}

func (a *svcAgg) point(now time.Time, dt float64) Point {
	var bs []bucket
	for u, n := range a.dBuckets {
		bs = append(bs, bucket{upper: u, count: n})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].upper < bs[j].upper })
	return Point{Time: now, RPS: a.dReq / dt, ErrorsPS: a.dErr / dt,
		P50: quantile(0.5, bs, a.dCount), P99: quantile(0.99, bs, a.dCount),
		Instances: a.instances, States: a.states, ColdStarts: a.cold}
}

func point(now time.Time, c, p counters, had bool, dt float64) Point {
	if !had {
		// A version first seen now: its counters so far are its first
		// interval's (a version's series appear with its first request).
		p = counters{}
	}
	d := make([]bucket, len(c.buckets))
	for i, b := range c.buckets {
		prev := 0.0
		if i < len(p.buckets) && p.buckets[i].upper == b.upper {
			prev = p.buckets[i].count
		}
		d[i] = bucket{upper: b.upper, count: nonNeg(b.count - prev)}
	}
	n := nonNeg(c.count - p.count)
	total := 0
	for _, v := range c.states {
		total += v
	}
	return Point{Time: now, RPS: nonNeg(c.requests-p.requests) / dt, ErrorsPS: nonNeg(c.errors-p.errors) / dt,
		P50: quantile(0.5, d, n), P99: quantile(0.99, d, n), Instances: total, States: c.states, ColdStarts: int(c.coldStarts)}
}

func nonNeg(f float64) float64 {
	if f < 0 { // a counter reset (the series was deleted and made again)
		return 0
	}
	return f
}

// quantile interpolates q within the bucket it falls in, as Prometheus's
// histogram_quantile does; 0 when there were no observations.
func quantile(q float64, bs []bucket, total float64) float64 {
	if total <= 0 || len(bs) == 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.upper, 1) {
				return lower // beyond the last bucket: its lower bound
			}
			in := b.count - below
			if in <= 0 {
				return b.upper
			}
			return lower + (b.upper-lower)*(rank-below)/in
		}
		lower, below = b.upper, b.count
	}
	return lower
}

// collect reads the series the dashboard shows, by version.
func collect(fams []*dto.MetricFamily) map[Key]counters {
	out := map[Key]counters{}
	get := func(m *dto.Metric) (Key, bool) {
		var k Key
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "service":
				k.Service = l.GetValue()
			case "version":
				n, err := strconv.Atoi(l.GetValue())
				if err != nil {
					return k, false
				}
				k.Version = n
			}
		}
		return k, k.Service != "" && k.Version > 0
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			k, ok := get(m)
			if !ok {
				continue
			}
			c := out[k]
			switch f.GetName() {
			case metricRequests:
				v := m.GetCounter().GetValue()
				c.requests += v
				if label(m, "code") == "5xx" {
					c.errors += v
				}
			case metricDuration:
				h := m.GetHistogram()
				c.count = float64(h.GetSampleCount())
				c.buckets = c.buckets[:0]
				for _, b := range h.GetBucket() {
					c.buckets = append(c.buckets, bucket{upper: b.GetUpperBound(), count: float64(b.GetCumulativeCount())})
				}
				c.buckets = append(c.buckets, bucket{upper: math.Inf(1), count: c.count})
			case metricInstances:
				if c.states == nil {
					c.states = map[string]int{}
				}
				if n := int(m.GetGauge().GetValue()); n > 0 {
					c.states[label(m, "state")] += n
				}
			case metricColdStarts:
				c.coldStarts += m.GetCounter().GetValue()
			default:
				continue
			}
			out[k] = c
		}
	}
	return out
}

// Series returns a copy of the points of one version, oldest first.
func (s *Sampler) Series(k Key) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Point(nil), s.rings[k]...)
}

// Latest returns the newest point of a whole service (its versions summed,
// quantiles over all its requests) and whether there is one.
func (s *Sampler) Latest(service string) (Point, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.svcLast[service]
	return p, ok
}

// LatestVersion returns the newest point of one version.
func (s *Sampler) LatestVersion(k Key) (Point, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rings[k]
	if len(r) == 0 {
		return Point{}, false
	}
	return r[len(r)-1], true
}
