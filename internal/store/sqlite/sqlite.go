// Package sqlite is Wisp's embedded store: SQLite through a pure-Go driver (no
// cgo), in WAL mode with foreign keys on, and versioned migrations that are
// embedded in the binary and applied when the store opens.
//
// The adapter only translates: it reads the rows a write depends on inside
// the write's transaction, asks internal/core's rules what to write, and
// writes it. The files follow the aggregates: services.go, versions.go,
// traffic.go, builds.go, and changes.go for the change feed and the state
// reads the data plane follows.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

var _ store.Store = (*Store)(nil)

// Config configures a Store.
type Config struct {
	// Path is the database file; it is created if missing.
	Path string
	// KeepChanges is how many of the newest changes the change log keeps
	// (default DefaultKeepChanges); a reader further behind gets
	// store.ErrCompacted. The log holds at most a tenth more between prunes.
	KeepChanges int
	// PollInterval is how often, while anyone watches, the store reads
	// the revision to notice changes committed by another process on the
	// same file (a second wisp, a script, a restore); its own commits wake
	// watchers at once. Default DefaultPollInterval; negative turns it off.
	PollInterval time.Duration
}

// Defaults of Config.
const (
	DefaultKeepChanges  = 10000
	DefaultPollInterval = time.Second
)

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.Path == "" {
		return errors.New("sqlite: a database path is required")
	}
	if c.KeepChanges < 0 {
		return fmt.Errorf("sqlite: KeepChanges must be 0 (the default) or more, got %d", c.KeepChanges)
	}
	if c.KeepChanges == 0 {
		c.KeepChanges = DefaultKeepChanges
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	return nil
}

// Store is a store.Store backed by one SQLite database file.
type Store struct {
	db  *sql.DB
	now func() time.Time

	keepChanges, pruneEvery int64

	mu       sync.Mutex
	watchers map[chan struct{}]func() bool // the value stops the context's AfterFunc
	closed   bool
	// watchedFrom is the revision when the watchers came (the lowest
	// their Watch calls read; noRevision when a read failed): the poller's
	// first look compares with it, so a commit of another process between
	// a Watch and that look still wakes the watchers.
	watchedFrom int64

	// The poller of other processes' commits, which Close stops.
	life     context.Context
	endLife  context.CancelFunc
	pollDone chan struct{}
}

// Open opens (creating if needed) the database at path with the default
// configuration and applies pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	return OpenConfig(ctx, Config{Path: path})
}

// OpenConfig opens (creating if needed) the database cfg.Path and applies
// pending migrations.
func OpenConfig(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Writers wait for each other instead of failing with SQLITE_BUSY.
	q.Add("_pragma", "busy_timeout(10000)")
	// BEGIN IMMEDIATE takes the write lock at the start of every write
	// transaction, so read-then-write transactions never deadlock on lock
	// upgrades, and changes commit in the order of their revisions. Read
	// transactions (ReadOnly) begin deferred and read a snapshot.
	q.Set("_txlock", "immediate")
	dsn := "file:" + cfg.Path + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
	}
	db.SetMaxOpenConns(8)
	s := &Store{db: db, now: time.Now, keepChanges: int64(cfg.KeepChanges), pruneEvery: max(1, int64(cfg.KeepChanges)/10),
		watchers: map[chan struct{}]func() bool{}}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
	}
	s.life, s.endLife = context.WithCancel(context.WithoutCancel(ctx))
	s.pollDone = make(chan struct{})
	if cfg.PollInterval > 0 {
		go s.poll(cfg.PollInterval)
	} else {
		close(s.pollDone)
	}
	return s, nil
}

// Close closes the watchers' channels and the database.
func (s *Store) Close() error {
	s.endLife()
	<-s.pollDone
	s.mu.Lock()
	s.closed = true
	for ch, stop := range s.watchers {
		stop()
		delete(s.watchers, ch)
		close(ch)
	}
	s.mu.Unlock()
	return s.db.Close()
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := path.Base(name)
		num, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number", base)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, num).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				num, base, formatTime(s.now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", base, err)
		}
	}
	return nil
}

// tx runs fn in a write transaction that commits if fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// change runs fn in a write transaction that also records one change of
// service, and wakes the watchers once it has committed. A failed fn
// records nothing.
func (s *Store) change(ctx context.Context, service string, fn func(tx *sql.Tx) error) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return s.recordChange(ctx, tx, service)
	})
	if err == nil {
		s.notify()
	}
	return err
}

// read runs fn in a read transaction: every query in it sees the same
// snapshot of the database.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// queryer is what both *sql.DB and *sql.Tx offer.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type scanner interface{ Scan(dest ...any) error }

// wrap adds context to I/O errors; kind errors from core already carry a
// message meant for users and pass through unchanged.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var ce *core.Error
	if errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
