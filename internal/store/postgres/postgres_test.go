package postgres

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
	"github.com/wisp-run/wisp/internal/store/postgres/pgtest"
	"github.com/wisp-run/wisp/internal/store/storetest"
)

// pg is the package's PostgreSQL server: a throwaway one, or the one
// WISP_TEST_POSTGRES_URL names.
var pg pgtest.Server

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), Config{URL: pg.Database(t), KeepChanges: storetest.KeepChanges})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestWatchSeesOtherStores: two stores on one database (two replicas) wake
// each other's watchers through LISTEN/NOTIFY within a second, and without
// a commit there is no wake-up.
func TestWatchSeesOtherStores(t *testing.T) {
	url := pg.Database(t)
	a := open(t, Config{URL: url})
	b := open(t, Config{URL: url})
	wa, wb := a.Watch(t.Context()), b.Watch(t.Context())
	select {
	case <-wa:
		t.Fatal("a wake-up without any commit")
	case <-time.After(300 * time.Millisecond):
	}
	for _, tc := range []struct {
		name         string
		writer       *Store
		reader       *Store
		readerWakeup <-chan struct{}
	}{
		{"a commit of b wakes a", b, a, wa},
		{"a commit of a wakes b", a, b, wb},
	} {
		before, err := tc.reader.Revision(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		drain(tc.readerWakeup)
		name := fmt.Sprintf("svc%d", before)
		if _, err := tc.writer.CreateService(t.Context(), core.Service{Name: name, Policy: core.DefaultPolicy()}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-tc.readerWakeup:
		case <-time.After(time.Second):
			t.Fatalf("%s: no wake-up within 1s", tc.name)
		}
		changes, err := tc.reader.ChangesSince(t.Context(), before, 10)
		if err != nil || len(changes) != 1 || changes[0].Service != name {
			t.Fatalf("%s: ChangesSince after the wake-up: %+v, %v; want one change of %s", tc.name, changes, err, name)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-wa; ok {
		if _, ok := <-wa; ok {
			t.Fatal("the watch channel is not closed after Close")
		}
	}
}

// drain takes a pending wake-up, if any.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// TestListenerReconnects: when the listener's connection is killed, the
// store reconnects, wakes its watchers (notifications sent meanwhile are
// lost) and goes on receiving other stores' commits.
func TestListenerReconnects(t *testing.T) {
	url := pg.Database(t)
	a := open(t, Config{URL: withParam(t, url, "application_name", "reconnect_a"), PollInterval: 200 * time.Millisecond})
	b := open(t, Config{URL: url})
	w := a.Watch(t.Context())

	pg.Exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'reconnect_a listener'`)
	select {
	case <-w:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up within 5s of the listener's connection being killed")
	}
	if _, err := b.CreateService(t.Context(), core.Service{Name: "after", Policy: core.DefaultPolicy()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w:
	case <-time.After(2 * time.Second):
		t.Fatal("after the reconnect, another store's commit did not wake the watcher within 2s")
	}
	listeners := 0
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'reconnect_a listener'`).
		Scan(&listeners); err != nil {
		t.Fatal(err)
	}
	if listeners != 1 {
		t.Fatalf("%d listener connections after the reconnect, want 1", listeners)
	}
}

// withParam returns the URL raw with the query parameter key set.
func withParam(t *testing.T, raw, key, value string) string {
	t.Helper()
	u, err := neturl.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestOpenConcurrently: processes that open a new database at once apply
// each migration exactly once (the advisory lock), and all of them work.
func TestOpenConcurrently(t *testing.T) {
	url := pg.Database(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), Config{URL: url}) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		defer stores[i].Close()
	}
	names, _ := migrations.ReadDir("migrations")
	var applied, distinct int
	if err := stores[0].pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).
		Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied != len(names) || distinct != len(names) {
		t.Fatalf("schema_migrations has %d rows (%d distinct), want %d", applied, distinct, len(names))
	}
	for i, s := range stores {
		if _, err := s.CreateService(t.Context(), core.Service{Name: fmt.Sprintf("svc%d", i), Policy: core.DefaultPolicy()}); err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
}

// TestReopen: data survives closing and reopening, and migrations are not
// applied twice.
func TestReopen(t *testing.T) {
	url := pg.Database(t)
	s := open(t, Config{URL: url})
	if _, err := s.CreateService(t.Context(), core.Service{Name: "hello", Policy: core.DefaultPolicy()}); err != nil {
		t.Fatal(err)
	}
	v, err := s.CreateVersion(t.Context(), core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "hello:1", Env: []string{"GREETING=Go"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVersion(t.Context(), core.Version{Service: "hello", VersionSpec: core.VersionSpec{Image: "hello:2"}}); err != nil {
		t.Fatal(err)
	}
	storetest.SetRequestRules(t, s, "hello")
	rev, _ := s.Revision(t.Context())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetService(t.Context(), "hello"); err == nil {
		t.Fatal("a closed store still answers")
	}
	s = open(t, Config{URL: url})
	got, err := s.GetVersion(t.Context(), "hello", 1)
	if err != nil || got.ID != v.ID || got.Env[0] != "GREETING=Go" {
		t.Fatalf("version after reopen: %+v, %v", got, err)
	}
	if again, err := s.Revision(t.Context()); err != nil || again != rev {
		t.Fatalf("revision after reopen: %d, %v; want %d", again, err, rev)
	}
	storetest.WantRequestRules(t, s, "hello")
}

// TestOpenErrors: a store that cannot connect says where it tried and what
// to check, never shows the password, and does not hang.
func TestOpenErrors(t *testing.T) {
	good := pg.Database(t)
	u, err := neturl.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/no_such_database"
	missingDB := u.String()
	cases := []struct {
		name string
		url  string
		want []string
	}{
		{"nothing listens", "postgres://wisp:hunter2@127.0.0.1:1/wisp?sslmode=disable", []string{"127.0.0.1:1", `database "wisp"`, `user "wisp"`, "check that the server runs"}},
		{"no such database", missingDB, []string{`database "no_such_database"`, "does not exist", "check the store URL's user, password and database"}},
		{"not a URL", "postgres://wisp:hunter2@127.0.0.1:notaport/wisp", []string{"not valid"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			s, err := Open(ctx, Config{URL: tc.url, ConnectTimeout: 5 * time.Second})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

// TestDeadlockIsRetried: a write that Postgres aborts as a deadlock victim
// runs again and succeeds, recording its change once. The deadlock is made
// on purpose: another transaction holds the change lock, the store's write
// (holding the service row) waits for it, and the other transaction then
// asks for the service row.
func TestDeadlockIsRetried(t *testing.T) {
	url := pg.Database(t)
	// Postgres looks for a deadlock once, deadlock_timeout after a wait
	// begins; the other transaction must be waiting by then, however
	// loaded the machine is.
	s := open(t, Config{URL: withParam(t, url, "deadlock_timeout", "1s")})
	ctx := t.Context()
	if _, err := s.CreateService(ctx, core.Service{Name: "hello", Policy: core.DefaultPolicy()}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Revision(ctx)
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	// The other transaction must not be the one chosen as the victim: its
	// deadlock check runs much later than the store's.
	if _, err := other.Exec(ctx, `SET deadlock_timeout = '20s'`); err != nil {
		t.Fatal(err)
	}
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockChanges); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	one := 1
	go func() {
		_, err := s.UpdatePolicy(ctx, "hello", core.PolicyPatch{MinInstances: &one})
		done <- err
	}()
	waitFor(t, "the store's write to wait for the change lock", func() bool {
		var n int
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&n)
		return err == nil && n > 0
	})
	// Blocks until the store's transaction is aborted as the victim, which
	// releases the row.
	if _, err := tx.Exec(ctx, `SELECT id FROM services WHERE name = 'hello' FOR UPDATE`); err != nil {
		t.Fatalf("the other transaction: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("UpdatePolicy after a deadlock: %v, want it retried", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("UpdatePolicy did not finish within 10s")
	}
	sv, err := s.GetService(ctx, "hello")
	if err != nil || sv.Policy.MinInstances != 1 {
		t.Fatalf("the retried write was not stored: %+v, %v", sv.Policy, err)
	}
	if changes, err := s.ChangesSince(ctx, before, 10); err != nil || len(changes) != 1 {
		t.Fatalf("the retried write recorded %+v, %v; want one change", changes, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRetriesAreBounded: a transaction aborted on every attempt runs
// maxAttempts times, then fails with ErrUnavailable saying why; other
// errors are not retried.
func TestRetriesAreBounded(t *testing.T) {
	s := open(t, Config{URL: pg.Database(t)})
	for _, tc := range []struct {
		code     string
		attempts int
		kind     error
	}{
		{codeSerializationFailure, maxAttempts, core.ErrUnavailable},
		{codeDeadlockDetected, maxAttempts, core.ErrUnavailable},
		{codeUniqueViolation, 1, core.ErrConflict},
		{"42P01", 1, nil}, // undefined table: a bug, not a kind
	} {
		t.Run(tc.code, func(t *testing.T) {
			attempts := 0
			err := s.tx(t.Context(), func(tx pgx.Tx) error {
				attempts++
				if _, err := tx.Exec(t.Context(), `SELECT 1`); err != nil {
					return err
				}
				return &pgconn.PgError{Code: tc.code, Message: "made by the test", ConstraintName: "some_key"}
			})
			if attempts != tc.attempts {
				t.Errorf("ran %d times, want %d", attempts, tc.attempts)
			}
			if tc.kind != nil {
				var ce *core.Error
				if !errors.Is(err, tc.kind) || !errors.As(err, &ce) || ce.Message == "" {
					t.Fatalf("got %v, want kind %v with a message", err, tc.kind)
				}
				return
			}
			if sqlState(err) != tc.code {
				t.Fatalf("got %v, want the Postgres error %s itself", err, tc.code)
			}
		})
	}
}
