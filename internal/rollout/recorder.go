package rollout

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/latency"
)

// Counts are a version's cumulative numbers since its service was first
// tracked; the difference of two is a window.
type Counts struct {
	Requests, Errors int64
	Buckets          latency.Histogram
}

// Sub returns c − o.
func (c Counts) Sub(o Counts) Counts {
	c.Requests -= o.Requests
	c.Errors -= o.Errors
	c.Buckets = c.Buckets.Sub(o.Buckets)
	return c
}

// Add returns c + o.
func (c Counts) Add(o Counts) Counts {
	c.Requests += o.Requests
	c.Errors += o.Errors
	c.Buckets = c.Buckets.Add(o.Buckets)
	return c
}

// Quantile returns the q-quantile (0 < q ≤ 1) of the latencies counted,
// rounded up to its bucket's bound; 0 without requests.
func (c Counts) Quantile(q float64) time.Duration { return c.Buckets.Quantile(q) }

// QuantileBounds returns a 95% confidence interval for the q-quantile
// (latency.Histogram.QuantileBounds).
func (c Counts) QuantileBounds(q float64) (lo, hi time.Duration) { return c.Buckets.QuantileBounds(q) }

type versionCounts struct {
	requests, errors atomic.Int64
	buckets          [latency.Buckets]atomic.Int64
}

func (v *versionCounts) load() Counts {
	var c Counts
	c.Requests, c.Errors = v.requests.Load(), v.errors.Load()
	for i := range v.buckets {
		c.Buckets[i] = v.buckets[i].Load()
	}
	return c
}

type serviceCounts struct {
	mu       sync.Mutex
	versions sync.Map // int → *versionCounts
}

