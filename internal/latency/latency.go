// Package latency is a log-linear histogram of durations. Its counts add
// up, so the latencies several replicas saw can be combined honestly (a
// ring of the latest samples cannot be): rollouts judge versions by it,
// and mirror reports give their percentiles from it.
package latency

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Latencies go into log-linear buckets: exact below 16µs, then 8 buckets
// per power of two, so a bucket's upper bound is at most 12.5% above any
// value in it. 40 powers of two reach beyond a day.
const (
	linearBuckets = 16
	subBuckets    = 8
	maxExp        = 40
	// Buckets is the number of buckets; their indexes are 0 to Buckets-1.
	Buckets = linearBuckets + (maxExp-4)*subBuckets
)

// Bucket returns the index of the bucket that counts d.
func Bucket(d time.Duration) int {
	us := uint64(max(d.Microseconds(), 0))
	if us < linearBuckets {
		return int(us)
	}
	e := bits.Len64(us) // ≥ 5
	if e > maxExp {
		return Buckets - 1
	}
	m := int((us >> (e - 4)) & (subBuckets - 1))
	return linearBuckets + (e-5)*subBuckets + m
}

// UpperBound is the largest latency bucket i holds.
func UpperBound(i int) time.Duration {
	if i < linearBuckets {
		return time.Duration(i) * time.Microsecond
	}
	i -= linearBuckets
	e, m := i/subBuckets+5, i%subBuckets
	return time.Duration((int64(subBuckets+m+1)<<(e-4))-1) * time.Microsecond
}

// Histogram counts latencies per bucket. The zero value is empty.
type Histogram [Buckets]int64

// Observe counts d.
func (h *Histogram) Observe(d time.Duration) { h[Bucket(d)]++ }

// Add returns h + o.
func (h Histogram) Add(o Histogram) Histogram {
	for i := range h {
		h[i] += o[i]
	}
	return h
}

// Sub returns h − o.
func (h Histogram) Sub(o Histogram) Histogram {
	for i := range h {
		h[i] -= o[i]
	}
	return h
}

// Count returns the latencies counted.
func (h *Histogram) Count() int64 {
	var n int64
	for _, c := range h {
		n += c
	}
	return n
}

// Quantile returns the q-quantile (0 < q ≤ 1) of the latencies counted,
// rounded up to its bucket's bound; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	return h.rank(int64(q*float64(h.Count()) + 0.999999))
}

// QuantileBounds returns a 95% confidence interval for the q-quantile of
// the latencies this sample was drawn from: the order statistics whose
// ranks are n·q ∓ 1.96·√(n·q·(1−q)), the usual distribution-free interval.
// On a small sample the upper bound of a p99 is the maximum and the lower
// bound well below the sample's p99; both close in as n grows.
func (h *Histogram) QuantileBounds(q float64) (lo, hi time.Duration) {
	n := float64(h.Count())
	if n == 0 {
		return 0, 0
	}
	spread := 1.96 * math.Sqrt(n*q*(1-q))
	return h.rank(int64(math.Floor(n*q - spread))), h.rank(int64(math.Ceil(n*q + spread)))
}

// rank returns the k-th smallest latency counted (1-based, clamped to the
// sample), rounded up to its bucket's bound; 0 when empty.
func (h *Histogram) rank(k int64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	k = min(max(k, 1), total)
	var seen int64
	for i, n := range h {
		seen += n
		if seen >= k {
			return UpperBound(i)
		}
	}
	return UpperBound(Buckets - 1)
}

// Sparse returns the counts by bucket index, empty buckets left out (nil
// when all are): the form load reports carry.
func (h *Histogram) Sparse() map[int]int64 {
	var out map[int]int64
	for i, n := range h {
		if n != 0 {
			if out == nil {
				out = map[int]int64{}
			}
			out[i] = n
		}
	}
	return out
}

// FromSparse is the histogram of Sparse's form; an error names a bucket
// out of range or a negative count.
func FromSparse(m map[int]int64) (Histogram, error) {
	var h Histogram
	for b, n := range m {
		if b < 0 || b >= Buckets || n < 0 {
			return Histogram{}, fmt.Errorf("latency bucket %d = %d: want a bucket in [0, %d) and a count ≥ 0", b, n, Buckets)
		}
		h[b] = n
	}
	return h, nil
}
