package router_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/latency"
	"github.com/wisp-run/wisp/internal/router"
)

// fakeClock is a settable clock for the received states' expiry.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// TestMirrorReportAddsReplicas: the leader's report is its own numbers
// plus the latest state of each other replica: counts and mismatches add
// up, examples are the first by time up to the bound, and the latencies
// are the histogram of every replica's samples. A replica's newer state
// replaces its older one; it drops out once it stops reporting.
func TestMirrorReportAddsReplicas(t *testing.T) {
	var mirrored atomic.Int32
	b := newBackends(t, mirrorHandler(nil, &mirrored), 1, 2, 3)
	m := &core.Mirror{Version: 3, Percent: 100, IgnoreFields: []string{"timestamp", "data.id"}} // v3 greets differently
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	leader := mirrorRouter(t, b, m, router.Config{Now: clock.Now})
	follower := mirrorRouter(t, b, m, router.Config{})
	for range 4 {
		do(leader, "hello.localhost", "/")
	}
	for range 8 {
		do(follower, "hello.localhost", "/")
	}
	follower.WaitMirrors()
	leader.WaitMirrors()
	states := follower.MirrorStates()
	if len(states) != 1 || states[0].Service != "hello" || states[0].VersionID != 103 || !states[0].Mirror.Equal(m) {
		t.Fatalf("the follower's states: %+v, want hello's, of its setting and version 103", states)
	}
	if err := leader.ReceiveMirrors("r1", states); err != nil {
		t.Fatal(err)
	}
	rep, err := leader.MirrorReport("hello")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replicas != 2 || len(rep.Pairs) != 1 {
		t.Fatalf("report over %d replicas with %d pairs, want 2 and 1: %+v", rep.Replicas, len(rep.Pairs), rep)
	}
	p := rep.Pairs[0]
	if p.Compared != 12 || p.Matched != 0 || p.Mismatches["body"] != 12 || p.MatchRate != 0 {
		t.Fatalf("pair compared %d matched %d mismatches %v, want 12, 0 and body 12", p.Compared, p.Matched, p.Mismatches)
	}
	if len(p.Examples) != core.MaxMirrorExamples {
		t.Fatalf("%d examples, want the first %d of 12", len(p.Examples), core.MaxMirrorExamples)
	}
	for i := 1; i < len(p.Examples); i++ {
		if p.Examples[i].At.Before(p.Examples[i-1].At) {
			t.Fatalf("examples out of time order at %d: %s before %s", i, p.Examples[i].At, p.Examples[i-1].At)
		}
	}
	if p.PrimaryLatency.Count != 12 || p.MirrorLatency.Count != 12 || p.MirrorLatency.P99 <= 0 {
		t.Fatalf("latencies %+v / %+v, want 12 samples each", p.PrimaryLatency, p.MirrorLatency)
	}

	// A newer state replaces the older: one more request on the follower
	// is one more, not nine.
	do(follower, "hello.localhost", "/")
	follower.WaitMirrors()
	if err := leader.ReceiveMirrors("r1", follower.MirrorStates()); err != nil {
		t.Fatal(err)
	}
	if p := report(t, leader); p.Compared != 13 {
		t.Fatalf("after the follower's next state: compared %d, want 13", p.Compared)
	}
	// Silent for longer than the TTL (3 s): its numbers drop out.
	clock.Add(3*time.Second + time.Millisecond)
	rep, _ = leader.MirrorReport("hello")
	if rep.Replicas != 1 || rep.Pairs[0].Compared != 4 {
		t.Fatalf("after the follower went silent: %d replicas, compared %d; want 1 and the leader's 4", rep.Replicas, rep.Pairs[0].Compared)
	}
}

