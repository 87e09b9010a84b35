package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

// KeepChanges bounds the change log of a store under test: an Opener must
// return a store that prunes its log to at most 2×KeepChanges changes (the
// compaction test writes 3×KeepChanges and expects the oldest pruned).
const KeepChanges = 100

// wake bounds how long a test waits for a watcher to be woken.
const wake = 5 * time.Second

func mustRevision(t testing.TB, s store.Store) int64 {
	t.Helper()
	rev, err := s.Revision(t.Context())
	if err != nil {
		t.Fatalf("Revision: %v", err)
	}
	return rev
}

func mustChanges(t testing.TB, s store.Store, after int64, limit int) []store.Change {
	t.Helper()
	list, err := s.ChangesSince(t.Context(), after, limit)
	if err != nil {
		t.Fatalf("ChangesSince(%d, %d): %v", after, limit, err)
	}
	return list
}

// testChangeFeed: every kind of write records exactly one change of its
// service, with increasing revisions; build records record none.
func testChangeFeed(t *testing.T, s store.Store) {
	ctx := t.Context()
	if rev := mustRevision(t, s); rev != 0 {
		t.Fatalf("an empty store's revision is %d, want 0", rev)
	}
	if list := mustChanges(t, s, 0, 10); len(list) != 0 {
		t.Fatalf("an empty store has changes: %+v", list)
	}
	one := 1
	writes := []struct {
		name, service string
		write         func() error
	}{
		{"create service", "hello", func() error {
			_, err := s.CreateService(ctx, core.Service{Name: "hello", Policy: core.DefaultPolicy()})
			return err
		}},
		{"create the first version", "hello", func() error {
			_, err := s.CreateVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "x:1"}})
			return err
		}},
		{"deploy a canary", "hello", func() error {
			_, err := s.DeployVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "x:2"}}, 10, "canary")
			return err
		}},
		{"update the policy", "hello", func() error {
			_, err := s.UpdatePolicy(ctx, "hello", core.PolicyPatch{MinInstances: &one})
			return err
		}},
		{"set traffic", "hello", func() error {
			_, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1, 100)}, 0)
			return err
		}},
		{"roll back traffic", "hello", func() error {
			_, err := s.RollbackTraffic(ctx, "hello", 0, 0)
			return err
		}},
		{"create a version without traffic", "hello", func() error {
			_, err := s.CreateVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "x:3"}})
			return err
		}},
		{"delete a version", "hello", func() error { return s.DeleteVersion(ctx, "hello", 3) }},
		{"create another service", "other", func() error {
			_, err := s.CreateService(ctx, core.Service{Name: "other", Policy: core.DefaultPolicy()})
			return err
		}},
		{"delete a service", "other", func() error { return s.DeleteService(ctx, "other") }},
	}
	prev := int64(0)
	for _, w := range writes {
		if err := w.write(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		list := mustChanges(t, s, prev, 100)
		if len(list) != 1 || list[0].Service != w.service || list[0].Revision <= prev {
			t.Fatalf("%s: changes after %d = %+v, want one change of %q with a higher revision", w.name, prev, list, w.service)
		}
		if rev := mustRevision(t, s); rev != list[0].Revision {
			t.Fatalf("%s: Revision() = %d, want the new change's %d", w.name, rev, list[0].Revision)
		}
		prev = list[0].Revision
	}
	all := mustChanges(t, s, 0, 100)
	if len(all) != len(writes) {
		t.Fatalf("%d changes in all, want %d: %+v", len(all), len(writes), all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Revision <= all[i-1].Revision {
			t.Fatalf("revisions must increase, oldest first: %+v", all)
		}
	}

	// Build records are not changes of a service's state.
	b, err := s.CreateBuild(ctx, core.Build{Service: "hello", Promote: 100})
	if err != nil {
		t.Fatal(err)
	}
	b.Status = core.BuildRunning
	if err := s.UpdateBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBuildLog(ctx, b.ID, []byte("log")); err != nil {
		t.Fatal(err)
	}
	if rev := mustRevision(t, s); rev != prev {
		t.Fatalf("build records moved the revision from %d to %d", prev, rev)
	}
}

// testFailedWritesRecordNoChange: a write that fails records no change.
func testFailedWritesRecordNoChange(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	mustVersion(t, s, "hello", "x:1")
	mustVersion(t, s, "hello", "x:2")
	cur := mustTraffic(t, s, "hello")
	bad := 100000
	writes := []struct {
		name  string
		kind  error
		write func() error
	}{
		{"duplicate service", core.ErrAlreadyExists, func() error {
			_, err := s.CreateService(ctx, core.Service{Name: "hello", Policy: core.DefaultPolicy()})
			return err
		}},
		{"bad service name", core.ErrInvalid, func() error {
			_, err := s.CreateService(ctx, core.Service{Name: "Bad", Policy: core.DefaultPolicy()})
			return err
		}},
		{"invalid policy", core.ErrInvalid, func() error {
			_, err := s.UpdatePolicy(ctx, "hello", core.PolicyPatch{MaxInstances: &bad})
			return err
		}},
		{"policy of a missing service", core.ErrNotFound, func() error {
			_, err := s.UpdatePolicy(ctx, "missing", core.PolicyPatch{MaxInstances: &bad})
			return err
		}},
		{"version of a missing service", core.ErrNotFound, func() error {
			_, err := s.CreateVersion(ctx, core.Version{Service: "missing", VersionSpec: core.VersionSpec{Image: "x:1"}})
			return err
		}},
		{"invalid version", core.ErrInvalid, func() error {
			_, err := s.CreateVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "x:1", Port: -1}})
			return err
		}},
		{"deploy with 101%", core.ErrInvalid, func() error {
			_, err := s.DeployVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "x:1"}}, 101, "")
			return err
		}},
		{"delete the version with traffic", core.ErrConflict, func() error { return s.DeleteVersion(ctx, "hello", 1) }},
		{"delete a missing version", core.ErrNotFound, func() error { return s.DeleteVersion(ctx, "hello", 9) }},
		{"delete a missing service", core.ErrNotFound, func() error { return s.DeleteService(ctx, "missing") }},
		{"invalid traffic", core.ErrInvalid, func() error {
			_, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(1, 50)}, 0)
			return err
		}},
		{"traffic with a stale If-Match", core.ErrPreconditionFailed, func() error {
			_, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: weights(2, 100)}, cur.ID+1)
			return err
		}},
		{"rollback with no earlier entry", core.ErrConflict, func() error {
			_, err := s.RollbackTraffic(ctx, "hello", 0, 0)
			return err
		}},
		{"rollback with a stale If-Match", core.ErrPreconditionFailed, func() error {
			_, err := s.RollbackTraffic(ctx, "hello", cur.ID, cur.ID+1)
			return err
		}},
	}
	for _, w := range writes {
		before := mustRevision(t, s)
		wantKind(t, w.write(), w.kind, w.name)
		if after := mustRevision(t, s); after != before {
			t.Fatalf("%s: the revision moved from %d to %d", w.name, before, after)
		}
		if list := mustChanges(t, s, before, 10); len(list) != 0 {
			t.Fatalf("%s recorded changes: %+v", w.name, list)
		}
	}
}

