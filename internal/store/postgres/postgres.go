// Package postgres is Wisp's store for installations with several replicas:
// PostgreSQL through pgx's connection pool, versioned migrations embedded in
// the binary and applied when the store opens, and a change feed whose
// watchers are woken by LISTEN/NOTIFY, so a commit made by one replica wakes
// every replica's feed.
//
// Like the sqlite adapter it only translates: a write locks the row of the
// service it changes (SELECT ... FOR UPDATE), reads what the write depends
// on, asks internal/core's rules what to write, and writes it. Writes run at
// READ COMMITTED; the service row's lock serialises the writes of one
// service, so its version numbers, conditional traffic writes and history
// need no stronger isolation. Reads that span several queries run in one
// REPEATABLE READ, READ ONLY transaction: one snapshot. The files follow the
// aggregates: services.go, versions.go, traffic.go, builds.go, and
// changes.go for the change feed and the state reads the data plane
// follows; errors.go maps Postgres errors to core kinds and retries.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

var _ store.Store = (*Store)(nil)

// Advisory lock keys, one per purpose, taken with pg_advisory_xact_lock (so
// they are released with the transaction that took them). The high half is
// "wisp" in ASCII; other parts of Wisp that need an advisory lock on the
// same database must pick another low half.
const (
	// lockMigrate serialises migrations: two processes that open the store
	// at once apply each migration exactly once.
	lockMigrate int64 = 0x77697370_00000001
	// lockChanges is held from a change's revision being taken until its
	// transaction commits, so revisions commit in order (changes.go).
	lockChanges int64 = 0x77697370_00000002
)

// notifyChannel is the LISTEN/NOTIFY channel of the change feed; each
// notification's payload is the committed revision.
const notifyChannel = "wisp_changes"

// Config configures a Store.
type Config struct {
	// URL is the connection URL, postgres://user:password@host:port/db
	// with libpq's parameters (sslmode=…, connect_timeout=…,
	// pool_max_conns=…).
	URL string
	// KeepChanges is how many of the newest changes the change log keeps
	// (default DefaultKeepChanges); a reader further behind gets
	// store.ErrCompacted. The log holds at most a tenth more between prunes.
	KeepChanges int
	// MaxConns bounds the connection pool (default DefaultMaxConns, or the
	// URL's pool_max_conns); the change listener has one more connection of
	// its own.
	MaxConns int
	// PollInterval is how long the change listener waits for a
	// notification before it checks its connection and reads the revision,
	// a fallback for notifications lost to a broken connection. Default
	// DefaultPollInterval; negative turns the check off.
	PollInterval time.Duration
	// ConnectTimeout bounds each new connection (default
	// DefaultConnectTimeout, or the URL's connect_timeout).
	ConnectTimeout time.Duration
	// Logger receives the change listener's connection losses and
	// reconnects (default: discarded).
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultKeepChanges    = 10000
	DefaultMaxConns       = 10
	DefaultPollInterval   = 5 * time.Second
	DefaultConnectTimeout = 10 * time.Second
)

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.URL == "" {
		return errors.New("postgres: a connection URL is required")
	}
	if c.KeepChanges < 0 {
		return fmt.Errorf("postgres: KeepChanges must be 0 (the default) or more, got %d", c.KeepChanges)
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("postgres: MaxConns must be 0 (the default) or more, got %d", c.MaxConns)
	}
	if c.KeepChanges == 0 {
		c.KeepChanges = DefaultKeepChanges
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Store is a store.Store backed by one PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	// listenConfig is how the change listener connects (a copy of the
	// pool's).
	listenConfig *pgx.ConnConfig
	where        string // host:port/database, for messages
	log          *slog.Logger
	now          func() time.Time

	keepChanges, pruneEvery int64
	pollInterval            time.Duration

	mu       sync.Mutex
	watchers map[chan struct{}]func() bool // the value stops the context's AfterFunc
	closed   bool
	// announced is the newest revision watchers were woken for: the
	// listener's notifications of revisions at or below it (this store's
	// own commits, echoed) wake no one again.
	announced int64

	// The change listener, which Close stops.
	life       context.Context
	endLife    context.CancelFunc
	listenDone chan struct{}
}

