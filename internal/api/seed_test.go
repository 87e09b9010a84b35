package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// trafficStore wraps a store: getTraffic, when set, replaces GetTraffic,
// and SetTraffic calls are counted.
type trafficStore struct {
	store.Store
	getTraffic func(ctx context.Context, service string) (core.TrafficEntry, error)
	sets       atomic.Int64
}

func (s *trafficStore) GetTraffic(ctx context.Context, service string) (core.TrafficEntry, error) {
	if s.getTraffic != nil {
		return s.getTraffic(ctx, service)
	}
	return s.Store.GetTraffic(ctx, service)
}

func (s *trafficStore) SetTraffic(ctx context.Context, service string, t core.Traffic, ifEntry int64) (core.TrafficEntry, error) {
	s.sets.Add(1)
	return s.Store.SetTraffic(ctx, service, t, ifEntry)
}

func newTrafficHarness(t *testing.T) (*harness, *trafficStore) {
	t.Helper()
	var ts *trafficStore
	h := newHarnessWith(t, func(st store.Store) store.Store { ts = &trafficStore{Store: st}; return ts })
	h.fixture()
	return h, ts
}

// seedWeights is the walkthrough's body for hello's v1 and v2 (IDs 1 and 2).
const seedWeights = `{"weights":[{"service_version_id":1,"weight":30},{"service_version_id":2,"weight":70}]}`

// TestSeedTrafficStoreError: a failure to read the current traffic (other
// than "none yet") fails the request and writes nothing; it used to be
// ignored, and the write then dropped the tags (issue 10 item 7).
func TestSeedTrafficStoreError(t *testing.T) {
	h, ts := newTrafficHarness(t)
	h.must(200, "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":1,"percent":100}],"tags":{"canary":2}}`)
	before := h.state()
	sets := ts.sets.Load()
	ts.getTraffic = func(context.Context, string) (core.TrafficEntry, error) {
		return core.TrafficEntry{}, errors.New("disk I/O error")
	}
	status, body := h.do("POST", "/serviceDefinitions/hello/trafficWeights", seedWeights)
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil || status != 500 || e.Error.Code != "internal" {
		t.Fatalf("got %d %s, want 500 internal", status, body)
	}
	if n := ts.sets.Load() - sets; n != 0 {
		t.Fatalf("the request wrote traffic %d times after the read failed", n)
	}
	ts.getTraffic = nil
	if after := h.state(); after != before {
		t.Fatalf("a failed read changed state:\nbefore %s\nafter  %s", before, after)
	}
}

// TestSeedTrafficKeepsConcurrentTags: when the tags change between the
// seed route's read and its write, the write fails its condition and reads
// again, so the concurrent tags are kept, not overwritten with stale ones.
func TestSeedTrafficKeepsConcurrentTags(t *testing.T) {
	h, ts := newTrafficHarness(t)
	h.must(200, "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":1,"percent":100}],"tags":{"canary":2}}`)
	var reads atomic.Int64
	ts.getTraffic = func(ctx context.Context, service string) (core.TrafficEntry, error) {
		e, err := ts.Store.GetTraffic(ctx, service)
		if reads.Add(1) == 1 { // another client retags between our read and write
			if _, err := ts.Store.SetTraffic(ctx, service, core.Traffic{Weights: e.Weights, Tags: map[string]int{"beta": 1}}, 0); err != nil {
				t.Errorf("concurrent change: %v", err)
			}
		}
		return e, err
	}
	h.must(201, "POST", "/serviceDefinitions/hello/trafficWeights", seedWeights)
	cur, err := ts.Store.GetTraffic(t.Context(), "hello")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"beta": 1}, cur.Tags); diff != "" {
		t.Fatalf("tags after the seed write (-concurrent +got):\n%s", diff)
	}
	if diff := cmp.Diff([]core.Weight{{Version: 1, Percent: 30}, {Version: 2, Percent: 70}}, cur.Weights); diff != "" {
		t.Fatalf("weights (-want +got):\n%s", diff)
	}
	if n := reads.Load(); n != 2 {
		t.Fatalf("the seed route read the traffic %d times, want 2 (once more after the conflict)", n)
	}
}

// TestSeedTrafficGivesUp: under changes that never stop, the seed route
// gives up after a few attempts with a 412 that says why.
func TestSeedTrafficGivesUp(t *testing.T) {
	h, ts := newTrafficHarness(t)
	var reads atomic.Int64
	ts.getTraffic = func(ctx context.Context, service string) (core.TrafficEntry, error) {
		e, err := ts.Store.GetTraffic(ctx, service)
		n := reads.Add(1)
		if _, err := ts.Store.SetTraffic(ctx, service, core.Traffic{Weights: e.Weights, Message: fmt.Sprint("interloper ", n)}, 0); err != nil {
			t.Errorf("concurrent change: %v", err)
		}
		return e, err
	}
	status, body := h.do("POST", "/serviceDefinitions/hello/trafficWeights", seedWeights)
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil || status != 412 || e.Error.Code != "precondition_failed" {
		t.Fatalf("got %d %s, want 412 precondition_failed", status, body)
	}
	if n := reads.Load(); n != 5 {
		t.Fatalf("%d attempts, want 5", n)
	}
}

// TestSeedTrafficKeepsRules: the seed API has no rules, so a seed traffic
// write keeps the current ones (issue 15), as it keeps the tags.
func TestSeedTrafficKeepsRules(t *testing.T) {
	h, ts := newTrafficHarness(t)
	h.must(200, "PUT", "/v1/services/hello/traffic", `{"weights":[{"version":1,"percent":100}],"tags":{"canary":2},`+
		`"rules":[{"match":[{"kind":"header","name":"X-Beta","op":"exact","value":"1"}],"tag":"canary"}]}`)
	if status, body := h.do("POST", "/serviceDefinitions/hello/trafficWeights", seedWeights); status != 201 {
		t.Fatalf("seed traffic write: %d %s", status, body)
	}
	cur, err := ts.Store.GetTraffic(t.Context(), "hello")
	if err != nil {
		t.Fatal(err)
	}
	if len(cur.Rules) != 1 || cur.Rules[0].String() != "header:X-Beta=1 -> tag:canary" {
		t.Fatalf("rules after the seed write: %+v", cur.Rules)
	}
}