// testChangesSince: oldest first, at most limit, after the given revision.
func testChangesSince(t *testing.T, s store.Store) {
	base := mustRevision(t, s)
	for i := range 5 {
		mustService(t, s, fmt.Sprintf("svc%d", i))
	}
	all := mustChanges(t, s, base, 100)
	if len(all) != 5 {
		t.Fatalf("got %d changes, want 5: %+v", len(all), all)
	}
	for i, c := range all {
		if want := fmt.Sprintf("svc%d", i); c.Service != want {
			t.Fatalf("change %d is of %q, want %q (oldest first): %+v", i, c.Service, want, all)
		}
	}
	if diff := cmp.Diff(all[:2], mustChanges(t, s, base, 2)); diff != "" {
		t.Fatalf("limit 2 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(all[2:], mustChanges(t, s, all[1].Revision, 100)); diff != "" {
		t.Fatalf("after the second change (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(all[3:4], mustChanges(t, s, all[2].Revision, 1)); diff != "" {
		t.Fatalf("after the third, limit 1 (-want +got):\n%s", diff)
	}
	if list := mustChanges(t, s, all[4].Revision, 100); len(list) != 0 {
		t.Fatalf("after the newest change: %+v", list)
	}
	if list := mustChanges(t, s, all[4].Revision+1000, 100); len(list) != 0 {
		t.Fatalf("after a future revision: %+v", list)
	}
	_, err := s.ChangesSince(t.Context(), base, 0)
	wantKind(t, err, core.ErrInvalid, "ChangesSince with limit 0")
}

// testCompacted: the log is bounded; a reader behind its horizon gets
// ErrCompacted, one within it reads on.
func testCompacted(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustService(t, s, "hello")
	for i := range 3 * KeepChanges {
		n := 1 + i%5
		if _, err := s.UpdatePolicy(ctx, "hello", core.PolicyPatch{MinInstances: &n}); err != nil {
			t.Fatal(err)
		}
	}
	rev := mustRevision(t, s)
	_, err := s.ChangesSince(ctx, 0, 10)
	if !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("ChangesSince(0) after %d changes: got %v, want ErrCompacted", 3*KeepChanges+1, err)
	}
	recent := mustChanges(t, s, rev-KeepChanges, 2*KeepChanges)
	if len(recent) != KeepChanges || recent[len(recent)-1].Revision != rev {
		t.Fatalf("the newest %d changes must stay readable: got %d ending at %d, want the newest %d",
			KeepChanges, len(recent), recent[len(recent)-1].Revision, rev)
	}
	if got := mustRevision(t, s); got != rev {
		t.Fatalf("pruning changed the revision from %d to %d", rev, got)
	}
}

// testWatch: a watcher is woken after a commit, coalesced, never blocking a
// writer, and its channel closes with its context.
func testWatch(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := s.Watch(ctx)
	other := s.Watch(t.Context())
	select {
	case <-ch:
		t.Fatal("a new watcher was woken before any change")
	default:
	}
	mustService(t, s, "hello")
	for name, c := range map[string]<-chan struct{}{"first": ch, "second": other} {
		select {
		case _, ok := <-c:
			if !ok {
				t.Fatalf("the %s watcher's channel closed", name)
			}
		case <-time.After(wake):
			t.Fatalf("the %s watcher was not woken within %s of a commit", name, wake)
		}
	}

	// Ten commits nobody reads: the writers never wait, and one value
	// stands for all of them.
	base := mustRevision(t, s)
	done := make(chan error, 1)
	go func() {
		for i := range 10 {
			n := 1 + i%3
			if _, err := s.UpdatePolicy(t.Context(), "hello", core.PolicyPatch{MinInstances: &n}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("writers blocked on watchers that do not read")
	}
	select {
	case <-ch:
	case <-time.After(wake):
		t.Fatal("the watcher was not woken by ten commits")
	}
	select {
	case <-ch:
		t.Fatal("ten commits left more than one value: the channel must coalesce (buffer of 1)")
	default:
	}
	if list := mustChanges(t, s, base, 100); len(list) != 10 {
		t.Fatalf("ChangesSince after the wake-up: %d changes, want 10", len(list))
	}

	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			// A value may have been pending; the close must follow.
			if _, ok := <-ch; ok {
				t.Fatal("the channel delivered a value after its context ended")
			}
		}
	case <-time.After(wake):
		t.Fatalf("the channel was not closed within %s of its context's end", wake)
	}
	// The other watcher still works (drop the value the ten commits left).
	select {
	case <-other:
	default:
	}
	mustService(t, s, "other")
	select {
	case <-other:
	case <-time.After(wake):
		t.Fatal("a cancelled watcher broke the others")
	}
	if c := s.Watch(ctx); !closedWithin(c, wake) {
		t.Fatal("Watch with a context that is done must return a closed channel")
	}
}

// testWatchClose: closing the store closes its watchers' channels.
func testWatchClose(t *testing.T, s store.Store) {
	ch := s.Watch(t.Context())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(ch, wake) {
		t.Fatalf("Close did not close the watcher's channel within %s", wake)
	}
	if !closedWithin(s.Watch(t.Context()), wake) {
		t.Fatal("Watch after Close must return a closed channel")
	}
}

// closedWithin reports whether ch is closed within d (values before the
// close are drained).
func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	timeout := time.After(d)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

// testServiceStates: the state reads agree with the single reads, for a
// service with traffic, one without, and a deleted one.
func testServiceStates(t *testing.T, s store.Store) {
	ctx := t.Context()
	states, rev, err := s.ServiceStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 0 || rev != 0 {
		t.Fatalf("an empty store: %d states at revision %d, want none at 0", len(states), rev)
	}

	mustService(t, s, "beta") // no versions, no traffic
	mustService(t, s, "alpha")
	mustVersion(t, s, "alpha", "a:1", "GREETING=Go")
	mustVersion(t, s, "alpha", "a:2")
	if _, err := s.SetTraffic(ctx, "alpha", core.Traffic{Weights: weights(1, 60, 2, 40), Tags: map[string]int{"canary": 2}, Sticky: true}, 0); err != nil {
		t.Fatal(err)
	}
	mustService(t, s, "gamma")
	mustVersion(t, s, "gamma", "g:1")
	if err := s.DeleteService(ctx, "gamma"); err != nil {
		t.Fatal(err)
	}
	mustService(t, s, "delta")
	mustVersion(t, s, "delta", "d:1")

	want := []core.ServiceState{}
	for _, name := range []string{"alpha", "beta", "delta"} {
		st := core.ServiceState{Service: mustGetService(t, s, name), Versions: mustVersions(t, s, name)}
		if name != "beta" {
			e := mustTraffic(t, s, name)
			st.Traffic = &e
		}
		want = append(want, st)
	}
	opts := []cmp.Option{cmpopts.EquateApproxTime(time.Millisecond), cmpopts.EquateEmpty()}

	states, rev, err = s.ServiceStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, states, opts...); diff != "" {
		t.Fatalf("ServiceStates (-single reads +got):\n%s", diff)
	}
	if now := mustRevision(t, s); rev != now {
		t.Fatalf("ServiceStates reflects revision %d, want the current %d", rev, now)
	}
	if states[1].Traffic != nil || len(states[1].Versions) != 0 {
		t.Fatalf("a service without versions: %+v", states[1])
	}
	for _, st := range want {
		got, err := s.ServiceState(ctx, st.Service.Name)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st, got, opts...); diff != "" {
			t.Fatalf("ServiceState(%q) (-single reads +got):\n%s", st.Service.Name, diff)
		}
	}
	_, err = s.ServiceState(ctx, "gamma")
	wantKind(t, err, core.ErrNotFound, "ServiceState of a deleted service")
	_, err = s.ServiceState(ctx, "missing")
	wantKind(t, err, core.ErrNotFound, "ServiceState of a missing service")

	// The deleted service's changes stay in the feed, named.
	seen := map[string]bool{}
	for _, c := range mustChanges(t, s, 0, 100) {
		seen[c.Service] = true
	}
	if !seen["gamma"] {
		t.Fatal("the changes of a deleted service must stay in the feed")
	}
}
