package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
	"github.com/wisp-run/wisp/internal/store/sqlite"
	"github.com/wisp-run/wisp/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.OpenConfig(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "wisp.db"), KeepChanges: storetest.KeepChanges})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestReopen checks that data survives closing and reopening the file, and
// that migrations are not applied twice.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateService(t.Context(), core.Service{Name: "hello", Policy: core.DefaultPolicy()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVersion(t.Context(), core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "hello:1", Env: []string{"GREETING=Go"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVersion(t.Context(), core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "hello:2"}}); err != nil {
		t.Fatal(err)
	}
	storetest.SetRequestRules(t, s, "hello")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	v, err := s.GetVersion(t.Context(), "hello", 1)
	if err != nil {
		t.Fatal(err)
	}
	if v.Env[0] != "GREETING=Go" {
		t.Fatalf("env after reopen: %v", v.Env)
	}
	if _, err := s.GetTraffic(t.Context(), "hello"); err != nil {
		t.Fatalf("traffic after reopen: %v", err)
	}
	storetest.WantRequestRules(t, s, "hello")
}

// TestMigrationFillsCurrentTraffic: a database from before migration 0005
// (services without traffic_id) gets each service's newest entry as its
// current one.
func TestMigrationFillsCurrentTraffic(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wisp.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hello", "empty"} {
		if _, err := s.CreateService(ctx, core.Service{Name: name, Policy: core.DefaultPolicy()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, img := range []string{"hello:1", "hello:2"} {
		if _, err := s.CreateVersion(ctx, core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: img}}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := s.SetTraffic(ctx, "hello", core.Traffic{Weights: []core.Weight{{Version: 2, Percent: 100}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Back to the schema before 0005.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`ALTER TABLE services DROP COLUMN traffic_id`, `DELETE FROM schema_migrations WHERE version = 5`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	defer s.Close()
	cur, err := s.GetTraffic(ctx, "hello")
	if err != nil || cur.ID != want.ID {
		t.Fatalf("current entry after the migration: %+v, %v; want entry %d", cur, err, want.ID)
	}
	states, _, err := s.ServiceStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 2 || states[0].Traffic != nil || states[1].Traffic == nil || states[1].Traffic.ID != want.ID {
		t.Fatalf("states after the migration: %+v", states)
	}
}

// TestMigrationAsyncPolicyDefaults: a service from before migration 0009
// (no async call columns) reads back the default async policy.
func TestMigrationAsyncPolicyDefaults(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wisp.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateService(ctx, core.Service{Name: "hello", Policy: core.DefaultPolicy()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Back to the schema before 0009.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`ALTER TABLE services DROP COLUMN async_concurrency`, `ALTER TABLE services DROP COLUMN max_attempts`,
		`ALTER TABLE services DROP COLUMN min_backoff_ns`, `ALTER TABLE services DROP COLUMN max_backoff_ns`,
		`ALTER TABLE services DROP COLUMN max_age_ns`, `DELETE FROM schema_migrations WHERE version = 9`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	defer s.Close()
	sv, err := s.GetService(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sv.Policy, core.DefaultPolicy()) {
		t.Fatalf("policy after the migration: %+v; want the defaults %+v", sv.Policy, core.DefaultPolicy())
	}
}

// twoStores opens one database file twice, as two processes do: a polls
// for the other's commits every poll, b not at all. Both close at the end.
func twoStores(t *testing.T, poll time.Duration) (a, b *sqlite.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wisp.db")
	a, err := sqlite.OpenConfig(t.Context(), sqlite.Config{Path: path, PollInterval: poll})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	b, err = sqlite.OpenConfig(t.Context(), sqlite.Config{Path: path, PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return a, b
}

// TestWatchSeesCommitsBeforeTheFirstPoll: a commit of another process made
// right after Watch, before the poller's first look, still wakes the
// watcher (the first look compares with the revision at Watch, not with
// itself); and it wakes it once.
func TestWatchSeesCommitsBeforeTheFirstPoll(t *testing.T) {
	a, b := twoStores(t, 300*time.Millisecond)
	w := a.Watch(t.Context())
	if _, err := b.CreateService(t.Context(), core.Service{Name: "early", Policy: core.DefaultPolicy()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w:
	case <-time.After(2 * time.Second):
		t.Fatal("a commit between Watch and the first poll did not wake the watcher within 2s")
	}
	select {
	case <-w:
		t.Fatal("a second wake-up without a second commit")
	case <-time.After(800 * time.Millisecond):
	}
}

// TestWatchSeesOtherProcesses: a commit made through another connection to
// the same file (another process, a script) wakes this store's watchers
// within a poll interval or two; with no commit there is no wake-up.
func TestWatchSeesOtherProcesses(t *testing.T) {
	a, b := twoStores(t, 50*time.Millisecond)
	w := a.Watch(t.Context())
	select {
	case <-w:
		t.Fatal("a wake-up without any commit")
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := b.CreateService(t.Context(), core.Service{Name: "elsewhere", Policy: core.DefaultPolicy()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w:
	case <-time.After(2 * time.Second):
		t.Fatal("a commit through another connection did not wake the watcher within 2s")
	}
	changes, err := a.ChangesSince(t.Context(), 0, 10)
	if err != nil || len(changes) != 1 || changes[0].Service != "elsewhere" {
		t.Fatalf("ChangesSince after the wake-up: %+v, %v", changes, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-w; ok {
		t.Fatal("the watch channel is not closed after Close")
	}
}
