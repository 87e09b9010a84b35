package latency_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/latency"
)

func TestQuantile(t *testing.T) {
	var h latency.Histogram
	for i := 1; i <= 1000; i++ {
		h.Observe(time.Duration(i) * time.Millisecond)
	}
	got := h.Quantile(0.99)
	if want := 990 * time.Millisecond; got < want || float64(got) > float64(want)*1.125 {
		t.Errorf("p99 of 1..1000 ms = %s, want %s to 12.5%% above", got, want)
	}
	var empty latency.Histogram
	if q := empty.Quantile(0.5); q != 0 {
		t.Errorf("p50 of nothing = %s, want 0", q)
	}
	for _, d := range []time.Duration{0, time.Microsecond, 15 * time.Microsecond, 16 * time.Microsecond, time.Second, 100 * time.Hour} {
		b := latency.Bucket(d)
		if b < 0 || b >= latency.Buckets || (d < 100*time.Hour && latency.UpperBound(b) < d.Truncate(time.Microsecond)) {
			t.Errorf("Bucket(%s) = %d, bound %s", d, b, latency.UpperBound(b))
		}
	}
}

// TestMerge: the quantile of two histograms added is the quantile of all
// their samples, and the sparse form round-trips.
func TestMerge(t *testing.T) {
	var fast, slow, all latency.Histogram
	for i := range 90 {
		d := time.Duration(i+1) * time.Millisecond
		fast.Observe(d)
		all.Observe(d)
	}
	for range 10 {
		slow.Observe(time.Second)
		all.Observe(time.Second)
	}
	sum := fast.Add(slow)
	if sum != all || sum.Count() != 100 {
		t.Fatalf("fast + slow differs from all samples (count %d)", sum.Count())
	}
	if p99 := sum.Quantile(0.99); p99 < time.Second {
		t.Errorf("p99 of the merge = %s, want the slow replica's 1s", p99)
	}
	if back := sum.Sub(slow); back != fast {
		t.Error("(fast + slow) − slow differs from fast")
	}
	round, err := latency.FromSparse(sum.Sparse())
	if err != nil || round != sum {
		t.Fatalf("FromSparse(Sparse()) = %v; differs: %s", err, cmp.Diff(sum.Sparse(), round.Sparse()))
	}
	for _, bad := range []map[int]int64{{latency.Buckets: 1}, {-1: 1}, {3: -2}} {
		if _, err := latency.FromSparse(bad); err == nil || !strings.Contains(err.Error(), "latency bucket") {
			t.Errorf("FromSparse(%v) = %v, want an error naming the bucket", bad, err)
		}
	}
}

// TestQuantileBounds: the 95% bounds of a p99 hold the sample's p99, are
// close to it on a large sample, and reach the maximum on a small one.
func TestQuantileBounds(t *testing.T) {
	var h latency.Histogram
	for i := 1; i <= 1000; i++ {
		h.Observe(time.Duration(i) * time.Millisecond)
	}
	p99 := h.Quantile(0.99)
	if lo, hi := h.QuantileBounds(0.99); lo > p99 || hi < p99 || lo < 975*time.Millisecond || hi > 1125*time.Millisecond {
		t.Errorf("95%% bounds of the p99 of 1..1000 ms = %s…%s, want around %s", lo, hi, p99)
	}
	var small latency.Histogram
	for i := 1; i <= 20; i++ {
		small.Observe(time.Duration(i) * time.Millisecond)
	}
	if lo, hi := small.QuantileBounds(0.99); hi != small.Quantile(1) || lo > 19*time.Millisecond+19*time.Millisecond/8 {
		t.Errorf("95%% bounds of the p99 of 1..20 ms = %s…%s, want the maximum above and about the 18th value below", lo, hi)
	}
	var empty latency.Histogram
	if lo, hi := empty.QuantileBounds(0.99); lo != 0 || hi != 0 {
		t.Errorf("bounds of nothing = %s…%s, want 0", lo, hi)
	}
}