// TestMirrorReportKeepsSettingsApart: a replica's state of another setting
// (an older one its feed still has, or one the leader has not seen yet, or
// the same numbers for another mirror version) is never added to the
// report, and a state of a setting without local pairs still counts its
// replica.
func TestMirrorReportKeepsSettingsApart(t *testing.T) {
	var mirrored atomic.Int32
	b := newBackends(t, mirrorHandler(nil, &mirrored), 1, 2, 3)
	old := &core.Mirror{Version: 2, Percent: 100}
	follower := mirrorRouter(t, b, old, router.Config{})
	for range 5 {
		do(follower, "hello.localhost", "/")
	}
	follower.WaitMirrors()
	stale := follower.MirrorStates()

	current := &core.Mirror{Version: 2, Percent: 100, IgnoreFields: []string{"timestamp"}}
	leader := mirrorRouter(t, b, current, router.Config{})
	if err := leader.ReceiveMirrors("r1", stale); err != nil {
		t.Fatal(err)
	}
	rep, _ := leader.MirrorReport("hello")
	if rep.Replicas != 1 || len(rep.Pairs) != 0 {
		t.Fatalf("a state of the older setting was mixed in: %d replicas, pairs %+v", rep.Replicas, rep.Pairs)
	}
	otherVersion := stale[0]
	otherVersion.Mirror = *current
	otherVersion.VersionID = 999 // the mirror version deleted and made again
	if err := leader.ReceiveMirrors("r1", []core.MirrorState{otherVersion}); err != nil {
		t.Fatal(err)
	}
	if rep, _ := leader.MirrorReport("hello"); rep.Replicas != 1 || len(rep.Pairs) != 0 {
		t.Fatalf("a state of another mirror version was mixed in: %d replicas, pairs %+v", rep.Replicas, rep.Pairs)
	}
	// The follower's feed catches up: its report starts again, and
	// counts.
	st := states(false, core.Weight{Version: 1, Percent: 100})
	st[0].Traffic.Mirror = current
	follower.Apply(st[0])
	do(follower, "hello.localhost", "/")
	follower.WaitMirrors()
	if err := leader.ReceiveMirrors("r1", follower.MirrorStates()); err != nil {
		t.Fatal(err)
	}
	rep, _ = leader.MirrorReport("hello")
	if rep.Replicas != 2 || len(rep.Pairs) != 1 || rep.Pairs[0].Compared != 1 {
		t.Fatalf("after the follower's feed caught up: %d replicas, pairs %+v; want 2 and 1 compared", rep.Replicas, rep.Pairs)
	}
	// A service the follower no longer names (its mirror is off there)
	// drops out.
	if err := leader.ReceiveMirrors("r1", nil); err != nil {
		t.Fatal(err)
	}
	if rep, _ := leader.MirrorReport("hello"); rep.Replicas != 1 || len(rep.Pairs) != 0 {
		t.Fatalf("a state the follower no longer sends still counts: %+v", rep)
	}
}

