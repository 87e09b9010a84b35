package storetest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// RequestRules is a set of request rules that uses every kind of
// condition, for round trips (the stores' reopen tests use it too).
func RequestRules() []core.RequestRule {
	return []core.RequestRule{
		{Match: []core.Condition{{Kind: core.MatchHeader, Name: "X-Beta", Op: core.OpExact, Value: "1"}}, Version: 2},
		{Match: []core.Condition{
			{Kind: core.MatchHeader, Name: "User-Agent", Op: core.OpRegex, Value: `^curl/[0-9]+ "x"`},
			{Kind: core.MatchHeader, Name: "X-Pre", Op: core.OpPrefix, Value: "pre"},
			{Kind: core.MatchHeader, Name: "X-Any", Op: core.OpPresent},
		}, Tag: "canary"},
		{Match: []core.Condition{
			{Kind: core.MatchCookie, Name: "beta", Op: core.OpExact, Value: "yes"},
			{Kind: core.MatchQuery, Name: "q", Op: core.OpPresent},
			{Kind: core.MatchSource, Op: core.OpCIDR, Value: "10.0.0.0/8"},
		}, Version: 1},
	}
}

// SetRequestRules gives service (with versions 1 and 2) a split with
// RequestRules.
func SetRequestRules(t testing.TB, s store.Store, service string) core.TrafficEntry {
	t.Helper()
	e, err := s.SetTraffic(t.Context(), service, core.Traffic{Weights: weights(1, 100), Tags: map[string]int{"canary": 2}, Rules: RequestRules()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// WantRequestRules checks that service's current split has RequestRules.
func WantRequestRules(t testing.TB, s store.Store, service string) {
	t.Helper()
	if diff := cmp.Diff(RequestRules(), mustTraffic(t, s, service).Rules); diff != "" {
		t.Fatalf("rules of the current split (-want +got):\n%s", diff)
	}
}

// testTrafficRules: rules are part of an entry, kept in the history, read by
// ServiceStates, restored by a rollback and kept by a deploy's shift; bad
// rules are refused whole, and a version a rule targets cannot be deleted.
func testTrafficRules(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	mustVersion(t, s, "hello", "x:1")
	mustVersion(t, s, "hello", "x:2")
	withRules := SetRequestRules(t, s, "hello")
	WantRequestRules(t, s, "hello")

	states, _, err := s.ServiceStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0].Traffic == nil || !cmp.Equal(RequestRules(), states[0].Traffic.Rules) {
		t.Fatalf("ServiceStates lost the rules: %+v", states)
	}

	before := len(mustHistory(t, s, "hello"))
	bad := core.Traffic{Weights: weights(1, 100), Rules: []core.RequestRule{
		{Match: []core.Condition{{Kind: core.MatchHeader, Name: "X", Op: core.OpRegex, Value: "("}}, Version: 2}}}
	_, err = s.SetTraffic(ctx, "hello", bad, 0)
	wantKind(t, err, core.ErrInvalid, "a rule whose regex does not compile")
	if n := len(mustHistory(t, s, "hello")); n != before {
		t.Fatalf("a refused split was written: %d entries, want %d", n, before)
	}

	wantKind(t, s.DeleteVersion(ctx, "hello", 2), core.ErrConflict, "delete a version a rule targets")

	if _, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1, 100)}, 0); err != nil {
		t.Fatal(err)
	}
	if r := mustTraffic(t, s, "hello").Rules; r != nil {
		t.Fatalf("a split without rules reads back with rules %+v", r)
	}
	hist := mustHistory(t, s, "hello")
	if diff := cmp.Diff(RequestRules(), hist[len(hist)-2].Rules); diff != "" {
		t.Fatalf("the history lost the rules (-want +got):\n%s", diff)
	}
	if _, err := s.RollbackTraffic(ctx, "hello", withRules.ID, 0); err != nil {
		t.Fatal(err)
	}
	WantRequestRules(t, s, "hello")

	mustVersion(t, s, "hello", "x:3")
	if _, err := s.DeployVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "x:4"}}, 10, "canary"); err != nil {
		t.Fatal(err)
	}
	WantRequestRules(t, s, "hello")
}
