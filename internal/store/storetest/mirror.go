package storetest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// testTrafficMirror: the mirror is part of an entry, kept in the history,
// read by ServiceStates, restored by a rollback and kept by a deploy's
// shift; a bad mirror is refused whole, and the mirror's version cannot be
// deleted.
func testTrafficMirror(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	mustVersion(t, s, "hello", "x:1")
	mustVersion(t, s, "hello", "x:2")
	want := &core.Mirror{Version: 2, Percent: 10, AllMethods: true, IgnoreHeaders: []string{"X-Request-Id"}, IgnoreFields: []string{"timestamp", "data.id"}}
	withMirror, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1, 100), Mirror: want}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, mustTraffic(t, s, "hello").Mirror); diff != "" {
		t.Fatalf("mirror of the current split (-want +got):\n%s", diff)
	}
	states, _, err := s.ServiceStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0].Traffic == nil || !cmp.Equal(want, states[0].Traffic.Mirror) {
		t.Fatalf("ServiceStates lost the mirror: %+v", states)
	}

	before := len(mustHistory(t, s, "hello"))
	for _, bad := range []*core.Mirror{
		{Version: 3, Percent: 10},
		{Version: 2, Percent: 0},
		{Version: 2, Percent: 101},
		{Version: 1, Percent: 10}, // v1 gets 100%
		{Version: 2, Percent: 10, IgnoreFields: []string{"data..id"}},
		{Version: 2, Percent: 10, IgnoreHeaders: []string{"X Bad"}},
	} {
		_, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1, 100), Mirror: bad}, 0)
		wantKind(t, err, core.ErrInvalid, "a bad mirror")
	}
	if n := len(mustHistory(t, s, "hello")); n != before {
		t.Fatalf("a refused split was written: %d entries, want %d", n, before)
	}
	wantKind(t, s.DeleteVersion(ctx, "hello", 2), core.ErrConflict, "delete the mirror's version")

	if _, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1, 100)}, 0); err != nil {
		t.Fatal(err)
	}
	if m := mustTraffic(t, s, "hello").Mirror; m != nil {
		t.Fatalf("a split without a mirror reads back with mirror %+v", m)
	}
	hist := mustHistory(t, s, "hello")
	if diff := cmp.Diff(want, hist[len(hist)-2].Mirror); diff != "" {
		t.Fatalf("the history lost the mirror (-want +got):\n%s", diff)
	}
	if _, err := s.RollbackTraffic(ctx, "hello", withMirror.ID, 0); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, mustTraffic(t, s, "hello").Mirror); diff != "" {
		t.Fatalf("a rollback lost the mirror (-want +got):\n%s", diff)
	}
	if _, err := s.DeployVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "x:3"}}, 10, "canary"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, mustTraffic(t, s, "hello").Mirror); diff != "" {
		t.Fatalf("a deploy's shift lost the mirror (-want +got):\n%s", diff)
	}
}