func (s *serviceCounts) version(n int) *versionCounts {
	if v, ok := s.versions.Load(n); ok {
		return v.(*versionCounts)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _ := s.versions.LoadOrStore(n, &versionCounts{})
	return v.(*versionCounts)
}

// Recorder counts the requests of tracked services per version, in memory.
// The router calls ObserveRequest for every request; services that are
// not tracked cost one map lookup. It is safe for concurrent use.
//
// With several replicas, the leader's recorder also holds what the others
// reported (Receive), and Counts is the sum: a follower's recorder tracks
// the services the leader names in its load reply and sends its counts
// (Snapshot) with its load reports.
type Recorder struct {
	mu      sync.Mutex // serialises Track
	tracked atomic.Pointer[map[string]*serviceCounts]

	rmu    sync.Mutex
	remote map[string]map[versionKey]*remoteCounts // by replica
}

type versionKey struct {
	service string
	version int
}

// remoteCounts is one version's counts on another replica: acc is what
// counts here, the growth since its first report (counts from before
// it was heard of would land in a window they do not belong to); last is
// the latest report, to take differences and to see a restart (counts
// that go down start from zero again).
type remoteCounts struct {
	last, acc Counts
}

// NewRecorder returns a recorder that tracks nothing.
func NewRecorder() *Recorder {
	r := &Recorder{}
	r.tracked.Store(&map[string]*serviceCounts{})
	return r
}

// ObserveRequest counts one answered request of version of service: its
// status (5xx is an error) and how long it took.
func (r *Recorder) ObserveRequest(service string, version, status int, d time.Duration) {
	sc := (*r.tracked.Load())[service]
	if sc == nil {
		return
	}
	v := sc.version(version)
	v.requests.Add(1)
	if status >= 500 && status <= 599 {
		v.errors.Add(1)
	}
	v.buckets[latency.Bucket(d)].Add(1)
}

// Track sets the services counted; the counts of a service that stays
// tracked are kept, those of the others dropped.
func (r *Recorder) Track(services map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := *r.tracked.Load()
	same := len(cur) == len(services)
	for s := range services {
		same = same && cur[s] != nil
	}
	if same {
		return
	}
	next := make(map[string]*serviceCounts, len(services))
	for s := range services {
		if sc := cur[s]; sc != nil {
			next[s] = sc
		} else {
			next[s] = &serviceCounts{}
		}
	}
	r.tracked.Store(&next)
	r.rmu.Lock()
	defer r.rmu.Unlock()
	for _, byKey := range r.remote {
		for k := range byKey {
			if !services[k.service] {
				delete(byKey, k)
			}
		}
	}
}

// Tracked returns the services counted, sorted.
func (r *Recorder) Tracked() []string {
	cur := *r.tracked.Load()
	out := make([]string, 0, len(cur))
	for s := range cur {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// TrackNames is Track with a list, as a load reply carries it.
func (r *Recorder) TrackNames(services []string) {
	set := make(map[string]bool, len(services))
	for _, s := range services {
		set[s] = true
	}
	r.Track(set)
}

// Snapshot returns the cumulative counts of every version of the tracked
// services, for a load report.
func (r *Recorder) Snapshot() []core.RolloutCounts {
	var out []core.RolloutCounts
	for svc, sc := range *r.tracked.Load() {
		sc.versions.Range(func(k, v any) bool {
			c := v.(*versionCounts).load()
			out = append(out, core.RolloutCounts{Service: svc, Version: k.(int), Requests: c.Requests, Errors: c.Errors,
				Latency: c.Buckets.Sparse()})
			return true
		})
	}
	return out
}

// Receive takes another replica's counts (its Snapshot). Counts of
// services not tracked here are dropped; a count that is negative or a
// latency bucket out of range is refused, and nothing of the report is
// taken.
func (r *Recorder) Receive(replica string, counts []core.RolloutCounts) error {
	parsed := make([]Counts, len(counts))
	for i, rc := range counts {
		c := &parsed[i]
		c.Requests, c.Errors = rc.Requests, rc.Errors
		if rc.Requests < 0 || rc.Errors < 0 || rc.Errors > rc.Requests {
			return fmt.Errorf("rollouts[%d]: requests %d and errors %d: want 0 ≤ errors ≤ requests", i, rc.Requests, rc.Errors)
		}
		h, err := latency.FromSparse(rc.Latency)
		if err != nil {
			return fmt.Errorf("rollouts[%d]: %w", i, err)
		}
		c.Buckets = h
	}
	tracked := *r.tracked.Load()
	r.rmu.Lock()
	defer r.rmu.Unlock()
	if r.remote == nil {
		r.remote = map[string]map[versionKey]*remoteCounts{}
	}
	byKey := r.remote[replica]
	if byKey == nil {
		byKey = map[versionKey]*remoteCounts{}
		r.remote[replica] = byKey
	}
	for i, rc := range counts {
		if tracked[rc.Service] == nil {
			continue
		}
		k := versionKey{rc.Service, rc.Version}
		c := parsed[i]
		rv := byKey[k]
		switch {
		case rv == nil: // first heard of: only its growth from now counts
			byKey[k] = &remoteCounts{last: c}
		case c.Requests < rv.last.Requests: // the replica restarted
			rv.acc, rv.last = rv.acc.Add(c), c
		default:
			rv.acc, rv.last = rv.acc.Add(c.Sub(rv.last)), c
		}
	}
	return nil
}

// Counts returns the cumulative counts of version of service (zero when
// not tracked or never seen): this replica's, plus what the others
// reported since they were first heard of.
func (r *Recorder) Counts(service string, version int) Counts {
	sc := (*r.tracked.Load())[service]
	if sc == nil {
		return Counts{}
	}
	var c Counts
	if v, ok := sc.versions.Load(version); ok {
		c = v.(*versionCounts).load()
	}
	r.rmu.Lock()
	defer r.rmu.Unlock()
	for _, byKey := range r.remote {
		if rv := byKey[versionKey{service, version}]; rv != nil {
			c = c.Add(rv.acc)
		}
	}
	return c
}