// TestReceiveMirrorsRefusesBadStates: a state that breaks the rules is
// refused with an error naming it, and nothing of the report is taken.
func TestReceiveMirrorsRefusesBadStates(t *testing.T) {
	var mirrored atomic.Int32
	b := newBackends(t, mirrorHandler(nil, &mirrored), 1, 2)
	m := core.Mirror{Version: 2, Percent: 100}
	leader := mirrorRouter(t, b, &m, router.Config{})
	var lat latency.Histogram
	lat.Observe(time.Millisecond)
	good := core.MirrorPairState{Primary: 1, Compared: 1, Matched: 1, PrimaryLatency: lat.Sparse(), MirrorLatency: lat.Sparse()}
	state := func(edit func(*core.MirrorPairState)) []core.MirrorState {
		p := good
		if edit != nil {
			edit(&p)
		}
		return []core.MirrorState{{Service: "hello", Mirror: m, VersionID: 102, Pairs: []core.MirrorPairState{p}}}
	}
	ex := core.MirrorExample{Kinds: []string{"body"}}
	cases := []struct {
		name   string
		states []core.MirrorState
		says   string
	}{
		{"no service", []core.MirrorState{{Mirror: m, VersionID: 102}}, "mirrors[0]: service is empty"},
		{"twice", append(state(nil), state(nil)...), `mirrors[1]: service "hello" is sent twice`},
		{"no version id", []core.MirrorState{{Service: "hello", Mirror: m}}, "version_id 0"},
		{"primary twice", []core.MirrorState{{Service: "hello", Mirror: m, VersionID: 102, Pairs: []core.MirrorPairState{good, good}}}, "pairs[1]: primary version 1 is sent twice"},
		{"primary 0", state(func(p *core.MirrorPairState) { p.Primary = 0 }), "primary 0"},
		{"negative", state(func(p *core.MirrorPairState) { p.Dropped = -1 }), "none may be negative"},
		{"matched over compared", state(func(p *core.MirrorPairState) { p.Matched = 2 }), "matched 2 > compared 1"},
		{"unknown kind", state(func(p *core.MirrorPairState) { p.Mismatches = map[string]int64{"colour": 1} }), `mismatches["colour"]`},
		{"too many examples", state(func(p *core.MirrorPairState) {
			for range core.MaxMirrorExamples + 1 {
				p.Examples = append(p.Examples, ex)
			}
		}), "11 examples; the limit is 10"},
		{"long excerpt", state(func(p *core.MirrorPairState) {
			p.Examples = []core.MirrorExample{{Kinds: []string{"body"}, MirrorBody: strings.Repeat("x", 4*core.MaxMirrorExcerpt)}}
		}), "examples[0]: a body excerpt over"},
		{"example without kinds", state(func(p *core.MirrorPairState) { p.Examples = []core.MirrorExample{{}} }), "examples[0]: kinds"},
		{"bucket out of range", state(func(p *core.MirrorPairState) { p.MirrorLatency = map[int]int64{latency.Buckets: 1} }), "mirror_latency_buckets: latency bucket"},
		{"latencies not one per pair", state(func(p *core.MirrorPairState) { p.PrimaryLatency = nil }), "primary_latency_buckets count 0 latencies"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := leader.ReceiveMirrors("r1", tc.states); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("ReceiveMirrors = %v, want an error saying %q", err, tc.says)
			}
			if rep, _ := leader.MirrorReport("hello"); rep.Replicas != 1 {
				t.Fatalf("a refused state counts: %d replicas", rep.Replicas)
			}
		})
	}
	if err := leader.ReceiveMirrors("r1", state(nil)); err != nil {
		t.Fatal(err)
	}
	rep, _ := leader.MirrorReport("hello")
	want := []core.MirrorPair{{Primary: 1, Mirror: 2, Compared: 1, Matched: 1, MatchRate: 1, Mismatches: map[string]int64{}, Examples: []core.MirrorExample{},
		PrimaryLatency: core.LatencySummary{Count: 1, P50: 1.023, P90: 1.023, P99: 1.023}, MirrorLatency: core.LatencySummary{Count: 1, P50: 1.023, P90: 1.023, P99: 1.023}}}
	if diff := cmp.Diff(want, rep.Pairs); diff != "" || rep.Replicas != 2 {
		t.Fatalf("a good state: %d replicas, pairs (-want +got):\n%s", rep.Replicas, diff)
	}
}

// TestMirrorExampleBounds: an example keeps the first MaxMirrorPath bytes
// of a long path, so what a follower sends stays bounded.
func TestMirrorExampleBounds(t *testing.T) {
	var mirrored atomic.Int32
	b := newBackends(t, mirrorHandler(nil, &mirrored), 1, 3)
	r := mirrorRouter(t, b, &core.Mirror{Version: 3, Percent: 100, IgnoreFields: []string{"timestamp", "data.id"}}, router.Config{})
	long := "/" + strings.Repeat("a", 3*core.MaxMirrorPath)
	do(r, "hello.localhost", long)
	p := report(t, r)
	if len(p.Examples) != 1 {
		t.Fatalf("%d examples, want 1", len(p.Examples))
	}
	if got := p.Examples[0].Path; got != long[:core.MaxMirrorPath] {
		t.Fatalf("the example's path has %d bytes, want the first %d", len(got), core.MaxMirrorPath)
	}
}