// Open connects to the database cfg.URL names, applies pending migrations
// and starts the change listener. A connection failure names the server and
// what to check, never the password.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: the store URL is not valid: %w", redact(err, passwordOf(cfg.URL)))
	}
	cc := pcfg.ConnConfig
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = int32(min(cfg.MaxConns, 1<<20)) //nolint:gosec // bounded above
	} else if !strings.Contains(cfg.URL, "pool_max_conns") {
		pcfg.MaxConns = DefaultMaxConns
	}
	if cfg.ConnectTimeout > 0 {
		cc.ConnectTimeout = cfg.ConnectTimeout
	} else if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "wisp"
	}
	s := &Store{
		listenConfig: cc.Copy(),
		where:        describeServer(cc),
		log:          cfg.Logger.With("component", "postgres"),
		now:          func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }, // what timestamptz keeps
		keepChanges:  int64(cfg.KeepChanges),
		pruneEvery:   max(1, int64(cfg.KeepChanges)/10),
		pollInterval: cfg.PollInterval,
		watchers:     map[chan struct{}]func() bool{},
	}
	s.listenConfig.RuntimeParams["application_name"] = cc.RuntimeParams["application_name"] + " listener"
	if s.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, s.connectError(err, cc.Password)
	}
	if err := s.pool.Ping(ctx); err != nil {
		s.pool.Close()
		return nil, s.connectError(err, cc.Password)
	}
	if err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", s.where, redact(err, cc.Password))
	}
	// Listen before Open returns: a commit after it wakes the watchers.
	conn, err := s.dialListener(ctx)
	if err != nil {
		s.pool.Close()
		return nil, s.connectError(err, cc.Password)
	}
	if s.announced, err = revision(ctx, conn); err != nil {
		closeConn(ctx, conn)
		s.pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", s.where, err)
	}
	s.life, s.endLife = context.WithCancel(context.WithoutCancel(ctx))
	s.listenDone = make(chan struct{})
	go s.listen(conn)
	return s, nil
}

// Close stops the change listener, closes the watchers' channels and the
// connection pool.
func (s *Store) Close() error {
	s.endLife()
	<-s.listenDone
	s.mu.Lock()
	wasClosed := s.closed
	s.closed = true
	for ch, stop := range s.watchers {
		stop()
		delete(s.watchers, ch)
		close(ch)
	}
	s.mu.Unlock()
	if !wasClosed {
		s.pool.Close()
	}
	return nil
}

// describeServer names the server and database a configuration connects
// to, without the user's password.
func describeServer(cc *pgx.ConnConfig) string {
	host := cc.Host
	if !strings.HasPrefix(host, "/") {
		host = net.JoinHostPort(host, strconv.Itoa(int(cc.Port)))
	} else {
		host = fmt.Sprintf("the socket in %s (port %d)", host, cc.Port)
	}
	return fmt.Sprintf("%s, database %q as user %q", host, cc.Database, cc.User)
}

// connectError explains a failed connection: where, what happened, and
// what to check.
func (s *Store) connectError(err error, password string) error {
	hint := "check that the server runs and accepts connections at that address (its listen_addresses and port, " +
		"and any firewall between), and that the store URL names the right host and port"
	var pe *pgconn.PgError
	if errors.As(err, &pe) { // the server answered, and refused
		hint = "check the store URL's user, password and database, and that the server's pg_hba.conf lets this host in"
	}
	return fmt.Errorf("postgres: cannot connect to %s: %w; %s", s.where, redact(err, password), hint)
}

func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	// All pending migrations in one transaction, under an advisory lock:
	// a second process opening the store at the same time waits, then
	// finds them applied.
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockMigrate); err != nil {
			return fmt.Errorf("lock the schema for migration: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		for _, name := range names {
			base := path.Base(name)
			num, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
			if err != nil {
				return fmt.Errorf("migration %s: name must start with a number", base)
			}
			if containsInt(applied, num) {
				continue
			}
			body, err := migrations.ReadFile(name)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("apply migration %s: %w", base, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				num, base, s.now()); err != nil {
				return fmt.Errorf("apply migration %s: %w", base, err)
			}
		}
		return nil
	})
}

func containsInt(list []int, n int) bool {
	for _, v := range list {
		if v == n {
			return true
		}
	}
	return false
}

// change runs fn in a write transaction that also records one change of
// service, and wakes this store's watchers once it has committed (other
// stores on the database are woken by the notification). A failed fn
// records nothing.
func (s *Store) change(ctx context.Context, service string, fn func(tx pgx.Tx) error) error {
	var rev int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		var err error
		rev, err = s.recordChange(ctx, tx, service)
		return err
	})
	if err == nil {
		s.announce(rev)
	}
	return err
}

// read runs fn in a read-only transaction on one snapshot of the database.
func (s *Store) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
	return mapError(err)
}

// queryer is what both the pool and a transaction offer.
type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

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
