package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/latency"
)

// TestRecorderAddsOtherReplicas: the leader's counts are its own plus the
// others' growth since they were first heard of; a replica that restarts
// (its counts go down) counts again from zero; services not tracked are
// dropped, and a bad report is refused whole.
func TestRecorderAddsOtherReplicas(t *testing.T) {
	leader, follower := NewRecorder(), NewRecorder()
	leader.Track(map[string]bool{"svc": true})
	follower.TrackNames(leader.Tracked()) // as a load reply carries it
	if got := follower.Tracked(); len(got) != 1 || got[0] != "svc" {
		t.Fatalf("the follower tracks %v, want [svc]", got)
	}
	for range 5 { // before the leader heard of the follower: not counted
		follower.ObserveRequest("svc", 2, 200, time.Millisecond)
	}
	if err := leader.Receive("r1", follower.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if c := leader.Counts("svc", 2); c.Requests != 0 {
		t.Fatalf("after the first report: %d requests, want 0 (only growth counts)", c.Requests)
	}
	leader.ObserveRequest("svc", 2, 200, time.Millisecond)
	for range 10 {
		follower.ObserveRequest("svc", 2, 500, 80*time.Millisecond)
	}
	follower.ObserveRequest("other", 2, 500, time.Second) // not tracked
	snap := follower.Snapshot()
	if err := leader.Receive("r1", snap); err != nil {
		t.Fatal(err)
	}
	c := leader.Counts("svc", 2)
	if c.Requests != 11 || c.Errors != 10 {
		t.Fatalf("leader + follower: %d requests, %d errors; want 11 and 10", c.Requests, c.Errors)
	}
	if p99 := c.Quantile(0.99); p99 < 80*time.Millisecond || p99 > 90*time.Millisecond {
		t.Fatalf("p99 %s, want the follower's 80 ms (within a bucket)", p99)
	}
	// The same report again adds nothing.
	if err := leader.Receive("r1", snap); err != nil {
		t.Fatal(err)
	}
	if c := leader.Counts("svc", 2); c.Requests != 11 {
		t.Fatalf("a repeated report: %d requests, want 11", c.Requests)
	}
	// The follower restarts: its counts start from zero again.
	restarted := NewRecorder()
	restarted.TrackNames([]string{"svc"})
	for range 3 {
		restarted.ObserveRequest("svc", 2, 200, time.Millisecond)
	}
	if err := leader.Receive("r1", restarted.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if c := leader.Counts("svc", 2); c.Requests != 14 {
		t.Fatalf("after the follower's restart: %d requests, want 14", c.Requests)
	}
	// Bad reports are refused, and change nothing.
	for _, bad := range [][]core.RolloutCounts{
		{{Service: "svc", Version: 2, Requests: 20, Errors: -1}},
		{{Service: "svc", Version: 2, Requests: 20, Errors: 21}},
		{{Service: "svc", Version: 2, Requests: 20, Latency: map[int]int64{latency.Buckets: 1}}},
		{{Service: "svc", Version: 2, Requests: 20, Latency: map[int]int64{3: -2}}},
	} {
		if err := leader.Receive("r1", bad); err == nil || !strings.Contains(err.Error(), "rollouts[0]") {
			t.Errorf("Receive(%+v) = %v, want an error naming rollouts[0]", bad, err)
		}
	}
	if c := leader.Counts("svc", 2); c.Requests != 14 {
		t.Fatalf("after refused reports: %d requests, want 14", c.Requests)
	}
	// A service no longer tracked drops the others' counts too.
	leader.Track(map[string]bool{})
	leader.Track(map[string]bool{"svc": true})
	if c := leader.Counts("svc", 2); c.Requests != 0 {
		t.Fatalf("tracked again: %d requests, want 0", c.Requests)
	}
}
